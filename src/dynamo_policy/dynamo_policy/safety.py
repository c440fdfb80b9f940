"""Safety filter applied to every command: limits in physical units, whatever the command rate.

Each command is clamped to [lower, upper] and may differ from the previous one only as much as
`max_velocity` (units/s) and `max_acceleration` (units/s², optional) allow over the time elapsed
since it, so a policy commanding at 30 Hz moves no faster than one commanding at 10 Hz. Position
commands (joint_trajectory, float64_multi_array) bound the joint velocity and acceleration; velocity
commands (a twist) bound the commanded velocity itself and its change per second.

The elapsed time credited to one command is capped at `max_interval` (the control period): after a
pause in commanding, the previous command is no licence for a jump.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

POSITION_LIMIT_FIELDS = ('lower', 'upper', 'max_velocity')


class UnsafeActionError(ValueError):
    """An action that must not be sent at all (NaN/inf from a policy or in the previous command)."""


class SafetyLimitError(ValueError):
    """Invalid or missing limits; `field` is "lower", "upper", "max_velocity" or "max_acceleration"."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CommandState:
    """A command (or the pose a first command starts from): its value, when it was sent, its rate of change."""

    value: np.ndarray
    time: float          # s; -inf: at rest since ever (a measured start pose)
    rate: np.ndarray     # units/s, the change per second that led to it (position commands)

    @classmethod
    def at_rest(cls, value) -> CommandState:
        value = np.asarray(value, np.float64)
        return cls(value, -math.inf, np.zeros_like(value))


def _per_dimension(values, size: int, field: str, default: float) -> np.ndarray:
    values = np.asarray(values if len(values) else [default], np.float64)
    if values.ndim != 1 or np.any(np.isnan(values)):
        raise SafetyLimitError(field, f'must be a list of numbers, got {values.tolist()}')
    if values.size == 1:
        return np.full(size, values[0])
    if values.size != size:
        raise SafetyLimitError(field, f'has {values.size} values, expected 1 or {size} (one per action)')
    return values


def _toward(previous_rate: np.ndarray, change: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the allowed [low, high] of a rate that may change by at most `change` from `previous_rate`.

    Slowing down to rest is always allowed: an acceleration limit that also bounds braking would
    force overshooting a target (and a stop command holds at once anyway).
    """
    low, high = previous_rate - change, previous_rate + change
    low = np.where(previous_rate > 0, np.minimum(low, 0.0), low)
    high = np.where(previous_rate < 0, np.maximum(high, 0.0), high)
    return low, high


class SafetyFilter:
    """Clamps to [lower, upper] and limits the velocity (and acceleration) between commands.

    Empty sequences mean "no limit"; a single value applies to every dimension.
    """

    def __init__(self, size: int, lower=(), upper=(), max_velocity=(), max_acceleration=(), *,
                 max_interval: float, velocity_commands: bool = False):
        self.lower = _per_dimension(lower, size, 'lower', -np.inf)
        self.upper = _per_dimension(upper, size, 'upper', np.inf)
        self.max_velocity = _per_dimension(max_velocity, size, 'max_velocity', np.inf)
        self.max_acceleration = _per_dimension(max_acceleration, size, 'max_acceleration', np.inf)
        if np.any(self.lower > self.upper):
            bad = np.flatnonzero(self.lower > self.upper).tolist()
            raise SafetyLimitError('upper', f'is below the lower limit at action index {bad}')
        for field in ('max_velocity', 'max_acceleration'):
            if np.any(getattr(self, field) <= 0):
                raise SafetyLimitError(field, f'must be > 0, got {getattr(self, field).tolist()}')
        if not max_interval > 0:
            raise ValueError(f'max_interval must be > 0, got {max_interval}')
        self.max_interval = float(max_interval)
        self.velocity_commands = velocity_commands

    def unlimited(self) -> list[str]:
        """Return the fields of POSITION_LIMIT_FIELDS without a finite limit for every dimension."""
        return [field for field in POSITION_LIMIT_FIELDS if not np.all(np.isfinite(getattr(self, field)))]

    def clamp(self, value) -> np.ndarray:
        """Return `value` within [lower, upper]: a stop's hold position must not leave the limits either."""
        return np.clip(np.asarray(value, np.float64), self.lower, self.upper)

    def apply(self, action, previous: CommandState, now: float) -> CommandState:
        """Return the safe command for `action` at time `now`, sent after `previous`."""
        action = np.asarray(action, np.float64)
        if not np.all(np.isfinite(action)):
            raise UnsafeActionError(f'non-finite action {action.tolist()}')
        if not (np.all(np.isfinite(previous.value)) and np.all(np.isfinite(previous.rate))):
            raise UnsafeActionError(f'non-finite previous command {previous.value.tolist()}')
        elapsed = min(max(now - previous.time, 0.0), self.max_interval)
        if self.velocity_commands:
            value = self._velocity_command(action, previous, elapsed)
        else:
            value = self._position_command(action, previous, elapsed)
        rate = (value - previous.value) / elapsed if elapsed > 0 else previous.rate
        return CommandState(value, now, rate)

    def _position_command(self, action: np.ndarray, previous: CommandState, elapsed: float) -> np.ndarray:
        target = np.clip(action, self.lower, self.upper)
        if elapsed > 0:
            rate = np.clip((target - previous.value) / elapsed, -self.max_velocity, self.max_velocity)
            rate = np.clip(rate, *_toward(previous.rate, self.max_acceleration * elapsed))
            value = previous.value + rate * elapsed
        else:   # no time has passed: no motion, unless nothing limits it
            limited = np.isfinite(self.max_velocity) | np.isfinite(self.max_acceleration)
            value = np.where(limited, previous.value, target)
        # The rate limit must not push a command back outside the joint limits (e.g. from a start
        # pose measured outside them).
        return np.clip(value, self.lower, self.upper)

    def _velocity_command(self, action: np.ndarray, previous: CommandState, elapsed: float) -> np.ndarray:
        target = np.clip(np.clip(action, self.lower, self.upper), -self.max_velocity, self.max_velocity)
        if elapsed > 0:
            value = np.clip(target, *_toward(previous.value, self.max_acceleration * elapsed))
        else:
            value = np.where(np.isfinite(self.max_acceleration), previous.value, target)
        return np.clip(np.clip(value, self.lower, self.upper), -self.max_velocity, self.max_velocity)


def make_safety_filter(size: int, lower, upper, max_velocity, max_acceleration, *, max_interval: float,
                       velocity_commands: bool) -> SafetyFilter:
    """Build the filter of a policy's commands; position commands must have position and velocity limits.

    A learned policy commanding joint positions with no limits could send any joint anywhere at
    any speed: that is refused (SafetyLimitError naming the first missing field).
    """
    safety = SafetyFilter(size, lower, upper, max_velocity, max_acceleration, max_interval=max_interval,
                          velocity_commands=velocity_commands)
    missing = [] if velocity_commands else safety.unlimited()
    if missing:
        raise SafetyLimitError(missing[0], 'is required, a finite value per action (or one for all), for '
                               'position commands: the robot must not move without position and velocity limits')
    return safety
