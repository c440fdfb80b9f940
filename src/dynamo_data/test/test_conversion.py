"""convert_bags end to end on bags written with rosbags.

Both storages, split and bare bags, raw and compressed images, reordered joints, trajectories,
jitter and drops, episodes, append/overwrite.
"""
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the bag factory lives beside the tests
import _bag_factory_conversion as bf  # noqa: E402

from dynamo_data import LeRobotDataset  # noqa: E402
from dynamo_data.conversion.cli import main  # noqa: E402

FPS = 10


def _convert(tmp_path, bags, config=None, extra=(), name='ds'):
    cfg = config or bf.write_config(tmp_path / 'cfg.yaml')
    out = tmp_path / name
    rc = main([str(b) for b in bags] + ['--config', str(cfg), '--output', str(out), '--no-progress', *extra])
    return rc, out


def _frame_ids(frames):
    """Recover the k encoded by bf.scene_image(k) from the blue channel."""
    return [int(np.argmin([np.abs(f.astype(int) - bf.scene_image(k, *f.shape[:2])).mean() for k in range(60)]))
            for f in frames]


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_xarm_bag_round_trip(tmp_path, storage, capsys):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(30, jitter_s=0.03, drop=(4, 17), seed=2), storage)
    rc, out = _convert(tmp_path, [bag])
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.fps == FPS and ds.robot_type == 'xarm7' and ds.num_episodes == 1
    kept = [k for k in range(30) if k not in (4, 17)]  # grid times without a camera frame are dropped
    assert list(ds.episode_lengths) == [len(kept)]
    state = ds.array(0, 'observation.state')
    assert ds.feature_names('observation.state') == bf.XARM_JOINTS  # by name, despite shuffled messages
    np.testing.assert_allclose(state, [[k + i / 100 for i in range(8)] for k in kept], atol=1e-6)
    assert ds.feature_names('action') == bf.XARM_JOINTS  # arm trajectory + gripper trajectory
    np.testing.assert_allclose(ds.array(0, 'action'), state + 0.5, atol=1e-6)
    frames = ds.frames(0, 'front')
    assert frames.shape == (len(kept), 24, 32, 3)
    for k, frame in zip(kept, frames):  # the right image on each grid time, pixel exact
        np.testing.assert_array_equal(frame, bf.scene_image(k))
    assert ds.task(0) == 'open the fridge door'
    data = pq.read_table(out / 'data/chunk-000/file-000.parquet').to_pandas()
    np.testing.assert_array_equal(data.timestamp, (np.arange(len(kept)) / FPS).astype(np.float32))

    report = json.loads((out / 'meta/dynamo_sync_report.json').read_text())
    [bag_report] = report['bags']
    assert bag_report['grid_times'] == 30 and bag_report['kept_frames'] == 28
    cam = next(t for t in bag_report['topics'] if t['topic'] == '/camera/color/image_raw')
    assert (cam['messages'], cam['matched'], cam['dropped']) == (28, 28, 2)
    assert cam['max_abs_dt_s'] <= 0.05 and cam['time'] == 'header.stamp'
    assert cam['longest_gap_s'] > 0.14  # around a dropped frame
    joints = next(t for t in bag_report['topics'] if t['topic'] == '/joint_states')
    assert (joints['messages'], joints['dropped']) == (30, 0)
    printed = capsys.readouterr().out
    assert '/camera/color/image_raw' in printed and 'longest gap' in printed
    for png in ('meta/dynamo_preview_frames.png', 'meta/dynamo_preview_curves.png'):
        assert (out / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_split_bag_and_bare_storage_files(tmp_path):
    msgs = bf.xarm_messages(24, seed=3)
    split = bf.write_split_bag(tmp_path / 'split', msgs, 'mcap')
    assert len(list(split.glob('*.mcap'))) == 2
    bare_db3 = next(bf.write_bag(tmp_path / 'plain', msgs, 'sqlite3').glob('*.db3'))
    bare_mcap = next(bf.write_bag(tmp_path / 'plain2', msgs, 'mcap').glob('*.mcap'))
    rc, out = _convert(tmp_path, [split, bare_db3, bare_mcap])
    assert rc == 0
    ds = LeRobotDataset(out)
    assert list(ds.episode_lengths) == [24, 24, 24]
    for ep in range(3):
        np.testing.assert_array_equal(ds.array(ep, 'action'), ds.array(0, 'action'))
        np.testing.assert_array_equal(ds.frames(ep, 'front'), ds.frames(0, 'front'))


@pytest.mark.parametrize('fmt', ['png', 'jpeg'])
def test_compressed_images_with_resize_and_video(tmp_path, fmt):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(12, camera=fmt, image_hw=(48, 64)))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {
        'cameras': {'front': {'topic': '/camera/color/image_raw/compressed', 'resize': [24, 32]}},
        'video': fmt == 'jpeg'})
    rc, out = _convert(tmp_path, [bag], cfg)
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.camera_shape('front') == (24, 32, 3)
    frames = ds.frames(0, 'front')
    assert frames.shape == (12, 24, 32, 3)
    info = json.loads((out / 'meta/info.json').read_text())
    assert info['features']['observation.images.front']['dtype'] == ('video' if fmt == 'jpeg' else 'image')
    # downscaled frames still tell their grid time apart
    assert _frame_ids(frames) == list(range(12)) or fmt == 'jpeg' and np.mean(
        np.array(_frame_ids(frames)) == np.arange(12)) > 0.8


