"""LeRobot parity beyond loading: per-episode statistics, quantiles, the `huggingface` schema, bounded streaming.

Expected values are recomputed here from the frames with numpy, following LeRobot's rules (frame
sample, pixel stride, aggregation) as written in lerobot/datasets/compute_stats.py (0.4-0.6).
"""
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dynamo_data import DatasetError, DatasetWriter, LeRobotDataset
from dynamo_data.layout import write_episodes

QUANTILES = {'q01': 0.01, 'q10': 0.10, 'q50': 0.50, 'q90': 0.90, 'q99': 0.99}
STATS = ['min', 'max', 'mean', 'std', 'count', *QUANTILES]
SHAPE = (310, 40, 3)  # taller than 300 px: LeRobot strides it (every 2nd pixel)


def _episode(length, seed):
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (length, *SHAPE), dtype=np.uint8)
    frames[:, :100] //= 4  # not uniform: quantiles differ from a straight line
    return ({'front': frames},
            {'observation.state': rng.normal(size=(length, 3)).astype(np.float32),
             'gripper': rng.uniform(size=(length, 1)).astype(np.float32)})


def _write(root, episodes, **kwargs):
    w = DatasetWriter(root, fps=10, robot_type='xarm7', cameras={'front': SHAPE},
                      arrays={'observation.state': ['a', 'b', 'c'], 'gripper': ['g']}, **kwargs)
    for (frames, arrays), task in episodes:
        w.add_episode(frames=frames, arrays=arrays, task=task)
    return w.finalize()


def _expected_image_stats(frames):
    length = len(frames)
    count = max(min(100, length), min(int(length**0.75), 10_000))
    sample = np.round(np.linspace(0, length - 1, count)).astype(int)
    pixels = frames[sample][:, ::2, ::2].reshape(-1, 3).astype(np.float64) / 255
    out = {'min': pixels.min(0), 'max': pixels.max(0), 'mean': pixels.mean(0), 'std': pixels.std(0)}
    out.update({k: np.quantile(pixels, q, axis=0) for k, q in QUANTILES.items()})
    return {k: v.reshape(3, 1, 1) for k, v in out.items()} | {'count': np.array([count])}


def _expected_array_stats(values):
    values = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    out = {'min': values.min(0), 'max': values.max(0), 'mean': values.mean(0), 'std': values.std(0),
           'count': np.array([len(values)])}
    out.update({k: np.quantile(values, q, axis=0) for k, q in QUANTILES.items()})
    return out


def _lerobot_aggregate(entries):
    """LeRobot's aggregate_feature_stats (releases 0.4-0.6.1), written out here."""
    counts = np.array([e['count'][0] for e in entries], dtype=np.float64)
    shape = (-1,) + (1,) * (np.asarray(entries[0]['mean']).ndim)
    w = counts.reshape(shape)
    means = np.stack([e['mean'] for e in entries])
    mean = (means * w).sum(0) / counts.sum()
    var = ((np.stack([e['std'] for e in entries]) ** 2 + (means - mean) ** 2) * w).sum(0) / counts.sum()
    out = {'min': np.min([e['min'] for e in entries], 0), 'max': np.max([e['max'] for e in entries], 0),
           'mean': mean, 'std': np.sqrt(var), 'count': np.array([counts.sum()])}
    out.update({k: (np.stack([e[k] for e in entries]) * w).sum(0) / counts.sum() for k in QUANTILES})
    return out


def _assert_stats(got, expected, atol):
    assert set(got) == set(STATS)
    for name in STATS:
        assert np.shape(got[name]) == np.shape(expected[name]), name
        np.testing.assert_allclose(got[name], expected[name], rtol=1e-6, atol=atol, err_msg=name)


