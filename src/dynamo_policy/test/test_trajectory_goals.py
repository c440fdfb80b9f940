"""follow_joint_trajectory in PolicyController and GoalTracker: goals, answers, cancels, with a fake clock (no ROS).

Two command targets, as the xArm's arm and gripper controllers: action 0 drives joint1, action 1
drive_joint. test_closed_loop_trajectory_action.py runs the same through the nodes and the simulator.
"""

import numpy as np
import pytest

from dynamo_policy.controller import ControlConfig, PolicyController
from dynamo_policy.safety import SafetyFilter
from dynamo_policy.trajectory_goals import (
    GOAL_RESPONSE_TIMEOUT_S,
    STATUS_ABORTED,
    STATUS_CANCELED,
    STATUS_SUCCEEDED,
    GoalTracker,
)

ACTIONS = ('joint1', 'drive_joint')
TARGETS = ('/arm/follow_joint_trajectory', '/gripper/follow_joint_trajectory')
CHECKSUM = 'goodgoodgoodgood'
PERIOD = 0.1
TIMEOUT = 0.5
MAX_VELOCITY = 1.0
SUCCESSFUL, INVALID_GOAL, PATH_TOLERANCE_VIOLATED, GOAL_TOLERANCE_VIOLATED = 0, -1, -4, -5


def ramp(stamp, horizon=5, speed=0.5):
    """Return a chunk whose row due at time t is speed * t for both actions."""
    due = stamp + PERIOD * np.arange(1, horizon + 1)
    return np.repeat((speed * due)[:, None], 2, axis=1).astype(np.float32)


class Rig:
    """A controller in trajectory-goal mode, fed events; records goals, cancels and notes."""

    def __init__(self, autostart=True):
        config = ControlConfig(action_names=ACTIONS, state_names=(), context_length=1, embedding_dim=2,
                               encoder_checksum=CHECKSUM, step_period=PERIOD, control_period=PERIOD,
                               observation_timeout=TIMEOUT, ensemble_m=0.0, velocity_commands=False,
                               autostart=autostart, goal_actions=TARGETS)
        safety = SafetyFilter(2, lower=[-5.0], upper=[5.0], max_velocity=[MAX_VELOCITY], max_interval=PERIOD)
        self.controller = PolicyController(config, safety)
        self.goals, self.canceled, self.notes = [], [], []

    def _record(self, reaction):
        assert reaction.command is None, 'trajectory goals mode sent a topic command'
        self.notes += reaction.notes
        self.canceled += reaction.cancel
        if reaction.goal is not None:
            assert np.all(np.isfinite(reaction.goal.positions))
            self.goals.append(reaction.goal)
        return reaction

    def observe(self, stamp, chunk=None, now=None, unavailable=()):
        now = stamp if now is None else now
        reaction = self._record(self.controller.observation(stamp, [0.0, 0.0], now, CHECKSUM))
        if reaction.predict is not None:
            self._record(self.controller.prediction(reaction.predict, ramp(stamp) if chunk is None else chunk, now,
                                                    unavailable))

    def joints(self, joint1=0.0, drive_joint=0.0):
        self._record(self.controller.joint_state(list(ACTIONS), [joint1, drive_joint]))

    def answer(self, goal, accepted=True, now=0.0, targets=(0, 1)):
        for target in targets:
            self._record(self.controller.goal_response(goal.goal_id, target, accepted, now))

    def result(self, goal, target, status, code=SUCCESSFUL, text='', now=0.0):
        return self._record(self.controller.goal_result(goal.goal_id, target, status, code, text, now))

    def keys(self):
        return [note.key for note in self.notes]

    def texts(self, key):
        return [note.text for note in self.notes if note.key == key]


def test_a_chunk_becomes_one_goal_of_its_future_rows_limited_from_the_measured_position():
    rig = Rig()
    rig.joints(0.0, 0.0)
    rig.observe(stamp=1.0, now=1.04)
    [goal] = rig.goals
    # rows due at 1.1 .. 1.5 s, all after now: time_from_start = due - now
    np.testing.assert_allclose(goal.times, [0.06, 0.16, 0.26, 0.36, 0.46], atol=1e-9)
    # the ramp asks for 0.55 at once; from rest at 0 the limit is 1 unit/s over each point's time
    np.testing.assert_allclose(goal.positions[:, 0], MAX_VELOCITY * np.array(goal.times), atol=1e-6)
    assert rig.keys().count('commanding') == 1


