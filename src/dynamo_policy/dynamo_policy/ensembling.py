"""Temporal ensembling of overlapping action chunks, with actions whose time has passed dropped.

Each chunk is keyed by its observation stamp: row i is due at stamp + (i + 1) * step_period
(dynamo_msgs/ActionChunk). At control time `now`, the target is the first row of the newest chunk
that is not yet due-and-gone (Diffusion Policy's real-robot loop drops actions whose time has
passed instead of executing them late); every chunk that has a row due at that same time votes
with ACT's weights w_i = exp(-m * i), i = 0 for the oldest chunk, so a larger m trusts new
observations more and m = 0 averages all chunks equally.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class EnsembledAction:
    action: np.ndarray   # float32 (action_dim,)
    due_time: float      # seconds, the time this action is meant to be reached
    votes: int           # chunks that contributed


class ChunkEnsembler:
    def __init__(self, step_period: float, m: float, max_chunks: int = 64):
        if not step_period > 0:
            raise ValueError(f'step_period must be > 0, got {step_period}')
        if m < 0:
            raise ValueError(f'ensembling weight m must be >= 0, got {m}')
        self.step_period = float(step_period)
        self.m = float(m)
        # Older chunks than this many can never overlap a newer one of a horizon <= max_chunks.
        self._chunks: deque[tuple[float, np.ndarray]] = deque(maxlen=max_chunks)

    def reset(self) -> None:
        self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)

    def add(self, stamp: float, chunk: np.ndarray) -> None:
        """Add a chunk (horizon, action_dim) predicted from the observation taken at `stamp` (s)."""
        chunk = np.asarray(chunk, np.float32)
        if chunk.ndim != 2:
            raise ValueError(f'an action chunk must be (horizon, action_dim), got shape {chunk.shape}')
        if self._chunks and stamp < self._chunks[-1][0]:
            return  # an observation older than one already used: out of order, ignore it
        if self._chunks and stamp == self._chunks[-1][0]:
            self._chunks.pop()  # the same observation predicted again: keep the newest prediction
        self._chunks.append((float(stamp), chunk))

    def _due(self, stamp: float, row: int) -> float:
        return stamp + (row + 1) * self.step_period

    def action_at(self, now: float) -> EnsembledAction | None:
        """Return the ensembled action for the first not-yet-passed time step, or None if all passed."""
        # Drop chunks whose every row has passed.
        while self._chunks and self._due(self._chunks[0][0], len(self._chunks[0][1]) - 1) < now:
            self._chunks.popleft()
        if not self._chunks:
            return None
        newest_stamp, newest = self._chunks[-1]
        row = self._first_row(now)
        return self._ensembled(self._due(newest_stamp, row)) if row < len(newest) else None

    def actions_after(self, now: float) -> list[EnsembledAction]:
        """Return the ensembled actions of every row of the newest chunk due after `now`, in order.

        What a trajectory goal carries (the rows' due times are its points' times); nothing is dropped.
        """
        if not self._chunks:
            return []
        newest_stamp, newest = self._chunks[-1]
        rows = range(self._first_row(now), len(newest))
        return [self._ensembled(self._due(newest_stamp, row)) for row in rows if self._due(newest_stamp, row) > now]

    def _first_row(self, now: float) -> int:
        """Return the row of the newest chunk due first at or after `now`."""
        return max(0, math.ceil((now - self._chunks[-1][0]) / self.step_period - 1 - 1e-9))

    def _ensembled(self, due_time: float) -> EnsembledAction:
        actions, weights = [], []
        for stamp, chunk in self._chunks:
            # The row of this chunk due closest to due_time (stamps need not be on one grid).
            chunk_row = round((due_time - stamp) / self.step_period) - 1
            if 0 <= chunk_row < len(chunk):
                actions.append(chunk[chunk_row])
                weights.append(math.exp(-self.m * len(weights)))
        weights_array = np.asarray(weights, np.float64)
        action = (weights_array[:, None] * np.asarray(actions, np.float64)).sum(0) / weights_array.sum()
        return EnsembledAction(action.astype(np.float32), due_time, len(actions))
