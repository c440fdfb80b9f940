"""policy_node as a real subprocess over DDS: embeddings in, action chunks and commands out."""

import numpy as np
import pytest
from _synthetic_policy_data import ALLEGRO_ACTIONS, TWIST_ACTIONS, XARM_ACTIONS, synthetic_episode
from diagnostic_msgs.msg import DiagnosticArray
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


def start_policy_node(ros_processes, policy_path, *args):
    return ros_processes.start(['policy_node', '--ros-args', '-p', f'policy:={policy_path}', *args],
                               name='policy_node')


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
        if not self.running:
            return
        msg = Embedding()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.header.frame_id = 'camera_color_optical_frame'
        msg.encoder_name = self.policy_metadata.encoder_name
        msg.encoder_checksum = self.checksum
        msg.camera_names = list(self.policy_metadata.camera_names)
        msg.camera_dims = [len(self.data)]
        msg.data = self.data.tolist()
        self.publisher.publish(msg)
        self.sent.append(msg)


def chunk_bounds(policy, embedding, state=None):
    window = {'embedding': embedding[None]}
    if state is not None:
        window['state'] = np.asarray(state, np.float32)[None]
    chunk = policy.predict_action(window)
    return chunk, chunk.min(axis=0) - 1e-5, chunk.max(axis=0) + 1e-5


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
    joint_states = ros_node.node.create_publisher(JointState, 'joint_states', 10)
    # Shuffled joint order: the node must match joint states by name.
    order = np.random.default_rng(0).permutation(len(XARM_ACTIONS))
    ros_node.node.create_timer(0.05, lambda: joint_states.publish(JointState(
        name=[XARM_ACTIONS[i] for i in order], position=state[order].tolist())))
    start_policy_node(ros_processes, path, '-p', 'autostart:=true', *XARM_SPLIT)
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

    def node_values():
        return {kv.key: kv.value for d in diagnostics[-1:] for s in d.status for kv in s.values}
    ros_node.spin_until(lambda: float(node_values().get('command_rate_hz', 0)) > 0, timeout=10,
                        what='diagnostics reporting the command rate')
    values = node_values()
    assert float(values['embedding_rate_hz']) > 0 and float(values['predict_latency_p50_ms']) > 0
    assert float(values['observation_to_command_latency_p50_ms']) > 0


def test_allegro_float64_commands_respect_joint_limits(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(ALLEGRO_ACTIONS)
    policy = load_policy(path)
    _, low, high = chunk_bounds(policy, camera_embedding)
    # An upper limit below every predicted value of some joints: those must be clamped to it.
    upper = float(np.median(low))
    commands = ros_node.collect(Float64MultiArray, ALLEGRO_TOPIC)
    start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'command_type:=float64_multi_array',
                      '-p', f"command_topics:=['{ALLEGRO_TOPIC}']", '-p', f'joint_upper_limits:=[{upper}]')
    EmbeddingStream(ros_node, policy, camera_embedding)

    ros_node.spin_until(lambda: len(commands) >= 5, timeout=60, what='Float64MultiArray commands')

    values = np.asarray(commands[-1].data)
    assert values.shape == (16,)
    np.testing.assert_array_less(values, upper + 1e-9)
    assert np.all(values >= np.minimum(low, upper))
    clamped = low > upper
    assert clamped.any() and np.allclose(values[clamped], upper)


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
    ros_node.spin_until(lambda: twists[-1].twist.linear.x == 0 and twists[-1].twist.angular.z == 0,
                        timeout=10, what='the watchdog zero twist')
    stopped_at = len(twists)
    ros_node.spin_for(1.0)
    assert len(twists) == stopped_at, 'no commands after the watchdog stopped the robot'
    stop = twists[-1].twist
    assert [stop.linear.x, stop.linear.y, stop.linear.z, stop.angular.x, stop.angular.y, stop.angular.z] == [0.0] * 6
    proc.wait_for_output('watchdog', timeout=5)


def test_watchdog_holds_the_measured_position(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    measured = np.linspace(0.1, 0.8, len(XARM_ACTIONS))
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    gripper = ros_node.collect(JointTrajectory, GRIPPER_TOPIC)
    joint_states = ros_node.node.create_publisher(JointState, 'joint_states', 10)
    ros_node.node.create_timer(0.05, lambda: joint_states.publish(
        JointState(name=XARM_ACTIONS, position=measured.tolist())))
    start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'observation_timeout:=0.3', *XARM_SPLIT)
    stream = EmbeddingStream(ros_node, policy, camera_embedding)
    ros_node.spin_until(lambda: len(arm) >= 3, timeout=60, what='arm trajectories')

    stream.running = False
    ros_node.spin_until(lambda: np.allclose(arm[-1].points[0].positions, measured[:7]), timeout=10,
                        what='the watchdog hold command')
    stopped_at = len(arm)
    ros_node.spin_for(1.0)
    assert len(arm) == stopped_at, 'no commands after the watchdog stopped the robot'
    assert np.isclose(gripper[-1].points[0].positions[0], measured[7])


