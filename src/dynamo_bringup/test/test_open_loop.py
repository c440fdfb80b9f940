"""Open-loop evaluation without ROS: sample bags as replay ticks, command errors and their results files."""

import csv
import json
import struct
from pathlib import Path

import numpy as np
import pytest

from dynamo_bringup.open_loop import (
    check_topics,
    compare_commands,
    format_error_table,
    read_demonstration,
    restamped,
    write_open_loop_results,
)
from dynamo_data.conversion.bag_reader import BagError, header_stamp_ns

BAG = Path(__file__).parents[3] / 'bags' / 'xarm_kitchen' / 'open_door_00000'
CAMERA, JOINT_STATES = '/camera/color/image_raw', '/joint_states'
ARM, GRIPPER = '/xarm7_traj_controller/joint_trajectory', '/xarm_gripper_traj_controller/joint_trajectory'
COMMAND_JOINTS = {ARM: [f'joint{i}' for i in range(1, 8)], GRIPPER: ['drive_joint']}
START_NS = 5_000_000_000


@pytest.fixture(scope='module')
def demonstration():
    return read_demonstration(BAG, [CAMERA, JOINT_STATES], COMMAND_JOINTS, START_NS)


def test_ticks_carry_the_observations_restamped_onto_the_replay_clock(demonstration):
    assert demonstration.ticks[0].time_ns == START_NS
    assert len(demonstration.ticks) == 59   # the bag's 59 camera frames, joint states at the same times
    assert np.all(np.diff([tick.time_ns for tick in demonstration.ticks]) == 100_000_000)
    for tick in demonstration.ticks:
        assert sorted(topic for topic, _ in tick.messages) == [CAMERA, JOINT_STATES]
        assert all(header_stamp_ns(data)[0] == tick.time_ns for _, data in tick.messages)
    assert demonstration.types == {CAMERA: 'sensor_msgs/msg/Image', JOINT_STATES: 'sensor_msgs/msg/JointState'}


def test_recorded_commands_are_the_bags_trajectory_targets_on_the_replay_clock(demonstration):
    times, arm = demonstration.recorded[ARM]
    assert arm.shape == (58, 7) and times[0] == START_NS   # recorded at the first observation's time
    np.testing.assert_allclose(arm[0], [0.012641, -0.57251809, 0.02886179, 0.81084579, 0.01591324, 1.383197,
                                        0.03393551], atol=1e-8)
    assert demonstration.recorded[GRIPPER][1].shape == (58, 1)


def test_commands_equal_to_the_recording_have_no_error_and_offsets_show_per_joint(demonstration):
    arm_times, arm = demonstration.recorded[ARM]
    gripper_times, gripper = demonstration.recorded[GRIPPER]
    commands = [(int(t) + 50_000_000, ARM, list(p + np.arange(7) * 0.01)) for t, p in zip(arm_times, arm)]
    commands += [(int(t), GRIPPER, list(p)) for t, p in zip(gripper_times, gripper)]
    commands.append((START_NS - 1, ARM, [0.0] * 7))   # before the demonstrator's first command: not compared
    errors = compare_commands(demonstration, COMMAND_JOINTS, commands)
    assert errors.compared == 116
    np.testing.assert_allclose(errors.mean_absolute_error(), [*np.arange(7) * 0.01, 0.0], atol=1e-9)
    summary = errors.summary()
    assert summary['max_abs_error'] == pytest.approx(0.06) and summary['mae.joint7'] == pytest.approx(0.06)


def test_results_are_written_as_csv_json_and_plot(demonstration, tmp_path):
    times, arm = demonstration.recorded[ARM]
    errors = compare_commands(demonstration, COMMAND_JOINTS, [(int(t), ARM, list(p + 0.1)) for t, p in zip(times, arm)])
    paths = write_open_loop_results(tmp_path, [errors], {'robot': 'xarm'})
    with open(paths['episodes']) as f:
        [row] = list(csv.DictReader(f))
    assert int(row['commands']) == 58 and float(row['mae']) == pytest.approx(0.1)
    assert row['mae.drive_joint'] == 'nan'   # the gripper was never commanded
    assert json.loads(paths['summary'].read_text())['mae'] == pytest.approx(0.1)
    assert paths['plot'].stat().st_size > 1000
    assert 'open_door_00000' in format_error_table([errors])


def test_restamping_moves_only_the_header_stamp():
    message = b'\x00\x01\x00\x00' + struct.pack('<iI', 3, 900_000_000) + b'payload'
    moved = restamped(message, 250_000_000)
    assert header_stamp_ns(moved)[0] == 4_150_000_000 and moved[12:] == b'payload'


def test_a_bag_without_the_command_topic_is_refused_naming_it():
    with pytest.raises(BagError, match='/arm_controller/commands is not in the bag'):
        read_demonstration(BAG, [CAMERA], {'/arm_controller/commands': ['joint1']}, 0)


def test_a_bag_of_another_robot_is_refused_before_any_node_starts():
    allegro = BAG.parents[1] / 'allegro_hand' / 'lift_object_00000'
    with pytest.raises(BagError, match=f'{ARM} is not in the bag'):
        check_topics(allegro, [CAMERA, JOINT_STATES, ARM, GRIPPER])
