"""The FollowJointTrajectory action of a simulated JointTrajectoryController (ROS-free; sim_node translates).

sim_node serves control_msgs/action/FollowJointTrajectory under the names the real controllers
use, and this module decides what ros2_control's JointTrajectoryController (ros2_controllers,
kilted branch) decides, on the simulation clock:
- A goal is rejected when it has no points, names a joint the controller lacks or leaves one of
  its joints out (allow_partial_joints_goal is false by default), names a joint twice, has a point
  of another size or not finite, time_from_start not strictly increasing, or a start stamp
  (nonzero) at which the whole trajectory is already over.
- An accepted goal preempts the active one: aborted with INVALID_GOAL, "Current goal preempted by
  new incoming action.". Its trajectory runs from the joints' targets at arrival, interpolated
  linearly to each point at arrival + time_from_start (the controller interpolates a
  positions-only trajectory linearly), then holds the last point. With a nonzero start stamp the
  points are due at stamp + time_from_start instead (those already passed are skipped).
- Each update (every simulation step) gives feedback: desired (sampled), actual (measured),
  error = desired - actual. Before the last point's time every joint must stay within its path
  tolerance, else the goal aborts with PATH_TOLERANCE_VIOLATED; from then on, the goal succeeds
  once every joint is within its goal tolerance, and aborts with GOAL_TOLERANCE_VIOLATED when that
  has not happened goal_time_tolerance after the last point (never, with 0).
- A tolerance of 0 enforces nothing. A goal's tolerances replace the controller's defaults per
  joint and component: 0 keeps the default, -1 removes it; any other negative value, or a
  tolerance of a joint the controller lacks, makes the whole goal use the defaults.
- A cancel ends the active goal as canceled (empty result). After an abort or a cancel the joints
  hold their measured positions.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from dynamo_sim.commands import JointTargets

# control_msgs/action/FollowJointTrajectory Result.error_code values
SUCCESSFUL = 0
INVALID_GOAL = -1
INVALID_JOINTS = -2
OLD_HEADER_TIMESTAMP = -3
PATH_TOLERANCE_VIOLATED = -4
GOAL_TOLERANCE_VIOLATED = -5
ERASE = -1.0   # a goal's tolerance value that removes the default
PREEMPTED = 'Current goal preempted by new incoming action.'


@dataclass(frozen=True)
class JointTolerance:
    """Largest |error| of one joint's position, velocity, acceleration; 0 = not enforced."""

    position: float = 0.0
    velocity: float = 0.0
    acceleration: float = 0.0

    def violations(self, position: float, velocity: float) -> list[str]:
        """Return the violated components as text (the simulator measures no acceleration)."""
        found = []
        for component, limit, error in (('position', self.position, position), ('velocity', self.velocity, velocity)):
            if limit > 0 and abs(error) > limit:
                found.append(f'{component} error {error:+.4f} beyond {limit:g}')
        return found


@dataclass(frozen=True)
class Tolerances:
    """A controller's tolerances: per joint during the motion (path) and at its end (goal)."""

    path: dict[str, JointTolerance] = field(default_factory=dict)   # a joint missing: none
    goal: dict[str, JointTolerance] = field(default_factory=dict)
    goal_time: float = 0.0   # s after the last point to reach the goal tolerance; 0 = no limit


@dataclass(frozen=True)
class RequestedTolerance:
    """One entry of a goal's path_tolerance or goal_tolerance (control_msgs/JointTolerance)."""

    name: str
    position: float = 0.0
    velocity: float = 0.0
    acceleration: float = 0.0


@dataclass(frozen=True)
class Outcome:
    """How a goal ended: status 'succeeded', 'aborted' or 'canceled', with the result's fields."""

    status: str
    error_code: int = SUCCESSFUL
    error_string: str = ''


@dataclass(frozen=True)
class Feedback:
    joint_names: tuple[str, ...]
    desired: np.ndarray          # positions
    desired_velocity: np.ndarray
    actual: np.ndarray
    actual_velocity: np.ndarray

    @property
    def error(self) -> np.ndarray:
        return self.desired - self.actual

    @property
    def error_velocity(self) -> np.ndarray:
        return self.desired_velocity - self.actual_velocity


class ToleranceError(ValueError):
    """A goal tolerance the controller refuses (it then uses its defaults)."""


