"""Every bad input of issue 4 gets a clear message naming the bag/topic/field and a non-zero exit.

--skip-bad converts the good bags and lists the rest; a failed run leaves no dataset behind.
Exit status 1 is a bag or dataset that cannot be read or written, 2 a bad command line or config.
"""
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the bag factory lives beside the tests
import _bag_factory_conversion as bf  # noqa: E402

from dynamo_data import LeRobotDataset  # noqa: E402
from dynamo_data.conversion.cli import main  # noqa: E402

CAMERA = '/camera/color/image_raw'


def _run(tmp_path, bags, capsys, config=None, extra=()):
    cfg = config or bf.write_config(tmp_path / 'cfg.yaml')
    out = tmp_path / 'ds'
    rc = main([str(b) for b in bags] + ['--config', str(cfg), '--output', str(out), '--no-progress', *extra])
    captured = capsys.readouterr()
    return rc, captured.err, out


def _fails(tmp_path, bag, capsys, *needles, config=None):
    rc, err, out = _run(tmp_path, [bag], capsys, config)
    assert rc == 1
    assert str(bag) in err
    for needle in needles:
        assert needle in err, err
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]  # no temp dirs left
    return err


def _replace_camera(msgs, fn):
    out, k = [], 0
    for topic, msgtype, recv, msg in msgs:
        if topic == CAMERA:
            msg = fn(k, recv - 2_000_000, msg)
            k += 1
        out.append((topic, msgtype, recv, msg))
    return out


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_truncated_or_corrupt_bag(tmp_path, capsys, storage):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(20), storage)
    data_file = next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))
    raw = data_file.read_bytes()
    if storage == 'mcap':
        data_file.write_bytes(raw[: len(raw) // 2])  # recording killed mid-write
    else:
        data_file.write_bytes(raw[:100] + b'\xff' * (len(raw) - 100))
    _fails(tmp_path, bag, capsys, 'truncated or corrupt')


def test_missing_topic_lists_what_the_bag_has(tmp_path, capsys):
    msgs = [m for m in bf.xarm_messages(10) if m[0] != '/xarm_gripper_traj_controller/joint_trajectory']
    bag = bf.write_bag(tmp_path / 'bag', msgs)
    _fails(tmp_path, bag, capsys, '/xarm_gripper_traj_controller/joint_trajectory is not in the bag',
           '/joint_states [sensor_msgs/msg/JointState]', f'{CAMERA} [sensor_msgs/msg/Image]')


def test_topic_present_with_zero_messages(tmp_path, capsys):
    msgs = [m for m in bf.xarm_messages(10) if m[0] != '/joint_states']
    path = tmp_path / 'bag'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        writer.add_connection('/joint_states', 'sensor_msgs/msg/JointState', typestore=bf.TS)
        conns = {}
        for topic, msgtype, ns, msg in msgs:
            conn = conns.get(topic) or conns.setdefault(topic, writer.add_connection(topic, msgtype, typestore=bf.TS))
            writer.write(conn, ns, bf.TS.serialize_cdr(msg, msgtype))
    _fails(tmp_path, path, capsys, 'topic /joint_states is present but has 0 messages')


def test_metadata_qos_disagreeing_with_storage_still_reads(tmp_path, capsys):
    """Rosbags' own connection matching yields 0 messages here; the converter matches by topic."""
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(10))
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())
    for topic in meta['rosbag2_bagfile_information']['topics_with_message_count']:
        topic['topic_metadata']['offered_qos_profiles'] = [{
            'history': 'keep_last', 'depth': 7, 'reliability': 'best_effort', 'durability': 'transient_local',
            'deadline': {'sec': 0, 'nsec': 0}, 'lifespan': {'sec': 0, 'nsec': 0}, 'liveliness': 'automatic',
            'liveliness_lease_duration': {'sec': 0, 'nsec': 0}, 'avoid_ros_namespace_conventions': False}]
    (bag / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    rc, err, out = _run(tmp_path, [bag], capsys)
    assert rc == 0, err
    assert LeRobotDataset(out).episode_lengths[0] == 10


def test_image_size_change_mid_bag(tmp_path, capsys):
    msgs = _replace_camera(bf.xarm_messages(10),
                           lambda k, ns, m: bf.image(ns, bf.scene_image(k, 24, 32 if k < 6 else 30)))
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, f'topic {CAMERA}', 'image changed mid-bag',
           'rgb8 32x24', 'rgb8 30x24')


def test_image_encoding_change_mid_bag(tmp_path, capsys):
    msgs = _replace_camera(bf.xarm_messages(10),
                           lambda k, ns, m: bf.image(ns, bf.scene_image(k), 'bgr8' if k == 7 else 'rgb8'))
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, 'image changed mid-bag', 'to bgr8')