def test_a_newer_chunk_preempts_and_continues_from_the_previous_trajectory():
    rig = Rig()
    rig.joints(0.55, 0.55)
    rig.observe(stamp=1.0)            # the ramp: 0.55 at 1.1 s, moving 0.5 units/s
    rig.observe(stamp=1.1)            # 0.6 at 1.2 s ...
    first, second = rig.goals
    assert second.goal_id != first.goal_id
    # the first goal is at 0.55 (+0.5 * 0.1 s ramp-up from rest) at 1.1 s: the second goal's first point
    # (0.1 s later) is at most MAX_VELOCITY * 0.1 away from it
    np.testing.assert_allclose(second.times, [0.1, 0.2, 0.3, 0.4, 0.5], atol=1e-9)
    start = np.interp(0.1, (0.0,) + first.times, (0.55,) + tuple(first.positions[:, 0]))
    assert abs(second.positions[0, 0] - start) <= MAX_VELOCITY * 0.1 + 1e-6
    np.testing.assert_allclose(second.positions[-1], [0.8, 0.8], atol=1e-5)


def test_the_preempted_goal_ending_aborted_or_canceled_does_not_stop_the_policy():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0], now=1.0)
    rig.observe(stamp=1.1)
    rig.answer(rig.goals[1], now=1.1)
    rig.result(rig.goals[0], 0, STATUS_ABORTED, INVALID_GOAL, 'Current goal preempted by new incoming action.')
    rig.result(rig.goals[0], 1, STATUS_CANCELED)
    rig.result(rig.goals[1], 0, STATUS_SUCCEEDED)
    assert rig.controller.enabled and rig.controller.commanding
    assert 'goal_failed' not in rig.keys()
    rig.observe(stamp=1.2)
    assert len(rig.goals) == 3


@pytest.mark.parametrize('code,name', [(PATH_TOLERANCE_VIOLATED, 'PATH_TOLERANCE_VIOLATED'),
                                       (GOAL_TOLERANCE_VIOLATED, 'GOAL_TOLERANCE_VIOLATED')])
def test_a_tolerance_violation_stops_and_disables_the_policy_with_its_reason(code, name):
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    [goal] = rig.goals
    rig.answer(goal, now=1.0)
    rig.result(goal, 0, STATUS_ABORTED, code, 'joint1 position error +0.3 beyond 0.1', now=1.05)
    reason = f'{TARGETS[0]}: goal aborted ({name}): joint1 position error +0.3 beyond 0.1'
    assert rig.texts('goal_failed') == [f'stopping the policy: {reason}; call ~/enable to resume']
    assert rig.canceled == [(goal.goal_id, 1)]   # the gripper's part still runs: canceled
    assert not rig.controller.enabled and not rig.controller.commanding
    rig.result(goal, 1, STATUS_ABORTED, code, 'drive_joint too', now=1.06)   # the cancel came too late
    status = rig.controller.status(1.06)
    assert status.level == 'ERROR' and reason in status.message   # the first failure: the cause
    rig.observe(stamp=1.1)                           # no more goals until enabled again
    assert len(rig.goals) == 1
    rig._record(rig.controller.enable(1.15))
    rig.joints()
    rig.observe(stamp=1.2)
    assert len(rig.goals) == 2 and rig.controller.status(1.2).level == 'OK'


def test_a_tolerance_violation_of_a_preempted_goal_still_stops_the_policy():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0])
    rig.observe(stamp=1.1)
    rig.result(rig.goals[0], 0, STATUS_ABORTED, PATH_TOLERANCE_VIOLATED, '')
    assert not rig.controller.enabled and 'goal_failed' in rig.keys()


@pytest.mark.parametrize('status,code', [(STATUS_ABORTED, INVALID_GOAL), (STATUS_CANCELED, SUCCESSFUL)])
def test_the_current_goal_ending_other_than_by_success_stops_the_policy(status, code):
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0])
    rig.result(rig.goals[0], 1, status, code, 'someone else')
    assert not rig.controller.enabled
    assert rig.texts('goal_failed')[0].startswith(f'stopping the policy: {TARGETS[1]}: goal ')


def test_a_rejected_goal_stops_the_policy():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0], accepted=False, targets=(0,))
    assert not rig.controller.enabled
    assert f'{TARGETS[0]} rejected the goal' in rig.texts('goal_failed')[0]


