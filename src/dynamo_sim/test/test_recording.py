"""record_demos writes real rosbag2 bags that rosbags reads back with the real robots' topics and types."""
import json
from pathlib import Path

import numpy as np
import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import ReaderError

from dynamo_sim import interfaces
from dynamo_sim.recording import MSG_TYPES, main, msg_share_dir, record_demos, ros_typestore


def _read(bag):
    with AnyReader([Path(bag)]) as reader:
        topics = {c.topic: c.msgtype for c in reader.connections}
        messages = {}
        for connection, stamp, raw in reader.messages():
            messages.setdefault(connection.topic, []).append((stamp, reader.deserialize(raw, connection.msgtype)))
    return topics, messages


def test_type_hashes_equal_the_ros_wheels():
    store = ros_typestore()
    share = msg_share_dir()
    for name in MSG_TYPES:
        pkg, _, msg = name.split('/')
        recorded = json.loads((share / pkg / 'msg' / f'{msg}.json').read_text())['type_hashes']
        expected = next(h['hash_string'] for h in recorded if h['type_name'] == name)
        assert store.hash_rihs01(name) == expected, name


@pytest.mark.parametrize('task,storage', [('push_bottle', 'mcap'), ('lift_object', 'sqlite3')])
def test_recorded_bag_topics_types_counts(tmp_path, task, storage):
    bags = record_demos(task, episodes=1, output=tmp_path, storage=storage, seed=2, image_size=32)
    assert [b.name for b in bags] == [f'{task}_00002']
    assert not (tmp_path / '.partial').exists()
    topics, messages = _read(bags[0])
    robot = 'xarm7' if task == 'push_bottle' else 'allegro_hand'
    assert topics == interfaces.recorded_topics(robot)
    steps = len(messages[interfaces.JOINT_STATES]) - 1
    assert 30 < steps < 120
    for topic in interfaces.COMMAND_TOPICS[robot]:
        assert len(messages[topic]) == steps, topic
    for topic in (interfaces.IMAGE, interfaces.CAMERA_INFO, interfaces.OBJECT_STATE):
        assert len(messages[topic]) == steps + 1, topic
    assert [m.data for _, m in messages[interfaces.TASK]] == [task]

    stamps = [s for s, _ in messages[interfaces.JOINT_STATES]]
    np.testing.assert_allclose(np.diff(stamps), 1e8)  # 10 Hz sim time
    _, image = messages[interfaces.IMAGE][-1]
    assert (image.height, image.width, image.encoding, image.step) == (32, 32, 'rgb8', 96)
    assert image.header.frame_id == interfaces.CAMERA_FRAME
    _, state = messages[interfaces.JOINT_STATES][0]
    if robot == 'xarm7':
        assert list(state.name) == [f'joint{i}' for i in range(1, 8)] + ['drive_joint']
        _, traj = messages[interfaces.XARM_ARM_COMMAND][0]
        assert list(traj.joint_names) == [f'joint{i}' for i in range(1, 8)] and len(traj.points) == 1
        _, grip = messages[interfaces.XARM_GRIPPER_COMMAND][-1]
        assert list(grip.joint_names) == ['drive_joint']
    else:
        assert list(state.name)[:16] == [f'ah_joint{f}{j}' for f in range(4) for j in range(4)]
        _, cmd = messages[interfaces.ALLEGRO_HAND_COMMAND][0]
        assert len(cmd.data) == 16
    _, obj = messages[interfaces.OBJECT_STATE][0]
    assert obj.layout.dim[0].label.split(',')[0] in ('bottle_x', 'object_x')


def test_existing_bags_are_kept_and_cli_arguments_checked(tmp_path, capsys):
    assert main(['--task', 'open_hinged_door', '--episodes', '1', '--output', str(tmp_path), '--image-size', '24']) == 0
    bag = tmp_path / 'open_hinged_door_00000'
    stamp = bag.stat().st_mtime_ns
    assert main(['--task', 'open_hinged_door', '--episodes', '1', '--output', str(tmp_path), '--image-size', '24']) == 0
    assert bag.stat().st_mtime_ns == stamp, 'a finished bag was rewritten'
    with pytest.raises(SystemExit):
        main(['--task', 'juggle', '--episodes', '1', '--output', str(tmp_path)])
    assert "invalid choice: 'juggle'" in capsys.readouterr().err


def test_too_few_successful_episodes_is_a_runtime_error(tmp_path):
    with pytest.raises(RuntimeError, match=r'only 0 of 1 push_bottle episodes succeeded within 0 seeds'):
        record_demos('push_bottle', episodes=1, output=tmp_path, image_size=16, max_attempts_factor=0)


def test_a_runtime_failure_is_one_line_and_exit_code_1(tmp_path, capsys):
    not_a_directory = tmp_path / 'bags'
    not_a_directory.write_text('a file where the output directory should go')
    assert main(['--task', 'push_bottle', '--episodes', '1', '--output', str(not_a_directory)]) == 1
    err = capsys.readouterr().err
    assert err.startswith('record_demos: error: ') and str(not_a_directory) in err and 'Traceback' not in err, err


def test_mcap_chunks_carry_crcs_so_a_damaged_pixel_is_reported(tmp_path):
    """The recorder fills in the CRCs rosbags leaves 0 ("not set"), so corruption cannot convert silently."""
    import struct
    from binascii import crc32

    [bag] = record_demos('push_bottle', episodes=1, output=tmp_path, storage='mcap', seed=2, image_size=24)
    [mcap] = bag.glob('*.mcap')
    raw = bytearray(mcap.read_bytes())
    footer = len(raw) - 37
    summary_start, _, summary_crc = struct.unpack_from('<QQI', raw, footer + 9)
    assert summary_crc == crc32(raw[summary_start:footer + 25])
    _, messages = _read(bag)  # reads and checks every chunk CRC
    _, image = messages[interfaces.IMAGE][-1]
    pixels = bytes(image.data)
    at = raw.find(pixels)
    assert at > 0 and raw.count(pixels) == 1
    raw[at + len(pixels) // 2] ^= 0x01  # one bit of one pixel
    mcap.write_bytes(raw)
    with pytest.raises(ReaderError, match='checksum'):
        _read(bag)