def test_compressed_image_size_change_mid_bag(tmp_path, capsys):
    msgs = bf.xarm_messages(10, camera='png')
    msgs = [(t, ty, r, bf.compressed(r, bf.scene_image(0, 24, 20)) if t.endswith('compressed') and r > msgs[20][2]
             else m) for t, ty, r, m in msgs]
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'cameras': {'front': {'topic': f'{CAMERA}/compressed'}}})
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, "camera 'front'", 'image changed mid-bag',
           config=cfg)


def test_unsupported_encoding(tmp_path, capsys):
    def yuv(k, ns, m):
        m.encoding = 'yuv422'
        return m
    msgs = _replace_camera(bf.xarm_messages(6), yuv)
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, f'topic {CAMERA}',
           "unsupported image encoding 'yuv422'")


def test_joint_names_missing_from_joint_state(tmp_path, capsys):
    msgs = []
    for topic, msgtype, recv, msg in bf.xarm_messages(8):
        if topic == '/joint_states':
            keep = [i for i, n in enumerate(msg.name) if n != 'drive_joint']
            msg = bf.joint_state(recv, [msg.name[i] for i in keep], msg.position[keep])
        msgs.append((topic, msgtype, recv, msg))
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, 'topic /joint_states',
           'joint(s) drive_joint missing from name', 'joint1')


def test_joint_names_missing_from_trajectory(tmp_path, capsys):
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'action': {'topic': '/xarm7_traj_controller/joint_trajectory',
                                                            'joints': ['joint1', 'joint9']}})
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', bf.xarm_messages(6)), capsys,
           'topic /xarm7_traj_controller/joint_trajectory', 'joint(s) joint9 missing from joint_names', config=cfg)


def test_clock_jumps_backwards(tmp_path, capsys):
    msgs = []
    for topic, msgtype, recv, msg in bf.xarm_messages(20):
        if topic == '/joint_states' and recv > bf.xarm_messages(20)[40][2]:
            msg = bf.joint_state(recv - 5_000_000_000, msg.name, msg.position)  # e.g. a driver clock reset
        msgs.append((topic, msgtype, recv, msg))
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, 'topic /joint_states',
           'clock jumps backwards by 4.8')


def test_empty_episode_after_synchronisation(tmp_path, capsys):
    # the camera runs 0.06 s behind the joint states: no grid time has both within 0.02 s
    msgs = _replace_camera(bf.xarm_messages(10), lambda k, ns, m: bf.image(ns + 60_000_000, bf.scene_image(k)))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'tolerance': 0.02})
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, 'empty episode after synchronisation',
           'matched 0 of', 'tolerance 0.020 s', config=cfg)


def test_non_finite_joint_values(tmp_path, capsys):
    msgs = []
    for topic, msgtype, recv, msg in bf.xarm_messages(8):
        if topic == '/joint_states' and len(msgs) > 20:
            msg.position[msg.name.index('joint3')] = np.nan
        msgs.append((topic, msgtype, recv, msg))
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, 'topic /joint_states', 'joint3 is nan')


def test_camera_topic_with_wrong_type(tmp_path, capsys):
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'cameras': {'front': {'topic': '/joint_states'}}})
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', bf.xarm_messages(4)), capsys,
           'camera topic /joint_states has type sensor_msgs/msg/JointState', config=cfg)


def test_missing_bag_and_directory_without_metadata(tmp_path, capsys):
    _fails(tmp_path, tmp_path / 'nothing', capsys, 'no such bag')
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(4))
    (bag / 'metadata.yaml').unlink()
    _fails(tmp_path, bag, capsys, 'no metadata.yaml', 'pass the storage file instead')


def test_skip_bad_converts_the_good_and_lists_the_rest(tmp_path, capsys):
    good = [bf.write_bag(tmp_path / f'good{i}', bf.xarm_messages(8, seed=i), s)
            for i, s in enumerate(['mcap', 'sqlite3'])]
    bad = bf.write_bag(tmp_path / 'bad', [m for m in bf.xarm_messages(8) if m[0] != '/joint_states'])
    rc, err, out = _run(tmp_path, [good[0], bad, good[1]], capsys)
    assert rc == 1 and '/joint_states is not in the bag' in err and not out.exists()
    rc, err, out = _run(tmp_path, [good[0], bad, good[1]], capsys, extra=['--skip-bad'])
    assert rc == 0
    assert 'skipped 1 bad bag(s)' in err and f'{bad}: {bad}: /joint_states' not in err and str(bad) in err
    assert LeRobotDataset(out).num_episodes == 2
    rc, err, out2 = _run(tmp_path, [bad], capsys, extra=['--skip-bad', '--overwrite'])
    assert rc == 1 and 'no bag could be converted' in err
    assert LeRobotDataset(out).num_episodes == 2  # the existing dataset is untouched


