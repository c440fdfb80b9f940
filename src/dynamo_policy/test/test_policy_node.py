"""policy_node as a real subprocess over DDS: embeddings in, action chunks and commands out.

Each control rule is tested with a fake clock in test_controller.py; here each class of behaviour
is checked once through the real node, its parameters, timers, threads and topics.
"""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from _synthetic_policy_data import ALLEGRO_ACTIONS, TWIST_ACTIONS, XARM_ACTIONS, synthetic_episode
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import TwistStamped
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory

from dynamo_encoder.artifact import EncoderArtifact
from dynamo_msgs.msg import ActionChunk, Embedding
from dynamo_policy.policies import load_policy
from dynamo_util.service_client import ServiceClient

pytestmark = pytest.mark.ros

ARM_TOPIC = '/xarm7_traj_controller/joint_trajectory'
GRIPPER_TOPIC = '/xarm_gripper_traj_controller/joint_trajectory'
ALLEGRO_TOPIC = '/allegro_hand_position_controller/commands'
XARM_SPLIT = ['-p', f"command_topics:=['{ARM_TOPIC}', '{GRIPPER_TOPIC}']",
              '-p', "command_joints:=['joint1,joint2,joint3,joint4,joint5,joint6,joint7', 'drive_joint']"]
# Limits wide enough to leave the synthetic policies' actions (about -0.5 .. 1.2) alone.
WIDE_LIMITS = ['-p', 'joint_lower_limits:=[-10.0]', '-p', 'joint_upper_limits:=[10.0]', '-p', 'max_velocity:=[100.0]']
SLOW_POLICY_NODE = Path(__file__).with_name('_slow_policy_node.py')


def start_policy_node(ros_processes, policy_path, *args, executable=('policy_node',), env=None):
    return ros_processes.start([*executable, '--ros-args', '-p', f'policy:={policy_path}', *args],
                               name='policy_node', env=env)


@pytest.fixture(scope='module')
def camera_embedding(encoder_path):
    """Return the encoder's embedding of one synthetic camera frame (what encoder_node would publish)."""
    frames, _, _ = synthetic_episode(np.random.default_rng(5), 10, 1)
    return EncoderArtifact.load(encoder_path).encode({'front': frames[3]})


class EmbeddingStream:
    """Publishes one embedding, stamped with the current time, every period while spinning."""

    def __init__(self, ros_node, policy, data, checksum=None, period=0.1):
        self.node = ros_node.node
        self.policy_metadata = policy.metadata
        self.data = np.asarray(data, np.float32)
        self.checksum = checksum or policy.metadata.encoder_checksum
        self.publisher = self.node.create_publisher(Embedding, 'embedding', 10)
        self.sent = []
        self.running = True
        self.node.create_timer(period, self._publish)

    def _publish(self):
        if self.running:
            self.publish_once()

    def publish_once(self, ahead_s: float = 0.0):
        """Publish one embedding stamped `ahead_s` after the current time."""
        msg = Embedding()
        msg.header.stamp = (self.node.get_clock().now() + rclpy_duration(ahead_s)).to_msg()
        msg.header.frame_id = 'camera_color_optical_frame'
        msg.encoder_name = self.policy_metadata.encoder_name
        msg.encoder_checksum = self.checksum
        msg.camera_names = list(self.policy_metadata.camera_names)
        msg.camera_dims = [len(self.data)]
        msg.data = self.data.tolist()
        self.publisher.publish(msg)
        self.sent.append(msg)


def rclpy_duration(seconds: float):
    from rclpy.duration import Duration
    return Duration(nanoseconds=int(round(seconds * 1e9)))


def publish_joint_states(ros_node, names, positions, period=0.05):
    """Publish JointState(names, positions) every period; return the dict whose 'names'/'positions' it reads."""
    joint_states = ros_node.node.create_publisher(JointState, 'joint_states', 10)
    current = {'names': list(names), 'positions': [float(p) for p in positions]}
    ros_node.node.create_timer(period, lambda: joint_states.publish(
        JointState(name=current['names'], position=current['positions'])))
    return current


