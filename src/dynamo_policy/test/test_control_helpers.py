"""ROS-free control helpers of the policy node.

Ensembling, safety filter, watchdog, observation window and the command layout.
"""

import math

import numpy as np
import pytest

from dynamo_policy.command_layout import ParameterError, make_command_layout, trajectory_tolerances
from dynamo_policy.ensembling import ChunkEnsembler
from dynamo_policy.observation_window import ObservationWindow
from dynamo_policy.safety import CommandState, SafetyFilter, SafetyLimitError, UnsafeActionError, make_safety_filter
from dynamo_policy.watchdog import Watchdog, hold_position

XARM = [f'joint{i}' for i in range(1, 8)] + ['drive_joint']


# --- ensembling -------------------------------------------------------------------------------
def constant_chunk(value, horizon=4, dim=1):
    return np.full((horizon, dim), value, np.float32)


def test_single_chunk_rows_follow_their_due_times():
    ensembler = ChunkEnsembler(step_period=0.1, m=0.01)
    ensembler.add(10.0, np.arange(4, dtype=np.float32)[:, None])   # rows due at 10.1 .. 10.4
    first = ensembler.action_at(10.0)
    assert first.action[0] == 0 and math.isclose(first.due_time, 10.1)
    assert ensembler.action_at(10.15).action[0] == 1     # row 0 (due 10.1) has passed: dropped
    assert ensembler.action_at(10.4).action[0] == 3
    assert ensembler.action_at(10.41) is None            # every row has passed
    assert len(ensembler) == 0


def test_ensemble_uses_act_weights_oldest_first():
    m = 0.5
    ensembler = ChunkEnsembler(step_period=0.1, m=m)
    ensembler.add(0.0, constant_chunk(1.0))
    ensembler.add(0.1, constant_chunk(2.0))
    ensembler.add(0.2, constant_chunk(4.0))
    result = ensembler.action_at(0.25)   # due 0.3: row 2, 1, 0 of the three chunks
    weights = np.exp(-m * np.arange(3))
    expected = (weights * [1.0, 2.0, 4.0]).sum() / weights.sum()
    assert result.votes == 3
    assert math.isclose(result.due_time, 0.3)
    assert result.action[0] == pytest.approx(expected, rel=1e-6)


def test_m_zero_averages_and_large_m_trusts_the_oldest():
    for m, expected in ((0.0, 2.0), (50.0, 1.0)):
        ensembler = ChunkEnsembler(step_period=0.1, m=m)
        ensembler.add(0.0, constant_chunk(1.0))
        ensembler.add(0.1, constant_chunk(3.0))
        assert ensembler.action_at(0.15).action[0] == pytest.approx(expected, abs=1e-6)


def test_chunks_that_do_not_reach_the_due_time_do_not_vote():
    ensembler = ChunkEnsembler(step_period=0.1, m=0.0)
    ensembler.add(0.0, constant_chunk(1.0, horizon=2))  # rows due 0.1, 0.2
    ensembler.add(0.2, constant_chunk(5.0, horizon=2))  # rows due 0.3, 0.4
    result = ensembler.action_at(0.25)
    assert (result.votes, result.action[0]) == (1, 5.0)


def test_out_of_order_and_repeated_observations():
    ensembler = ChunkEnsembler(step_period=0.1, m=0.0)
    ensembler.add(1.0, constant_chunk(1.0))
    ensembler.add(0.5, constant_chunk(9.0))   # older than one already used: ignored
    ensembler.add(1.0, constant_chunk(3.0))   # same observation again: replaces
    assert len(ensembler) == 1
    assert ensembler.action_at(1.0).action[0] == 3.0


# --- safety -----------------------------------------------------------------------------------
def run_at(rate_hz: float, safety: SafetyFilter, target, seconds: float, start) -> np.ndarray:
    """Command `target` at `rate_hz` for `seconds`, from `start` commanded at time 0; the last command."""
    previous = CommandState(np.asarray(start, np.float64), 0.0, np.zeros(len(start)))
    for k in range(1, int(round(seconds * rate_hz)) + 1):
        previous = safety.apply(target, previous, k / rate_hz)
    return previous.value


