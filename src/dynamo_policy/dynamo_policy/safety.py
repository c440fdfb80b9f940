"""Safety filter applied to every command: joint-limit clamp, then a per-step change limit."""

from __future__ import annotations

import numpy as np


class UnsafeActionError(ValueError):
    """An action that must not be sent at all (NaN/inf from a policy)."""


class SafetyLimitError(ValueError):
    """Invalid limits; `field` is "lower", "upper" or "max_step"."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _per_dimension(values, size: int, field: str, default: float) -> np.ndarray:
    values = np.asarray(values if len(values) else [default], np.float64)
    if values.ndim != 1 or np.any(np.isnan(values)):
        raise SafetyLimitError(field, f'must be a list of numbers, got {values.tolist()}')
    if values.size == 1:
        return np.full(size, values[0])
    if values.size != size:
        raise SafetyLimitError(field, f'has {values.size} values, expected 1 or {size} (one per action)')
    return values


class SafetyFilter:
    """Clamps to [lower, upper] and moves at most `max_step` away from the previous command.

    Empty sequences mean "no limit"; a single value applies to every dimension.
    """

    def __init__(self, size: int, lower=(), upper=(), max_step=()):
        self.lower = _per_dimension(lower, size, 'lower', -np.inf)
        self.upper = _per_dimension(upper, size, 'upper', np.inf)
        self.max_step = _per_dimension(max_step, size, 'max_step', np.inf)
        if np.any(self.lower > self.upper):
            bad = np.flatnonzero(self.lower > self.upper).tolist()
            raise SafetyLimitError('upper', f'is below the lower limit at action index {bad}')
        if np.any(self.max_step <= 0):
            raise SafetyLimitError('max_step', f'must be > 0, got {self.max_step.tolist()}')

    def apply(self, action: np.ndarray, previous: np.ndarray | None) -> np.ndarray:
        """Return the safe version of `action`, given the previous command (None: no rate limit yet)."""
        action = np.asarray(action, np.float64)
        if not np.all(np.isfinite(action)):
            raise UnsafeActionError(f'non-finite action {action.tolist()}')
        safe = np.clip(action, self.lower, self.upper)
        if previous is not None:
            previous = np.asarray(previous, np.float64)
            safe = np.clip(safe, previous - self.max_step, previous + self.max_step)
            # The rate limit must not push a command back outside the joint limits.
            safe = np.clip(safe, self.lower, self.upper)
        return safe