def chunk_bounds(policy, embedding, state=None):
    window = {'embedding': embedding[None]}
    if state is not None:
        window['state'] = np.asarray(state, np.float32)[None]
    chunk = policy.predict_action(window)
    return chunk, chunk.min(axis=0) - 1e-5, chunk.max(axis=0) + 1e-5


def wait_for_log(ros_node, proc, pattern: str, timeout: float) -> None:
    """Spin the test node (its publishers keep going) until the node's output matches `pattern`."""
    regex = re.compile(pattern)
    ros_node.spin_until(lambda: regex.search(proc.output()) or proc.returncode is not None, timeout=timeout,
                        what=f'{pattern!r} in the output of policy_node')
    assert regex.search(proc.output()), proc.output()


def diagnostic_values(diagnostics) -> dict[str, str]:
    return {kv.key: kv.value for d in diagnostics[-1:] for s in d.status for kv in s.values}


def test_xarm_mlp_with_proprioception_drives_arm_and_gripper(ros_processes, ros_node, trained_policy,
                                                              camera_embedding):
    path = trained_policy(XARM_ACTIONS, 'mlp', True, 'epochs=5')
    policy = load_policy(path)
    state = np.linspace(-0.5, 0.5, len(XARM_ACTIONS))
    expected_chunk, low, high = chunk_bounds(policy, camera_embedding, state)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    gripper = ros_node.collect(JointTrajectory, GRIPPER_TOPIC)
    chunks = ros_node.collect(ActionChunk, 'action_chunk')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    # Shuffled joint order: the node must match joint states by name.
    order = np.random.default_rng(0).permutation(len(XARM_ACTIONS))
    publish_joint_states(ros_node, [XARM_ACTIONS[i] for i in order], state[order])
    start_policy_node(ros_processes, path, '-p', 'autostart:=true', *WIDE_LIMITS, *XARM_SPLIT)
    stream = EmbeddingStream(ros_node, policy, camera_embedding)

    ros_node.spin_until(lambda: len(arm) >= 5 and len(gripper) >= 5 and chunks, timeout=60,
                        what='arm and gripper trajectories')

    chunk = chunks[-1]
    assert chunk.policy_name == 'mlp' and chunk.encoder_checksum == policy.metadata.encoder_checksum
    assert list(chunk.action_names) == XARM_ACTIONS
    assert (chunk.horizon, chunk.action_dim) == expected_chunk.shape
    assert chunk.step_period.nanosec == 100_000_000
    assert chunk.header.stamp in [sent.header.stamp for sent in stream.sent]
    np.testing.assert_allclose(np.reshape(chunk.data, expected_chunk.shape), expected_chunk, rtol=1e-4, atol=1e-5)
    for msg in arm[-3:]:
        assert list(msg.joint_names) == XARM_ACTIONS[:7]
        (point,) = msg.points
        assert np.all((point.positions >= low[:7]) & (point.positions <= high[:7]))
        assert point.time_from_start.sec > 0 or point.time_from_start.nanosec > 0
    for msg in gripper[-3:]:
        assert list(msg.joint_names) == ['drive_joint']
        assert low[7] <= msg.points[0].positions[0] <= high[7]

    ros_node.spin_until(lambda: float(diagnostic_values(diagnostics).get('command_rate_hz', 0)) > 0, timeout=10,
                        what='diagnostics reporting the command rate')
    values = diagnostic_values(diagnostics)
    assert float(values['embedding_rate_hz']) > 0 and float(values['predict_latency_p50_ms']) > 0
    assert float(values['observation_to_command_latency_p50_ms']) > 0
    assert diagnostics[-1].status[0].message == 'commanding'


