"""policy_node: embeddings (+ joint states) in, action chunks and robot commands out.

Thin ROS layer over the ROS-free core: PolicyController (every control and safety rule: see
dynamo_policy.controller), InferenceWorker (predict_action on its own thread) and the command
layout. Topics (relative names, remap with -r):
  sub  embedding (dynamo_msgs/Embedding), joint_states (sensor_msgs/JointState)
  pub  action_chunk (dynamo_msgs/ActionChunk), every chunk the controller takes (also while
       disabled, as a dry run), the command topic(s) of `command_type`, /diagnostics
       (diagnostic_msgs/DiagnosticArray)
  srv  ~/enable (std_srvs/SetBool), commands are sent only while enabled (autostart:=true enables
       at start); the first command waits for a measured position of every commanded joint
  action client (command_type follow_joint_trajectory) control_msgs/action/FollowJointTrajectory
       on each of command_topics: one goal per chunk (a JointTrajectoryController preempts the
       previous one), canceled to stop; a failed goal (tolerance violation, rejection, abort)
       disables the policy with its reason logged and in /diagnostics
Position commands (joint_trajectory, float64_multi_array, follow_joint_trajectory) need
joint_lower_limits, joint_upper_limits and max_velocity: without them the node refuses to start.
On shutdown (SIGINT, SIGTERM) inference stops first, then the robot is stopped with a hold command
(its goals canceled).
"""

from __future__ import annotations

import queue
import time
from functools import partial

import numpy as np
import torch
from builtin_interfaces.msg import Duration
from control_msgs.action import FollowJointTrajectory
from control_msgs.msg import JointTolerance
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import TwistStamped
from rcl_interfaces.msg import ParameterDescriptor
from rclpy import spin_until_future_complete
from rclpy.action import ActionClient
from rclpy.duration import Duration as RclpyDuration
from rclpy.exceptions import ParameterException, ParameterUninitializedException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import SetBool
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dynamo_encoder.stream_stats import StreamStatistics
from dynamo_msgs.msg import ActionChunk, Embedding
from dynamo_policy.command_layout import CommandTarget, ParameterError, make_command_layout, trajectory_tolerances
from dynamo_policy.controller import ControlConfig, PolicyController, Reaction
from dynamo_policy.inference_worker import InferenceResult, InferenceWorker
from dynamo_policy.policies import PolicyArtifactError, load_policy
from dynamo_policy.safety import SafetyLimitError, make_safety_filter
from dynamo_policy.shutdown_signals import interrupt_spin_on_signals
from dynamo_util.node_main import run_node

LOG_THROTTLE_S = 5.0
INFERENCE_STOP_TIMEOUT_S = 5.0   # on shutdown, how long a prediction in progress may finish
STOP_ACK_TIMEOUT_S = 1.0         # on shutdown, how long subscribers may take to acknowledge the stop command
COMMAND_MESSAGE = {'joint_trajectory': JointTrajectory, 'float64_multi_array': Float64MultiArray,
                   'twist_stamped': TwistStamped}
LIMIT_PARAMETERS = {'lower': 'joint_lower_limits', 'upper': 'joint_upper_limits', 'max_velocity': 'max_velocity',
                    'max_acceleration': 'max_acceleration'}
DIAGNOSTIC_LEVELS = {'OK': DiagnosticStatus.OK, 'WARN': DiagnosticStatus.WARN, 'ERROR': DiagnosticStatus.ERROR}


