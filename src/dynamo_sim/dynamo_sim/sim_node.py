"""sim_node: the simulated xArm7 kitchen or Allegro hand behind the real drivers' ROS interfaces.

  pub  /joint_states (sensor_msgs/JointState), /camera/color/image_raw (sensor_msgs/Image rgb8),
       /camera/color/camera_info, /clock (rosgraph_msgs/Clock, sim time), /task (std_msgs/String,
       latched), /sim/object_state (std_msgs/Float64MultiArray, sim-only privileged state),
       /sim/episode_result (dynamo_msgs/EpisodeResult: success, timeout, or reset; latched, depth 10)
  sub  xarm:    /xarm7_traj_controller/joint_trajectory, /xarm_gripper_traj_controller/joint_trajectory
                (trajectory_msgs/JointTrajectory)
       allegro: /allegro_hand_position_controller/commands (16 values, ah_joint00..33: thumb, index, middle, ring),
                /allegro_mount_controller/commands (mount_x, mount_y, mount_z) (std_msgs/Float64MultiArray)
  srv  /sim/reset_episode (dynamo_msgs/ResetEpisode)
  action xarm: /xarm7_traj_controller/follow_joint_trajectory, /xarm_gripper_traj_controller/follow_joint_trajectory
       (control_msgs/action/FollowJointTrajectory), served as JointTrajectoryController serves it:
       validation, preemption by a newer goal, feedback every step, path/goal/goal_time tolerances
       (the xArm controllers' defaults, dynamo_sim.interfaces), cancel; see dynamo_sim.trajectory_action.
       A reset aborts the active goals (INVALID_GOAL).

Each step advances the physics one control period (1/rate sim seconds) towards the latest
command, then publishes the clock and the observations stamped with the new sim time. Bad commands
are logged and ignored. The simulator is the clock: run it with use_sim_time false. The first
episode starts with the first command or a reset (dynamo_sim.episode_clock): until then the robot
holds still and each step only advances the clock and republishes the observations, so a policy
enabled after its nodes have loaded (slower than an episode) finds the episode at its start. When
it steps:

  lockstep false  on the steady clock every 1/(rate x real_time_factor) real seconds, or as fast as
                  possible with real_time_factor 0; a controller that falls behind misses steps.
  lockstep true   after publishing a step's observations it waits for the controller (as Gazebo's
                  and Isaac's lockstep modes do): it steps from the callback of the command that
                  completes a new command on every command topic that has a publisher, or once
                  lockstep_timeout real seconds passed without that (no controller, a disabled
                  policy, the time between episodes), then holding the last targets. A topic is
                  awaited once it has a publisher, an action once a client subscribes to its
                  feedback (an accepted goal is its command), not once it carried a command: a controller's
                  first arm command cannot tell that its gripper command is on the way. A reset
                  restarts the wait, so a controller enabled right after it sees the episode's first
                  observations; commands that arrive before those answer the previous episode and
                  are ignored. real_time_factor > 0 becomes a minimum pacing: no step comes sooner
                  than 1/(rate x real_time_factor) real seconds after the previous one; with 0 the
                  simulation runs as fast as the nodes compute. Outcomes then do not depend on
                  machine load, as long as the nodes answer within lockstep_timeout (each episode's
                  log line counts the steps that waited it out).
"""
from __future__ import annotations

import array
import itertools
from functools import partial

from builtin_interfaces.msg import Time
from control_msgs.action import FollowJointTrajectory
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.action import ActionServer, CancelResponse, GoalResponse
from rclpy.clock import Clock, ClockType
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile
from rclpy.task import Future
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from dynamo_msgs.msg import EpisodeResult
from dynamo_msgs.srv import ResetEpisode
from dynamo_sim import interfaces
from dynamo_sim.commands import CommandError, JointTargets
from dynamo_sim.envs import AllegroEnv, SimError, XArmKitchenEnv, make_env
from dynamo_sim.episode_clock import EpisodeClock
from dynamo_sim.lockstep import LockstepGate
from dynamo_sim.trajectory_action import (
    PREEMPTED,
    Outcome,
    RequestedTolerance,
    TrajectoryController,
    controller_tolerances,
    goal_tolerances,
)
from dynamo_util.node_main import run_node

ROBOTS = {'xarm': XArmKitchenEnv, 'allegro': AllegroEnv}
GOAL_RESULT_TIMEOUT_S = 10   # s an ended goal's result stays available (clients ask for it on acceptance)
LOCKSTEP_TIMEOUT_S = 1.0  # default lockstep_timeout: far above a step of the nodes, short enough between episodes