def test_allegro_float64_commands_respect_joint_limits(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(ALLEGRO_ACTIONS)
    policy = load_policy(path)
    _, low, high = chunk_bounds(policy, camera_embedding)
    # An upper limit below every predicted value of some joints: those must be clamped to it.
    upper = float(np.median(low))
    commands = ros_node.collect(Float64MultiArray, ALLEGRO_TOPIC)
    publish_joint_states(ros_node, ALLEGRO_ACTIONS, np.full(len(ALLEGRO_ACTIONS), upper))
    start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'command_type:=float64_multi_array',
                      '-p', f"command_topics:=['{ALLEGRO_TOPIC}']", '-p', 'joint_lower_limits:=[-10.0]',
                      '-p', f'joint_upper_limits:=[{upper}]', '-p', 'max_velocity:=[100.0]')
    EmbeddingStream(ros_node, policy, camera_embedding)

    ros_node.spin_until(lambda: len(commands) >= 5, timeout=60, what='Float64MultiArray commands')

    values = np.asarray(commands[-1].data)
    assert values.shape == (16,)
    np.testing.assert_array_less(values, upper + 1e-9)
    assert np.all(values >= np.minimum(low, upper))
    clamped = low > upper
    assert clamped.any() and np.allclose(values[clamped], upper)


def test_position_commands_without_velocity_limits_refuse_to_start(ros_processes, trained_policy):
    proc = start_policy_node(ros_processes, trained_policy(XARM_ACTIONS), '-p', 'joint_lower_limits:=[-1.0]',
                             '-p', 'joint_upper_limits:=[1.0]')
    assert proc.wait(timeout=60) == 2
    output = proc.output()
    assert "policy_node: error: parameter 'max_velocity'" in output and 'Traceback' not in output, output


def test_twist_commands_and_watchdog_zero_twist(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(TWIST_ACTIONS)
    policy = load_policy(path)
    _, low, high = chunk_bounds(policy, camera_embedding)
    twists = ros_node.collect(TwistStamped, '/servo_node/delta_twist_cmds')
    proc = start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'command_type:=twist_stamped',
                             '-p', "command_topics:=['/servo_node/delta_twist_cmds']",
                             '-p', 'twist_frame_id:=link_eef', '-p', 'observation_timeout:=0.3')
    stream = EmbeddingStream(ros_node, policy, camera_embedding)
    ros_node.spin_until(lambda: len(twists) >= 5, timeout=60, what='TwistStamped commands')

    msg = twists[-1]
    assert msg.header.frame_id == 'link_eef'
    values = np.array([msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z,
                       msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z])
    assert np.all((values >= low) & (values <= high)) and np.any(values != 0)

    stream.running = False
    wait_for_log(ros_node, proc, 'stopped the robot: watchdog', timeout=10)
    ros_node.spin_until(lambda: twists[-1].twist.linear.x == 0 and twists[-1].twist.angular.z == 0,
                        timeout=10, what='the watchdog zero twist')
    stop = twists[-1].twist
    assert [stop.linear.x, stop.linear.y, stop.linear.z, stop.angular.x, stop.angular.y, stop.angular.z] == [0.0] * 6


def test_watchdog_holds_the_measured_position(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    measured = np.linspace(0.1, 0.8, len(XARM_ACTIONS))
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    gripper = ros_node.collect(JointTrajectory, GRIPPER_TOPIC)
    publish_joint_states(ros_node, XARM_ACTIONS, measured)
    proc = start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'observation_timeout:=0.3',
                             *WIDE_LIMITS, *XARM_SPLIT)
    stream = EmbeddingStream(ros_node, policy, camera_embedding)
    ros_node.spin_until(lambda: len(arm) >= 3, timeout=60, what='arm trajectories')

    stream.running = False
    wait_for_log(ros_node, proc, 'stopped the robot: watchdog', timeout=10)
    ros_node.spin_until(lambda: np.allclose(arm[-1].points[0].positions, measured[:7])
                        and np.isclose(gripper[-1].points[0].positions[0], measured[7]), timeout=10,
                        what='the watchdog hold command')