def test_disable_cancels_running_goals_and_a_goal_accepted_later_on_acceptance():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    goal = rig.goals[0]
    rig.answer(goal, targets=(0,))               # the gripper has not answered yet
    rig._record(rig.controller.disable(1.05))
    assert rig.canceled == [(goal.goal_id, 0)]
    rig.answer(goal, targets=(1,))               # accepted after the disable: canceled at once
    assert rig.canceled == [(goal.goal_id, 0), (goal.goal_id, 1)]
    rig.result(goal, 0, STATUS_CANCELED)
    rig.result(goal, 1, STATUS_ABORTED, INVALID_GOAL, 'reset')
    assert 'goal_failed' not in rig.keys() and rig.controller.status(1.1).level == 'OK'


def test_the_timer_sends_no_goal_and_the_watchdog_cancels():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0])
    for k in range(1, 5):
        rig._record(rig.controller.tick(1.0 + 0.1 * k))   # up to observation_timeout: the goal runs on
    assert len(rig.goals) == 1 and rig.canceled == []
    rig._record(rig.controller.tick(1.0 + TIMEOUT + 0.01))
    assert rig.canceled == [(rig.goals[0].goal_id, 0), (rig.goals[0].goal_id, 1)]
    assert 'watchdog' in rig.texts('stopped')[0]
    assert rig.controller.enabled   # a watchdog stop is no failure: the next observation commands again
    rig.observe(stamp=1.6)
    assert len(rig.goals) == 2


def test_shutdown_cancels_the_running_goal():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0])
    rig._record(rig.controller.shutdown(1.05))
    assert rig.canceled == [(rig.goals[0].goal_id, 0), (rig.goals[0].goal_id, 1)]


def test_a_goal_a_controller_does_not_answer_stops_the_policy_after_the_response_timeout():
    rig = Rig()
    rig.joints()
    for k in range(10):                     # observations every 0.1 s; the gripper's controller never answers
        rig.observe(stamp=1.0 + 0.1 * k)
        rig.answer(rig.goals[-1], targets=(0,))
        rig._record(rig.controller.tick(1.05 + 0.1 * k))
    assert rig.controller.enabled           # the first goal is 0.95 s old
    rig.observe(stamp=2.0)
    rig._record(rig.controller.tick(2.05))
    assert not rig.controller.enabled
    assert f"['{TARGETS[1]}'] did not answer a goal within {GOAL_RESPONSE_TIMEOUT_S:g} s" in rig.texts('goal_failed')[0]


def test_no_goal_is_sent_until_the_action_servers_and_the_joint_states_are_there():
    rig = Rig()
    rig.observe(stamp=1.0, unavailable=TARGETS[1:])
    assert rig.goals == [] and f"no action server of ['{TARGETS[1]}']" in rig.texts('waiting_controllers')[0]
    rig.observe(stamp=1.1)
    assert rig.goals == [] and 'waiting_joint_states' in rig.keys()
    rig.joints()
    rig.observe(stamp=1.2)
    assert len(rig.goals) == 1


def test_a_non_finite_action_stops_without_a_goal():
    rig = Rig()
    rig.joints()
    rig.observe(stamp=1.0)
    rig.answer(rig.goals[0])
    chunk = ramp(1.1)
    chunk[2, 1] = np.nan
    rig.observe(stamp=1.1, chunk=chunk)
    assert len(rig.goals) == 1 and 'unsafe' in rig.texts('stopped')[0]
    assert rig.canceled == [(rig.goals[0].goal_id, 0), (rig.goals[0].goal_id, 1)]


def test_feedback_of_the_current_goal_is_the_reported_tracking_error():
    tracker = GoalTracker(TARGETS)
    old = tracker.sent(0.0)
    new = tracker.sent(0.1)
    tracker.feedback(old, 0, [0.5, -0.9])
    assert tracker.tracking_error == {}
    tracker.feedback(new, 0, [0.01, -0.03])
    assert tracker.tracking_error == {TARGETS[0]: pytest.approx(0.03)}


def test_result_codes_and_statuses_are_those_of_control_msgs_and_action_msgs():
    from action_msgs.msg import GoalStatus
    from control_msgs.action import FollowJointTrajectory

    from dynamo_policy.trajectory_goals import ERROR_CODES
    assert {getattr(FollowJointTrajectory.Result, name): name for name in ERROR_CODES.values()} == ERROR_CODES
    assert (STATUS_SUCCEEDED, STATUS_CANCELED, STATUS_ABORTED) == (
        GoalStatus.STATUS_SUCCEEDED, GoalStatus.STATUS_CANCELED, GoalStatus.STATUS_ABORTED)
