"""The ROS interfaces of the real drivers that the simulated robots reproduce (names only, no rclpy).

xArm7 (xarm_ros2, ros2_control bring-up): joint_states joint1..joint7 + drive_joint; arm commands
on /xarm7_traj_controller/joint_trajectory, gripper on /xarm_gripper_traj_controller/joint_trajectory
(both trajectory_msgs/JointTrajectory). Allegro hand (allegro_hand_ros2): joint_states
ah_joint00..ah_joint33 (+ mount_x/y/z of the simulated Cartesian mount), commands on
/allegro_hand_position_controller/commands (std_msgs/Float64MultiArray, 16 values); the mount
takes /allegro_mount_controller/commands (Float64MultiArray: mount_x, mount_y, mount_z) in the
sim, standing in for the arm that carries the hand. Cameras are RealSense-style.
"""
from __future__ import annotations

from dynamo_sim import models

JOINT_STATES = '/joint_states'
IMAGE = '/camera/color/image_raw'
CAMERA_INFO = '/camera/color/camera_info'
CAMERA_FRAME = 'camera_color_optical_frame'
TASK = '/task'
OBJECT_STATE = '/sim/object_state'  # sim-only privileged state for probes; the real robot has none
CLOCK = '/clock'
RESET_SERVICE = '/sim/reset_episode'
EPISODE_RESULT = '/sim/episode_result'

XARM_ARM_COMMAND = '/xarm7_traj_controller/joint_trajectory'
XARM_GRIPPER_COMMAND = '/xarm_gripper_traj_controller/joint_trajectory'
ALLEGRO_HAND_COMMAND = '/allegro_hand_position_controller/commands'
ALLEGRO_MOUNT_COMMAND = '/allegro_mount_controller/commands'

JOINT_STATE_TYPE = 'sensor_msgs/msg/JointState'
IMAGE_TYPE = 'sensor_msgs/msg/Image'
CAMERA_INFO_TYPE = 'sensor_msgs/msg/CameraInfo'
STRING_TYPE = 'std_msgs/msg/String'
FLOAT_ARRAY_TYPE = 'std_msgs/msg/Float64MultiArray'
TRAJECTORY_TYPE = 'trajectory_msgs/msg/JointTrajectory'

COMMAND_TOPICS = {
    'xarm7': {XARM_ARM_COMMAND: TRAJECTORY_TYPE, XARM_GRIPPER_COMMAND: TRAJECTORY_TYPE},
    'allegro_hand': {ALLEGRO_HAND_COMMAND: FLOAT_ARRAY_TYPE, ALLEGRO_MOUNT_COMMAND: FLOAT_ARRAY_TYPE},
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
    """Per command topic, the (joint names, values) slice of an env target vector."""
    targets = [float(v) for v in targets]
    if robot_type == 'xarm7':
        return {
            XARM_ARM_COMMAND: (list(models.XARM_JOINTS), targets[:7]),
            XARM_GRIPPER_COMMAND: ([models.XARM_GRIPPER_JOINT], targets[7:8]),
        }
    return {
        ALLEGRO_HAND_COMMAND: (list(models.ALLEGRO_JOINTS), targets[:16]),
        ALLEGRO_MOUNT_COMMAND: (list(models.ALLEGRO_MOUNT_JOINTS), targets[16:19]),
    }