def test_disable_holds_and_enable_resumes(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    measured = np.full(len(XARM_ACTIONS), 0.25)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    chunks = ros_node.collect(ActionChunk, 'action_chunk')
    publish_joint_states(ros_node, XARM_ACTIONS, measured)
    start_policy_node(ros_processes, path, *WIDE_LIMITS, *XARM_SPLIT)   # autostart defaults to false
    EmbeddingStream(ros_node, policy, camera_embedding)
    enable = ServiceClient(ros_node.node, ros_node.executor, SetBool, '/policy_node/enable', resend_after_s=2.0)

    ros_node.spin_until(lambda: len(chunks) >= 5, timeout=60, what='action chunks while disabled')
    assert arm == [], 'disabled at start: chunks are published, commands are not'
    assert enable.call(SetBool.Request(data=True), timeout_s=10).success
    ros_node.spin_until(lambda: len(arm) >= 5, timeout=10, what='commands after enabling')
    assert not np.allclose(arm[-1].points[0].positions, measured[:7]), 'the policy moves the arm'
    answer = enable.call(SetBool.Request(data=False), timeout_s=10)
    assert answer.success and answer.message == 'disabled'
    ros_node.spin_until(lambda: np.allclose(arm[-1].points[0].positions, measured[:7]), timeout=10,
                        what='the hold command on disabling')
    assert enable.call(SetBool.Request(data=True), timeout_s=10).success
    held = len(arm)
    ros_node.spin_until(lambda: len(arm) >= held + 3, timeout=10, what='commands after enabling again')


def test_refusals_and_stamps_ahead_are_reported_while_recent_and_commanding_recovers(
        ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    chunks = ros_node.collect(ActionChunk, 'action_chunk')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    publish_joint_states(ros_node, XARM_ACTIONS, np.zeros(len(XARM_ACTIONS)))
    proc = start_policy_node(ros_processes, path, '-p', 'autostart:=true', *WIDE_LIMITS, *XARM_SPLIT)
    stream = EmbeddingStream(ros_node, policy, camera_embedding, checksum='ffffffffffffffff')

    ros_node.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR for d in diagnostics for s in d.status),
                        timeout=60, what='an ERROR diagnostic')
    wait_for_log(ros_node, proc, 'ffffffffffffffff', timeout=5)
    log = proc.output()
    assert policy.metadata.encoder_checksum in log and 'refusing' in log
    assert arm == [] and chunks == []

    stream.checksum = policy.metadata.encoder_checksum   # the right encoder from now on
    ros_node.spin_until(lambda: len(arm) >= 3, timeout=20, what='commands from the right encoder')
    stream.publish_once(ahead_s=3600.0)                  # one stamp an hour ahead among good ones
    wait_for_log(ros_node, proc, 'ahead of this node', timeout=10)
    negative = stream.sent[-1]
    negative.header.stamp.sec = -5                       # rclpy's Time refuses it: it once ended the node
    stream.publisher.publish(negative)
    after_it = len(arm)
    ros_node.spin_until(lambda: len(arm) >= after_it + 5 or proc.returncode is not None, timeout=10,
                        what='commands after the stamps ahead and negative')
    assert proc.returncode is None, proc.output()
    assert len(arm) >= after_it + 5

    def recovered():
        status = diagnostics[-1].status[0] if diagnostics else None
        return status is not None and status.level == DiagnosticStatus.OK and status.message == 'commanding'
    ros_node.spin_until(recovered, timeout=20, what='/diagnostics back to OK once the refusals are old')
    values = diagnostic_values(diagnostics)
    assert int(values['embeddings_refused']) > 0 and values['embeddings_stamped_ahead'] == '1'
    assert proc.returncode is None, 'the node survives wrong-encoder embeddings'
    assert proc.stop() == 0, 'SIGINT shuts the node down cleanly'


def test_missing_policy_file_exits_non_zero_naming_it(ros_processes, tmp_path):
    missing = tmp_path / 'no_such_policy.pt'
    proc = start_policy_node(ros_processes, missing)
    assert proc.wait(timeout=60) == 2
    output = proc.output()
    assert 'policy_node: error: ' in output and str(missing) in output and 'Traceback' not in output, output


def test_bad_parameter_exits_non_zero_naming_it(ros_processes, trained_policy):
    proc = start_policy_node(ros_processes, trained_policy(XARM_ACTIONS), '-p', 'command_type:=position')
    assert proc.wait(timeout=60) == 2
    output = proc.output()
    assert "policy_node: error: parameter 'command_type'" in output and 'Traceback' not in output, output