def test_receive_time_for_a_driver_with_a_bad_clock(tmp_path):
    msgs = bf.xarm_messages(15)
    camera = [i for i, m in enumerate(msgs) if m[0] == '/camera/color/image_raw']
    for k, i in enumerate(camera):  # the camera driver's clock is 40 s off
        topic, msgtype, recv, _ = msgs[i]
        msgs[i] = (topic, msgtype, recv, bf.image(recv + 40_000_000_000, bf.scene_image(k)))
    bag = bf.write_bag(tmp_path / 'bag', msgs)
    rc, _ = _convert(tmp_path, [bag])
    assert rc == 1  # header stamps never overlap: nothing survives synchronisation
    cfg = bf.write_config(tmp_path / 'cfg2.yaml', {'stamp': 'receive'})
    rc, out = _convert(tmp_path, [bag], cfg)
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == 1 and ds.episode_lengths[0] == 15
    report = json.loads((out / 'meta/dynamo_sync_report.json').read_text())
    assert {t['time'] for t in report['bags'][0]['topics']} == {'receive time'}


def test_gap_and_marker_episode_splits(tmp_path):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(30, gap_after=11, gap_s=3.0))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'episodes': {'split': 'gap', 'gap_s': 1.0}})
    rc, out = _convert(tmp_path, [bag], cfg)
    assert rc == 0
    assert list(LeRobotDataset(out).episode_lengths) == [12, 18]
    report = json.loads((out / 'meta/dynamo_sync_report.json').read_text())['bags'][0]
    np.testing.assert_allclose(report['episode_starts_s'], [0.0, 4.2], atol=1e-6)
    msgs = bf.xarm_messages(30)
    t0 = 1_700_000_000_000_000_000
    msgs += [('/episode_start', 'std_msgs/msg/String', t0 + int(s * 1e9), bf.string('go')) for s in (0.0, 1.05, 2.05)]
    bag2 = bf.write_bag(tmp_path / 'bag2', msgs)
    cfg2 = bf.write_config(tmp_path / 'cfg2.yaml', {'episodes': {'split': 'marker', 'marker_topic': '/episode_start'}})
    rc, out2 = _convert(tmp_path, [bag2], cfg2, name='ds2')
    assert rc == 0
    ds = LeRobotDataset(out2)
    assert list(ds.episode_lengths) == [11, 10, 9]
    assert ds.array(1, 'observation.state')[0, 0] == pytest.approx(11.0)


