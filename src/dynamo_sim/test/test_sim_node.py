"""sim_node over real DDS: observations, commands, reset service and episode results."""
import time

import numpy as np
import pytest
from builtin_interfaces.msg import Duration
from rclpy.qos import DurabilityPolicy, QoSProfile
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dynamo_msgs.msg import EpisodeResult
from dynamo_msgs.srv import ResetEpisode
from dynamo_util.service_client import ServiceClient

pytestmark = pytest.mark.ros


def _reset_client(ros_node) -> ServiceClient:
    return ServiceClient(ros_node.node, ros_node.executor, ResetEpisode, '/sim/reset_episode', resend_after_s=2.0)


def _publish_until(ros_node, publish, predicate, timeout, what):
    """Publish (again every 0.5 s: a just-discovered subscriber may miss the first) until predicate()."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f'timed out after {timeout} s waiting for {what}'
        publish()
        ros_node.spin_for(0.5)


def _position(states, joint):
    return states[-1].position[list(states[-1].name).index(joint)]


def test_xarm_sim_node(ros_processes, ros_node):
    states = ros_node.collect(JointState, '/joint_states')
    images = ros_node.collect(Image, '/camera/color/image_raw')
    infos = ros_node.collect(CameraInfo, '/camera/color/camera_info')
    clocks = ros_node.collect(Clock, '/clock')
    results = ros_node.collect(EpisodeResult, '/sim/episode_result')
    sim = ros_processes.start(['sim_node', '--ros-args', '-p', 'robot:=xarm', '-p', 'task:=push_bottle',
                               '-p', 'image_size:=32', '-p', 'real_time_factor:=3.0',
                               '-p', 'max_episode_steps:=400'], name='sim_node')
    ros_node.spin_until(lambda: len(states) > 3 and images and infos and clocks, 40, 'observations from sim_node')
    assert list(states[-1].name) == [f'joint{i}' for i in range(1, 8)] + ['drive_joint']
    image = images[-1]
    assert (image.height, image.width, image.encoding, len(image.data)) == (32, 32, 'rgb8', 32 * 32 * 3)
    assert np.asarray(image.data).std() > 5
    ros_node.spin_until(lambda: any(i.header.stamp == image.header.stamp for i in infos), 5, "the image's camera_info")
    info = next(i for i in infos if i.header.stamp == image.header.stamp)
    assert (info.height, info.width) == (32, 32) and info.k[0] > 0
    stamps = [s.header.stamp.sec + 1e-9 * s.header.stamp.nanosec for s in states[-3:]]
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-6)  # one message per 0.1 s of sim time

    # the arm follows a trajectory command, the gripper its own controller
    arm = ros_node.node.create_publisher(JointTrajectory, '/xarm7_traj_controller/joint_trajectory', 10)
    gripper = ros_node.node.create_publisher(JointTrajectory, '/xarm_gripper_traj_controller/joint_trajectory', 10)
    ros_node.wait_for_subscriber('/xarm7_traj_controller/joint_trajectory')
    start = np.array(states[-1].position)
    goal = start[:7] + [0.4, 0, 0, 0, 0, 0, 0]
    bad = JointTrajectory(joint_names=['joint1', 'elbow'], points=[JointTrajectoryPoint(positions=[0.1, 0.2])])

    def command():
        arm.publish(bad)
        arm.publish(JointTrajectory(joint_names=[f'joint{i}' for i in range(1, 8)],
                                    points=[JointTrajectoryPoint(positions=goal.tolist())]))
        gripper.publish(JointTrajectory(joint_names=['drive_joint'], points=[JointTrajectoryPoint(positions=[0.6])]))
    _publish_until(ros_node, command, lambda: abs(_position(states, 'joint1') - goal[0]) < 0.02
                   and abs(_position(states, 'drive_joint') - 0.6) < 0.05, 30, 'the arm and gripper to move')
    sim.wait_for_output(r"ignored command: .*unknown joint\(s\) \['elbow'\]", 10)

    # reset: the interrupted episode is reported, the new one starts at the home pose
    reset = _reset_client(ros_node)
    answer = reset.call(ResetEpisode.Request(task='open_door', seed=4), timeout_s=20)
    assert answer.success, answer.message
    ros_node.spin_until(lambda: any(r.reason == 'reset' for r in results), 10, 'a reset EpisodeResult')
    result = next(r for r in results if r.reason == 'reset')
    assert (result.task, result.success) == ('push_bottle', False) and result.steps > 5
    ros_node.spin_until(lambda: abs(_position(states, 'joint1') - start[0]) < 1e-3, 10, 'the home pose after reset')
    refused = reset.call(ResetEpisode.Request(task='lift_object', seed=0), timeout_s=20)
    assert not refused.success and "unknown task 'lift_object'" in refused.message
    assert sim.returncode is None, 'bad commands and requests must not stop the node'
    assert sim.stop() == 0  # SIGINT: clean exit
    assert 'Traceback' not in sim.log_path.read_text()


def test_allegro_sim_node_commands_and_timeout(ros_processes, ros_node):
    states = ros_node.collect(JointState, '/joint_states')
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros_node.collect(EpisodeResult, '/sim/episode_result', latched)
    tasks = ros_node.collect(String, '/task', latched)
    sim = ros_processes.start(['sim_node', '--ros-args', '-p', 'robot:=allegro', '-p', 'task:=open_hinged_door',
                               '-p', 'seed:=3', '-p', 'image_size:=24', '-p', 'real_time_factor:=0.0',
                               '-p', 'max_episode_steps:=30'], name='sim_node')
    ros_node.spin_until(lambda: len(states) > 2, 40, 'joint_states from sim_node')
    names = list(states[-1].name)
    assert names[:16] == [f'ah_joint{f}{j}' for f in range(4) for j in range(4)]
    assert names[16:] == ['mount_x', 'mount_y', 'mount_z']
    hand = ros_node.node.create_publisher(Float64MultiArray, '/allegro_hand_position_controller/commands', 10)
    mount = ros_node.node.create_publisher(Float64MultiArray, '/allegro_mount_controller/commands', 10)
    ros_node.wait_for_subscriber('/allegro_mount_controller/commands')
    hand.publish(Float64MultiArray(data=[0.5] * 15))  # wrong length: ignored
    target = [1.0, 0.2, 0.4, 0.4] + [0.0, 1.0, 0.8, 0.5] * 3  # thumb, index, middle, ring

    def command():
        hand.publish(Float64MultiArray(data=target))
        mount.publish(Float64MultiArray(data=[0.05, -0.05, 0.25]))
    _publish_until(ros_node, command, lambda: abs(_position(states, 'ah_joint11') - 1.0) < 0.1
                   and abs(_position(states, 'mount_z') - 0.25) < 0.01, 30, 'the hand and mount to move')
    ros_node.spin_until(lambda: tasks, 10, 'the latched /task')
    assert tasks[-1].data == 'open_hinged_door'

    # episodes that run out of steps report a timeout (the robot keeps following commands after it)
    ros_node.spin_until(lambda: results, 20, "the first episode's EpisodeResult")
    assert (results[0].task, results[0].seed, results[0].success, results[0].reason, results[0].steps) == \
        ('open_hinged_door', 3, False, 'timeout', 30)
    assert results[0].duration == pytest.approx(3.0)
    # nothing starts the next episode but a reset: the episode's end says how to call it
    sim.wait_for_output(r'episode timeout: open_hinged_door seed 3 after 30 steps; start the next: '
                        r'ros2 service call /sim/reset_episode dynamo_msgs/srv/ResetEpisode "\{seed: 4\}"', 10)
    assert _reset_client(ros_node).call(ResetEpisode.Request(task='lift_object', seed=1), timeout_s=20).success
    ros_node.spin_until(lambda: len(results) > 1, 20, "the second episode's EpisodeResult")
    assert [(r.task, r.seed, r.reason) for r in results] == [
        ('open_hinged_door', 3, 'timeout'), ('lift_object', 1, 'timeout')]
    assert tasks[-1].data == 'lift_object'


def test_the_first_episode_waits_holding_still_for_the_first_command(ros_processes, ros_node):
    """Observations and sim time flow from the start; the episode's steps count from the first command.

    Nodes that load for longer than an episode (an encoder, a policy) find the first episode at its start.
    """
    states = ros_node.collect(JointState, '/joint_states')
    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros_node.collect(EpisodeResult, '/sim/episode_result', latched)
    arm = ros_node.node.create_publisher(JointTrajectory, '/xarm7_traj_controller/joint_trajectory', 10)
    ros_processes.start(['sim_node', '--ros-args', '-p', 'robot:=xarm', '-p', 'image_size:=16',
                         '-p', 'real_time_factor:=0.0', '-p', 'max_episode_steps:=5'], name='sim_node')
    ros_node.spin_until(lambda: len(states) >= 20, 40, 'twenty joint_states, four episodes long')
    waiting = list(states)
    stamps = [s.header.stamp.sec + 1e-9 * s.header.stamp.nanosec for s in waiting]
    np.testing.assert_allclose(np.diff(stamps), 0.1, atol=1e-6)   # the clock runs
    np.testing.assert_array_equal([s.position for s in waiting], [waiting[0].position] * len(waiting))  # held still
    goal = np.array(waiting[-1].position[:7]) + 0.3
    _publish_until(ros_node, lambda: arm.publish(JointTrajectory(
        joint_names=[f'joint{i}' for i in range(1, 8)], points=[JointTrajectoryPoint(positions=goal.tolist())])),
        lambda: results, 30, 'the EpisodeResult of the episode the command started')
    [result] = results
    assert (result.reason, result.steps) == ('timeout', 5)
    started = result.header.stamp.sec + 1e-9 * result.header.stamp.nanosec - result.duration
    assert started >= stamps[-1] - 1e-6, 'the episode started before the command'


def test_expert_over_dds_solves_the_task(ros_processes, ros_node):
    """The scripted expert, driving sim_node through its command topics, ends an episode with success."""
    from dynamo_sim.envs import make_env
    from dynamo_sim.experts import make_expert

    latched = QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    results = ros_node.collect(EpisodeResult, '/sim/episode_result', latched)
    hand = ros_node.node.create_publisher(Float64MultiArray, '/allegro_hand_position_controller/commands', 10)
    mount = ros_node.node.create_publisher(Float64MultiArray, '/allegro_mount_controller/commands', 10)
    plan_env = make_env('lift_object', seed=6)  # the same seeded initial state the node starts from
    expert = make_expert(plan_env, 6)
    sent = []

    def on_joint_states(_msg):
        if results or expert.done:
            return
        targets = expert.act()
        hand.publish(Float64MultiArray(data=targets[:16].tolist()))
        mount.publish(Float64MultiArray(data=targets[16:].tolist()))
        sent.append(targets)

    ros_node.node.create_subscription(JointState, '/joint_states', on_joint_states, 10)
    ros_processes.start(['sim_node', '--ros-args', '-p', 'robot:=allegro', '-p', 'task:=lift_object',
                         '-p', 'seed:=6', '-p', 'image_size:=16', '-p', 'real_time_factor:=1.0',
                         '-p', 'max_episode_steps:=200'], name='sim_node')
    ros_node.spin_until(lambda: results, 60, 'an EpisodeResult')
    first = results[0]
    assert (first.task, first.seed, first.reason, first.success) == ('lift_object', 6, 'success', True)
    assert len(sent) > 20


def test_lockstep_without_commands_steps_at_the_timeout_rate(ros_processes, ros_node):
    """A silent command publisher (a disabled policy) or none: the sim steps every lockstep_timeout."""
    ros_node.node.create_publisher(JointTrajectory, '/xarm7_traj_controller/joint_trajectory', 10)
    ticks = []
    ros_node.node.create_subscription(Clock, '/clock', lambda _msg: ticks.append(time.monotonic()), 10)
    ros_processes.start(['sim_node', '--ros-args', '-p', 'robot:=xarm', '-p', 'image_size:=16',
                         '-p', 'real_time_factor:=0.0', '-p', 'lockstep:=true', '-p', 'lockstep_timeout:=0.25'],
                        name='sim_node')
    ros_node.spin_until(lambda: len(ticks) >= 8, 40, 'eight /clock ticks')
    assert np.median(np.diff(ticks[-6:])) == pytest.approx(0.25, abs=0.08)


@pytest.mark.parametrize('real_time_factor', [0.0, 4.0])
def test_lockstep_steps_once_per_command_on_every_commanded_topic(ros_processes, ros_node, real_time_factor):
    """Answering each joint_states with an arm and a gripper command steps the sim once per answer.

    Much faster than lockstep_timeout (real_time_factor > 0: no faster than its pacing); with only the
    arm answered it waits for the gripper, whose topic has a publisher.
    """
    timeout, answered = 3.0, 20
    arm = ros_node.node.create_publisher(JointTrajectory, '/xarm7_traj_controller/joint_trajectory', 10)
    gripper = ros_node.node.create_publisher(JointTrajectory, '/xarm_gripper_traj_controller/joint_trajectory', 10)
    point = JointTrajectoryPoint(positions=[0.3], time_from_start=Duration(nanosec=100_000_000))
    steps = []  # (wall time, sim time) of every joint_states, one per step

    def command_arm(msg):
        arm.publish(JointTrajectory(joint_names=list(msg.name[:7]), points=[
            JointTrajectoryPoint(positions=list(msg.position[:7]), time_from_start=point.time_from_start)]))

    def answer(msg):
        steps.append((time.monotonic(), msg.header.stamp.sec + 1e-9 * msg.header.stamp.nanosec))
        if len(steps) <= answered:
            command_arm(msg)
            gripper.publish(JointTrajectory(joint_names=['drive_joint'], points=[point]))

    ros_node.node.create_subscription(JointState, '/joint_states', answer, 10)
    sim = ros_processes.start(['sim_node', '--ros-args', '-p', 'robot:=xarm', '-p', 'image_size:=16',
                               '-p', f'real_time_factor:={real_time_factor}', '-p', 'lockstep:=true',
                               '-p', f'lockstep_timeout:={timeout}'], name='sim_node')
    ros_node.spin_until(lambda: len(steps) > answered, 60, f'{answered} answered steps')
    ros_node.spin_for(0.5)
    assert len(steps) == answered + 1, 'one step per answer, then it waits'
    wall, sim_time = np.array(steps).T
    np.testing.assert_allclose(np.diff(sim_time), 0.1, atol=1e-6)
    intervals = np.diff(wall)
    assert intervals.max() < timeout / 3, f'steps waited for the timeout: {intervals}'
    if real_time_factor:
        assert wall[-1] - wall[0] >= 0.9 * answered / (10 * real_time_factor), 'steps came faster than the pacing'

    # The arm alone does not complete a step while the gripper topic has a publisher.
    command_arm(JointState(name=[f'joint{i}' for i in range(1, 8)], position=[0.0] * 7))
    ros_node.spin_for(0.5)
    assert len(steps) == answered + 1
    sent = time.monotonic()
    gripper.publish(JointTrajectory(joint_names=['drive_joint'], points=[point]))
    ros_node.spin_until(lambda: len(steps) > answered + 1, timeout, 'the step the gripper command completes')
    assert time.monotonic() - sent < timeout / 3
    assert 'lockstep (timeout 3 s)' in sim.output()


@pytest.mark.parametrize('parameter, message', [
    ('robot:=ur5', "sim_node: error: parameter robot: 'ur5' is not one of ['allegro', 'xarm']"),
    ('camera:=ceiling', "sim_node: error: parameter camera: 'ceiling' is not one of"),
    ('rate:=fast', 'sim_node: error: '),   # the wrong type: rclpy's ParameterException
])
def test_a_bad_parameter_exits_2_with_one_line_naming_it(ros_processes, parameter, message):
    sim = ros_processes.start(['sim_node', '--ros-args', '-p', parameter], name='sim_node')
    assert sim.wait(timeout=40) == 2
    output = sim.output()
    assert message in output and parameter.split(':=')[0] in output and 'Traceback' not in output, output
