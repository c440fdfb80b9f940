"""DatasetWriter / LeRobotDataset: round trips and the LeRobot v3 layout checked field by field.

LeRobot itself cannot be installed here (it pins an older torch), so the layout is checked with
pyarrow/pandas against what LeRobot 0.4's writer produces and its loader reads (the layout
summarised in dynamo_data/layout.py's docstring).
"""
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamo_data import CAMERA_PREFIX, DatasetError, DatasetWriter, LeRobotDataset

JOINTS = ['joint1', 'joint2', 'joint3']
ACTIONS = ['joint1', 'joint2', 'joint3', 'drive_joint']


def _episode(length, seed, h=16, w=24):
    rng = np.random.default_rng(seed)
    # smooth images so the video codec reproduces them closely
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 4, yy * 6, (xx + yy) * 2], axis=-1).astype(np.int32)
    frames = np.stack([base + 7 * t + 40 * seed for t in range(length)]).clip(0, 255).astype(np.uint8)
    return ({'front': frames},
            {'observation.state': rng.normal(size=(length, 3)).astype(np.float32),
             'action': rng.normal(size=(length, 4)).astype(np.float32)})


def _write(root, episodes, video=False, **kwargs):
    w = DatasetWriter(root, fps=10, robot_type='xarm7', cameras={'front': (16, 24, 3)},
                      arrays={'observation.state': JOINTS, 'action': ACTIONS}, video=video, **kwargs)
    for (frames, arrays), task in episodes:
        w.add_episode(frames=frames, arrays=arrays, task=task)
    return w.finalize()