def test_safety_clamps_to_limits_then_limits_the_velocity():
    safety = SafetyFilter(3, lower=[-1.0, -1.0, 0.0], upper=[1.0, 1.0, 0.5], max_velocity=[1.0], max_interval=0.1)
    command = safety.apply([2.0, -2.0, 0.2], CommandState.at_rest([0.5, 0.0, 0.2]), now=0.0)
    np.testing.assert_allclose(command.value, [0.6, -0.1, 0.2])   # 1 unit/s over one control period
    np.testing.assert_allclose(command.rate, [1.0, -1.0, 0.0])


def test_same_limits_give_the_same_speed_at_10_and_30_hz():
    safety = SafetyFilter(1, max_velocity=[1.5], max_interval=0.1, lower=[-10.0], upper=[10.0])
    at_10_hz = run_at(10.0, safety, [5.0], seconds=1.0, start=[0.0])
    at_30_hz = run_at(30.0, safety, [5.0], seconds=1.0, start=[0.0])
    np.testing.assert_allclose(at_10_hz, [1.5])
    np.testing.assert_allclose(at_30_hz, [1.5])


def test_a_pause_in_commanding_is_no_licence_for_a_jump():
    safety = SafetyFilter(1, max_velocity=[1.0], max_interval=0.1)
    previous = safety.apply([5.0], CommandState.at_rest([0.0]), now=0.0)
    np.testing.assert_allclose(safety.apply([5.0], previous, now=10.0).value, [0.2])


def test_no_time_passed_no_motion():
    safety = SafetyFilter(1, max_velocity=[1.0], max_interval=0.1)
    previous = safety.apply([5.0], CommandState.at_rest([0.0]), now=1.0)
    np.testing.assert_allclose(safety.apply([5.0], previous, now=1.0).value, previous.value)
    np.testing.assert_allclose(safety.apply([5.0], previous, now=0.5).value, previous.value), 'clock went back'


def test_acceleration_limits_speeding_up_never_slowing_down():
    safety = SafetyFilter(1, max_velocity=[10.0], max_acceleration=[2.0], max_interval=0.1)
    previous = CommandState.at_rest([0.0])
    speeds = []
    for k in range(1, 6):
        previous = safety.apply([100.0], previous, now=0.1 * k)
        speeds.append(previous.rate[0])
    np.testing.assert_allclose(speeds, [0.2, 0.4, 0.6, 0.8, 1.0])
    held = safety.apply(previous.value, previous, now=0.6)   # stop where it is: allowed at once
    np.testing.assert_allclose(held.value, previous.value)
    reverse = safety.apply([-100.0], held, now=0.7)
    np.testing.assert_allclose(reverse.rate, [-0.2])


def test_rate_limit_never_leaves_the_joint_limits():
    safety = SafetyFilter(1, lower=[0.0], upper=[1.0], max_velocity=[1.0], max_interval=0.1)
    # A start pose outside the limits (e.g. measured there) is pulled inside.
    np.testing.assert_allclose(safety.apply([0.5], CommandState.at_rest([1.5]), now=0.0).value, [1.0])


def test_no_limits_pass_actions_through_and_non_finite_is_refused():
    safety = SafetyFilter(2, max_interval=0.1)
    np.testing.assert_allclose(safety.apply([100.0, -100.0], CommandState.at_rest([0.0, 0.0]), 0.0).value,
                               [100.0, -100.0])
    with pytest.raises(UnsafeActionError, match='action'):
        safety.apply([np.nan, 0.0], CommandState.at_rest([0.0, 0.0]), 0.0)
    with pytest.raises(UnsafeActionError, match='previous'):
        safety.apply([0.0, 0.0], CommandState.at_rest([np.nan, 0.0]), 0.0)


