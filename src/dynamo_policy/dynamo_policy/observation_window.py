"""The observation context a policy needs: recent embeddings plus joint state by joint name."""

from __future__ import annotations

from collections import deque

import numpy as np


class ObservationWindow:
    """Keeps the newest `context_length` embeddings, each with the joint state current on its arrival.

    JointState messages are matched by name, in any order.
    """

    def __init__(self, context_length: int, embedding_dim: int, state_names: list[str]):
        self.context_length = int(context_length)
        self.embedding_dim = int(embedding_dim)
        self.state_names = list(state_names)
        self._rows: deque[tuple[float, np.ndarray, np.ndarray | None]] = deque(maxlen=self.context_length)
        self._state: np.ndarray | None = None

    def reset(self) -> None:
        self._rows.clear()

    def update_joint_state(self, names, positions) -> list[str]:
        """Store the state of `state_names`; return the names the message lacked (then ignored).

        A non-finite position counts as lacking: the policy would turn it into non-finite actions.
        """
        known = {name: float(position) for name, position in zip(names, positions) if np.isfinite(position)}
        missing = [name for name in self.state_names if name not in known]
        if missing:
            return missing
        self._state = np.asarray([known[name] for name in self.state_names], np.float32)
        return []

    def add_embedding(self, stamp: float, data) -> None:
        data = np.asarray(data, np.float32)
        if data.shape != (self.embedding_dim,):
            raise ValueError(f'embedding has {data.size} values, the policy expects {self.embedding_dim}')
        if self._rows and stamp <= self._rows[-1][0]:
            raise ValueError(f'embedding stamp {stamp:.6f} is not newer than the last one '
                             f'({self._rows[-1][0]:.6f})')
        self._rows.append((float(stamp), data, None if self._state is None else self._state.copy()))

    @property
    def latest_stamp(self) -> float | None:
        return self._rows[-1][0] if self._rows else None

    def ready(self) -> bool:
        """Tell whether an embedding is there and, if state is used, every row has a joint state."""
        if not self._rows:
            return False
        return not self.state_names or all(state is not None for _, _, state in self._rows)

    def window(self) -> dict[str, np.ndarray]:
        """Return the policy's obs_window (oldest first); call only when ready()."""
        window = {'embedding': np.stack([data for _, data, _ in self._rows])}
        if self.state_names:
            window['state'] = np.stack([state for _, _, state in self._rows])
        return window
