"""What policy_node's FollowJointTrajectory goals become: which answers matter, what they mean (ROS-free).

With command_type follow_joint_trajectory, every chunk the controller takes is one goal id, sent
as one goal per command target (e.g. the xArm's arm and gripper JointTrajectoryControllers).
GoalTracker follows each target's goals through their answers, with explicit times:
  sent(now) -> goal id        a new goal; the previous one is superseded (the controller preempts it)
  response(goal, target, accepted, now)
  result(goal, target, status, error_code, error_string)
  feedback(goal, target, errors)
  cancel_all()                the goals to cancel now (the others are canceled once accepted)
  overdue(now)                a goal some controller has not answered in time
The rules (each returns the reason to stop the policy, or None):
- A tolerance violation (PATH_TOLERANCE_VIOLATED, GOAL_TOLERANCE_VIOLATED) stops the policy,
  whichever goal reports it: the robot did not follow a commanded motion.
- A rejected goal stops the policy: the controller refused the policy's commands.
- Any other end of the current goal but success (aborted, canceled by someone else) stops the
  policy; a superseded goal's or a goal this node canceled ends as aborted (INVALID_GOAL,
  preempted) or canceled, and that is expected.
- A goal (not canceled) without an answer from every controller within GOAL_RESPONSE_TIMEOUT_S
  stops it: the request or its answer was lost.
Feedback of the current goal gives the tracking error reported in /diagnostics.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# action_msgs/msg/GoalStatus values of a goal's end
STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED = 4, 5, 6
STATUS_NAMES = {STATUS_SUCCEEDED: 'succeeded', STATUS_CANCELED: 'canceled', STATUS_ABORTED: 'aborted'}
# control_msgs/action/FollowJointTrajectory Result.error_code values
ERROR_CODES = {0: 'SUCCESSFUL', -1: 'INVALID_GOAL', -2: 'INVALID_JOINTS', -3: 'OLD_HEADER_TIMESTAMP',
               -4: 'PATH_TOLERANCE_VIOLATED', -5: 'GOAL_TOLERANCE_VIOLATED'}
TOLERANCE_VIOLATIONS = (-4, -5)
GOAL_RESPONSE_TIMEOUT_S = 1.0   # a controller answers a goal within milliseconds; this is a lost request


@dataclass(frozen=True)
class TrajectoryGoal:
    """One goal to send to every command target: positions (all actions) at times from its start."""

    goal_id: int
    times: tuple[float, ...]   # time_from_start of each point, s, strictly increasing
    positions: np.ndarray      # (len(times), action_dim), each within the safety limits


@dataclass
class _Goal:
    sent_at: float
    unanswered: set[int]                                # targets that have not answered yet
    accepted: set[int] = field(default_factory=set)     # targets running it (accepted, no result yet)
    canceled: bool = False                              # this node canceled (or will cancel) it


class GoalTracker:
    def __init__(self, targets: tuple[str, ...]):
        self.targets = targets            # the action names, for messages
        self.current: int | None = None   # the newest goal sent
        self._goals: dict[int, _Goal] = {}
        self._next_id = 1
        self.tracking_error: dict[str, float] = {}   # target -> largest |position error| of its latest feedback

    def sent(self, now: float) -> int:
        goal_id, self._next_id = self._next_id, self._next_id + 1
        self._goals[goal_id] = _Goal(now, set(range(len(self.targets))))
        self.current = goal_id
        return goal_id

    def response(self, goal_id: int, target: int, accepted: bool) -> tuple[bool, str | None]:
        """Note a controller's answer; return (cancel it now, reason to stop)."""
        goal = self._goals.get(goal_id)
        if goal is None:
            return False, None
        goal.unanswered.discard(target)
        if not accepted:
            self._forget_if_done(goal_id)
            if goal.canceled:
                return False, None
            return False, f'{self.targets[target]} rejected the goal (see its log for why)'
        goal.accepted.add(target)
        return goal.canceled, None

    def result(self, goal_id: int, target: int, status: int, error_code: int, error_string: str) -> str | None:
        """Note a goal's end on one controller; return the reason to stop the policy, or None."""
        goal = self._goals.get(goal_id)
        if goal is None:
            return None
        goal.accepted.discard(target)
        self._forget_if_done(goal_id)
        if status == STATUS_SUCCEEDED:
            return None
        code = ERROR_CODES.get(error_code, str(error_code))
        what = f'{self.targets[target]}: goal {STATUS_NAMES.get(status, f"status {status}")} ({code})' + (
            f': {error_string}' if error_string else '')
        if error_code in TOLERANCE_VIOLATIONS:
            return what
        if goal.canceled or goal_id != self.current:
            return None   # canceled by this node or preempted by its newer goal
        return what

    def feedback(self, goal_id: int, target: int, position_errors) -> None:
        if goal_id == self.current:
            errors = np.abs(np.asarray(position_errors, np.float64))
            self.tracking_error[self.targets[target]] = float(errors.max()) if errors.size else 0.0

    def cancel_all(self) -> list[tuple[int, int]]:
        """Mark every unfinished goal canceled; return the (goal, target) pairs running now, to cancel."""
        running = []
        for goal_id, goal in self._goals.items():
            goal.canceled = True
            running += [(goal_id, target) for target in sorted(goal.accepted)]
        self.current = None
        self.tracking_error.clear()
        return running

    def overdue(self, now: float) -> str | None:
        """Return why to stop if a controller has not answered a goal (not canceled) in time, else None."""
        for goal in self._goals.values():
            if goal.unanswered and not goal.canceled and now - goal.sent_at > GOAL_RESPONSE_TIMEOUT_S:
                silent = [self.targets[target] for target in sorted(goal.unanswered)]
                return f'{silent} did not answer a goal within {GOAL_RESPONSE_TIMEOUT_S:g} s'
        return None

    def _forget_if_done(self, goal_id: int) -> None:
        goal = self._goals[goal_id]
        if not goal.unanswered and not goal.accepted:
            del self._goals[goal_id]