def test_velocity_commands_bound_the_twist_and_its_change_per_second():
    safety = SafetyFilter(2, max_velocity=[0.5], max_acceleration=[1.0], max_interval=0.1, velocity_commands=True)
    first = safety.apply([2.0, -0.05], CommandState.at_rest([0.0, 0.0]), now=0.0)
    np.testing.assert_allclose(first.value, [0.1, -0.05])       # 1 unit/s^2 over 0.1 s; the small one reached
    previous = first
    for k in range(1, 20):
        previous = safety.apply([2.0, -0.05], previous, now=0.1 * k)
    np.testing.assert_allclose(previous.value, [0.5, -0.05])    # never above max_velocity
    np.testing.assert_allclose(safety.apply([0.0, 0.0], previous, now=2.0).value, [0.0, 0.0]), 'braking is free'


@pytest.mark.parametrize('kwargs, field', [
    ({'lower': [0.0, 0.0, 0.0]}, 'lower'),
    ({'lower': [1.0], 'upper': [0.0]}, 'upper'),
    ({'max_velocity': [0.0]}, 'max_velocity'),
    ({'max_acceleration': [-1.0]}, 'max_acceleration'),
])
def test_bad_limits_name_their_field(kwargs, field):
    with pytest.raises(SafetyLimitError) as error:
        SafetyFilter(2, max_interval=0.1, **kwargs)
    assert error.value.field == field


@pytest.mark.parametrize('limits, missing', [
    ({}, 'lower'),
    ({'lower': [-1.0], 'max_velocity': [1.0]}, 'upper'),
    ({'lower': [-1.0], 'upper': [1.0]}, 'max_velocity'),
    ({'lower': [-1.0], 'upper': [1.0, np.inf], 'max_velocity': [1.0]}, 'upper'),
])
def test_position_commands_require_position_and_velocity_limits(limits, missing):
    arguments = {'lower': [], 'upper': [], 'max_velocity': [], 'max_acceleration': [], **limits}
    with pytest.raises(SafetyLimitError) as error:
        make_safety_filter(2, **arguments, max_interval=0.1, velocity_commands=False)
    assert error.value.field == missing
    make_safety_filter(2, **arguments, max_interval=0.1, velocity_commands=True)   # a twist needs none
    make_safety_filter(2, [-1.0], [1.0], [1.0], [], max_interval=0.1, velocity_commands=False)


# --- watchdog ---------------------------------------------------------------------------------
def test_watchdog_expires_on_old_or_missing_observations():
    watchdog = Watchdog(0.5)
    assert watchdog.expired(10.0, None)
    assert not watchdog.expired(10.0, 9.6)
    assert watchdog.expired(10.0, 9.4)
    assert not watchdog.expired(10.0, 10.1), 'small clock skew is tolerated'
    assert watchdog.expired(0.0, 1000.0), 'a clock far behind the stamps (no /clock yet) is not trusted'
    with pytest.raises(ValueError):
        Watchdog(0.0)


def test_stop_holds_the_measured_position_else_the_last_command():
    np.testing.assert_allclose(hold_position(np.array([1.0]), np.array([0.9])), [0.9])
    np.testing.assert_allclose(hold_position(np.array([1.0]), None), [1.0])
    assert hold_position(None, None) is None


# --- observation window -----------------------------------------------------------------------
def test_window_pairs_embeddings_with_joint_state_by_name():
    window = ObservationWindow(context_length=2, embedding_dim=3, state_names=['b', 'a'])
    window.add_embedding(1.0, [1, 1, 1])
    assert not window.ready(), 'no joint state yet'
    assert window.update_joint_state(['a', 'b', 'c'], [0.1, 0.2, 0.3]) == []
    assert window.update_joint_state(['a'], [0.5]) == ['b'], 'incomplete message is ignored'
    assert window.update_joint_state(['a', 'b'], [0.5, np.nan]) == ['b'], 'a non-finite position is no position'
    window.reset()
    window.add_embedding(1.1, [2, 2, 2])
    window.add_embedding(1.2, [3, 3, 3])
    window.add_embedding(1.3, [4, 4, 4])
    obs = window.window()
    np.testing.assert_array_equal(obs['embedding'], [[3, 3, 3], [4, 4, 4]])
    np.testing.assert_allclose(obs['state'], [[0.2, 0.1], [0.2, 0.1]])
    assert window.latest_stamp == 1.3


