"""Every bad input of issue 4 gets a clear message naming the bag/topic/field and a non-zero exit.

--skip-bad converts the good bags and lists the rest; a failed run leaves no dataset behind.
Exit status 1 is a bag or dataset that cannot be read or written, 2 a bad command line or config.
"""
import os
import shutil
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


def test_corrupt_sqlite3_bag(tmp_path, capsys):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(20), 'sqlite3')
    data_file = next(bag.glob('*.db3'))
    raw = data_file.read_bytes()
    data_file.write_bytes(raw[:100] + b'\xff' * (len(raw) - 100))
    _fails(tmp_path, bag, capsys, str(data_file), 'truncated or corrupt')


def test_truncated_mcap_keeps_its_complete_messages(tmp_path, capsys):
    """A recording cut off mid-write (no summary, last chunk incomplete) converts what is complete, with a warning."""
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(20))
    data_file = next(bag.glob('*.mcap'))
    raw = data_file.read_bytes()
    data_file.write_bytes(raw[: int(len(raw) * 0.6)])
    rc, err, out = _run(tmp_path, [bag], capsys)
    assert rc == 0, err
    assert f'{data_file}: incomplete MCAP file' in err and 'are lost' in err
    frames = LeRobotDataset(out).frames(0, 'front')
    assert 5 < len(frames) < 20
    for k, frame in enumerate(frames):  # the complete messages, unchanged
        np.testing.assert_array_equal(frame, bf.scene_image(k))
    shutil.rmtree(out)
    data_file.write_bytes(raw[:200])  # cut before the first message: nothing to recover
    _fails(tmp_path, bag, capsys, str(data_file), 'no complete message', '--skip-bad')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
@pytest.mark.parametrize('bare', [False, True])
def test_storage_file_of_a_few_bytes(tmp_path, capsys, storage, bare):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(4), storage)
    data_file = next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))
    data_file.write_bytes(data_file.read_bytes()[:5])
    _fails(tmp_path, data_file if bare else bag, capsys, f'{data_file}: only 5 bytes')


def test_garbled_mcap_summary_reads_the_data_section(tmp_path, capsys):
    """Damaged index records (once a MemoryError that ended a whole --skip-bad batch) cost nothing but a warning."""
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(10))
    good = bf.write_bag(tmp_path / 'good', bf.xarm_messages(6, seed=1))
    data_file = next(bag.glob('*.mcap'))
    raw = bytearray(data_file.read_bytes())
    summary_start = int.from_bytes(raw[-37 + 9:-37 + 17], 'little')
    raw[summary_start:-37] = bytes(np.random.default_rng(0).integers(0, 256, len(raw) - 37 - summary_start,
                                                                      dtype=np.uint8))
    data_file.write_bytes(raw)
    rc, err, out = _run(tmp_path, [bag, good], capsys, extra=['--skip-bad'])
    assert rc == 0 and f'{data_file}: MCAP index unreadable' in err and 'Traceback' not in err, err
    ds = LeRobotDataset(out)
    assert list(ds.episode_lengths) == [10, 6]
    np.testing.assert_array_equal(ds.frames(0, 'front')[9], bf.scene_image(9))


def test_metadata_yaml_of_binary_junk_names_the_file(tmp_path, capsys):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(4))
    (bag / 'metadata.yaml').write_bytes(bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)))
    _fails(tmp_path, bag, capsys, f"{bag / 'metadata.yaml'}: not", 'pass the storage file')
    (bag / 'metadata.yaml').write_text('just: a mapping\n')
    _fails(tmp_path, bag, capsys, f"{bag / 'metadata.yaml'}: not a rosbag2 metadata file")


def _with_stamp(msgs, topic, index, ns=None, nanosec=None):
    out, k = [], 0
    for t, msgtype, recv, msg in msgs:
        if t == topic:
            if k == index:
                msg.header.stamp = bf.header(ns).stamp if ns is not None else msg.header.stamp
                if nanosec is not None:
                    msg.header.stamp.nanosec = nanosec
            k += 1
        out.append((t, msgtype, recv, msg))
    return out