def _allegro_messages(n, storage_extra=None):
    t0 = 1_700_000_000_000_000_000
    joints = [f'ah_joint{f}{j}' for f in range(4) for j in range(4)]
    msgs = [('/task', 'std_msgs/msg/String', t0 - 1, bf.string('lift the object'))]
    for k in range(n):
        ns = t0 + k * 100_000_000
        msgs.append(('/joint_states', 'sensor_msgs/msg/JointState', ns + 1000,
                     bf.joint_state(ns, joints[::-1], [k + (15 - i) / 100 for i in range(16)],
                                    [-(k + (15 - i) / 100) for i in range(16)])))
        msgs.append(('/allegro_hand_position_controller/commands', 'std_msgs/msg/Float64MultiArray', ns + 2000,
                     bf.float_array([k + i / 100 + 0.25 for i in range(16)])))
        msgs.append(('/camera/color/image_raw', 'sensor_msgs/msg/Image', ns + 3000,
                     bf.image(ns, bf.scene_image(k), encoding='bgr8', pad=4)))
        msgs.append(('/cmd_vel', 'geometry_msgs/msg/TwistStamped', ns + 4000,
                     bf.twist_stamped(ns, (k, 0.0, 0.1), (0.0, 0.0, -k))))
    return msgs, joints


def test_allegro_config_velocities_multiarray_and_shipped_configs_load(tmp_path):
    from dynamo_data.conversion.config import load_config

    msgs, joints = _allegro_messages(10)
    bag = bf.write_bag(tmp_path / 'bag', msgs, 'sqlite3')
    shipped = Path(__file__).resolve().parents[1] / 'config'
    for name in ('xarm_kitchen.yaml', 'allegro_hand.yaml', 'xarm_kitchen_sim.yaml', 'allegro_hand_sim.yaml'):
        load_config(shipped / name)  # documented examples stay valid
    rc, out = _convert(tmp_path, [bag], shipped / 'allegro_hand.yaml')
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.robot_type == 'allegro_hand' and ds.feature_names('action') == joints
    np.testing.assert_allclose(ds.array(0, 'action')[3], [3 + i / 100 + 0.25 for i in range(16)], atol=1e-6)
    np.testing.assert_allclose(ds.array(0, 'observation.state')[2], [2 + i / 100 for i in range(16)], atol=1e-6)
    np.testing.assert_array_equal(ds.frames(0, 'front')[5], bf.scene_image(5))  # bgr8 with row padding

    cfg = yaml.safe_load((shipped / 'allegro_hand.yaml').read_text())
    cfg['state']['velocities'] = True
    cfg['action'] = {'topic': '/cmd_vel'}
    cfg['environment_state'] = {'topic': '/cmd_vel', 'fields': ['twist.linear.x', 'twist.angular.z']}
    (tmp_path / 'vel.yaml').write_text(yaml.safe_dump(cfg))
    rc, out = _convert(tmp_path, [bag], tmp_path / 'vel.yaml', name='ds2')
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.feature_names('observation.state')[16:18] == ['ah_joint00.velocity', 'ah_joint01.velocity']
    np.testing.assert_allclose(ds.array(0, 'observation.state')[4, 16], -4.0, atol=1e-6)
    assert ds.feature_names('action') == ['twist.linear.x', 'twist.linear.y', 'twist.linear.z',
                                          'twist.angular.x', 'twist.angular.y', 'twist.angular.z']
    np.testing.assert_allclose(ds.array(0, 'action')[6], [6, 0, 0.1, 0, 0, -6], atol=1e-6)
    np.testing.assert_allclose(ds.array(0, 'observation.environment_state')[:, 1], -np.arange(10), atol=1e-6)


@pytest.mark.parametrize('mode', ['next', 'delta'])
def test_action_derived_from_state(tmp_path, mode):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(10))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'action': {'from_state': mode}, 'task': 'wipe'})
    rc, out = _convert(tmp_path, [bag], cfg)
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.episode_lengths[0] == 9 and ds.task(0) == 'wipe'
    state, action = ds.array(0, 'observation.state'), ds.array(0, 'action')
    expected = state + 1.0 if mode == 'next' else np.ones_like(state)
    np.testing.assert_allclose(action, expected, atol=1e-5)


