"""The simulated JointTrajectoryController's FollowJointTrajectory decisions, without ROS (times in sim seconds)."""
import numpy as np
import pytest

from dynamo_sim.commands import JointTargets
from dynamo_sim.trajectory_action import (
    GOAL_TOLERANCE_VIOLATED,
    INVALID_GOAL,
    PATH_TOLERANCE_VIOLATED,
    PREEMPTED,
    SUCCESSFUL,
    JointTolerance,
    RequestedTolerance,
    Tolerances,
    TrajectoryController,
    controller_tolerances,
    goal_tolerances,
)

ARM = ('a', 'b')
ALL = ['a', 'b', 'g']   # the simulator's joints: the controller has a and b, another controller g


def make_controller(path=0.0, goal=0.0, goal_time=0.0, stopped_velocity=0.0):
    targets = JointTargets(ALL, [0.0, 0.0, 0.5])
    defaults = controller_tolerances(ARM, dict.fromkeys(ARM, path), dict.fromkeys(ARM, goal), stopped_velocity,
                                     goal_time)
    return TrajectoryController('/arm/follow_joint_trajectory', ARM, defaults, targets), targets


def test_the_trajectory_is_interpolated_from_the_held_targets_and_fed_to_the_simulator():
    controller, targets = make_controller()
    controller.accept(b'1', ['b', 'a'], [([2.0, 1.0], 1.0), ([0.0, 0.0], 2.0)], controller.defaults, 0.0, now=10.0)
    np.testing.assert_allclose(targets.targets(10.5), [0.5, 1.0, 0.5])
    feedback, ended = controller.update(10.5, [0.4, 0.9, 0.5], [0.0, 0.0, 0.0])
    assert ended is None and feedback.joint_names == ARM
    np.testing.assert_allclose(feedback.desired, [0.5, 1.0])
    np.testing.assert_allclose(feedback.desired_velocity, [1.0, 2.0])
    np.testing.assert_allclose(feedback.error, [0.1, 0.1])
    np.testing.assert_allclose(feedback.error_velocity, [1.0, 2.0])


def test_a_goal_succeeds_at_its_end_once_within_the_goal_tolerance():
    controller, _ = make_controller(goal=0.01, goal_time=0.5)
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    assert controller.update(0.9, [0.9, 0.9, 0.5], [0, 0, 0])[1] is None   # before the end: no goal check
    assert controller.update(1.1, [0.95, 1.0, 0.5], [0, 0, 0])[1] is None  # a is 0.05 away: keep waiting
    goal_id, outcome = controller.update(1.2, [0.995, 1.0, 0.5], [0, 0, 0])[1]
    assert (goal_id, outcome.status, outcome.error_code) == (b'1', 'succeeded', SUCCESSFUL)
    assert controller.active is None and controller.update(1.3, [0, 0, 0], [0, 0, 0]) == (None, None)


def test_a_goal_not_reached_within_goal_time_tolerance_aborts_and_holds_the_measured_position():
    controller, targets = make_controller(goal=0.01, goal_time=0.5)
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    assert controller.update(1.5, [0.9, 1.0, 0.5], [0, 0, 0])[1] is None   # exactly at the limit: still waiting
    _, outcome = controller.update(1.6, [0.9, 1.0, 0.5], [0, 0, 0])[1]
    assert (outcome.status, outcome.error_code) == ('aborted', GOAL_TOLERANCE_VIOLATED)
    assert 'a position error +0.1000 beyond 0.01' in outcome.error_string
    np.testing.assert_allclose(targets.targets(9.0), [0.9, 1.0, 0.5])


def test_without_goal_time_tolerance_a_goal_waits_for_its_tolerance_indefinitely():
    controller, _ = make_controller(goal=0.01, goal_time=0.0)
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    assert controller.update(1000.0, [0.9, 1.0, 0.5], [0, 0, 0])[1] is None


def test_a_path_tolerance_violation_aborts_during_the_motion_and_holds_the_measured_position():
    controller, targets = make_controller(path=0.2)
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    assert controller.update(0.5, [0.35, 0.5, 0.5], [0.0, 0.0, 0.0])[1] is None   # 0.15 behind: within 0.2
    _, outcome = controller.update(0.6, [0.35, 0.6, 0.5], [0.0, 0.0, 0.0])[1]
    assert (outcome.status, outcome.error_code) == ('aborted', PATH_TOLERANCE_VIOLATED)
    assert 'a position error +0.2500 beyond 0.2' in outcome.error_string
    np.testing.assert_allclose(targets.targets(5.0), [0.35, 0.6, 0.5])


def test_a_new_goal_preempts_the_active_one_which_aborts_as_invalid_goal():
    controller, targets = make_controller()
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    goal_id, outcome = controller.accept(b'2', ARM, [([0.0, 0.0], 1.0)], controller.defaults, 0.0, now=0.5)
    assert (goal_id, outcome.status, outcome.error_code, outcome.error_string) == (b'1', 'aborted', INVALID_GOAL,
                                                                                   PREEMPTED)
    assert controller.active.goal_id == b'2'
    np.testing.assert_allclose(targets.targets(1.0), [0.25, 0.25, 0.5])   # from 0.5 at 0.5 s back to 0 at 1.5 s


