"""The ROS interfaces of the real drivers that the simulated robots reproduce (names only, no rclpy).

xArm7 (xarm_ros2, ros2_control bring-up): joint_states joint1..joint7 + drive_joint; arm commands
on /xarm7_traj_controller/joint_trajectory, gripper on /xarm_gripper_traj_controller/joint_trajectory
(both trajectory_msgs/JointTrajectory), and each of the two JointTrajectoryControllers' action
<controller>/follow_joint_trajectory (control_msgs/action/FollowJointTrajectory; on the real arm
only the arm's: xarm_ros2 runs the gripper trajectory controller for fake and Gazebo control, the
real gripper has xarm_gripper/gripper_action). Allegro hand (allegro_hand_ros2, v4): joint_states
ah_joint00..ah_joint33 (thumb 00-03, index 10-13, middle 20-23, ring 30-33; + mount_x/y/z of the
simulated Cartesian mount), commands on
/allegro_hand_position_controller/commands (std_msgs/Float64MultiArray, 16 values); the mount
takes /allegro_mount_controller/commands (Float64MultiArray: mount_x, mount_y, mount_z) in the
sim, standing in for the arm that carries the hand. Cameras are RealSense-style.

Plain names only, no MuJoCo or numpy: the launch files read this module through
dynamo_bringup.graph, and a real-robot host launches without the simulator's dependencies.
"""
from __future__ import annotations

# Joint names, as the real drivers publish them; dynamo_sim.models builds its scenes with these.
XARM_JOINTS = [f'joint{i}' for i in range(1, 8)]
XARM_GRIPPER_JOINT = 'drive_joint'
# allegro_hand_ros2 (v4): ah_joint<finger><joint> with the fingers numbered in this order.
ALLEGRO_FINGERS = ('thumb', 'index', 'middle', 'ring')


def allegro_joint(finger: str, joint: int) -> str:
    """Return the driver's name of joint `joint` (0 = base .. 3 = distal) of `finger` (ALLEGRO_FINGERS)."""
    return f'ah_joint{ALLEGRO_FINGERS.index(finger)}{joint}'


ALLEGRO_JOINTS = [allegro_joint(finger, j) for finger in ALLEGRO_FINGERS for j in range(4)]
ALLEGRO_MOUNT_JOINTS = ['mount_x', 'mount_y', 'mount_z']   # the simulated Cartesian mount's slides

JOINT_STATES = '/joint_states'
IMAGE = '/camera/color/image_raw'
CAMERA_INFO = '/camera/color/camera_info'
CAMERA_FRAME = 'camera_color_optical_frame'
TASK = '/task'
OBJECT_STATE = '/sim/object_state'  # sim-only privileged state for probes; the real robot has none
CLOCK = '/clock'
RESET_SERVICE = '/sim/reset_episode'
RESET_SERVICE_TYPE = 'dynamo_msgs/srv/ResetEpisode'   # empty task: keeps the current one
EPISODE_RESULT = '/sim/episode_result'

XARM_ARM_COMMAND = '/xarm7_traj_controller/joint_trajectory'
XARM_GRIPPER_COMMAND = '/xarm_gripper_traj_controller/joint_trajectory'
ALLEGRO_HAND_COMMAND = '/allegro_hand_position_controller/commands'
ALLEGRO_MOUNT_COMMAND = '/allegro_mount_controller/commands'

XARM_ARM_ACTION = '/xarm7_traj_controller/follow_joint_trajectory'
XARM_GRIPPER_ACTION = '/xarm_gripper_traj_controller/follow_joint_trajectory'

JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
STRING_TYPE = 'std_msgs/msg/String'
FLOAT_ARRAY_TYPE = 'std_msgs/msg/Float64MultiArray'
TRAJECTORY_TYPE = 'trajectory_msgs/msg/JointTrajectory'

# Per robot type, its command topics in the order of the simulator's target vector, each with
# the joints it commands in message order: the one mapping the simulator subscribes by,
# demonstrations are recorded with and the bring-up gives policy_node (command_topics,
# command_joints), for the simulated and the real robot alike.
COMMAND_JOINTS = {
    'xarm7': {
        XARM_ARM_COMMAND: tuple(XARM_JOINTS),
        XARM_GRIPPER_COMMAND: (XARM_GRIPPER_JOINT,),
    },
    'allegro_hand': {
        ALLEGRO_HAND_COMMAND: tuple(ALLEGRO_JOINTS),
        ALLEGRO_MOUNT_COMMAND: tuple(ALLEGRO_MOUNT_JOINTS),
    },
}
COMMAND_TYPE = {'xarm7': TRAJECTORY_TYPE, 'allegro_hand': FLOAT_ARRAY_TYPE}
COMMAND_TOPICS = {
    robot_type: dict.fromkeys(topics, COMMAND_TYPE[robot_type]) for robot_type, topics in COMMAND_JOINTS.items()
}


def recorded_topics(robot_type: str) -> dict[str, str]:
    """Topic -> type of a demonstration bag of `robot_type` (what `ros2 bag record` would hold)."""
    return {
        JOINT_STATES: JOINT_STATE_TYPE,
        **COMMAND_TOPICS[robot_type],
        IMAGE: IMAGE_TYPE,
        CAMERA_INFO: CAMERA_INFO_TYPE,
        TASK: STRING_TYPE,
        OBJECT_STATE: FLOAT_ARRAY_TYPE,
    }


def split_command(robot_type: str, targets) -> dict[str, tuple[list[str], list[float]]]:
    """Split an env target vector into the (joint names, values) of each command topic."""
    targets = [float(v) for v in targets]
    split, start = {}, 0
    for topic, joints in COMMAND_JOINTS[robot_type].items():
        split[topic] = (list(joints), targets[start:start + len(joints)])
        start += len(joints)
    return split


# Per robot type, its FollowJointTrajectory actions with their controller's joints and default
# tolerances (the JointTrajectoryController `constraints` parameters). The arm's are xarm_ros2's
# xarm_controller/config/xarm7_controllers.yaml (joint7 has no entry there); the gripper's
# controller (xarm_gripper_controllers.yaml) sets none, so JointTrajectoryController's defaults
# apply: stopped_velocity_tolerance 0.01, goal_time 0.
TRAJECTORY_ACTIONS = {
    'xarm7': {
        XARM_ARM_ACTION: {
            'joints': tuple(XARM_JOINTS),
            'trajectory': dict.fromkeys(XARM_JOINTS[:6], 1.0),
            'goal': dict.fromkeys(XARM_JOINTS[:6], 0.01),
            'stopped_velocity_tolerance': 0.0,
            'goal_time': 0.5,
        },
        XARM_GRIPPER_ACTION: {
            'joints': (XARM_GRIPPER_JOINT,),
            'trajectory': {},
            'goal': {},
            'stopped_velocity_tolerance': 0.01,
            'goal_time': 0.0,
        },
    },
    'allegro_hand': {},   # forward position controllers: no action
}