def _resolve(default: float, requested: float) -> float:
    if requested > 0:
        return requested
    if abs(requested - ERASE) < np.finfo(np.float32).eps:
        return 0.0
    if requested < 0:
        raise ToleranceError(f'illegal tolerance {requested}')
    return default


def _override(defaults: dict[str, JointTolerance], requested, joints) -> dict[str, JointTolerance]:
    resolved = dict(defaults)
    for entry in requested:
        if entry.name not in joints:
            raise ToleranceError(f'joint {entry.name!r} is not one of the controller joints {list(joints)}')
        default = defaults.get(entry.name, JointTolerance())
        resolved[entry.name] = JointTolerance(*(
            _resolve(getattr(default, c), getattr(entry, c)) for c in ('position', 'velocity', 'acceleration')))
    return resolved


def goal_tolerances(defaults: Tolerances, joints, path=(), goal=(), goal_time: float = 0.0
                    ) -> tuple[Tolerances, str | None]:
    """Return a goal's tolerances over the controller's `defaults`, and why the defaults were kept (or None)."""
    try:
        return Tolerances(_override(defaults.path, path, joints), _override(defaults.goal, goal, joints),
                          _resolve(defaults.goal_time, goal_time)), None
    except ToleranceError as error:
        return defaults, f'{error}: using the default tolerances'


@dataclass
class _Goal:
    goal_id: bytes
    times: np.ndarray       # absolute sim times; the first = arrival
    positions: np.ndarray   # (len(times), joints) in controller order; the first row = targets at arrival
    tolerances: Tolerances
    sampled: bool = False