@pytest.mark.parametrize('arguments,parameter,says', [
    (['-p', 'trajectory_path_tolerance:=[0.1]'], 'trajectory_path_tolerance',
     'applies only to command_type follow_joint_trajectory'),
    (['-p', 'command_type:=follow_joint_trajectory', '-p', 'trajectory_goal_tolerance:=[0.1, -0.2]'],
     'trajectory_goal_tolerance', 'needs 1 or 8 values > 0'),
])
def test_bad_trajectory_tolerances_exit_non_zero_naming_the_parameter(ros_processes, trained_policy, arguments,
                                                                      parameter, says):
    proc = start_policy_node(ros_processes, trained_policy(XARM_ACTIONS), *WIDE_LIMITS, *arguments)
    assert proc.wait(timeout=60) == 2
    output = proc.output()
    assert f"policy_node: error: parameter '{parameter}': {says}" in output and 'Traceback' not in output, output


def test_sim_time_drives_the_control_loop_and_the_watchdog(ros_processes, ros_node, trained_policy,
                                                           camera_embedding):
    """With use_sim_time the node's clock is /clock, so a paused simulator does not trip the watchdog.

    Observations stamped in sim time are fresh, and the watchdog counts sim seconds. Before /clock
    starts, embeddings are ignored with a log line that says so.
    """
    from rclpy.time import Time
    from rosgraph_msgs.msg import Clock
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    measured = np.full(len(XARM_ACTIONS), 0.3)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    clock_pub = ros_node.node.create_publisher(Clock, '/clock', 10)
    embedding_pub = ros_node.node.create_publisher(Embedding, 'embedding', 10)
    publish_joint_states(ros_node, XARM_ACTIONS, measured)
    sim = {'ns': 1_000_000_000_000, 'running': False, 'observing': True}   # sim time starts at 1000 s

    def embedding(stamp):
        msg = Embedding(encoder_name=policy.metadata.encoder_name, encoder_checksum=policy.metadata.encoder_checksum,
                        camera_names=['front'], camera_dims=[len(camera_embedding)], data=camera_embedding.tolist())
        msg.header.stamp = stamp
        return msg

    def tick():   # 10 ms of sim time per 10 ms of wall time, an embedding every 100 ms of sim time
        if not sim['running']:
            if sim['ns'] == 1_000_000_000_000:   # not started yet: embeddings without a clock
                embedding_pub.publish(embedding(Time(nanoseconds=sim['ns']).to_msg()))
            return
        sim['ns'] += 10_000_000
        stamp = Time(nanoseconds=sim['ns']).to_msg()
        clock_pub.publish(Clock(clock=stamp))
        if sim['observing'] and sim['ns'] % 100_000_000 == 0:
            embedding_pub.publish(embedding(stamp))

    ros_node.node.create_timer(0.01, tick)
    proc = start_policy_node(ros_processes, path, '-p', 'use_sim_time:=true', '-p', 'autostart:=true',
                             '-p', 'observation_timeout:=0.3', *WIDE_LIMITS, *XARM_SPLIT)
    wait_for_log(ros_node, proc, '/clock has not started', timeout=60)
    sim['running'] = True
    ros_node.spin_until(lambda: len(arm) >= 5, timeout=60, what='commands on sim time')

    sim['running'] = False          # the simulator pauses: no clock, no observations
    ros_node.spin_for(0.3)
    paused_at = len(arm)
    ros_node.spin_for(1.0)          # 1 s of wall time > observation_timeout, but no sim time passed
    assert len(arm) == paused_at, 'a paused simulator must not trip the watchdog or tick the loop'

    assert 'watchdog' not in proc.output()

    sim['observing'], sim['running'] = False, True    # the clock runs on, observations do not come
    wait_for_log(ros_node, proc, 'stopped the robot: watchdog', timeout=10)
    ros_node.spin_until(lambda: np.allclose(arm[-1].points[0].positions, measured[:7]), timeout=10,
                        what='the hold command, on sim time')
    assert len(arm) > paused_at, 'the control loop ran on sim time before the watchdog stopped it'