def test_window_refuses_wrong_size_and_stale_stamps():
    window = ObservationWindow(1, 3, [])
    with pytest.raises(ValueError, match='expects 3'):
        window.add_embedding(1.0, [1, 2])
    window.add_embedding(1.0, [1, 2, 3])
    with pytest.raises(ValueError, match='not newer'):
        window.add_embedding(1.0, [1, 2, 3])
    assert window.ready() and set(window.window()) == {'embedding'}


# --- command layout ---------------------------------------------------------------------------
def test_xarm_arm_and_gripper_split():
    topics = ['/xarm7_traj_controller/joint_trajectory', '/xarm_gripper_traj_controller/joint_trajectory']
    targets = make_command_layout('joint_trajectory', topics, [','.join(XARM[:7]), 'drive_joint'], XARM)
    assert targets[0].names == tuple(XARM[:7]) and targets[0].indices == tuple(range(7))
    assert targets[1].names == ('drive_joint',) and targets[1].indices == (7,)


def test_forward_commands_split_between_hand_and_mount_controllers():
    hand = [f'ah_joint{f}{j}' for f in range(4) for j in range(4)]
    targets = make_command_layout(
        'float64_multi_array', ['/allegro_hand_position_controller/commands', '/allegro_mount_controller/commands'],
        [','.join(hand), 'mount_x,mount_y,mount_z'], hand + ['mount_x', 'mount_y', 'mount_z'])
    assert targets[0].indices == tuple(range(16)) and targets[1].indices == (16, 17, 18)


def test_single_topic_carries_all_actions_and_joint_order_can_differ():
    (target,) = make_command_layout('float64_multi_array', ['commands'], [], ['a', 'b'])
    assert target.indices == (0, 1)
    (target,) = make_command_layout('float64_multi_array', ['commands'], ['b, a'], ['a', 'b'])
    assert target.names == ('b', 'a') and target.indices == (1, 0)


@pytest.mark.parametrize('command_type, topics, joints, actions, parameter', [
    ('position', ['c'], [], XARM, 'command_type'),
    ('joint_trajectory', [], [], XARM, 'command_topics'),
    ('twist_stamped', ['a', 'b'], [], XARM, 'command_topics'),
    ('float64_multi_array', ['a', 'b'], [], XARM, 'command_joints'),
    ('joint_trajectory', ['a', 'b'], [], XARM, 'command_joints'),
    ('joint_trajectory', ['a', 'b'], ['joint1'], XARM, 'command_joints'),
    ('joint_trajectory', ['a'], ['joint9'], XARM, 'command_joints'),
    ('joint_trajectory', ['a', 'b'], ['joint1', 'joint1'], XARM, 'command_joints'),
    ('twist_stamped', ['servo'], [], XARM, 'command_type'),
])
def test_bad_command_layout_names_the_parameter(command_type, topics, joints, actions, parameter):
    with pytest.raises(ParameterError) as error:
        make_command_layout(command_type, topics, joints, actions)
    assert error.value.parameter == parameter
    assert parameter in str(error.value)


def test_trajectory_tolerances_broadcast_per_action_and_refuse_what_does_not_fit():
    path, goal, goal_time = trajectory_tolerances(True, 3, [0.5], [], 0.2)
    assert path.tolist() == [0.5, 0.5, 0.5] and goal is None and goal_time == 0.2
    with pytest.raises(ParameterError, match="'trajectory_goal_tolerance': needs 1 or 3 values > 0"):
        trajectory_tolerances(True, 3, [], [0.1, 0.2], 0.0)
    with pytest.raises(ParameterError, match="'trajectory_path_tolerance': needs 1 or 3 values > 0"):
        trajectory_tolerances(True, 3, [0.0], [], 0.0)
    with pytest.raises(ParameterError, match="'trajectory_goal_time_tolerance': must be >= 0"):
        trajectory_tolerances(True, 3, [], [], -1.0)
    with pytest.raises(ParameterError, match="'trajectory_path_tolerance': applies only to command_type"):
        trajectory_tolerances(False, 3, [0.5], [], 0.0)