def test_image_dataset_round_trip_and_layout(tmp_path):
    eps = [(_episode(7, 0), 'open the fridge door'), (_episode(5, 1), 'push the bottle'),
           (_episode(4, 2), 'open the fridge door')]
    root = _write(tmp_path / 'ds', eps)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']  # no temp dirs left behind

    info = json.loads((root / 'meta/info.json').read_text())
    assert info['codebase_version'] == 'v3.0' and info['robot_type'] == 'xarm7' and info['fps'] == 10
    assert (info['total_episodes'], info['total_frames'], info['total_tasks']) == (3, 16, 2)
    assert info['chunks_size'] == 1000 and info['splits'] == {'train': '0:3'}
    assert info['data_path'] == 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
    assert info['video_path'] is None
    assert info['features'][CAMERA_PREFIX + 'front'] == {
        'dtype': 'image', 'shape': [16, 24, 3], 'names': ['height', 'width', 'channels']}
    assert info['features']['observation.state'] == {'dtype': 'float32', 'shape': [3], 'names': JOINTS}
    assert info['features']['action']['names'] == ACTIONS
    for key, dtype in [('timestamp', 'float32'), ('frame_index', 'int64'), ('episode_index', 'int64'),
                       ('index', 'int64'), ('task_index', 'int64')]:
        assert info['features'][key] == {'dtype': dtype, 'shape': [1], 'names': None}

    tasks = pd.read_parquet(root / 'meta/tasks.parquet')
    assert list(tasks.index) == ['open the fridge door', 'push the bottle']
    assert tasks.loc['push the bottle'].task_index == 1  # how LeRobot looks tasks up

    episodes = pq.read_table(root / 'meta/episodes/chunk-000/file-000.parquet')
    assert episodes.schema.field('tasks').type == pa.list_(pa.string())
    ep = episodes.to_pandas()
    assert list(ep.episode_index) == [0, 1, 2] and list(ep.length) == [7, 5, 4]
    assert list(ep.dataset_from_index) == [0, 7, 12] and list(ep.dataset_to_index) == [7, 12, 16]
    assert list(ep['data/chunk_index']) == [0, 0, 0] and list(ep['data/file_index']) == [0, 0, 0]
    assert [list(t) for t in ep.tasks] == [['open the fridge door'], ['push the bottle'], ['open the fridge door']]

    data = pq.read_table(root / 'data/chunk-000/file-000.parquet')
    schema = data.schema
    assert schema.field('observation.images.front').type == pa.struct([('bytes', pa.binary()), ('path', pa.string())])
    assert schema.field('observation.state').type == pa.list_(pa.float32(), 3)
    assert schema.field('action').type == pa.list_(pa.float32(), 4)
    assert schema.field('timestamp').type == pa.float32()
    for key in ('frame_index', 'episode_index', 'index', 'task_index'):
        assert schema.field(key).type == pa.int64()
    df = data.to_pandas()
    assert list(df['index']) == list(range(16))
    assert list(df.task_index) == [0] * 7 + [1] * 5 + [0] * 4
    frame_index = np.concatenate([np.arange(7), np.arange(5), np.arange(4)])
    np.testing.assert_array_equal(df.frame_index, frame_index)
    np.testing.assert_array_equal(df.timestamp.to_numpy(), (frame_index / 10).astype(np.float32))
    assert df['observation.images.front'][0]['bytes'][:8] == b'\x89PNG\r\n\x1a\n'

    stats = json.loads((root / 'meta/stats.json').read_text())
    states = np.concatenate([e[0][1]['observation.state'] for e in eps])
    np.testing.assert_allclose(stats['observation.state']['mean'], states.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats['observation.state']['std'], states.std(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats['observation.state']['min'], states.min(0), rtol=1e-6)
    assert stats['observation.state']['count'] == [16]
    assert np.asarray(stats['observation.images.front']['mean']).shape == (3, 1, 1)
    images = np.concatenate([e[0][0]['front'] for e in eps]).reshape(-1, 3) / 255
    np.testing.assert_allclose(np.asarray(stats['observation.images.front']['mean']).ravel(), images.mean(0), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(stats['observation.images.front']['std']).ravel(), images.std(0), rtol=1e-5)
    assert set(stats) >= {'timestamp', 'frame_index', 'episode_index', 'index', 'task_index'}

    ds = LeRobotDataset(root)
    assert ds.fps == 10 and ds.robot_type == 'xarm7' and ds.camera_names == ['front']
    assert ds.array_keys == ['observation.state', 'action']
    assert ds.feature_names('observation.state') == JOINTS
    assert ds.num_episodes == 3 and list(ds.episode_lengths) == [7, 5, 4] and ds.total_frames == 16
    for i, ((frames, arrays), task) in enumerate(eps):
        np.testing.assert_array_equal(ds.frames(i, 'front'), frames['front'])  # PNG is lossless
        np.testing.assert_array_equal(ds.array(i, 'action'), arrays['action'])
        assert ds.array(i, 'observation.state').dtype == np.float32
        assert ds.task(i) == task
    assert ds.frames(1, 'front') is ds.frames(1, 'front')  # decoded once


def test_video_dataset_round_trip_and_layout(tmp_path):
    eps = [(_episode(6, 0), 'a'), (_episode(9, 1), 'b')]
    root = _write(tmp_path / 'ds', eps, video=True)
    info = json.loads((root / 'meta/info.json').read_text())
    assert info['video_path'] == 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
    feature = info['features']['observation.images.front']
    assert feature['dtype'] == 'video' and feature['shape'] == [16, 24, 3]
    assert feature['info']['video.fps'] == 10 and feature['info']['video.codec'] == 'h264'
    assert feature['info']['video.height'] == 16 and feature['info']['has_audio'] is False
    assert 'observation.images.front' not in pq.read_schema(root / 'data/chunk-000/file-000.parquet').names
    video = root / 'videos/observation.images.front/chunk-000/file-000.mp4'
    assert video.is_file()
    ep = pd.read_parquet(root / 'meta/episodes/chunk-000/file-000.parquet')
    key = 'videos/observation.images.front/'
    assert list(ep[key + 'from_timestamp']) == [0.0, 0.6] and list(ep[key + 'to_timestamp']) == [0.6, 1.5]
    assert list(ep[key + 'file_index']) == [0, 0]

    import av
    with av.open(str(video)) as container:  # frame i of the file is at i / fps, as LeRobot decodes
        stream = container.streams.video[0]
        times = [float(f.pts * stream.time_base) for f in container.decode(stream)]
    np.testing.assert_allclose(times, np.arange(15) / 10, atol=1e-4)

    ds = LeRobotDataset(root)
    for i, ((frames, _), _) in enumerate(eps):
        got = ds.frames(i, 'front')
        assert got.shape == frames['front'].shape and got.dtype == np.uint8
        assert np.abs(got.astype(int) - frames['front']).mean() < 6  # lossy codec, right frames
    # episode boundaries fall on the right frames: each frame is closest to its own original
    originals = np.concatenate([e[0][0]['front'] for e in eps]).astype(int)
    decoded = np.concatenate([ds.frames(i, 'front') for i in range(2)]).astype(int)
    dist = np.abs(decoded[:, None] - originals[None]).mean(axis=(2, 3, 4))
    np.testing.assert_array_equal(dist.argmin(1), np.arange(15))


@pytest.mark.parametrize('video', [False, True])
def test_append_adds_new_files_and_keeps_old(tmp_path, video):
    root = _write(tmp_path / 'ds', [(_episode(5, 0), 'a')], video=video)
    (root / 'meta' / 'extra_report.json').write_text('{}')
    first = (root / 'data/chunk-000/file-000.parquet').read_bytes()
    _write(root, [(_episode(3, 1), 'b'), (_episode(4, 2), 'a')], video=video, append=True)
    assert (root / 'data/chunk-000/file-000.parquet').read_bytes() == first
    assert (root / 'data/chunk-000/file-001.parquet').is_file()
    assert (root / 'meta' / 'extra_report.json').is_file()
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 3 and list(ds.episode_lengths) == [5, 3, 4]
    assert [ds.task(i) for i in range(3)] == ['a', 'b', 'a']
    np.testing.assert_array_equal(ds.array(2, 'action'), _episode(4, 2)[1]['action'])
    ep = pd.read_parquet(root / 'meta/episodes/chunk-000/file-000.parquet')
    assert list(ep['data/file_index']) == [0, 1, 1] and list(ep.dataset_from_index) == [0, 5, 8]
    df = pd.concat([pd.read_parquet(p) for p in sorted((root / 'data').rglob('*.parquet'))])
    assert list(df['index']) == list(range(12))
    stats = json.loads((root / 'meta/stats.json').read_text())
    states = np.concatenate([_episode(n, s)[1]['observation.state'] for n, s in [(5, 0), (3, 1), (4, 2)]])
    np.testing.assert_allclose(stats['observation.state']['mean'], states.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(stats['observation.state']['std'], states.std(0), rtol=1e-4, atol=1e-6)
    assert stats['observation.state']['count'] == [12]
    if video:
        assert (root / 'videos/observation.images.front/chunk-000/file-001.mp4').is_file()
        assert ds.frames(1, 'front').shape == (3, 16, 24, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']


def test_existing_output_needs_overwrite_and_overwrite_replaces(tmp_path):
    root = _write(tmp_path / 'ds', [(_episode(5, 0), 'a')])
    with pytest.raises(DatasetError, match='already exists'):
        _write(root, [(_episode(2, 1), 'b')])
    _write(root, [(_episode(2, 1), 'b')], overwrite=True)
    ds = LeRobotDataset(root)
    assert ds.num_episodes == 1 and ds.task(0) == 'b'
    precious = tmp_path / 'home'
    (precious / 'notes').mkdir(parents=True)
    with pytest.raises(DatasetError, match='not a LeRobot dataset; refusing to overwrite'):
        _write(precious, [(_episode(2, 1), 'b')], overwrite=True)
    assert (precious / 'notes').is_dir()
    (precious / 'notes').rmdir()
    _write(precious, [(_episode(2, 1), 'b')], overwrite=True)  # an empty directory is fine
    assert LeRobotDataset(precious).num_episodes == 1
    precious.rename(tmp_path / 'ds2')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds', 'ds2']


def test_append_with_different_features_is_refused(tmp_path):
    root = _write(tmp_path / 'ds', [(_episode(5, 0), 'a')])
    with pytest.raises(DatasetError, match='features differ'):
        DatasetWriter(root, fps=10, robot_type='xarm7', cameras={'front': (16, 24, 3)},
                      arrays={'observation.state': JOINTS[:2], 'action': ACTIONS}, append=True)
    with pytest.raises(DatasetError, match='fps'):
        DatasetWriter(root, fps=15, robot_type='xarm7', cameras={'front': (16, 24, 3)},
                      arrays={'observation.state': JOINTS, 'action': ACTIONS}, append=True)
    with pytest.raises(DatasetError, match='no dataset there'):
        DatasetWriter(tmp_path / 'none', fps=10, robot_type='x', cameras={}, arrays={'a': ['x']}, append=True)


def test_interrupted_writer_leaves_nothing(tmp_path):
    frames, arrays = _episode(5, 0)
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / 'ds', fps=10, robot_type='xarm7', cameras={'front': (16, 24, 3)},
                           arrays={'observation.state': JOINTS, 'action': ACTIONS}) as w:
            w.add_episode(frames=frames, arrays=arrays, task='a')
            raise RuntimeError('interrupted')
    assert list(tmp_path.iterdir()) == []


def test_bad_episodes_are_rejected_with_the_feature_named(tmp_path):
    w = DatasetWriter(tmp_path / 'ds', fps=10, robot_type='xarm7', cameras={'front': (16, 24, 3)},
                      arrays={'observation.state': JOINTS, 'action': ACTIONS})
    frames, arrays = _episode(5, 0)
    with pytest.raises(DatasetError, match="camera 'front'"):
        w.add_episode(frames={'front': frames['front'][:, :8]}, arrays=arrays, task='a')
    with pytest.raises(DatasetError, match="array 'action'"):
        w.add_episode(frames=frames, arrays={**arrays, 'action': arrays['action'][:, :2]}, task='a')
    with pytest.raises(DatasetError, match='different lengths'):
        w.add_episode(frames=frames, arrays={**arrays, 'action': arrays['action'][:3]}, task='a')
    with pytest.raises(DatasetError, match='NaN'):
        w.add_episode(frames=frames, arrays={**arrays, 'action': arrays['action'] * np.nan}, task='a')
    with pytest.raises(DatasetError, match='no episodes'):
        w.finalize()
    assert list(tmp_path.iterdir()) == []


def test_reader_errors_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match='does not exist'):
        LeRobotDataset(tmp_path / 'missing')
    root = _write(tmp_path / 'ds', [(_episode(5, 0), 'a')])
    with pytest.raises(DatasetError, match="no camera 'wrist'"):
        LeRobotDataset(root).frames(0, 'wrist')
    with pytest.raises(DatasetError, match='episode 3 out of range'):
        LeRobotDataset(root).array(3, 'action')
    (root / 'data/chunk-000/file-000.parquet').write_bytes(b'garbage')
    with pytest.raises(DatasetError, match='file-000.parquet'):
        LeRobotDataset(root)
    (root / 'meta/info.json').unlink()
    with pytest.raises(DatasetError, match='info.json: missing'):
        LeRobotDataset(root)


@pytest.mark.parametrize('level', [0, 1, 9])
@pytest.mark.parametrize('shape', [(13, 7, 3), (150, 230, 3)])  # one deflate block / several (>64 kB)
def test_encode_png_is_lossless_for_pillow(level, shape):
    import io

    from PIL import Image

    from dynamo_data import encode_png

    image = np.random.default_rng(level).integers(0, 256, shape, dtype=np.uint8)
    image[5:] //= 3  # some structure for the filter
    image[shape[0] // 2:, : shape[1] // 2] = 17  # a flat region: runs for the run-length strategy
    with Image.open(io.BytesIO(encode_png(image, level))) as img:
        assert img.mode == 'RGB'
        np.testing.assert_array_equal(np.asarray(img), image)


def test_long_episodes_are_written_in_batches_in_order(tmp_path):
    """Image rows go to the parquet in batches (row groups) while the pool encodes ahead."""
    eps = [(_episode(150, 0), 'a'), (_episode(70, 1), 'b')]
    root = _write(tmp_path / 'ds', eps)
    data = pq.ParquetFile(root / 'data/chunk-000/file-000.parquet')
    assert data.metadata.num_row_groups > 2
    ds = LeRobotDataset(root)
    for i, ((frames, arrays), _) in enumerate(eps):
        np.testing.assert_array_equal(ds.frames(i, 'front'), frames['front'])
        np.testing.assert_array_equal(ds.array(i, 'observation.state'), arrays['observation.state'])
    assert list(pq.read_table(root / 'data/chunk-000/file-000.parquet').column('index').to_numpy()) == list(range(220))


def test_temp_dirs_of_killed_writers_are_removed(tmp_path):
    import subprocess
    import sys

    child = subprocess.run([sys.executable, '-c', 'import os; print(os.getpid())'], capture_output=True, text=True)
    dead = tmp_path / f'.ds.partial-{int(child.stdout)}-0123abcd'  # a writer SIGKILLed mid-run
    dead.mkdir()
    (dead / 'data').mkdir()
    _write(tmp_path / 'ds', [(_episode(3, 0), 'a')])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['ds']
