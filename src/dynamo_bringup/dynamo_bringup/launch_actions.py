"""launch / launch_ros actions built from the node graph; imported only by the launch files.

Kept apart from graph.py because launch and launch_ros exist only on a ROS 2 install.
"""

from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription, OpaqueFunction
from launch.conditions import UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from dynamo_bringup.graph import (
    ARGUMENT_DESCRIPTIONS,
    BringupArguments,
    MissingArtifacts,
    missing_artifact_arguments,
    node_graph,
)


def declare_bringup_arguments() -> list[DeclareLaunchArgument]:
    defaults = BringupArguments().launch_texts()
    return [DeclareLaunchArgument(name, default_value=defaults[name], description=description)
            for name, description in ARGUMENT_DESCRIPTIONS.items()]


def graph_nodes(robot: str) -> OpaqueFunction:
    """Return the graph's nodes, resolved once the launch arguments are known."""

    def nodes(context):
        values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENT_DESCRIPTIONS}
        specs = node_graph(robot, BringupArguments.from_strings(values))
        missing = missing_artifact_arguments(specs)
        if missing:
            raise MissingArtifacts(missing)
        return [
            Node(package=spec.package, executable=spec.executable, name=spec.name, parameters=[spec.parameters],
                 remappings=list(spec.remappings), additional_env=spec.environment, output='screen')
            for spec in specs
        ]

    return OpaqueFunction(function=nodes)


def real_robot_include(package: str, launch_file: str, arguments: dict) -> IncludeLaunchDescription:
    """Include a real driver's launch file, only with sim:=false."""
    return IncludeLaunchDescription(
        PythonLaunchDescriptionSource(PathJoinSubstitution([FindPackageShare(package), 'launch', launch_file])),
        launch_arguments=arguments.items(), condition=UnlessCondition(LaunchConfiguration('sim')))


def realsense_camera() -> IncludeLaunchDescription:
    """realsense2_camera with an empty namespace: the /camera/color/image_raw names the simulator uses."""
    return real_robot_include('realsense2_camera', 'rs_launch.py', {'camera_namespace': '', 'camera_name': 'camera'})

