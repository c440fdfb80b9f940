"""Allegro hand manipulation: the simulated hand on its mount (sim:=true, default) or a real
Allegro hand V4 through allegro_hand_ros2's ros2_control bring-up plus a RealSense camera
(sim:=false), with the DynaMo encoder and policy.

  ros2 launch dynamo_bringup allegro_manipulation.launch.py encoder:=/path/encoder.pt policy:=/path/policy.pt
  ros2 launch dynamo_bringup allegro_manipulation.launch.py sim:=false hand:=right ...

Nodes and parameters come from dynamo_bringup.graph and config/allegro_manipulation.yaml.
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
    allegro_hand = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('allegro_hand_bringup'), 'launch', 'allegro_hand.launch.py'])),
        launch_arguments={'hand': LaunchConfiguration('hand'), 'device': 'v4',
                          'ros2_control_hardware_type': 'physical_device',
                          'use_sim_time': 'false'}.items(),
        condition=real_robot)
    camera = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution(
            [FindPackageShare('realsense2_camera'), 'launch', 'rs_launch.py'])),
        launch_arguments={'camera_namespace': '', 'camera_name': 'camera'}.items(),
        condition=real_robot)
    return LaunchDescription([
        *declare_bringup_arguments(),
        DeclareLaunchArgument('hand', default_value='right', description='Allegro hand side: right or left (sim:=false).'),
        allegro_hand,
        camera,
        graph_nodes('allegro'),
    ])
