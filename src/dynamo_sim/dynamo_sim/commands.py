"""Joint position targets fed by controller-style commands, as ros2_control's controllers take them.

A JointTrajectory (joint_trajectory_controller) is followed from the targets held when it arrived,
interpolating linearly to each point at its time_from_start and holding the last point; a
Float64MultiArray (forward position controller) sets its joints at once. Bad commands raise
CommandError with the reason and leave the targets unchanged. ROS-free: the node passes plain
names, arrays and seconds.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class CommandError(ValueError):
    """A command that does not fit the controller's joints (the message says why)."""


@dataclass
class _Trajectory:
    index: np.ndarray  # positions of the commanded joints in the full target vector
    times: np.ndarray  # absolute sim times, first = arrival time
    positions: np.ndarray  # (len(times), len(index)); first row = targets at arrival


class JointTargets:
    """Position targets of `joint_names`, updated by trajectory and array commands."""

    def __init__(self, joint_names: list[str], initial):
        self.joint_names = list(joint_names)
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        self.reset(initial)

    def reset(self, initial) -> None:
        self._held = np.array(initial, dtype=float)
        self._trajectories: list[_Trajectory] = []

    def _indices(self, names, allowed, what) -> np.ndarray:
        names = list(names)
        if not names:
            raise CommandError(f'{what}: no joint names')
        unknown = [n for n in names if n not in allowed]
        if unknown:
            raise CommandError(f'{what}: unknown joint(s) {unknown}; this controller has {list(allowed)}')
        if len(set(names)) != len(names):
            raise CommandError(f'{what}: repeated joint names {names}')
        return np.array([self._index[n] for n in names])

    def set_trajectory(self, names, points, now: float, allowed, what: str = 'trajectory') -> None:
        """`points`: [(positions, time_from_start seconds)], `allowed`: the controller's joints."""
        index = self._indices(names, allowed, what)
        if not points:
            raise CommandError(f'{what}: no points')
        times, rows = [], []
        for k, (positions, t) in enumerate(points):
            positions = np.asarray(positions, dtype=float)
            if positions.shape != (len(index),):
                raise CommandError(f'{what}: point {k} has {positions.size} positions for {len(index)} joints')
            if not np.all(np.isfinite(positions)) or not np.isfinite(t):
                raise CommandError(f'{what}: point {k} is not finite')
            if times and t < times[-1]:
                raise CommandError(f'{what}: time_from_start decreases at point {k}')
            times.append(float(t))
            rows.append(positions)
        start = self.targets(now)[index]
        self._held = self.targets(now)
        # a newer command replaces the pending trajectory of the same joints
        self._trajectories = [tr for tr in self._trajectories if not np.isin(tr.index, index).any()]
        self._trajectories.append(_Trajectory(
            index, now + np.array([0.0] + times), np.vstack([start] + rows)))

    def set_positions(self, values, allowed, what: str = 'command') -> None:
        """Set a forward position command: one value per joint of `allowed`, in that order."""
        values = np.asarray(values, dtype=float).reshape(-1)
        if values.size != len(allowed):
            raise CommandError(f"{what}: {values.size} values for {len(allowed)} joints ({', '.join(allowed)})")
        if not np.all(np.isfinite(values)):
            raise CommandError(f'{what}: values are not finite')
        index = self._indices(allowed, allowed, what)
        self._trajectories = [tr for tr in self._trajectories if not np.isin(tr.index, index).any()]
        self._held[index] = values

    def targets(self, at_time: float) -> np.ndarray:
        out = self._held.copy()
        for tr in self._trajectories:
            for j in range(len(tr.index)):
                out[tr.index[j]] = np.interp(at_time, tr.times, tr.positions[:, j])
        return out