def test_bags_with_different_image_sizes_need_resize(tmp_path, capsys):
    a = bf.write_bag(tmp_path / 'a', bf.xarm_messages(5))
    b = bf.write_bag(tmp_path / 'b', bf.xarm_messages(5, image_hw=(30, 40)))
    rc, err, _ = _run(tmp_path, [a, b], capsys)
    assert rc == 1 and str(b) in err and 'set `resize`' in err
    cfg = bf.write_config(tmp_path / 'cfg2.yaml', {'cameras': {'front': {'topic': CAMERA, 'resize': [24, 32]}}})
    rc, err, out = _run(tmp_path, [a, b], capsys, config=cfg)
    assert rc == 0, err
    np.testing.assert_array_equal(LeRobotDataset(out).frames(0, 'front')[2], bf.scene_image(2))


@pytest.mark.parametrize('overrides,remove,needle', [
    ({'fps': -1}, (), 'fps: must be positive'),
    ({'camras': {}}, (), 'top level: unknown key(s) camras'),
    ({}, ('state',), 'state: missing (required)'),
    ({'state': {'topic': 'joint_states', 'joints': ['a']}}, (), 'state.topic: expected a topic name'),
    ({'action': {'from_state': 'future'}}, (), 'action.from_state: one of next, delta'),
    ({'cameras': {'front': {'topic': CAMERA, 'resize': [224]}}}, (), 'cameras.front.resize'),
    ({'episodes': {'split': 'gap'}}, (), 'episodes.gap_s'),
    ({'cameras': [{'topic': CAMERA}]}, (), 'cameras: expected a mapping'),
    ({'cameras': {'front': {'topic': CAMERA, 'depth_range': ['near', 'far']}}}, (), 'cameras.front.depth_range'),
    ({'state': {'topic': '/joint_states', 'joints': ['a'], 'point': 'first'}}, (), 'state.point: expected an integer'),
    ({'state': {'topic': '/joint_states', 'joints': ['a'], 'velocities': 'false'}}, (), 'state.velocities'),
    ({'video': 'false'}, (), "video: expected true or false, got 'false'"),
    ({'png_compress_level': 'fast'}, (), "png_compress_level: expected an integer, got 'fast'"),
    ({'png_compress_level': 12}, (), 'png_compress_level: must be 0..9, got 12'),
    ({'episodes': {'min_frames': 0}}, (), 'episodes.min_frames: must be >= 1, got 0'),
])
def test_bad_config_names_file_and_key(tmp_path, capsys, overrides, remove, needle):
    cfg = bf.write_config(tmp_path / 'bad.yaml', overrides, remove)
    rc, err, out = _run(tmp_path, [tmp_path / 'unused'], capsys, config=cfg)
    assert rc == 2 and str(cfg) in err and needle in err, err
    assert err.count('\n') == 1 and 'Traceback' not in err  # one line, whatever the mistake
    assert not out.exists()


def test_missing_config_file_is_a_usage_error(tmp_path, capsys):
    rc, err, _ = _run(tmp_path, [tmp_path / 'unused'], capsys, config=tmp_path / 'nothing.yaml')
    assert rc == 2 and err == f'convert_bags: error: {tmp_path / "nothing.yaml"}: config file not found\n'


@pytest.mark.parametrize('argv', [[], ['bag', '--output', 'ds'], ['bag', '--config', 'c.yaml', '--output', 'ds',
                                                                  '--append', '--overwrite']])
def test_bad_command_line_exits_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert 'convert_bags: error:' in capsys.readouterr().err


def test_unwritable_output_is_a_runtime_error(tmp_path, capsys):
    """A write failure (here: the output's parent is a file) is one line and exit 1, not a traceback."""
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(4))
    (tmp_path / 'file').write_text('in the way')
    cfg = bf.write_config(tmp_path / 'cfg.yaml')
    rc = main([str(bag), '--config', str(cfg), '--output', str(tmp_path / 'file' / 'ds'), '--no-progress'])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith('convert_bags: error: ') and str(tmp_path / 'file') in err, err
    assert err.count('\n') == 1 and 'Traceback' not in err


def test_no_task_anywhere(tmp_path, capsys):
    cfg = bf.write_config(tmp_path / 'cfg.yaml', remove=('task',))
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', bf.xarm_messages(4)), capsys, 'no task label', config=cfg)
