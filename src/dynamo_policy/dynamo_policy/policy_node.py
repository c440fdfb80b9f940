"""policy_node: embeddings (+ joint states) in, action chunks and robot commands out.

Thin ROS layer over the ROS-free core (policies, ChunkEnsembler, SafetyFilter, ObservationWindow,
Watchdog, command layout). Topics (relative names, remap with -r):
  sub  embedding (dynamo_msgs/Embedding), joint_states (sensor_msgs/JointState)
  pub  action_chunk (dynamo_msgs/ActionChunk), every chunk predicted (also while disabled, as a
       dry run), the command topic(s) of `command_type`, /diagnostics (diagnostic_msgs/DiagnosticArray)
  srv  ~/enable (std_srvs/SetBool), commands are sent only while enabled (autostart:=true enables
       at start)
A new embedding is turned into a chunk and a command at once (and the control timer restarts its
period), so fresh observations never wait for a timer tick; between observations the timer keeps
commanding the ensembled chunk rows at `control_rate`, once the newest observation is more than a
control period old: until then the next one is due and commands on arrival. (On sim time a tick and
the next observation share one stamp and the tick comes first; commanding there would send two
commands per step, and a lockstep simulator steps on each.)
"""

from __future__ import annotations

import time

import numpy as np
import torch
from builtin_interfaces.msg import Duration
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dynamo_encoder.stream_stats import StreamStatistics
from dynamo_msgs.msg import ActionChunk, Embedding
from dynamo_policy.command_layout import TWIST_ACTION_NAMES, CommandTarget, ParameterError, make_command_layout
from dynamo_policy.ensembling import ChunkEnsembler
from dynamo_policy.observation_window import ObservationWindow
from dynamo_policy.policies import PolicyArtifactError, load_policy
from dynamo_policy.safety import SafetyFilter, SafetyLimitError, UnsafeActionError
from dynamo_policy.watchdog import Watchdog, hold_position, zero_twist
from dynamo_util.node_main import run_node

LOG_THROTTLE_S = 5.0
STAMP_TOLERANCE_S = 1e-6   # times from nanosecond stamps that are equal may differ by float rounding
COMMAND_MESSAGE = {'joint_trajectory': JointTrajectory, 'float64_multi_array': Float64MultiArray,
                   'twist_stamped': TwistStamped}


def _seconds(stamp) -> float:
    return Time.from_msg(stamp).nanoseconds * 1e-9