def _seconds(stamp) -> float:
    # Not rclpy's Time.from_msg: it raises on a negative stamp, which would end the node; the
    # controller treats such a stamp as an old observation.
    return (stamp.sec * 1_000_000_000 + stamp.nanosec) * 1e-9


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
            '(ForwardCommandController) | twist_stamped (MoveIt Servo) | follow_joint_trajectory '
            "(JointTrajectoryController's action: one goal per chunk, execution reported).")
        command_topics = self._parameter(
            'command_topics', ['command'],
            'Topic(s) the commands go to (for follow_joint_trajectory the actions, e.g. '
            '/xarm7_traj_controller/follow_joint_trajectory); several split the actions between controllers '
            '(e.g. xArm arm + gripper), not for twist_stamped.')
        command_joints = self._parameter(
            'command_joints', Parameter.Type.STRING_ARRAY,
            'Per command topic, a comma-separated list of the action names it carries, in message order, '
            'e.g. ["joint1,joint2,joint3,joint4,joint5,joint6,joint7", "drive_joint"]. Empty: the one '
            'topic carries all actions in the policy order.')
        lower = self._parameter('joint_lower_limits', Parameter.Type.DOUBLE_ARRAY,
                                'Lower limit per action (or one for all); required for position commands.')
        upper = self._parameter('joint_upper_limits', Parameter.Type.DOUBLE_ARRAY,
                                'Upper limit per action (or one for all); required for position commands.')
        max_velocity = self._parameter(
            'max_velocity', Parameter.Type.DOUBLE_ARRAY,
            'Largest speed per action (or one for all) in units/s, whatever the command rate: of the joints for '
            'position commands (required), of the twist itself for twist_stamped (empty: none).')
        max_acceleration = self._parameter(
            'max_acceleration', Parameter.Type.DOUBLE_ARRAY,
            'Largest speed-up per action (or one for all) in units/s^2 (of the twist: its change per second); '
            'slowing down is never limited; empty: none.')
        path_tolerance = self._parameter(
            'trajectory_path_tolerance', Parameter.Type.DOUBLE_ARRAY,
            'follow_joint_trajectory: largest position error per action (or one for all) while a goal runs, '
            "else it aborts and the policy stops; empty: the controller's own (its constraints.<joint>.trajectory).")
        goal_tolerance = self._parameter(
            'trajectory_goal_tolerance', Parameter.Type.DOUBLE_ARRAY,
            'follow_joint_trajectory: largest position error per action (or one for all) at the end of a goal; '
            "empty: the controller's own (constraints.<joint>.goal).")
        goal_time_tolerance = self._parameter(
            'trajectory_goal_time_tolerance', 0.0,
            'follow_joint_trajectory: seconds after the end of a goal to reach trajectory_goal_tolerance; '
            "0: the controller's own (constraints.goal_time).")
        timeout = self._parameter('observation_timeout', 0.5,
                                  'Seconds after the newest embedding stamp before the watchdog stops the robot; '
                                  "embeddings stamped further ahead of this node's clock are ignored.")
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
        control_period = 1.0 / control_rate if control_rate > 0 else metadata.step_period
        if not timeout > 0:
            raise ParameterError('observation_timeout', f'must be > 0, got {timeout}')
        if ensemble_m < 0:
            raise ParameterError('ensemble_m', f'must be >= 0, got {ensemble_m}')
        if not diagnostics_period > 0:
            raise ParameterError('diagnostics_period', f'must be > 0, got {diagnostics_period}')
        self.command_type = command_type
        self.targets: list[CommandTarget] = make_command_layout(
            command_type, list(command_topics), list(command_joints), metadata.action_names)
        velocity_commands = command_type == 'twist_stamped'
        trajectory_goals = command_type == 'follow_joint_trajectory'
        self._goal_tolerances = trajectory_tolerances(
            trajectory_goals, metadata.action_dim, path_tolerance, goal_tolerance, goal_time_tolerance)
        try:
            # A goal's points are step_period apart: each may move as far as the limits allow in that time.
            safety = make_safety_filter(
                metadata.action_dim, lower, upper, max_velocity, max_acceleration,
                max_interval=max(control_period, metadata.step_period) if trajectory_goals else control_period,
                velocity_commands=velocity_commands)
        except SafetyLimitError as error:
            raise ParameterError(LIMIT_PARAMETERS[error.field], str(error)) from None
        self.controller = PolicyController(ControlConfig(
            action_names=tuple(metadata.action_names), state_names=tuple(metadata.state_names),
            context_length=self.policy.context_length, embedding_dim=metadata.embedding_dim,
            encoder_checksum=metadata.encoder_checksum, step_period=metadata.step_period,
            control_period=control_period, observation_timeout=timeout, ensemble_m=ensemble_m,
            velocity_commands=velocity_commands, autostart=autostart,
            goal_actions=tuple(target.topic for target in self.targets) if trajectory_goals else ()), safety)
        self._use_sim_time = self.get_parameter('use_sim_time').value
        self._logged: dict[str, float] = {}   # note key -> time.monotonic() it was last logged
        self.stats = StreamStatistics(['embedding'], window_s=5.0)
        self.inference_stats = StreamStatistics([], window_s=5.0)

        self.chunk_pub = self.create_publisher(ActionChunk, 'action_chunk', 10)
        if trajectory_goals:
            self.command_pubs = []
            self.action_clients = [ActionClient(self, FollowJointTrajectory, target.topic) for target in self.targets]
        else:
            self.command_pubs = [self.create_publisher(COMMAND_MESSAGE[command_type], target.topic, 10)
                                 for target in self.targets]
            self.action_clients = []
        self._goal_handles = {}   # (goal id, target index) -> ClientGoalHandle, from acceptance to result
        self.diagnostics_pub = self.create_publisher(DiagnosticArray, '/diagnostics', 10)
        self.create_subscription(Embedding, 'embedding', self._on_embedding, qos_profile_sensor_data)
        self.create_subscription(JointState, 'joint_states', self._on_joint_state, qos_profile_sensor_data)
        self.create_service(SetBool, '~/enable', self._on_enable)
        self.control_timer = self.create_timer(control_period, self._on_control_timer)
        self.create_timer(diagnostics_period, self._publish_diagnostics)
        # Predictions come back from the worker thread through a queue; the guard condition runs
        # _on_predictions on this node's executor, where every other callback runs.
        self._results: queue.SimpleQueue[InferenceResult] = queue.SimpleQueue()
        self._results_ready = self.create_guard_condition(self._on_predictions)
        self.worker = InferenceWorker(self.policy, self._deliver)
        self.worker.start()
        self.get_logger().info(
            f'policy {metadata.action_dim}-dim {self.policy.name} from {policy_path} (encoder '
            f'{metadata.encoder_name} {metadata.encoder_checksum}, context {self.policy.context_length}, '
            f'horizon {self.policy.horizon}); {command_type} to {[t.topic for t in self.targets]} at '
            f'{1.0 / control_period:.1f} Hz; {"enabled" if autostart else "disabled, call ~/enable"}')

    def _parameter(self, name: str, default, description: str):
        try:
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
            return self.get_parameter(name).value
        except ParameterUninitializedException:
            return []  # an array parameter left empty
        except (ParameterException, TypeError, ValueError) as error:
            raise ParameterError(name, str(error)) from None

    def _now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- inputs ----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        self._act(self.controller.joint_state(msg.name, msg.position))

    def _on_embedding(self, msg: Embedding) -> None:
        self.stats.frame_received('embedding')
        if self._use_sim_time and self.get_clock().now().nanoseconds == 0:
            self._log('warning', 'clock_not_started', 'ignoring embeddings: /clock has not started (use_sim_time is '
                      "true), this node's time is still 0")
            return
        reaction = self.controller.observation(_seconds(msg.header.stamp), msg.data, self._now(),
                                               msg.encoder_checksum, msg.encoder_name)
        if reaction.predict is not None and self.worker.submit(reaction.predict, msg.header.stamp):
            self.stats.frames_dropped(1)   # the one the worker had not started on yet
        self._act(reaction)

    def _deliver(self, result: InferenceResult) -> None:
        """Take a result from the worker thread (thread-safe)."""
        self._results.put(result)
        self._results_ready.trigger()

    def _on_predictions(self) -> None:
        while True:
            try:
                result = self._results.get_nowait()
            except queue.Empty:
                return
            if result.error is not None:
                self._log('error', 'predict_failed', f'predict_action failed: {result.error}')
                continue
            self.inference_stats.output_published(latency_s=result.seconds, processing_s=result.seconds)
            unavailable = tuple(target.topic for target, client in zip(self.targets, self.action_clients)
                                if not client.server_is_ready())
            reaction = self.controller.prediction(result.request, result.chunk, self._now(), unavailable)
            if self._act(reaction):
                self.control_timer.reset()   # a fresh command: the next tick is a full period away
            if reaction.used:
                # After the command: the robot should not wait for a message that is only read by
                # loggers and tools.
                self._publish_chunk(result.tag, result.chunk)

    def _on_enable(self, request: SetBool.Request, response: SetBool.Response) -> SetBool.Response:
        now = self._now()
        self._act(self.controller.enable(now) if request.data else self.controller.disable(now))
        response.success = True
        response.message = self.controller.status(now).message
        return response

    def _on_control_timer(self) -> None:
        self._act(self.controller.tick(self._now()))

    def shutdown(self) -> None:
        """Stop inference, then stop the robot (while the publishers still work)."""
        if not self.worker.stop(INFERENCE_STOP_TIMEOUT_S):
            self.get_logger().warning(f'predict_action still running after {INFERENCE_STOP_TIMEOUT_S} s; '
                                      'shutting down without its result')
        reaction = self.controller.shutdown(self._now())
        if reaction.command is None and not reaction.cancel:
            return
        if not self.context.ok():
            self.get_logger().error('cannot send the stop command: the ROS context is already shut down')
            return
        cancels, reaction.cancel = reaction.cancel, []
        self._act(reaction)
        # The controllers must hold before the node goes, but all of them share one deadline: under
        # ros2 launch a Ctrl-C stops the controllers' side too, and waiting for each in turn took
        # longer than the 2 s a node may take to exit.
        deadline = time.monotonic() + STOP_ACK_TIMEOUT_S
        cancel_futures = self._cancel_goals(cancels)
        for future in cancel_futures:
            spin_until_future_complete(self, future, timeout_sec=max(0.0, deadline - time.monotonic()))
        unanswered = sum(not future.done() for future in cancel_futures)
        if unanswered:
            self.get_logger().warning(f'{unanswered} goal cancel(s) not answered within {STOP_ACK_TIMEOUT_S} s')
        for publisher in self.command_pubs:
            remaining = max(0.0, deadline - time.monotonic())
            if not publisher.wait_for_all_acked(RclpyDuration(seconds=remaining)):
                self.get_logger().warning(f'the stop command on {publisher.topic_name} was not acknowledged '
                                          f'within {STOP_ACK_TIMEOUT_S} s')

    # --- outputs ---------------------------------------------------------------------------
    def _act(self, reaction: Reaction) -> bool:
        """Log the reaction's notes and send its command; return whether a policy command (not a stop) went out."""
        for note in reaction.notes:
            self._log(note.level, note.key, note.text, note.throttled)
        self._cancel_goals(reaction.cancel)
        if reaction.goal is not None:
            self._send_goal(reaction.goal)
        elif reaction.command is not None:
            self._send_command(reaction.command, reaction.duration)
        else:
            return False
        if reaction.stop:
            return False
        # A command forwards an ensembled row; the prediction's compute time is in inference_stats.
        self.stats.output_published(self._now() - self.controller.newest_prediction, processing_s=0.0)
        return True

    def _log(self, level: str, key: str, text: str, throttled: bool = True) -> None:
        if throttled:
            now = time.monotonic()
            if now - self._logged.get(key, -LOG_THROTTLE_S) < LOG_THROTTLE_S:
                return
            self._logged[key] = now
        # One call site per severity: rclpy fixes a call site's severity at its first call.
        if level == 'error':
            self.get_logger().error(text)
        elif level == 'warning':
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)

    def _publish_chunk(self, stamp, chunk: np.ndarray) -> None:
        metadata = self.policy.metadata
        msg = ActionChunk()
        msg.header.stamp = stamp
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

    # --- FollowJointTrajectory --------------------------------------------------------------------
    def _send_goal(self, goal) -> None:
        path, goal_tolerance, goal_time = self._goal_tolerances
        for k, (target, client) in enumerate(zip(self.targets, self.action_clients)):
            message = FollowJointTrajectory.Goal()
            # stamp 0: the controller starts the trajectory on receipt.
            message.trajectory = JointTrajectory(joint_names=list(target.names), points=[
                JointTrajectoryPoint(positions=[float(row[i]) for i in target.indices], time_from_start=_duration(t))
                for t, row in zip(goal.times, goal.positions)])
            message.path_tolerance = _joint_tolerances(target, path)
            message.goal_tolerance = _joint_tolerances(target, goal_tolerance)
            message.goal_time_tolerance = _duration(goal_time)
            future = client.send_goal_async(message, feedback_callback=partial(self._on_goal_feedback, goal.goal_id, k))
            future.add_done_callback(partial(self._on_goal_response, goal.goal_id, k))

    def _on_goal_response(self, goal_id: int, target: int, future) -> None:
        handle = future.result()
        if handle.accepted:
            self._goal_handles[goal_id, target] = handle
            handle.get_result_async().add_done_callback(partial(self._on_goal_result, goal_id, target))
        self._act(self.controller.goal_response(goal_id, target, handle.accepted, self._now()))

    def _on_goal_result(self, goal_id: int, target: int, future) -> None:
        self._goal_handles.pop((goal_id, target), None)
        answer = future.result()
        self._act(self.controller.goal_result(goal_id, target, answer.status, answer.result.error_code,
                                              answer.result.error_string, self._now()))

    def _on_goal_feedback(self, goal_id: int, target: int, message) -> None:
        self.controller.goal_feedback(goal_id, target, message.feedback.error.positions)

    def _cancel_goals(self, goals) -> list:
        """Request the cancel of each (goal id, target) still running; return the requests' futures.

        Goals whose action server is gone are skipped: it stopped, and its goals with it.
        """
        futures = []
        for goal_id, target in goals:
            handle = self._goal_handles.get((goal_id, target))
            if handle is not None and self.action_clients[target].server_is_ready():
                futures.append(handle.cancel_goal_async())
        return futures

    def _publish_diagnostics(self) -> None:
        values = self.stats.snapshot()
        inference = self.inference_stats.snapshot()
        state = self.controller.status(self._now())
        status = DiagnosticStatus(name=f'{self.get_name()}: policy', hardware_id=self.policy.name,
                                  level=DIAGNOSTIC_LEVELS[state.level], message=state.message)
        status.values = [KeyValue(key=key, value=f'{value}') for key, value in (
            ('embedding_rate_hz', f'{values["input_rate_hz"]:.2f}'),
            ('command_rate_hz', f'{values["output_rate_hz"]:.2f}'),
            ('observation_to_command_latency_p50_ms', f'{values["latency_p50_ms"]:.2f}'),
            ('observation_to_command_latency_p99_ms', f'{values["latency_p99_ms"]:.2f}'),
            ('predict_latency_p50_ms', f'{inference["latency_p50_ms"]:.3f}'),
            ('predict_latency_p99_ms', f'{inference["latency_p99_ms"]:.3f}'),
            ('observations_skipped_by_inference', values['frames_dropped_stale']),
            *state.values.items())]
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diagnostics_pub.publish(msg)


def _joint_tolerances(target: CommandTarget, per_action) -> list[JointTolerance]:
    if per_action is None:
        return []
    return [JointTolerance(name=name, position=float(per_action[i])) for name, i in zip(target.names, target.indices)]


def _start(node: PolicyNode) -> None:
    torch.set_num_threads(node.num_threads)
    interrupt_spin_on_signals(node)


def _shutdown(node: PolicyNode) -> None:
    node.shutdown()


def main(args=None) -> int:
    return run_node(PolicyNode, 'policy_node', args, parameter_errors=(ParameterError, PolicyArtifactError),
                    start=_start, on_shutdown=_shutdown)


if __name__ == '__main__':
    raise SystemExit(main())