def test_velocity_limit_bounds_every_command_from_a_complete_finite_measurement_and_shutdown_holds(
        ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    measured = np.full(len(XARM_ACTIONS), -1.0)     # far from anything the policy predicts
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    gripper = ros_node.collect(JointTrajectory, GRIPPER_TOPIC)
    # First joint_states as the xArm driver may publish them: no drive_joint, and a NaN.
    joint_states = publish_joint_states(ros_node, XARM_ACTIONS[:7], [*measured[:2], np.nan, *measured[3:7]])
    proc = start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'joint_lower_limits:=[-3.0]',
                             '-p', 'joint_upper_limits:=[3.0]', '-p', 'max_velocity:=[0.2]', *XARM_SPLIT)
    EmbeddingStream(ros_node, policy, camera_embedding)
    wait_for_log(ros_node, proc, r"non-finite positions of \['joint3'\]", timeout=60)
    wait_for_log(ros_node, proc, r"no measured position of \['joint3', 'drive_joint'\]", timeout=20)
    assert arm == [] and gripper == [], 'no command without a measured position of every commanded joint'

    joint_states['names'], joint_states['positions'] = list(XARM_ACTIONS), measured.tolist()
    ros_node.spin_until(lambda: len(arm) >= 5 and len(gripper) >= 5, timeout=30, what='commands')

    positions = np.array([list(a.points[0].positions) + [g.points[0].positions[0]]
                          for a, g in zip(arm, gripper)])
    steps = np.abs(np.diff(np.vstack([measured, positions]), axis=0))
    assert np.all(steps <= 0.2 * 0.1 + 1e-9), steps.max()   # max_velocity x at most one control period
    np.testing.assert_allclose(positions[0], measured + 0.02)   # every joint moved up by the limit

    assert proc.stop() == 0
    # Inference stopped, then the hold went out while the publishers still worked.
    ros_node.spin_until(lambda: np.allclose(arm[-1].points[0].positions, measured[:7])
                        and np.isclose(gripper[-1].points[0].positions[0], measured[7]), timeout=10,
                        what='the hold command sent on shutdown')


def test_a_stalled_policy_blocks_neither_the_watchdog_nor_the_enable_service(
        ros_processes, ros_node, trained_policy, camera_embedding, tmp_path):
    fast_predictions, slow_prediction_s = 10, 6.0
    payload = torch.load(trained_policy(XARM_ACTIONS, 'mlp', False, 'epochs=5'), weights_only=True)
    payload['policy_name'] = 'slow_mlp'
    path = tmp_path / 'slow_policy.pt'
    torch.save(payload, path)
    policy = load_policy(trained_policy(XARM_ACTIONS, 'mlp', False, 'epochs=5'))
    measured = np.full(len(XARM_ACTIONS), 0.4)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    chunks = ros_node.collect(ActionChunk, 'action_chunk')
    publish_joint_states(ros_node, XARM_ACTIONS, measured)
    proc = start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'observation_timeout:=0.3',
                             *WIDE_LIMITS, *XARM_SPLIT, executable=(sys.executable, str(SLOW_POLICY_NODE)),
                             env={'SLOW_POLICY_FAST_PREDICTIONS': str(fast_predictions),
                                  'SLOW_POLICY_SECONDS': str(slow_prediction_s)})
    EmbeddingStream(ros_node, policy, camera_embedding)
    enable = ServiceClient(ros_node.node, ros_node.executor, SetBool, '/policy_node/enable', resend_after_s=2.0)
    ros_node.spin_until(lambda: len(chunks) >= fast_predictions, timeout=60, what='the fast predictions')

    # The next prediction takes slow_prediction_s; the watchdog stops the robot long before it ends.
    wait_for_log(ros_node, proc, 'stopped the robot: watchdog', timeout=slow_prediction_s - 1)
    ros_node.spin_until(lambda: np.allclose(arm[-1].points[0].positions, measured[:7]), timeout=2,
                        what='the hold command')
    assert len(chunks) == fast_predictions, 'the hold came while the slow prediction was still running'
    assert enable.call(SetBool.Request(data=False), timeout_s=slow_prediction_s - 2).message == 'disabled'
    assert len(chunks) == fast_predictions, '~/enable answered while the slow prediction was still running'
    assert proc.stop() == 0