def _duration(seconds: float) -> Duration:
    nanoseconds = int(round(seconds * 1e9))
    return Duration(sec=nanoseconds // 1_000_000_000, nanosec=nanoseconds % 1_000_000_000)


class PolicyNode(Node):
    def __init__(self):
        super().__init__('policy_node')
        policy_path = self._parameter('policy', '', 'Path of the policy artifact (policy.pt from train_policy).')
        control_rate = self._parameter(
            'control_rate', 0.0, 'Command rate in Hz; 0 = the policy dataset rate (1 / step_period).')
        command_type = self._parameter(
            'command_type', 'joint_trajectory',
            'joint_trajectory (ros2_control JointTrajectoryController) | float64_multi_array '
            '(ForwardCommandController) | twist_stamped (MoveIt Servo).')
        command_topics = self._parameter(
            'command_topics', ['command'],
            'Topic(s) the commands go to; several split the actions between controllers (e.g. xArm arm + gripper), '
            'not for twist_stamped.')
        command_joints = self._parameter(
            'command_joints', Parameter.Type.STRING_ARRAY,
            'Per command topic, a comma-separated list of the action names it carries, in message order, '
            'e.g. ["joint1,joint2,joint3,joint4,joint5,joint6,joint7", "drive_joint"]. Empty: the one '
            'topic carries all actions in the policy order.')
        lower = self._parameter('joint_lower_limits', Parameter.Type.DOUBLE_ARRAY,
                                'Lower limit per action (or one for all); empty: none.')
        upper = self._parameter('joint_upper_limits', Parameter.Type.DOUBLE_ARRAY,
                                'Upper limit per action (or one for all); empty: none.')
        max_step = self._parameter('max_step_change', Parameter.Type.DOUBLE_ARRAY,
                                   'Largest change per control step per action (or one for all); empty: none.')
        timeout = self._parameter('observation_timeout', 0.5,
                                  'Seconds after the newest embedding stamp before the watchdog stops the robot.')
        autostart = self._parameter('autostart', False, 'Send commands from the start (else call ~/enable).')
        ensemble_m = self._parameter('ensemble_m', 0.01,
                                     'ACT temporal-ensembling weight m: w_i = exp(-m i), oldest chunk i = 0.')
        self._twist_frame_id = self._parameter('twist_frame_id', '', 'header.frame_id of TwistStamped commands.')
        diagnostics_period = self._parameter('diagnostics_period', 1.0, 'Seconds between /diagnostics messages.')
        # A process-wide torch setting: main() applies it, the node only validates it.
        self.num_threads = self._parameter(
            'num_threads', 1, 'torch CPU threads for inference; small policies are fastest on one thread.')
        if self.num_threads < 1:
            raise ParameterError('num_threads', f'must be >= 1, got {self.num_threads}')

        self.policy = load_policy(policy_path) if policy_path else None
        if self.policy is None:
            raise ParameterError('policy', 'is required: the path of a policy artifact (policy.pt)')
        metadata = self.policy.metadata
        if control_rate < 0:
            raise ParameterError('control_rate', f'must be >= 0, got {control_rate}')
        self.control_period = 1.0 / control_rate if control_rate > 0 else metadata.step_period
        if not timeout > 0:
            raise ParameterError('observation_timeout', f'must be > 0, got {timeout}')
        if ensemble_m < 0:
            raise ParameterError('ensemble_m', f'must be >= 0, got {ensemble_m}')
        if not diagnostics_period > 0:
            raise ParameterError('diagnostics_period', f'must be > 0, got {diagnostics_period}')
        self.command_type = command_type
        self.targets: list[CommandTarget] = make_command_layout(
            command_type, list(command_topics), list(command_joints), metadata.action_names)
        try:
            self.safety = SafetyFilter(metadata.action_dim, lower, upper, max_step)
        except SafetyLimitError as error:
            parameter = {'lower': 'joint_lower_limits', 'upper': 'joint_upper_limits',
                         'max_step': 'max_step_change'}[error.field]
            raise ParameterError(parameter, str(error)) from None

        self.window = ObservationWindow(self.policy.context_length, metadata.embedding_dim, metadata.state_names)
        self.ensembler = ChunkEnsembler(metadata.step_period, ensemble_m)
        self.watchdog = Watchdog(timeout)
        self.enabled = bool(autostart)
        self.enabled_at: float | None = None   # this node's time at the last ~/enable
        self.stopped = True            # no command is being executed (start, watchdog, disable)
        self.last_command: np.ndarray | None = None
        self.measured: dict[str, float] = {}
        self.refused = 0
        self.stats = StreamStatistics(['embedding'], window_s=5.0)
        self.inference_stats = StreamStatistics([], window_s=5.0)

        self.chunk_pub = self.create_publisher(ActionChunk, 'action_chunk', 10)
        message_type = COMMAND_MESSAGE[command_type]
        self.command_pubs = [self.create_publisher(message_type, target.topic, 10) for target in self.targets]
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Embedding, 'embedding', self._on_embedding, qos_profile_sensor_data)
        self.create_subscription(JointState, 'joint_states', self._on_joint_state, qos_profile_sensor_data)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.control_timer = self.create_timer(self.control_period, self._on_control_timer)
        self.create_timer(diagnostics_period, self._publish_diagnostics)
        self.get_logger().info(
            f'policy {metadata.action_dim}-dim {self.policy.name} from {policy_path} (encoder '
            f'{metadata.encoder_name} {metadata.encoder_checksum}, context {self.policy.context_length}, '
            f'horizon {self.policy.horizon}); {command_type} to {[t.topic for t in self.targets]} at '
            f'{1.0 / self.control_period:.1f} Hz; {"enabled" if self.enabled else "disabled, call ~/enable"}')

    def _parameter(self, name: str, default, description: str):
        try:
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return []  # an array parameter left empty
        except (ParameterException, TypeError, ValueError) as error:
            raise ParameterError(name, str(error)) from None

    # --- inputs ----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        self.measured.update(zip(msg.name, msg.position))
        missing = self.window.update_joint_state(msg.name, msg.position)
        if missing and self.window.state_names:
            self.get_logger().warning(f'joint_states lacks {missing} needed by the policy',
                                   throttle_duration_sec=LOG_THROTTLE_S)

    def _on_embedding(self, msg: Embedding) -> None:
        metadata = self.policy.metadata
        if msg.encoder_checksum != metadata.encoder_checksum:
            self.refused += 1
            self.get_logger().error(
                f'refusing embedding from encoder {msg.encoder_name!r} checksum {msg.encoder_checksum!r}: '
                f'the policy was trained on encoder {metadata.encoder_name!r} checksum '
                f'{metadata.encoder_checksum!r} ({self.refused} refused)', throttle_duration_sec=LOG_THROTTLE_S)
            return
        self.stats.frame_received('embedding')
        stamp = _seconds(msg.header.stamp)
        if self.enabled_at is not None and stamp <= self.enabled_at:
            # Taken before enabling and still in the pipeline, e.g. the last of a simulated episode
            # that was reset while the policy was disabled: acting on it would mix the two episodes.
            return
        try:
            self.window.add_embedding(stamp, msg.data)
        except ValueError as error:
            self.get_logger().warning(f'skipping embedding: {error}', throttle_duration_sec=LOG_THROTTLE_S)
            return
        if not self.window.ready():
            self.get_logger().warning(f'waiting for joint_states of {metadata.state_names}',
                                   throttle_duration_sec=LOG_THROTTLE_S)
            return
        started = time.perf_counter()
        chunk = self.policy.predict_action(self.window.window())
        predict_s = time.perf_counter() - started
        self.inference_stats.output_published(latency_s=predict_s, processing_s=predict_s)
        self.ensembler.add(stamp, chunk)
        if self.enabled:
            age = self._now() - stamp
            if abs(age) > self.watchdog.timeout:
                # Said on arrival: otherwise a pipeline that is always too slow never commands and
                # never logs a watchdog transition either.
                self.get_logger().warning(
                    f'embedding is {age:.3f} s old on arrival (observation_timeout {self.watchdog.timeout} s): '
                    'not commanding; the camera/encoder pipeline is too slow or the clocks disagree',
                    throttle_duration_sec=LOG_THROTTLE_S)
            self._control_step()
            self.control_timer.reset()
        # After the command: the robot should not wait for a message that is only read by loggers
        # and tools.
        self._publish_chunk(msg, chunk)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        if request.data and not self.enabled:
            self.policy.reset()
            self.ensembler.reset()
            self.window.reset()   # act only on observations taken after enabling
            self.enabled_at = self._now()
            self.last_command = None
            self.enabled = True
            self.get_logger().info('enabled: commands follow the policy')
        elif not request.data and self.enabled:
            self.enabled = False
            self._stop('disabled through ~/enable')
        response.success = True
        response.message = 'enabled' if self.enabled else 'disabled'
        return response

    # --- control ---------------------------------------------------------------------------
    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    def _on_control_timer(self) -> None:
        now, latest = self._now(), self.window.latest_stamp
        if (latest is not None and 0.0 <= now - latest <= self.control_period + STAMP_TOLERANCE_S
                and not self.watchdog.expired(now, latest)):
            return   # the next observation is due and commands on arrival
        self._control_step()

    def _control_step(self) -> None:
        if not self.enabled:
            return
        now = self._now()
        if self.watchdog.expired(now, self.window.latest_stamp):
            if not self.stopped:
                age = now - self.window.latest_stamp
                self._stop(f"watchdog: newest observation is {age:.3f} s old by this node's clock "
                           f'(observation_timeout {self.watchdog.timeout} s)')
            return
        ensembled = self.ensembler.action_at(now)
        if ensembled is None:
            if not self.stopped:
                self._stop('every predicted action is in the past')
            return
        previous = self.last_command
        if previous is None:
            # Rate-limit the first command from where the robot is: its measured joint positions,
            # or rest (zero twist) for velocity control.
            previous = self._stop_command(None)
        try:
            action = self.safety.apply(ensembled.action, previous)
        except UnsafeActionError as error:
            self._stop(f'policy produced an unsafe action: {error}')
            return
        self._send_command(action, max(ensembled.due_time - now, self.control_period))
        if self.stopped:
            self.get_logger().info('commanding the robot')
        self.stopped = False
        self.last_command = action
        # A command forwards an ensembled row; the prediction's compute time is in inference_stats.
        self.stats.output_published(self._now() - self.window.latest_stamp, processing_s=0.0)

    def _measured_action(self) -> np.ndarray | None:
        names = self.policy.metadata.action_names
        if not all(name in self.measured for name in names):
            return None
        return np.asarray([self.measured[name] for name in names])

    def _stop_command(self, last_command: np.ndarray | None) -> np.ndarray | None:
        """Zero twist, or the position to hold (measured, else `last_command`; None if unknown)."""
        if self.command_type == 'twist_stamped':
            return zero_twist()[[TWIST_ACTION_NAMES.index(n) for n in self.policy.metadata.action_names]]
        return hold_position(last_command, self._measured_action())

    def _stop(self, reason: str) -> None:
        self.stopped = True
        self.ensembler.reset()
        stop = self._stop_command(self.last_command)
        if stop is None:
            self.get_logger().warning(f'stopping ({reason}); no command or joint state known, nothing to hold')
            return
        self._send_command(stop, self.control_period)
        self.last_command = stop
        self.get_logger().warning(f'stopped the robot: {reason}')

    # --- outputs ---------------------------------------------------------------------------
    def _publish_chunk(self, observation: Embedding, chunk: np.ndarray) -> None:
        metadata = self.policy.metadata
        msg = ActionChunk()
        msg.header.stamp = observation.header.stamp
        msg.header.frame_id = self._twist_frame_id if self.command_type == 'twist_stamped' else ''
        msg.policy_name = self.policy.name
        msg.encoder_checksum = metadata.encoder_checksum
        msg.action_names = list(metadata.action_names)
        msg.horizon, msg.action_dim = chunk.shape
        msg.step_period = _duration(metadata.step_period)
        msg.data = chunk.astype(np.float32).ravel().tolist()
        self.chunk_pub.publish(msg)

    def _send_command(self, action: np.ndarray, time_from_start: float) -> None:
        for target, publisher in zip(self.targets, self.command_pubs):
            values = [float(action[i]) for i in target.indices]
            if self.command_type == 'joint_trajectory':
                # stamp 0: the controller starts the trajectory on receipt.
                msg = JointTrajectory(joint_names=list(target.names), points=[JointTrajectoryPoint(
                    positions=values, time_from_start=_duration(time_from_start))])
            elif self.command_type == 'float64_multi_array':
                msg = Float64MultiArray(data=values)
            else:
                msg = TwistStamped()
                msg.header.stamp = self.get_clock().now().to_msg()
                msg.header.frame_id = self._twist_frame_id
                twist = dict(zip(target.names, values))
                msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (
                    twist['linear.x'], twist['linear.y'], twist['linear.z'])
                msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (
                    twist['angular.x'], twist['angular.y'], twist['angular.z'])
            publisher.publish(msg)

    def _publish_diagnostics(self) -> None:
        values = self.stats.snapshot()
        inference = self.inference_stats.snapshot()
        status = DiagnosticStatus(name=f'{self.get_name()}: policy', hardware_id=self.policy.name)
        if self.refused:
            status.level = DiagnosticStatus.ERROR
            status.message = f'{self.refused} embeddings from a wrong encoder refused'
        elif not self.enabled:
            status.level, status.message = DiagnosticStatus.OK, 'disabled'
        elif self.stopped:
            status.level, status.message = DiagnosticStatus.WARN, 'stopped (no fresh observations)'
        else:
            status.level, status.message = DiagnosticStatus.OK, 'commanding'
        status.values = [KeyValue(key=key, value=f'{value}') for key, value in (
            ('embedding_rate_hz', f'{values["input_rate_hz"]:.2f}'),
            ('command_rate_hz', f'{values["output_rate_hz"]:.2f}'),
            ('observation_to_command_latency_p50_ms', f'{values["latency_p50_ms"]:.2f}'),
            ('observation_to_command_latency_p99_ms', f'{values["latency_p99_ms"]:.2f}'),
            ('predict_latency_p50_ms', f'{inference["latency_p50_ms"]:.3f}'),
            ('predict_latency_p99_ms', f'{inference["latency_p99_ms"]:.3f}'),
            ('embeddings_refused', self.refused),
            ('enabled', self.enabled),
            ('stopped', self.stopped))]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)


def _set_torch_threads(node: PolicyNode) -> None:
    torch.set_num_threads(node.num_threads)


def main(args=None) -> int:
    return run_node(PolicyNode, 'policy_node', args, parameter_errors=(ParameterError, PolicyArtifactError),
                    start=_set_torch_threads)


if __name__ == '__main__':
    raise SystemExit(main())
