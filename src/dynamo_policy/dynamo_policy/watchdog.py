"""Watchdog: stop the robot when the newest observation is older than a timeout."""

from __future__ import annotations

import numpy as np


class Watchdog:
    """Judges observation age by the observation's own stamp.

    A stalled camera, encoder or network then all look the same: old data. An observation stamped
    further in the future than the timeout means the clocks disagree (e.g. use_sim_time before
    /clock arrives): also no go.
    """

    def __init__(self, timeout: float):
        if not timeout > 0:
            raise ValueError(f'observation timeout must be > 0, got {timeout}')
        self.timeout = float(timeout)

    def expired(self, now: float, observation_stamp: float | None) -> bool:
        return observation_stamp is None or abs(now - observation_stamp) > self.timeout


def hold_position(last_commanded: np.ndarray | None, measured: np.ndarray | None) -> np.ndarray | None:
    """Return the position to hold when stopping: where the robot is (measured), else where it was sent.

    Holding the measured position stops a moving arm where it is; the last command is the
    fallback when no joint state is available. None: nothing known, send nothing.
    """
    if measured is not None:
        return np.asarray(measured, np.float64)
    if last_commanded is not None:
        return np.asarray(last_commanded, np.float64)
    return None
