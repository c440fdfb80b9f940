"""Closed loop with command_type follow_joint_trajectory: policy_node's goals drive the simulated xArm.

The bring-up graph (sim_node, encoder_node, policy_node) over DDS, as test_closed_loop.py runs it,
with policy_node sending each chunk as a FollowJointTrajectory goal to the actions sim_node serves
under the real xArm controllers' names.
"""

import dataclasses

import numpy as np
import pytest
from action_msgs.msg import GoalStatus, GoalStatusArray
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.qos import DurabilityPolicy, QoSProfile
from sensor_msgs.msg import JointState
from std_srvs.srv import SetBool
from test_closed_loop import artifacts  # noqa: F401  (the module fixture: sample bags -> dataset -> kNN policy)

from dynamo_bringup.graph import BringupArguments, node_graph
from dynamo_msgs.msg import EpisodeResult
from dynamo_sim import interfaces
from dynamo_util.service_client import ServiceClient

pytestmark = pytest.mark.ros


def _start_graph(artifacts, ros_processes, policy_parameters=None, sim_parameters=None, **arguments):  # noqa: F811
    arguments = {'real_time_factor': 1.0, **arguments}
    specs = node_graph('xarm', BringupArguments(
        sim=True, encoder=str(artifacts['encoder']), policy=str(artifacts['policy']), autostart=True,
        task='open_door', seed=100_000, command_type='follow_joint_trajectory', **arguments))
    overrides = {'policy_node': policy_parameters or {}, 'sim_node': sim_parameters or {}}
    specs = [dataclasses.replace(s, parameters={**s.parameters, **overrides[s.name]}) if s.name in overrides else s
             for s in specs]
    [policy] = [s for s in specs if s.name == 'policy_node']
    assert policy.parameters['command_topics'] == [interfaces.XARM_ARM_ACTION, interfaces.XARM_GRIPPER_ACTION]
    return {spec.name: ros_processes.start(spec.command(), name=spec.name, env=spec.environment) for spec in specs}


def _policy_status(diagnostics):
    return [status for message in diagnostics for status in message.status if status.name == 'policy_node: policy']


def test_policy_goals_move_the_simulated_xarm_through_follow_joint_trajectory(artifacts, ros_processes,  # noqa: F811
                                                                              ros_node):
    joint_states = ros_node.collect(JointState, '/joint_states')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros_node.collect(EpisodeResult, '/sim/episode_result', latched)
    processes = _start_graph(artifacts, ros_processes)
    ros_node.spin_until(lambda: results, timeout=180, what='the EpisodeResult of the first episode')

    [result] = results
    assert result.reason in ('success', 'timeout') and result.steps > 0
    positions = np.array([m.position for m in joint_states])
    travelled = positions.max(axis=0) - positions.min(axis=0)
    assert travelled.max() > 0.05, f'the arm did not follow the goals: joint ranges {travelled}'
    # Goals, not topic commands, started the episode and moved the arm.
    processes['sim_node'].wait_for_output(r'episode started by the first command \(on /xarm\w*_traj_controller/'
                                          r'follow_joint_trajectory\)', timeout=10)
    assert ros_node.node.count_publishers(interfaces.XARM_ARM_COMMAND) == 0
    # The goals' feedback reached policy_node: it reports the arm's tracking error, and no goal failed.
    ros_node.spin_until(lambda: any(f'tracking_error_max {interfaces.XARM_ARM_ACTION}' in {v.key for v in s.values}
                                    for s in _policy_status(diagnostics)), timeout=30,
                        what="the arm's tracking error in policy_node's /diagnostics")
    assert 'stopping the policy' not in processes['policy_node'].output()
    # Disabling cancels the running goal: the action server reports it canceled.
    statuses = ros_node.collect(GoalStatusArray, f'{interfaces.XARM_ARM_ACTION}/_action/status')
    enable = ServiceClient(ros_node.node, ros_node.executor, SetBool, '/policy_node/enable', resend_after_s=2.0)
    enable.wait_until_available(timeout_s=30)
    assert enable.call(SetBool.Request(data=False), timeout_s=20).success
    ros_node.spin_until(lambda: any(s.status == GoalStatus.STATUS_CANCELED for m in statuses for s in m.status_list),
                        timeout=30, what='a canceled arm goal after disabling the policy')


def test_a_path_tolerance_violation_stops_the_policy_with_its_reason(artifacts, ros_processes, ros_node):  # noqa: F811
    """A path tolerance the simulated arm cannot keep: the controller aborts the goal and the policy stops."""
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    processes = _start_graph(artifacts, ros_processes, policy_parameters={'trajectory_path_tolerance': [1e-5]})
    failure = processes['policy_node'].wait_for_output(
        r'stopping the policy: (/xarm\w*_traj_controller/follow_joint_trajectory: goal aborted '
        r'\(PATH_TOLERANCE_VIOLATED\): Aborted due to path tolerance violation: \w+ position error [^;]+)',
        timeout=180)
    processes['sim_node'].wait_for_output(r'goal aborted \(error_code -4\): Aborted due to path tolerance violation',
                                          timeout=10)
    # /diagnostics says why the policy stopped (the first failure: the arm's and the gripper's goals may both fail).
    ros_node.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR and 'PATH_TOLERANCE_VIOLATED' in s.message
                                    for s in _policy_status(diagnostics)), timeout=30,
                        what="the failure in policy_node's /diagnostics")
    status = [s for s in _policy_status(diagnostics) if s.level == DiagnosticStatus.ERROR][-1]
    assert status.message.startswith(f'stopped by a failed trajectory goal: {failure.group(1)}')
    assert {v.key: v.value for v in status.values}['enabled'] == 'False'


def test_in_lockstep_an_accepted_goal_is_the_command_the_simulator_waits_for(artifacts, ros_processes,  # noqa: F811
                                                                             ros_node):
    """sim_node awaits both actions' goals (their clients subscribe to the feedback), not the lockstep timeout."""
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros_node.collect(EpisodeResult, '/sim/episode_result', latched)
    # A generous timeout, as in test_closed_loop: a step taken without the goals would show as waited out.
    processes = _start_graph(artifacts, ros_processes, sim_parameters={'lockstep_timeout': 2.0}, lockstep=True,
                             real_time_factor=0.0)
    ros_node.spin_until(lambda: results, timeout=180, what='the end of the lockstep episode')
    [result] = results
    waited = processes['sim_node'].wait_for_output(
        rf'after {result.steps} steps \((\d+) waited out lockstep_timeout\)', timeout=10).group(1)
    assert result.steps > 0 and int(waited) < 0.25 * result.steps, (result.steps, waited)
    assert 'stopping the policy' not in processes['policy_node'].output()
