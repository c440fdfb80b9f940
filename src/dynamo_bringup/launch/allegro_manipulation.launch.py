"""Allegro hand manipulation with the DynaMo encoder and policy.

The simulated hand on its mount (sim:=true, default) or a real Allegro hand V4 through
allegro_hand_ros2's ros2_control bring-up plus a RealSense camera (sim:=false).

  ros2 launch dynamo_bringup allegro_manipulation.launch.py encoder:=/path/encoder.pt policy:=/path/policy.pt
  ros2 launch dynamo_bringup allegro_manipulation.launch.py sim:=false hand:=right ...

Nodes and parameters come from dynamo_bringup.graph and config/allegro_manipulation.yaml.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration

from dynamo_bringup.launch_actions import declare_bringup_arguments, graph_nodes, real_robot_include, realsense_camera


def generate_launch_description():
    return LaunchDescription([
        *declare_bringup_arguments(),
        DeclareLaunchArgument('hand', default_value='right',
                              description='Allegro hand side: right or left (sim:=false).'),
        real_robot_include('allegro_hand_bringup', 'allegro_hand.launch.py', {
            'hand': LaunchConfiguration('hand'), 'device': 'v4',
            'ros2_control_hardware_type': 'physical_device', 'use_sim_time': 'false'}),
        realsense_camera(),
        graph_nodes('allegro'),
    ])
