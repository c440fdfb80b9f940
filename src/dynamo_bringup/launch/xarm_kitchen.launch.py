"""xArm7 kitchen with the DynaMo encoder and policy.

The simulated twin (sim:=true, default) or a real xArm7 through xarm_ros2's ros2_control
bring-up plus a RealSense camera (sim:=false).

  ros2 launch dynamo_bringup xarm_kitchen.launch.py encoder:=/path/encoder.pt policy:=/path/policy.pt
  ros2 launch dynamo_bringup xarm_kitchen.launch.py sim:=false robot_ip:=192.168.1.xxx ...

Nodes and parameters come from dynamo_bringup.graph and config/xarm_kitchen.yaml.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration

from dynamo_bringup.launch_actions import declare_bringup_arguments, graph_nodes, real_robot_include, realsense_camera


def generate_launch_description():
    return LaunchDescription([
        *declare_bringup_arguments(),
        DeclareLaunchArgument('robot_ip', default_value='192.168.1.111',
                              description='IP address of the xArm control box (sim:=false).'),
        real_robot_include('xarm_controller', '_robot_ros2_control.launch.py', {
            'robot_ip': LaunchConfiguration('robot_ip'), 'dof': '7', 'add_gripper': 'true'}),
        realsense_camera(),
        graph_nodes('xarm'),
    ])