def test_hold_sync_for_commands_published_on_change(tmp_path):
    msgs = [m for m in bf.xarm_messages(20) if not (m[0].startswith('/xarm_gripper') and int(
        round((m[2] - 1_700_000_000_000_000_000) / 1e8)) % 5)]  # gripper command every 0.5 s only
    bag = bf.write_bag(tmp_path / 'bag', msgs)
    rc, out = _convert(tmp_path, [bag])
    assert rc == 0  # nearest-within-tolerance drops the grid times between gripper commands ...
    report = json.loads((out / 'meta/dynamo_sync_report.json').read_text())['bags'][0]
    assert (report['grid_times'], report['kept_frames']) == (16, 4)
    action = list(bf.XARM_CONFIG['action'])
    action[1] = {**action[1], 'sync': 'hold'}
    cfg = bf.write_config(tmp_path / 'hold.yaml', {'action': action})
    rc, out = _convert(tmp_path, [bag], cfg, extra=['--overwrite'])  # ... holding the last command keeps them
    assert rc == 0
    gripper = LeRobotDataset(out).array(0, 'action')[:, 7]
    np.testing.assert_allclose(gripper, [0.57 + 5 * (k // 5) for k in range(20)], atol=1e-6)


def test_custom_message_types_and_service_event_topics(tmp_path):
    """Types come from the definitions stored in the bag; service-event topics do not get in the way."""
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg('std_msgs/Header header\nfloat64[3] position\nfloat32 angle',
                                      'lab_msgs/msg/ObjectState'))
    event = get_types_from_msg('uint8 status', 'lab_msgs/msg/Reset_Event')['lab_msgs/msg/Reset_Event']
    store.register({'lab_msgs/srv/Reset_Event': event})  # as a `ros2 bag record --all` of a service
    ObjectState = store.types['lab_msgs/msg/ObjectState']
    msgs = bf.xarm_messages(8)
    t0 = 1_700_000_000_000_000_000
    path = tmp_path / 'bag'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, msgtype, _, _ in msgs:
            if topic not in conns:
                conns[topic] = writer.add_connection(topic, msgtype, typestore=store)
        obj = writer.add_connection('/object_state', 'lab_msgs/msg/ObjectState', typestore=store)
        srv = writer.add_connection('/sim/reset/_service_event', 'lab_msgs/srv/Reset_Event', typestore=store)
        writer.write(srv, t0, store.serialize_cdr(store.types['lab_msgs/srv/Reset_Event'](status=1),
                                                  'lab_msgs/srv/Reset_Event'))
        for topic, msgtype, ns, msg in sorted(msgs, key=lambda m: m[2]):
            writer.write(conns[topic], ns, store.serialize_cdr(msg, msgtype))
        for k in range(8):
            ns = t0 + k * 100_000_000
            writer.write(obj, ns + 5000, store.serialize_cdr(ObjectState(
                header=bf.header(ns), position=np.array([k, 2.0, 3.0]), angle=np.float32(k / 10)),
                'lab_msgs/msg/ObjectState'))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {
        'environment_state': {'topic': '/object_state', 'fields': ['position', 'angle']}})
    rc, out = _convert(tmp_path, [path], cfg)
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.feature_names('observation.environment_state') == ['position[0]', 'position[1]', 'position[2]', 'angle']
    np.testing.assert_allclose(ds.array(0, 'observation.environment_state')[3], [3, 2, 3, 0.3], atol=1e-6)


def test_append_overwrite_and_existing_output(tmp_path, capsys):
    bag_a = bf.write_bag(tmp_path / 'a', bf.xarm_messages(10, task='open the door'))
    bag_b = bf.write_bag(tmp_path / 'b', bf.xarm_messages(12, seed=5), 'sqlite3')
    rc, out = _convert(tmp_path, [bag_a])
    assert rc == 0
    rc, _ = _convert(tmp_path, [bag_b])
    assert rc == 1 and 'already exists' in capsys.readouterr().err
    assert LeRobotDataset(out).num_episodes == 1
    rc, _ = _convert(tmp_path, [bag_b], extra=['--append', '--task', 'push the bottle'])
    assert rc == 0
    ds = LeRobotDataset(out)
    assert list(ds.episode_lengths) == [10, 12] and [ds.task(0), ds.task(1)] == ['open the door', 'push the bottle']
    tasks = pd.read_parquet(out / 'meta/tasks.parquet')
    assert list(tasks.index) == ['open the door', 'push the bottle']
    report = json.loads((out / 'meta/dynamo_sync_report.json').read_text())
    assert [b['episode_indices'] for b in report['bags']] == [[0], [1]]
    rc, _ = _convert(tmp_path, [bag_a, bag_b], extra=['--append'])  # resuming: bags already in are skipped
    assert rc == 0 and 'already in the dataset' in capsys.readouterr().out
    assert LeRobotDataset(out).num_episodes == 2
    rc, _ = _convert(tmp_path, [bag_b], extra=['--overwrite'])
    assert rc == 0
    assert LeRobotDataset(out).num_episodes == 1
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.')) == []


@pytest.mark.parametrize('robot,config,state_dim,action_dim', [
    ('xarm_kitchen', 'xarm_kitchen_sim.yaml', 8, 8), ('allegro_hand', 'allegro_hand_sim.yaml', 19, 19)])
def test_sample_bags_with_their_configs(tmp_path, robot, config, state_dim, action_dim):
    """The recorded sample bags of the simulated twins (bags/, written by record_demos) convert fully."""
    root = Path(__file__).resolve().parents[3]
    bags = sorted((root / 'bags' / robot).iterdir())
    assert bags, f'no sample bags in bags/{robot}'
    rc, out = _convert(tmp_path, bags, root / 'src/dynamo_data/config' / config)
    assert rc == 0
    ds = LeRobotDataset(out)
    assert ds.num_episodes == len(bags) and ds.camera_names == ['front']
    assert len(ds.feature_names('observation.state')) == state_dim
    assert len(ds.feature_names('action')) == action_dim
    assert 'door_angle' in ds.feature_names('observation.environment_state')
    report = json.loads((out / 'meta/dynamo_sync_report.json').read_text())
    for bag in report['bags']:  # one command per observation, except after the last observation
        assert bag['kept_frames'] == bag['grid_times'] >= bag['topics'][0]['messages'] - 1
    descriptions = yaml.safe_load((root / 'src/dynamo_data/config' / config).read_text())['task']['descriptions']
    for ep in range(ds.num_episodes):
        assert ds.task(ep) in descriptions.values()  # the natural-language task, not the label
        assert ds.frames(ep, 'front').std() > 1  # rendered scenes, not blank frames
        assert np.abs(np.diff(ds.array(ep, 'observation.state'), axis=0)).sum() > 0  # the robot moves


def test_humble_style_bag_without_stored_definitions(tmp_path):
    """sqlite3 bags recorded before Iron store no message definitions: standard types still decode."""
    import sqlite3

    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(8), 'sqlite3')
    db = next(bag.glob('*.db3'))
    with sqlite3.connect(db) as conn:
        conn.execute('DROP TABLE message_definitions')
        conn.execute('DROP TABLE schema')
    meta = yaml.safe_load((bag / 'metadata.yaml').read_text())
    info = meta['rosbag2_bagfile_information']
    info['version'] = 5
    info.pop('ros_distro', None)
    for topic in info['topics_with_message_count']:
        topic['topic_metadata'].pop('type_description_hash', None)
    (bag / 'metadata.yaml').write_text(yaml.safe_dump(meta))
    rc, out = _convert(tmp_path, [bag])
    assert rc == 0
    np.testing.assert_array_equal(LeRobotDataset(out).frames(0, 'front')[3], bf.scene_image(3))