class SimNode(Node):
    def __init__(self):
        super().__init__('sim_node')
        p = self._declare
        robot = p('robot', 'xarm', 'Simulated robot: xarm (xArm7 kitchen) or allegro (Allegro hand on a mount).')
        task = p('task', '', "Task of the first episode; empty = the robot's first task.")
        seed = p('seed', 0, 'Seed of the first episode (draws the initial object poses).')
        rate = p('rate', 10.0, 'Control, camera and joint_states rate in Hz of sim time.')
        image_size = p('image_size', 96, 'Camera image height = width in pixels.')
        self.camera = p('camera', 'front', 'Simulated camera rendered to /camera/color/image_raw.')
        rtf = p('real_time_factor', 1.0, 'Sim seconds per real second; 0 = as fast as possible. With lockstep '
                'a minimum pacing: no step sooner than 1/(rate x real_time_factor) real seconds after the last.')
        self.lockstep = p('lockstep', False, 'Step only once every command topic that has a publisher got a new '
                          'command after the last observations (or after lockstep_timeout).')
        lockstep_timeout = p('lockstep_timeout', LOCKSTEP_TIMEOUT_S,
                             'Real seconds a lockstep step waits for commands before stepping on the last targets.')
        self.publish_clock = p('publish_clock', True, 'Publish /clock with the sim time.')
        self.max_steps_param = p('max_episode_steps', 0, 'Control steps before an episode times out; 0 = task default.')
        menagerie_path = p('menagerie_path', '', 'Local MuJoCo Menagerie checkout (with ufactory_xarm7/xarm7.xml and '
                           'wonik_allegro/right_hand.xml): the robot is drawn with its detailed meshes; physics, '
                           'joints and cameras stay the same. Empty = our simple geometry.')
        if robot not in ROBOTS:
            raise SimError(f'parameter robot: {robot!r} is not one of {sorted(ROBOTS)}')
        env_cls = ROBOTS[robot]
        task = task or env_cls.tasks[0]
        if task not in env_cls.tasks:
            raise SimError(f"parameter task: {task!r} is not a {robot} task ({', '.join(env_cls.tasks)})")
        if rate <= 0 or rtf < 0 or image_size < 8 or self.max_steps_param < 0 or lockstep_timeout <= 0:
            raise SimError('parameters rate > 0, real_time_factor >= 0, image_size >= 8, max_episode_steps >= 0, '
                           'lockstep_timeout > 0 required')
        self.env = make_env(task, seed, image_size=image_size, control_rate=rate, menagerie_path=menagerie_path or None)
        if self.camera not in self.env.camera_names:
            raise SimError(f'parameter camera: {self.camera!r} is not one of {list(self.env.camera_names)}')
        self.commands = JointTargets(self.env.joint_names, self.env.joint_positions())
        self.episode_clock = EpisodeClock(self.env.dt)
        self._episode_over = False
        period = 0.0 if rtf == 0 else 1.0 / (rate * rtf)
        self.lockstep_gate = LockstepGate(paced=period > 0) if self.lockstep else None

        self.joint_pub = self.create_publisher(JointState, interfaces.JOINT_STATES, 10)
        self.image_pub = self.create_publisher(Image, interfaces.IMAGE, 10)
        self.info_pub = self.create_publisher(CameraInfo, interfaces.CAMERA_INFO, 10)
        self.object_pub = self.create_publisher(Float64MultiArray, interfaces.OBJECT_STATE, 10)
        self.clock_pub = self.create_publisher(ClockMsg, interfaces.CLOCK, 10)
        latched = QoSProfile(depth=1, durability=DurabilityPolicy.TRANSIENT_LOCAL)
        self.task_pub = self.create_publisher(String, interfaces.TASK, latched)
        # latched too, so a subscriber that is still being discovered gets the recent results
        self.result_pub = self.create_publisher(
            EpisodeResult, interfaces.EPISODE_RESULT, QoSProfile(depth=10, durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._controllers = {
            topic: list(joints) for topic, joints in interfaces.COMMAND_JOINTS[self.env.robot_type].items()}
        message_type, on_command = {
            interfaces.TRAJECTORY_TYPE: (JointTrajectory, self._on_trajectory),
            interfaces.FLOAT_ARRAY_TYPE: (Float64MultiArray, self._on_array),
        }[interfaces.COMMAND_TYPE[self.env.robot_type]]
        for topic in self._controllers:
            self.create_subscription(message_type, topic, lambda msg, t=topic: on_command(t, msg), 10)
        self._trajectory_controllers: dict[str, TrajectoryController] = {}
        self._goal_handles = {}                        # goal id -> ServerGoalHandle, until its result
        self._goal_outcomes: dict[bytes, Future] = {}  # goal id -> its Outcome, set when it ends
        for action, spec in interfaces.TRAJECTORY_ACTIONS[self.env.robot_type].items():
            defaults = controller_tolerances(spec['joints'], spec['trajectory'], spec['goal'],
                                             spec['stopped_velocity_tolerance'], spec['goal_time'])
            self._trajectory_controllers[action] = TrajectoryController(action, spec['joints'], defaults, self.commands)
            # Ended goals are kept result_timeout s for their result and listed on every status message:
            # at a goal per step, older rclpy's default of 900 s grows those messages to thousands of goals.
            ActionServer(self, FollowJointTrajectory, action, execute_callback=self._execute_goal,
                         goal_callback=partial(self._on_goal, action),
                         handle_accepted_callback=partial(self._on_goal_accepted, action),
                         cancel_callback=partial(self._on_cancel, action), result_timeout=GOAL_RESULT_TIMEOUT_S)
        self.create_service(ResetEpisode, interfaces.RESET_SERVICE, self._on_reset)
        # pace on the steady clock: the node's own ROS clock may be the sim time it publishes
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        if self.lockstep:
            self._timeout_timer = self.create_timer(lockstep_timeout, self._on_lockstep_timeout, clock=steady)
            self._pacing_timer = (self.create_timer(period, self._on_paced, clock=steady, autostart=False)
                                  if period else None)
        else:
            self.create_timer(period, self._step, clock=steady)
        self._publish_task()
        self.get_logger().info(
            f'simulating {self.env.robot_type} task={self.env.task} seed={self.env.seed} at {rate:g} Hz, '
            f'real_time_factor={rtf:g}, '
            + (f'lockstep (timeout {lockstep_timeout:g} s), ' if self.lockstep else '')
            + f'{image_size}x{image_size} images')

    def _declare(self, name, default, description):
        return self.declare_parameter(name, default, ParameterDescriptor(description=description)).value

    # --- time -----------------------------------------------------------------------------------
    @property
    def sim_time(self) -> float:
        return self.episode_clock.sim_time(self.env.time)

    def _stamp(self) -> Time:
        ns = int(round(self.sim_time * 1e9))
        return Time(sec=ns // 10**9, nanosec=ns % 10**9)

    @property
    def max_episode_steps(self) -> int:
        return self.max_steps_param or self.env.max_episode_steps

    # --- commands -------------------------------------------------------------------------------
    def _on_trajectory(self, topic: str, msg: JointTrajectory) -> None:
        if self._answers_previous_episode(topic):
            return
        try:
            self.commands.set_trajectory(msg.joint_names, _points(msg), self.sim_time, self._controllers[topic], topic)
        except CommandError as error:
            self.get_logger().error(f'ignored command: {error}', throttle_duration_sec=1.0)
            return
        self._on_command(topic)

    def _on_array(self, topic: str, msg: Float64MultiArray) -> None:
        if self._answers_previous_episode(topic):
            return
        try:
            self.commands.set_positions(msg.data, self._controllers[topic], topic)
        except CommandError as error:
            self.get_logger().error(f'ignored command: {error}', throttle_duration_sec=1.0)
            return
        self._on_command(topic)

    # --- FollowJointTrajectory ------------------------------------------------------------------
    def _on_goal(self, action: str, goal) -> GoalResponse:
        trajectory = goal.trajectory
        reason = self._trajectory_controllers[action].rejection(
            trajectory.joint_names, _points(trajectory), _seconds(trajectory.header.stamp), self.sim_time)
        if reason:
            self.get_logger().warning(f'{action}: rejected a goal: {reason}', throttle_duration_sec=1.0)
            return GoalResponse.REJECT
        return GoalResponse.ACCEPT

    def _on_goal_accepted(self, action: str, goal_handle) -> None:
        controller = self._trajectory_controllers[action]
        goal, goal_id = goal_handle.request, bytes(goal_handle.goal_id.uuid)
        tolerances, warning = goal_tolerances(
            controller.defaults, controller.joints, _tolerances(goal.path_tolerance),
            _tolerances(goal.goal_tolerance), _seconds(goal.goal_time_tolerance))
        if warning:
            self.get_logger().warning(f'{action}: {warning}', throttle_duration_sec=1.0)
        self._goal_handles[goal_id] = goal_handle
        self._goal_outcomes[goal_id] = Future()
        trajectory = goal.trajectory
        self._end_goal(controller.accept(goal_id, trajectory.joint_names, _points(trajectory),
                                         tolerances, _seconds(trajectory.header.stamp), self.sim_time))
        goal_handle.execute()
        if not self._answers_previous_episode(action):
            self._on_command(action)

    def _on_cancel(self, action: str, goal_handle) -> CancelResponse:
        goal_id = bytes(goal_handle.goal_id.uuid)
        outcome = self._trajectory_controllers[action].cancel(goal_id, self.env.joint_positions())
        if outcome is not None:
            self._end_goal((goal_id, outcome))
        return CancelResponse.ACCEPT

    async def _execute_goal(self, goal_handle):
        """Wait for the goal to end (the simulation steps decide), then report its result."""
        goal_id = bytes(goal_handle.goal_id.uuid)
        outcome: Outcome = await self._goal_outcomes[goal_id]
        del self._goal_outcomes[goal_id], self._goal_handles[goal_id]
        if outcome.status == 'succeeded':
            goal_handle.succeed()
        elif outcome.status == 'canceled' and goal_handle.is_cancel_requested:
            goal_handle.canceled()
        else:
            goal_handle.abort()
        return FollowJointTrajectory.Result(error_code=outcome.error_code, error_string=outcome.error_string)

    def _end_goal(self, ended: tuple[bytes, Outcome] | None) -> None:
        if ended is None:
            return
        goal_id, outcome = ended
        if outcome.status == 'aborted' and outcome.error_string != PREEMPTED:   # preemption is the normal case
            self.get_logger().warning(f'goal aborted (error_code {outcome.error_code}): {outcome.error_string}')
        self._goal_outcomes[goal_id].set_result(outcome)

    def _update_goals(self, stamp: Time) -> None:
        """Check every active goal against the measured joints, publish its feedback, end it when due."""
        positions, velocities = self.env.joint_positions(), self.env.joint_velocities()
        for controller in self._trajectory_controllers.values():
            goal = controller.active
            feedback, ended = controller.update(self.sim_time, positions, velocities)
            if feedback is not None:
                msg = FollowJointTrajectory.Feedback(joint_names=list(feedback.joint_names))
                msg.header.stamp = stamp
                msg.desired = JointTrajectoryPoint(positions=feedback.desired.tolist(),
                                                   velocities=feedback.desired_velocity.tolist())
                msg.actual = JointTrajectoryPoint(positions=feedback.actual.tolist(),
                                                  velocities=feedback.actual_velocity.tolist())
                msg.error = JointTrajectoryPoint(positions=feedback.error.tolist(),
                                                 velocities=feedback.error_velocity.tolist())
                self._goal_handles[goal.goal_id].publish_feedback(msg)
            self._end_goal(ended)

    # --- episodes -------------------------------------------------------------------------------
    def _on_reset(self, request, response):
        task = request.task or self.env.task
        if task not in self.env.tasks:
            response.success = False
            response.message = f"unknown task {task!r} for {self.env.robot_type}; known: {', '.join(self.env.tasks)}"
            return response
        if self.episode_clock.started and not self._episode_over:   # an episode that never started is no result
            self._publish_result(False, 'reset')
        self.episode_clock.on_reset(self.env.time)
        self.env.reset(seed=request.seed, task=task)
        self.commands.reset(self.env.joint_positions())
        for controller in self._trajectory_controllers.values():
            self._end_goal(controller.abort('the simulated episode was reset', self.env.joint_positions()))
        self._episode_over = False
        if self.lockstep:
            # Commands so far were for the old episode; the full timeout lets a controller enabled
            # after the reset see the first observations of the new one.
            self.lockstep_gate.reset_episode()
            self._timeout_timer.reset()
        self._publish_task()
        response.success = True
        response.message = f'{task} seed {request.seed}: {self.env.description}'
        self.get_logger().info(f'episode started: {response.message}')
        return response

    def _publish_task(self) -> None:
        self.task_pub.publish(String(data=self.env.task))

    def _publish_result(self, success: bool, reason: str) -> None:
        msg = EpisodeResult(task=self.env.task, seed=self.env.seed, success=bool(success),
                            steps=self.env.steps, duration=self.env.time, reason=reason)
        msg.header.stamp = self._stamp()
        self.result_pub.publish(msg)
        waits = f' ({self.lockstep_gate.timeout_steps} waited out lockstep_timeout)' if self.lockstep else ''
        line = f'episode {reason}: {self.env.task} seed {self.env.seed} after {self.env.steps} steps{waits}'
        if reason != 'reset':   # nothing starts the next episode but a reset (a reset starts it itself)
            line += (f'; start the next: ros2 service call {interfaces.RESET_SERVICE} {interfaces.RESET_SERVICE_TYPE}'
                     f' "{{seed: {self.env.seed + 1}}}"')
        self.get_logger().info(line)

    # --- lockstep -------------------------------------------------------------------------------
    def _answers_previous_episode(self, topic: str) -> bool:
        if not (self.lockstep and self.lockstep_gate.command_is_stale()):
            return False
        self.get_logger().info(f'lockstep: ignored a command on {topic} sent for the previous episode',
                               throttle_duration_sec=1.0)
        return True

    def _awaited_topics(self):
        """Command topics with a publisher and actions with a client (counted lazily: once all have a command)."""
        topics = (topic for topic in self._controllers if self.count_publishers(topic))
        # An action client subscribes to its action's feedback topic.
        actions = (action for action in self._trajectory_controllers
                   if self.count_subscribers(f'{action}/_action/feedback'))
        return itertools.chain(topics, actions)

    def _on_command(self, topic: str) -> None:
        if self.episode_clock.on_command():
            self.get_logger().info(f'episode started by the first command (on {topic})')
            if self.lockstep:
                self.lockstep_gate.timeout_steps = 0   # the wait for the start is no step of the episode
        if self.lockstep and self.lockstep_gate.on_command(topic, self._awaited_topics()):
            self._step()

    def _on_paced(self) -> None:
        self._pacing_timer.cancel()  # one-shot: _step restarts it
        if self.lockstep_gate.on_pacing_done(self._awaited_topics()):
            self._step()

    def _on_lockstep_timeout(self) -> None:
        if self.lockstep_gate.on_timeout(self._awaited_topics()):
            self._step()

    # --- stepping -------------------------------------------------------------------------------
    def _step(self) -> None:
        if self.lockstep:
            self.lockstep_gate.stepped()
            if self._pacing_timer is not None:  # paced from step start to step start, as without lockstep
                self._pacing_timer.reset()
        stepping = self.episode_clock.tick()   # before the first episode starts: advance the clock only
        if stepping:
            self.env.step(self.commands.targets(self.sim_time + self.env.dt))
        stamp = self._stamp()
        if self.publish_clock:
            self.clock_pub.publish(ClockMsg(clock=stamp))
        self._publish_observation(stamp)
        self._update_goals(stamp)
        if self.lockstep:  # the controller's time to answer starts with the observations
            self._timeout_timer.reset()
        if stepping and not self._episode_over:
            if self.env.success():
                self._episode_over = True
                self._publish_result(True, 'success')
            elif self.env.steps >= self.max_episode_steps:
                self._episode_over = True
                self._publish_result(False, 'timeout')

    def _publish_observation(self, stamp: Time) -> None:
        env = self.env
        joints = JointState(name=list(env.joint_names), position=env.joint_positions().tolist(),
                            velocity=env.joint_velocities().tolist(), effort=env.joint_efforts().tolist())
        joints.header.stamp = stamp
        self.joint_pub.publish(joints)

        image = env.render(self.camera)
        h, w, _ = image.shape
        msg = Image(height=h, width=w, encoding='rgb8', is_bigendian=0, step=3 * w)
        msg.data = array.array('B', image.tobytes())
        msg.header.stamp = stamp
        msg.header.frame_id = interfaces.CAMERA_FRAME
        self.image_pub.publish(msg)

        fx, fy, cx, cy = env.camera_intrinsics(self.camera)
        info = CameraInfo(height=h, width=w, distortion_model='plumb_bob', d=[0.0] * 5,
                          k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
                          r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                          p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
        info.header = msg.header
        self.info_pub.publish(info)

        state = env.object_state()
        obj = Float64MultiArray(data=state.tolist())
        obj.layout.dim = [
            MultiArrayDimension(label=','.join(env.object_state_names), size=state.size, stride=state.size)]
        self.object_pub.publish(obj)


def _seconds(stamp_or_duration) -> float:
    return stamp_or_duration.sec + 1e-9 * stamp_or_duration.nanosec


def _points(trajectory: JointTrajectory) -> list[tuple[list[float], float]]:
    return [(list(point.positions), _seconds(point.time_from_start)) for point in trajectory.points]


def _tolerances(entries) -> list[RequestedTolerance]:
    return [RequestedTolerance(e.name, e.position, e.velocity, e.acceleration) for e in entries]


def main(args=None) -> int:
    # SimError: a parameter value the simulator cannot run with (robot, task, camera, menagerie_path, ...)
    return run_node(SimNode, 'sim_node', args, parameter_errors=(SimError, ParameterException),
                    on_shutdown=lambda node: node.env.close())


if __name__ == '__main__':
    raise SystemExit(main())
