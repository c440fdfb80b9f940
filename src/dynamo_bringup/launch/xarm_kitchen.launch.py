"""xArm7 kitchen: the simulated twin (sim:=true, default) or a real xArm7 through xarm_ros2's
ros2_control bring-up plus a RealSense camera (sim:=false), with the DynaMo encoder and policy.

  ros2 launch dynamo_bringup xarm_kitchen.launch.py encoder:=/path/encoder.pt policy:=/path/policy.pt
  ros2 launch dynamo_bringup xarm_kitchen.launch.py sim:=false robot_ip:=192.168.1.xxx ...

Nodes and parameters come from dynamo_bringup.graph and config/xarm_kitchen.yaml.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.substitutions import FindPackageShare

from dynamo_bringup.launch_actions import declare_bringup_arguments, graph_nodes


def generate_launch_description():
    real_robot = UnlessCondition(LaunchConfiguration('sim'))
    xarm_ros2_control = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('xarm_controller'), 'launch', '_robot_ros2_control.launch.py'])),
        launch_arguments={'robot_ip': LaunchConfiguration('robot_ip'), 'dof': '7',
                          'add_gripper': 'true'}.items(),
        condition=real_robot)
    camera = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('realsense2_camera'), 'launch', 'rs_launch.py'])),
        # An empty namespace gives the /camera/color/image_raw names the simulator uses.
        launch_arguments={'camera_namespace': '', 'camera_name': 'camera'}.items(),
        condition=real_robot)
    return LaunchDescription([
        *declare_bringup_arguments(),
        DeclareLaunchArgument('robot_ip', default_value='192.168.1.111',
                              description='IP address of the xArm control box (sim:=false).'),
        xarm_ros2_control,
        camera,
        graph_nodes('xarm'),
    ])