def test_zstd_message_compressed_bag(tmp_path):
    from rosbags.rosbag2 import CompressionFormat, CompressionMode

    path = tmp_path / 'bag'
    msgs = sorted(bf.xarm_messages(8), key=lambda m: m[2])
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3)
    writer.set_compression(CompressionMode.MESSAGE, CompressionFormat.ZSTD)
    with writer:
        conns = {}
        for topic, msgtype, ns, msg in msgs:
            conn = conns.get(topic) or conns.setdefault(topic, writer.add_connection(topic, msgtype, typestore=bf.TS))
            writer.write(conn, ns, bf.TS.serialize_cdr(msg, msgtype))
    rc, out = _convert(tmp_path, [path])
    assert rc == 0
    ds = LeRobotDataset(out)
    np.testing.assert_array_equal(ds.frames(0, 'front')[7], bf.scene_image(7))
    np.testing.assert_allclose(ds.array(0, 'observation.state')[7, 0], 7.0)


def test_task_descriptions_replace_the_labels(tmp_path, capsys):
    bag = bf.write_bag(tmp_path / 'bag', bf.xarm_messages(6, task='open_door'))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'task': {'topic': '/task', 'descriptions': {
        'open_door': 'open the fridge door', 'push_bottle': 'push the red bottle'}}})
    rc, out = _convert(tmp_path, [bag], cfg)
    assert rc == 0 and LeRobotDataset(out).task(0) == 'open the fridge door'
    other = bf.write_bag(tmp_path / 'other', bf.xarm_messages(6, task='wipe'))
    rc, _ = _convert(tmp_path, [other], cfg, name='ds2')
    err = capsys.readouterr().err
    assert rc == 1 and "task 'wipe' has no entry in" in err and 'task.descriptions' in err, err