class TrajectoryController:
    """One JointTrajectoryController: its joints (in the targets), default tolerances and active goal."""

    def __init__(self, name: str, joints, defaults: Tolerances, targets: JointTargets):
        self.name = name
        self.joints = tuple(joints)
        self.defaults = defaults
        self.targets = targets
        self._index = np.array([targets.joint_names.index(joint) for joint in self.joints])
        self.active: _Goal | None = None

    def rejection(self, names, points, start_time: float, now: float) -> str | None:
        """Return why a goal's trajectory is refused, or None. `points`: [(positions, time_from_start s)]."""
        names = list(names)
        if not points:
            return 'empty trajectory'
        unknown = [name for name in names if name not in self.joints]
        if unknown:
            return f'joints {unknown} are not the controller joints {list(self.joints)}'
        if len(set(names)) != len(names):
            return f'a joint is named twice: {names}'
        missing = [joint for joint in self.joints if joint not in names]
        if missing:
            return f'the trajectory leaves out the joints {missing} (partial goals are not allowed)'
        times = [float(t) for _, t in points]
        if start_time != 0.0 and start_time + times[-1] <= now:
            return f'the trajectory starting at {start_time:.3f} s ends in the past ({now:.3f} s)'
        for k, (positions, t) in enumerate(points):
            if k > 0 and not t > times[k - 1]:
                return f'time_from_start is not strictly increasing at point {k}'
            positions = np.asarray(positions, dtype=float)
            if positions.shape != (len(names),):
                return f'point {k} has {positions.size} positions for {len(names)} joints'
            if not (np.all(np.isfinite(positions)) and np.isfinite(t)):
                return f'point {k} is not finite'
        return None

    def accept(self, goal_id: bytes, names, points, tolerances: Tolerances, start_time: float, now: float
               ) -> tuple[bytes, Outcome] | None:
        """Start a goal (already checked by rejection()); return the goal it preempts and its outcome."""
        preempted = self._finish(Outcome('aborted', INVALID_GOAL, PREEMPTED))
        order = [list(names).index(joint) for joint in self.joints]
        rows = np.array([np.asarray(positions, dtype=float)[order] for positions, _ in points])
        # A nonzero start stamp shifts the points; those already passed are skipped.
        times = np.array([float(t) for _, t in points]) + (start_time or now)
        ahead = times > now
        times, rows = times[ahead], rows[ahead]
        # The simulator's position actuators follow the same trajectory, from the targets held now.
        self.targets.set_trajectory(self.joints, [(row, t - now) for row, t in zip(rows, times)], now, self.joints,
                                    self.name)
        held = self.targets.targets(now)[self._index]
        self.active = _Goal(goal_id, np.concatenate([[now], times]), np.vstack([held, rows]), tolerances)
        return preempted

    def cancel(self, goal_id: bytes, actual) -> Outcome | None:
        """Cancel the goal if it is the active one (then hold `actual`, all joints' positions); return its outcome."""
        if self.active is None or self.active.goal_id != goal_id:
            return None
        self._hold(actual)
        return self._finish(Outcome('canceled'))[1]

    def abort(self, reason: str, actual) -> tuple[bytes, Outcome] | None:
        """End the active goal, if any, as aborted (INVALID_GOAL, e.g. on a simulator reset), holding `actual`."""
        if self.active is None:
            return None
        self._hold(actual)
        return self._finish(Outcome('aborted', INVALID_GOAL, reason))

    def update(self, now: float, actual, actual_velocity) -> tuple[Feedback | None, tuple[bytes, Outcome] | None]:
        """Check the active goal at sim time `now` against the measured joints (all of the targets')."""
        goal = self.active
        if goal is None:
            return None, None
        actual = np.asarray(actual, dtype=float)[self._index]
        actual_velocity = np.asarray(actual_velocity, dtype=float)[self._index]
        desired, desired_velocity = self._sample(goal, now)
        feedback = Feedback(self.joints, desired, desired_velocity, actual, actual_velocity)
        first_sample, goal.sampled = not goal.sampled, True
        end = goal.times[-1]
        if now < end or first_sample:
            violated = self._violations(goal.tolerances.path, feedback)
            if violated:
                self._hold_measured(actual)
                return feedback, self._finish(Outcome('aborted', PATH_TOLERANCE_VIOLATED,
                                                      f'Aborted due to path tolerance violation: {violated}'))
        if now >= end:
            if not self._violations(goal.tolerances.goal, feedback):
                return feedback, self._finish(Outcome('succeeded', SUCCESSFUL, 'Goal successfully reached!'))
            late = now - end
            if goal.tolerances.goal_time != 0.0 and late > goal.tolerances.goal_time:
                self._hold_measured(actual)
                violated = self._violations(goal.tolerances.goal, feedback)
                return feedback, self._finish(Outcome('aborted', GOAL_TOLERANCE_VIOLATED,
                                                      f'Aborted due to goal_time_tolerance exceeding by {late:f} '
                                                      f'seconds: {violated}'))
        return feedback, None

    # --- internals ------------------------------------------------------------------------------
    def _sample(self, goal: _Goal, now: float) -> tuple[np.ndarray, np.ndarray]:
        desired = np.array([np.interp(now, goal.times, goal.positions[:, j]) for j in range(len(self.joints))])
        segment = np.searchsorted(goal.times, now, side='right')
        if 0 < segment < len(goal.times):
            span = goal.times[segment] - goal.times[segment - 1]
            return desired, (goal.positions[segment] - goal.positions[segment - 1]) / span
        return desired, np.zeros(len(self.joints))

    def _violations(self, tolerances: dict[str, JointTolerance], feedback: Feedback) -> str:
        error, error_velocity = feedback.error, feedback.error_velocity
        found = [f'{joint} {text}' for j, joint in enumerate(self.joints)
                 for text in tolerances.get(joint, JointTolerance()).violations(error[j], error_velocity[j])]
        return '; '.join(found)

    def _hold(self, actual) -> None:
        self._hold_measured(np.asarray(actual, dtype=float)[self._index])

    def _hold_measured(self, positions: np.ndarray) -> None:
        self.targets.set_positions(positions, self.joints, self.name)

    def _finish(self, outcome: Outcome) -> tuple[bytes, Outcome] | None:
        goal, self.active = self.active, None
        return None if goal is None else (goal.goal_id, outcome)


def controller_tolerances(joints, path_position: dict[str, float], goal_position: dict[str, float],
                          stopped_velocity: float, goal_time: float) -> Tolerances:
    """Return a controller's default tolerances as its `constraints` parameters give them."""
    return Tolerances(
        path={joint: JointTolerance(position=path_position.get(joint, 0.0)) for joint in joints},
        goal={joint: replace(JointTolerance(position=goal_position.get(joint, 0.0)), velocity=stopped_velocity)
              for joint in joints},
        goal_time=goal_time)