def test_per_episode_stats_are_written_read_back_and_match_the_frames(tmp_path):
    eps = [(_episode(130, 0), 'open'), (_episode(9, 1), 'push')]  # 130 frames: a sample of 100
    root = _write(tmp_path / 'ds', eps)
    ds = LeRobotDataset(root)
    episodes = pq.read_table(root / 'meta/episodes/chunk-000/file-000.parquet')
    for key in ('observation.images.front', 'observation.state', 'gripper', 'timestamp', 'frame_index',
                'episode_index', 'index', 'task_index'):
        assert {f'stats/{key}/{s}' for s in STATS} <= set(episodes.column_names)
    assert episodes.column_names[-2:] == ['meta/episodes/chunk_index', 'meta/episodes/file_index']
    offset = 0
    for ep, ((frames, arrays), _) in enumerate(eps):
        stats = ds.episode_stats(ep)
        _assert_stats(stats['observation.images.front'], _expected_image_stats(frames['front']), atol=1e-9)
        _assert_stats(stats['observation.state'], _expected_array_stats(arrays['observation.state']), atol=1e-6)
        _assert_stats(stats['gripper'], _expected_array_stats(arrays['gripper']), atol=1e-6)
        length = len(frames['front'])
        _assert_stats(stats['index'], _expected_array_stats(offset + np.arange(length)), atol=1e-9)
        _assert_stats(stats['timestamp'], _expected_array_stats((np.arange(length) / 10).astype(np.float32)),
                      atol=1e-6)
        assert stats['task_index']['max'].tolist() == [ep] and stats['episode_index']['mean'].tolist() == [ep]
        assert np.asarray(stats['index']['min']).dtype == np.int64  # as LeRobot's, for its writer to append
        for key, entry in ds.compute_episode_stats(ep).items():  # what the reader recomputes from the data
            _assert_stats(stats[key], entry, atol=1e-9)
        offset += length

    saved = json.loads((root / 'meta/stats.json').read_text())
    per_episode = [ds.episode_stats(ep) for ep in range(2)]
    for key in per_episode[0]:
        _assert_stats({k: np.asarray(v) for k, v in saved[key].items()},
                      _lerobot_aggregate([s[key] for s in per_episode]), atol=1e-9)
    assert np.shape(saved['observation.images.front']['q01']) == (3, 1, 1)
    assert saved['observation.images.front']['count'] == [109] and saved['gripper']['count'] == [139]


def test_data_files_carry_the_datasets_features_and_image_paths(tmp_path):
    root = _write(tmp_path / 'ds', [(_episode(4, 0), 'a')])
    data = pq.read_table(root / 'data/chunk-000/file-000.parquet')
    features = json.loads(data.schema.metadata[b'huggingface'])['info']['features']
    assert features == {
        'observation.images.front': {'_type': 'Image'},
        'observation.state': {'feature': {'dtype': 'float32', '_type': 'Value'}, 'length': 3, '_type': 'List'},
        'gripper': {'dtype': 'float32', '_type': 'Value'},
        'timestamp': {'dtype': 'float32', '_type': 'Value'},
        **{k: {'dtype': 'int64', '_type': 'Value'} for k in ('frame_index', 'episode_index', 'index', 'task_index')}}
    assert list(features) == data.column_names
    assert data.schema.field('gripper').type == pa.float32()  # shape (1,): a scalar column, as LeRobot reads it
    assert data.column('observation.images.front').combine_chunks().field('path').to_pylist() == [
        f'frame-{i:06d}.png' for i in range(4)]
    np.testing.assert_array_equal(LeRobotDataset(root).array(0, 'gripper'), _episode(4, 0)[1]['gripper'])


def test_append_keeps_episode_stats_and_their_aggregate_consistent(tmp_path):
    root = _write(tmp_path / 'ds', [(_episode(6, 0), 'a')])
    before = LeRobotDataset(root).episode_stats(0)
    _write(root, [(_episode(5, 1), 'b')], append=True)
    ds = LeRobotDataset(root)
    for key, entry in before.items():
        _assert_stats(ds.episode_stats(0)[key], entry, atol=0)
    for key, entry in ds.compute_episode_stats(1).items():
        _assert_stats(ds.episode_stats(1)[key], entry, atol=1e-9)
    saved = json.loads((root / 'meta/stats.json').read_text())
    for key in before:
        _assert_stats({k: np.asarray(v) for k, v in saved[key].items()},
                      _lerobot_aggregate([ds.episode_stats(0)[key], ds.episode_stats(1)[key]]), atol=1e-9)


def test_appending_to_a_dataset_without_episode_stats_computes_them(tmp_path):
    """Datasets written before the statistics columns existed get them when appended to."""
    root = _write(tmp_path / 'ds', [(_episode(6, 0), 'a')])
    written = LeRobotDataset(root).episode_stats(0)
    path = root / 'meta/episodes/chunk-000/file-000.parquet'
    old = [{k: v for k, v in row.items() if not k.startswith('stats/')} for row in pq.read_table(path).to_pylist()]
    write_episodes(path, old)
    assert LeRobotDataset(root).episode_stats(0) == {}
    _write(root, [(_episode(5, 1), 'b')], append=True)
    for key, entry in written.items():
        _assert_stats(LeRobotDataset(root).episode_stats(0)[key], entry, atol=1e-9)