def test_service_event_topic_recorded_with_its_srv_definition(tmp_path):
    """rosbag2 stores a service-event topic's definition as the .srv text; such a topic can be a feature."""
    sep = '=' * 80 + '\n'
    srv = sep + 'SRV: lab_srvs/srv/SetSpeed\nfloat64 speed\n---\nbool ok\n'
    store = get_typestore(Stores.ROS2_KILTED)
    store.register(get_types_from_msg('float64 speed', 'lab_srvs/msg/SetSpeed_Request'))
    store.register(get_types_from_msg('bool ok', 'lab_srvs/msg/SetSpeed_Response'))
    event = get_types_from_msg('service_msgs/msg/ServiceEventInfo info\nlab_srvs/msg/SetSpeed_Request[<=1] request\n'
                               'lab_srvs/msg/SetSpeed_Response[<=1] response', 'lab_srvs/msg/SetSpeed_Event')
    store.register({'lab_srvs/srv/SetSpeed_Event': event['lab_srvs/msg/SetSpeed_Event']})
    T = store.types
    path = tmp_path / 'bag'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {}
        for topic, msgtype, ns, msg in sorted(bf.xarm_messages(8), key=lambda m: m[2]):
            conn = conns.get(topic) or conns.setdefault(topic, writer.add_connection(topic, msgtype, typestore=bf.TS))
            writer.write(conn, ns, bf.TS.serialize_cdr(msg, msgtype))
        event = writer.add_connection('/speed/_service_event', 'lab_srvs/srv/SetSpeed_Event', msgdef=srv,
                                      rihs01='RIHS01_' + '0' * 64)
        for k in range(8):
            ns = 1_700_000_000_000_000_000 + k * 100_000_000
            info = T['service_msgs/msg/ServiceEventInfo'](
                event_type=1, stamp=bf.header(ns).stamp, client_gid=np.zeros(16, dtype=np.uint8), sequence_number=k)
            msg = T['lab_srvs/srv/SetSpeed_Event'](info=info, request=[T['lab_srvs/msg/SetSpeed_Request'](speed=k / 2)],
                                                   response=[])
            writer.write(event, ns + 5000, store.serialize_cdr(msg, 'lab_srvs/srv/SetSpeed_Event'))
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {
        'environment_state': {'topic': '/speed/_service_event', 'fields': ['info.sequence_number'],
                              'stamp': 'receive'}})
    rc, out = _convert(tmp_path, [path], cfg)
    assert rc == 0
    np.testing.assert_allclose(LeRobotDataset(out).array(0, 'observation.environment_state')[:, 0], np.arange(8))
