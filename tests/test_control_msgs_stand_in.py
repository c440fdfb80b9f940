"""dev/control_msgs, built into the venv, is wire-compatible with the real control_msgs of ROS 2 Kilted.

DDS peers of ROS 2 (Iron and newer) announce each topic's and service's type hash (RIHS01); equal
hashes mean equal definitions, field for field. The expected hashes below were measured once, on
2026-11-30, by building the real definitions (github.com/ros-controls/control_msgs, tag 6.8.0,
commit 13dacdd, the master branch Kilted releases from) with the venv's rosidl
(`make control_msgs__rosidl_generator_type_description` in a scratch CMake build of its
control_msgs/ directory) and reading build/rosidl_generator_type_description/control_msgs/action/
FollowJointTrajectory.json. Jazzy's control_msgs (5.8.0, no feedback `index` fields) gives the
action RIHS01_738ebcb7a2d7cfa42f9f1001cc99ce3a4383d1cfe508015d9be8485e4b1c66f6 instead.
"""

import json
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_share_directory

REPO = Path(__file__).resolve().parents[1]
STAND_IN = REPO / 'dev' / 'control_msgs'
REAL_KILTED_HASHES = {
    'control_msgs/action/FollowJointTrajectory':
        'RIHS01_ff29901b2693f5deb847e96084a1c2cdb26e70b7c847be21859b70a55fb29cf0',
    # The three types of the action that travel between a client and a JointTrajectoryController.
    'control_msgs/action/FollowJointTrajectory_SendGoal':
        'RIHS01_b13789dddc325a7a962825c45e28c77d37237ec129dd0c34dc5994562938c57f',
    'control_msgs/action/FollowJointTrajectory_GetResult':
        'RIHS01_e3ceb38e3e1867c8dc0f46014df26e90eb93422f27e9e97f936e07f94be4bc8b',
    'control_msgs/action/FollowJointTrajectory_FeedbackMessage':
        'RIHS01_95618cc73912d99b9acaa17d2da5e832cb0bfdeede7534fa8ec600feca2a6c4b',
    'control_msgs/msg/JointTolerance':
        'RIHS01_c254f9cece0f3b733017b6990fd46d1326e25242d6b8844398c97d9a88e7d648',
    'control_msgs/msg/JointComponentTolerance':
        'RIHS01_739ea7566931944d33830fa10f1bf5e7a7fbdc3172bce7a7eaac642bd6e3ffa4',
}


@pytest.fixture(scope='module')
def share() -> Path:
    share = Path(get_package_share_directory('control_msgs'))
    if (share / 'package.xml').read_bytes() != (STAND_IN / 'package.xml').read_bytes():
        pytest.skip(f'the control_msgs in use ({share}) is a real one, not the stand-in of dev/control_msgs')
    return share


def test_the_built_stand_in_has_the_type_hashes_of_the_real_kilted_definition(share):
    """The type hashes the build generated (and compiled into the type support) are the real ones."""
    generated = json.loads((share / 'action' / 'FollowJointTrajectory.json').read_text())
    hashes = {entry['type_name']: entry['hash_string'] for entry in generated['type_hashes']}
    assert {name: hashes.get(name) for name in REAL_KILTED_HASHES} == REAL_KILTED_HASHES


def test_an_action_server_announces_the_real_feedback_type_hash(share, ros_node):
    """What a DDS peer sees: the feedback topic of an rclpy action server carries the real hash."""
    from control_msgs.action import FollowJointTrajectory
    from rclpy.action import ActionServer
    server = ActionServer(ros_node.node, FollowJointTrajectory, 'hash_check/follow_joint_trajectory',
                          lambda goal_handle: FollowJointTrajectory.Result())
    [endpoint] = ros_node.node.get_publishers_info_by_topic('/hash_check/follow_joint_trajectory/_action/feedback')
    assert endpoint.topic_type == 'control_msgs/action/FollowJointTrajectory_FeedbackMessage'
    assert str(endpoint.topic_type_hash) == REAL_KILTED_HASHES[endpoint.topic_type]
    server.destroy()