class _CountingFrames:
    """A sized iterable of frames that records how many it has handed out that are still alive."""

    def __init__(self, length):
        import weakref

        self.length, self.alive, self.most_alive, self._ref = length, [], 0, weakref.ref

    def __len__(self):
        return self.length

    def __iter__(self):
        for k in range(self.length):
            frame = np.full((48, 64, 3), k % 256, dtype=np.uint8)
            self.alive = [r for r in self.alive if r() is not None]
            self.most_alive = max(self.most_alive, len(self.alive))
            self.alive.append(self._ref(frame))
            yield frame


@pytest.mark.parametrize('video', [False, True])
def test_frames_stream_through_the_writer_in_bounded_memory(tmp_path, video):
    frames = _CountingFrames(1500)
    w = DatasetWriter(tmp_path / 'ds', fps=10, robot_type='x', cameras={'front': (48, 64, 3)},
                      arrays={'action': ['a']}, video=video, png_threads=2)
    w.add_episode(frames={'front': frames}, arrays={'action': np.zeros((1500, 1))}, task='t')
    root = w.finalize()
    assert frames.most_alive < 300  # a window of batches, not the episode
    got = LeRobotDataset(root).frames(0, 'front')
    assert got.shape == (1500, 48, 64, 3)
    np.testing.assert_allclose(got[:, 0, 0, 0], np.arange(1500) % 256, atol=0 if not video else 3)


def test_a_frame_source_that_fails_half_way_leaves_nothing(tmp_path):
    def frames():
        for k in range(200):
            if k == 150:
                raise DatasetError('the bag broke')
            yield np.zeros((8, 8, 3), np.uint8)

    class Sized:
        def __len__(self):
            return 200

        def __iter__(self):
            return frames()

    w = DatasetWriter(tmp_path / 'ds', fps=10, robot_type='x', cameras={'front': (8, 8, 3)}, arrays={'a': ['a']})
    with pytest.raises(DatasetError, match='the bag broke'):
        w.add_episode(frames={'front': Sized()}, arrays={'a': np.zeros((200, 1))}, task='t')
    with pytest.raises(DatasetError, match='failed half way'):
        w.add_episode(frames={'front': np.zeros((2, 8, 8, 3), np.uint8)}, arrays={'a': np.zeros((2, 1))}, task='t')
    with pytest.raises(DatasetError, match='nothing was written'):
        w.finalize()
    assert list(tmp_path.iterdir()) == []


def test_reading_an_episode_reads_only_its_rows_and_the_cache_is_bounded(tmp_path):
    eps = [(_episode(3, s), 'a') for s in range(4)]
    root = _write(tmp_path / 'ds', eps)
    path = root / 'data/chunk-000/file-000.parquet'
    table = pq.read_table(path)
    images = table.column('observation.images.front').combine_chunks()
    broken = images.field('bytes').to_pylist()
    broken[4] = b'not a png'  # episode 1, frame 1: only a read of episode 1 meets it
    column = pa.StructArray.from_arrays([pa.array(broken, pa.binary()), images.field('path')], names=['bytes', 'path'])
    assert pq.ParquetFile(path).metadata.num_row_groups == 4  # one per (short) episode
    with pq.ParquetWriter(path, table.schema) as writer:
        for lo in range(0, 12, 3):
            writer.write_table(table.set_column(0, 'observation.images.front', column).slice(lo, 3))
    ds = LeRobotDataset(root, frame_cache_bytes=2 * 3 * int(np.prod(SHAPE)))  # room for two episodes
    first = ds.frames(0, 'front')
    np.testing.assert_array_equal(first, eps[0][0][0]['front'])
    with pytest.raises(DatasetError, match='frame 1 of episode 1'):
        ds.frames(1, 'front')
    np.testing.assert_array_equal(ds.frames_at(1, 'front', [2, 0]), eps[1][0][0]['front'][[2, 0]])
    np.testing.assert_array_equal(ds.frames(2, 'front'), eps[2][0][0]['front'])
    assert ds.frames(0, 'front') is first  # cached
    ds.frames(3, 'front')  # the third episode read: the least recently used (2) goes
    assert ds.frames(0, 'front') is first
    ds.frames(2, 'front')
    ds.frames(3, 'front')
    assert ds.frames(0, 'front') is not first  # evicted, decoded again
    np.testing.assert_array_equal(ds.frames(0, 'front'), first)