def test_disable_stops_commands_and_enable_resumes(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    chunks = ros_node.collect(ActionChunk, 'action_chunk')
    start_policy_node(ros_processes, path, *XARM_SPLIT)   # autostart defaults to false
    EmbeddingStream(ros_node, policy, camera_embedding)
    enable = ServiceClient(ros_node.node, ros_node.executor, SetBool, '/policy_node/enable')

    ros_node.spin_until(lambda: len(chunks) >= 5, timeout=60, what='action chunks while disabled')
    assert arm == [], 'disabled at start: chunks are published, commands are not'
    assert enable.call(SetBool.Request(data=True), timeout_s=10).success
    ros_node.spin_until(lambda: len(arm) >= 5, timeout=10, what='commands after enabling')
    assert enable.call(SetBool.Request(data=False), timeout_s=10).success
    ros_node.spin_for(0.5)   # the hold command sent on disabling may still be in flight
    stopped_at = len(arm)
    ros_node.spin_for(1.5)
    assert len(arm) == stopped_at, 'commands continued after disabling'


def test_wrong_encoder_embeddings_are_refused(ros_processes, ros_node, trained_policy, camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    chunks = ros_node.collect(ActionChunk, 'action_chunk')
    diagnostics = ros_node.collect(DiagnosticArray, '/diagnostics')
    proc = start_policy_node(ros_processes, path, '-p', 'autostart:=true', *XARM_SPLIT)
    EmbeddingStream(ros_node, policy, camera_embedding, checksum='ffffffffffffffff')

    ros_node.spin_until(lambda: any(s.level == b'\x02' for d in diagnostics for s in d.status), timeout=60,
                        what='an ERROR diagnostic')
    proc.wait_for_output('ffffffffffffffff', timeout=5)
    log = proc.output()
    assert policy.metadata.encoder_checksum in log and 'refusing' in log
    assert arm == [] and chunks == []
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


def test_sim_time_drives_the_control_loop_and_the_watchdog(ros_processes, ros_node, trained_policy,
                                                           camera_embedding):
    """With use_sim_time the node's clock is /clock, so a paused simulator does not trip the watchdog.

    Observations stamped in sim time are fresh, and the watchdog counts sim seconds.
    """
    from rclpy.time import Time
    from rosgraph_msgs.msg import Clock
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    clock_pub = ros_node.node.create_publisher(Clock, '/clock', 10)
    embedding_pub = ros_node.node.create_publisher(Embedding, 'embedding', 10)
    sim = {'ns': 1_000_000_000_000, 'running': True, 'observing': True}   # sim time starts at 1000 s

    def tick():   # 10 ms of sim time per 10 ms of wall time, an embedding every 100 ms of sim time
        if not sim['running']:
            return
        sim['ns'] += 10_000_000
        stamp = Time(nanoseconds=sim['ns']).to_msg()
        clock_pub.publish(Clock(clock=stamp))
        if sim['observing'] and sim['ns'] % 100_000_000 == 0:
            msg = Embedding(encoder_name=policy.metadata.encoder_name,
                            encoder_checksum=policy.metadata.encoder_checksum,
                            camera_names=['front'], camera_dims=[len(camera_embedding)],
                            data=camera_embedding.tolist())
            msg.header.stamp = stamp
            embedding_pub.publish(msg)

    ros_node.node.create_timer(0.01, tick)
    proc = start_policy_node(ros_processes, path, '-p', 'use_sim_time:=true', '-p', 'autostart:=true',
                             '-p', 'observation_timeout:=0.3', *XARM_SPLIT)
    ros_node.spin_until(lambda: len(arm) >= 5, timeout=60, what='commands on sim time')

    sim['running'] = False          # the simulator pauses: no clock, no observations
    ros_node.spin_for(0.3)
    paused_at = len(arm)
    ros_node.spin_for(1.0)          # 1 s of wall time > observation_timeout, but no sim time passed
    assert len(arm) == paused_at, 'a paused simulator must not trip the watchdog or tick the loop'

    assert 'watchdog' not in proc.output()

    sim['observing'], sim['running'] = False, True    # the clock runs on, observations do not come
    ros_node.spin_until(lambda: 'watchdog' in proc.output(), timeout=10,
                        what='the watchdog once sim time passes the timeout')
    ros_node.spin_for(0.3)
    stopped_at = len(arm)
    ros_node.spin_for(0.5)
    assert len(arm) == stopped_at > paused_at, 'the control loop ran on sim time, then the watchdog stopped it'
    # No joint states here: the stop holds the last commanded position.
    np.testing.assert_allclose(arm[-1].points[0].positions, arm[-2].points[0].positions)


def test_max_step_change_limits_every_command_from_the_measured_start(ros_processes, ros_node, trained_policy,
                                                                      camera_embedding):
    path = trained_policy(XARM_ACTIONS)
    policy = load_policy(path)
    measured = np.full(len(XARM_ACTIONS), -1.0)     # far from anything the policy predicts
    arm = ros_node.collect(JointTrajectory, ARM_TOPIC)
    gripper = ros_node.collect(JointTrajectory, GRIPPER_TOPIC)
    joint_states = ros_node.node.create_publisher(JointState, 'joint_states', 10)
    ros_node.node.create_timer(0.05, lambda: joint_states.publish(
        JointState(name=XARM_ACTIONS, position=measured.tolist())))
    start_policy_node(ros_processes, path, '-p', 'autostart:=true', '-p', 'max_step_change:=[0.02]', *XARM_SPLIT)
    ros_node.spin_until(lambda: ros_node.node.count_subscribers('joint_states') > 0, timeout=60,
                        what='the node subscribing to joint_states')
    ros_node.spin_for(0.5)   # the node has a measured position before the first observation
    EmbeddingStream(ros_node, policy, camera_embedding)
    ros_node.spin_until(lambda: len(arm) >= 5 and len(gripper) >= 5, timeout=60, what='commands')

    positions = np.array([list(a.points[0].positions) + [g.points[0].positions[0]]
                          for a, g in zip(arm, gripper)])
    steps = np.abs(np.diff(np.vstack([measured, positions]), axis=0))
    assert np.all(steps <= 0.02 + 1e-9), steps.max()
    np.testing.assert_allclose(positions[0], measured + 0.02)   # every joint moved up by the limit