@pytest.mark.parametrize('damage', ['far', 'nanosec'])
def test_garbled_header_stamp_is_named_not_called_a_clock_jump(tmp_path, capsys, damage):
    msgs = bf.xarm_messages(20)
    if damage == 'far':
        msgs = _with_stamp(msgs, '/joint_states', 7, ns=2_100_000_000_000_000_000)  # bits flipped in stamp.sec
    else:
        msgs = _with_stamp(msgs, '/joint_states', 7, nanosec=4_000_000_000)
    err = _fails(tmp_path, bf.write_bag(tmp_path / 'bag', msgs), capsys, 'topic /joint_states',
                 'header.stamp of 1 message(s) is damaged (first: message 7', '--skip-bad')
    assert 'clock jumps' not in err


def test_values_float32_cannot_hold_are_refused(tmp_path, capsys):
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'environment_state': {'topic': '/joint_states',
                                                                         'fields': ['header.stamp.sec']}})
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', bf.xarm_messages(20)), capsys, 'topic /joint_states',
           'header.stamp.sec = 1700000001', 'cannot be stored as float32', config=cfg)


def test_single_frame_bag_names_min_frames(tmp_path, capsys):
    _fails(tmp_path, bf.write_bag(tmp_path / 'bag', bf.xarm_messages(1)), capsys,
           'no episode is as long as episodes.min_frames = 2', 'segment(s) of [1] frame(s)')


def test_topic_names_without_leading_slash_as_older_rosbag2_recorded(tmp_path, capsys):
    msgs = [(t.lstrip('/'), msgtype, recv, msg) for t, msgtype, recv, msg in bf.xarm_messages(8)]
    rc, err, out = _run(tmp_path, [bf.write_bag(tmp_path / 'bag', msgs, 'sqlite3')], capsys)
    assert rc == 0, err
    assert LeRobotDataset(out).episode_lengths[0] == 8


def test_output_that_cannot_be_created_fails_before_reading_any_bag(tmp_path, capsys):
    (tmp_path / 'file').write_text('in the way')
    cfg = bf.write_config(tmp_path / 'cfg.yaml')
    rc = main([str(tmp_path / 'no_such_bag'), '--config', str(cfg), '--output', str(tmp_path / 'file' / 'sub' / 'ds'),
               '--no-progress', '--skip-bad'])
    err = capsys.readouterr().err
    assert rc == 1 and f"{tmp_path / 'file'} is a file, not a directory" in err and 'no_such_bag' not in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason='root may write anywhere')
def test_output_in_a_read_only_directory(tmp_path, capsys):
    (tmp_path / 'ro').mkdir(mode=0o555)
    cfg = bf.write_config(tmp_path / 'cfg.yaml')
    rc = main([str(tmp_path / 'no_such_bag'), '--config', str(cfg), '--output', str(tmp_path / 'ro' / 'ds')])
    assert rc == 1 and 'is not writable' in capsys.readouterr().err


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
    ({'video': 'no'}, (), "video: expected true or false, got 'no'"),
    ({'fps': '10'}, (), "fps: expected a number, got '10'"),
    ({'fps': True}, (), 'fps: expected a number, got True'),
    ({'state': '/joint_states'}, (), 'state: expected a mapping, got str'),
    ({'action': [{'topic': '/a', 'sync': 'later'}]}, (), "action[0].sync: one of nearest, hold, got 'later'"),
    ({'cameras': {'front': {'topic': CAMERA, 'tolerance': '0.1'}}}, (), 'cameras.front.tolerance: expected a number'),
    ({'state': {'topic': '/joint_states', 'joints': 'joint1'}}, (), "state.joints: expected a list, got 'joint1'"),
    ({'episodes': [2]}, (), 'episodes: expected a mapping, got list'),
    ({'task': {'topic': '/task', 'descriptions': ['open']}}, (), 'task.descriptions: expected a mapping, got list'),
    ({'task': 7}, (), 'task: expected a mapping, got int'),
    ({'robot_type': 7}, (), 'robot_type: expected a string, got 7'),
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