def test_cancel_ends_only_the_active_goal_and_holds_the_measured_position():
    controller, targets = make_controller()
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    assert controller.cancel(b'other', [0.3, 0.3, 0.5]) is None and controller.active.goal_id == b'1'
    assert controller.cancel(b'1', [0.3, 0.4, 0.5]).status == 'canceled'
    assert controller.active is None
    np.testing.assert_allclose(targets.targets(2.0), [0.3, 0.4, 0.5])


@pytest.mark.parametrize('names,points,start,reason', [
    (['a', 'b'], [], 0.0, 'empty trajectory'),
    (['a', 'x'], [([1, 2], 0.1)], 0.0, "joints ['x'] are not the controller joints"),
    (['a'], [([1], 0.1)], 0.0, "leaves out the joints ['b']"),
    (['a', 'a', 'b'], [([1, 1, 2], 0.1)], 0.0, 'named twice'),
    (['a', 'b'], [([1, 2], 0.2), ([1, 2], 0.2)], 0.0, 'not strictly increasing at point 1'),
    (['a', 'b'], [([1, 2, 3], 0.1)], 0.0, 'point 0 has 3 positions for 2 joints'),
    (['a', 'b'], [([1, np.nan], 0.1)], 0.0, 'point 0 is not finite'),
    (['a', 'b'], [([1, 2], 0.5)], 3.0, 'ends in the past'),
])
def test_invalid_goals_are_rejected_with_the_reason(names, points, start, reason):
    controller, _ = make_controller()
    assert reason in controller.rejection(names, points, start, now=4.0)


def test_a_valid_goal_is_not_rejected():
    controller, _ = make_controller()
    assert controller.rejection(['b', 'a'], [([1, 2], 0.1), ([1, 2], 0.2)], 0.0, now=4.0) is None
    assert controller.rejection(['a', 'b'], [([1, 2], 0.5)], 3.8, now=4.0) is None


def test_a_start_stamp_shifts_the_points_and_skips_those_already_passed():
    controller, targets = make_controller()
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0), ([2.0, 2.0], 2.0)], controller.defaults, 9.5, now=10.75)
    np.testing.assert_allclose(targets.targets(11.5), [2.0, 2.0, 0.5])   # the second point, due at 11.5 s
    np.testing.assert_allclose(targets.targets(11.125), [1.0, 1.0, 0.5])


def test_goal_tolerances_override_the_defaults_per_joint_and_component():
    defaults = Tolerances(path={'a': JointTolerance(0.5, 0.2), 'b': JointTolerance(0.5)},
                          goal={'a': JointTolerance(0.01)}, goal_time=0.5)
    tolerances, warning = goal_tolerances(
        defaults, ARM, path=[RequestedTolerance('a', position=0.1, velocity=-1.0)],
        goal=[RequestedTolerance('b', position=0.02)], goal_time=0.0)
    assert warning is None
    assert tolerances.path == {'a': JointTolerance(0.1, 0.0), 'b': JointTolerance(0.5)}   # -1 erases, 0 keeps
    assert tolerances.goal == {'a': JointTolerance(0.01), 'b': JointTolerance(0.02)}
    assert tolerances.goal_time == 0.5


@pytest.mark.parametrize('path,goal_time,why', [
    ([RequestedTolerance('a', position=-2.0)], 0.0, 'illegal tolerance -2.0'),
    ([RequestedTolerance('x', position=0.1)], 0.0, "joint 'x' is not one of the controller joints"),
    ([], -3.0, 'illegal tolerance -3.0'),
])
def test_an_illegal_goal_tolerance_keeps_all_the_defaults(path, goal_time, why):
    defaults = Tolerances(path={'a': JointTolerance(0.5)}, goal_time=0.5)
    tolerances, warning = goal_tolerances(defaults, ARM, path=path, goal_time=goal_time)
    assert tolerances == defaults and why in warning


def test_the_goal_velocity_tolerance_is_the_stopped_velocity_tolerance():
    controller, _ = make_controller(stopped_velocity=0.01)
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    assert controller.update(1.0, [1.0, 1.0, 0.5], [0.05, 0.0, 0.0])[1] is None   # still moving
    assert controller.update(1.1, [1.0, 1.0, 0.5], [0.005, 0.0, 0.0])[1][1].status == 'succeeded'


def test_abort_on_reset_ends_the_active_goal():
    controller, _ = make_controller()
    assert controller.abort('reset', [0, 0, 0]) is None
    controller.accept(b'1', ARM, [([1.0, 1.0], 1.0)], controller.defaults, 0.0, now=0.0)
    goal_id, outcome = controller.abort('the simulated episode was reset', [0.0, 0.0, 0.5])
    assert (goal_id, outcome.status, outcome.error_code) == (b'1', 'aborted', INVALID_GOAL)


def test_error_codes_are_those_of_control_msgs():
    from control_msgs.action import FollowJointTrajectory

    from dynamo_sim import trajectory_action
    for name in ('SUCCESSFUL', 'INVALID_GOAL', 'INVALID_JOINTS', 'OLD_HEADER_TIMESTAMP', 'PATH_TOLERANCE_VIOLATED',
                 'GOAL_TOLERANCE_VIOLATED'):
        assert getattr(trajectory_action, name) == getattr(FollowJointTrajectory.Result, name), name
