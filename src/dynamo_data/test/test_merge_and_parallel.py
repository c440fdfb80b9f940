"""merge_datasets, convert_bags --jobs and --num-shards/--shard-index, and a bag that breaks half way through."""
import json
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the bag factory lives beside the tests
import _bag_factory_conversion as bf  # noqa: E402

from dynamo_data import DatasetWriter, LeRobotDataset  # noqa: E402
from dynamo_data.conversion.cli import main as convert_main  # noqa: E402
from dynamo_data.merge import main as merge_main  # noqa: E402


def _dataset(root, episodes, video=False, state=('a', 'b')):
    w = DatasetWriter(root, fps=10, robot_type='xarm7', cameras={'front': (16, 24, 3)},
                      arrays={'observation.state': list(state)}, video=video)
    for length, seed, task in episodes:
        rng = np.random.default_rng(seed)
        yy, xx = np.mgrid[0:16, 0:24]
        frames = np.stack([np.stack([xx * 4 + 9 * t + 30 * seed, yy * 6, xx + yy], -1) for t in range(length)])
        w.add_episode(frames={'front': frames.clip(0, 255).astype(np.uint8)},
                      arrays={'observation.state': rng.normal(size=(length, len(state)))}, task=task)
    return w.finalize()


def _assert_same_episodes(merged, sources):
    ds = LeRobotDataset(merged)
    pairs = [(LeRobotDataset(s), ep) for s in sources for ep in range(LeRobotDataset(s).num_episodes)]
    assert ds.num_episodes == len(pairs)
    for ep, (src, k) in enumerate(pairs):
        assert ds.task(ep) == src.task(k)
        np.testing.assert_array_equal(ds.array(ep, 'observation.state'), src.array(k, 'observation.state'))
        np.testing.assert_array_equal(ds.frames(ep, 'front'), src.frames(k, 'front'))
        for key, entry in ds.compute_episode_stats(ep).items():  # stored stats follow the renumbering
            lossy = ds.features[key]['dtype'] == 'video'  # stored: of the frames before encoding
            for name, value in entry.items():
                np.testing.assert_allclose(ds.episode_stats(ep)[key][name], value, rtol=1e-6,
                                           atol=0.05 if lossy else 1e-9, err_msg=f'{key}/{name}')
    tasks = pq.read_table(merged / 'data/chunk-000/file-000.parquet').column('task_index').to_numpy()
    assert tasks.max() < len({ds.task(ep) for ep in range(ds.num_episodes)})
    return ds


@pytest.mark.parametrize('video', [False, True])
def test_merge_datasets_joins_in_order_and_renumbers(tmp_path, video, capsys):
    a = _dataset(tmp_path / 'a', [(5, 0, 'open'), (3, 1, 'push')], video)
    b = _dataset(tmp_path / 'b', [(4, 2, 'push'), (6, 3, 'wipe')], video)
    assert merge_main([str(a), str(b), '--output', str(tmp_path / 'm'), '--no-progress']) == 0
    assert 'wrote' in capsys.readouterr().out
    ds = _assert_same_episodes(tmp_path / 'm', [a, b])
    assert [ds.task(i) for i in range(4)] == ['open', 'push', 'push', 'wipe']
    data = [pq.read_table(p) for p in sorted((tmp_path / 'm' / 'data').rglob('*.parquet'))]
    assert np.concatenate([t.column('index').to_numpy() for t in data]).tolist() == list(range(18))
    assert b'huggingface' in data[1].schema.metadata
    info = json.loads((tmp_path / 'm/meta/info.json').read_text())
    assert (info['total_episodes'], info['total_frames'], info['total_tasks']) == (4, 18, 3)
    stats = json.loads((tmp_path / 'm/meta/stats.json').read_text())
    assert stats['index']['max'] == [17] and stats['episode_index']['max'] == [3]
    assert stats['observation.images.front']['count'] == [18] and 'q99' in stats['observation.state']


def test_merge_refuses_different_features_naming_the_feature(tmp_path, capsys):
    a = _dataset(tmp_path / 'a', [(3, 0, 'x')])
    b = _dataset(tmp_path / 'b', [(3, 1, 'x')], state=('a', 'c'))
    assert merge_main([str(a), str(b), '--output', str(tmp_path / 'm'), '--no-progress']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "feature 'observation.state'" in err[0] and 'names' in err[0], err
    assert merge_main([str(a), str(a), '--output', str(a), '--no-progress']) == 1
    assert 'already exists' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ['a', 'b']


def _bags(tmp_path, count=3):
    return [bf.write_bag(tmp_path / f'bag{k}', bf.xarm_messages(12 + k, seed=k, task=f'task {k % 2}'))
            for k in range(count)]


def _convert(bags, out, *extra):
    cfg = bf.write_config(out.parent / 'cfg.yaml')
    return convert_main([str(b) for b in bags] + ['--config', str(cfg), '--output', str(out), '--no-progress',
                                                  *extra])


def test_jobs_and_shards_give_the_sequential_dataset(tmp_path):
    bags = _bags(tmp_path)
    assert _convert(bags, tmp_path / 'seq') == 0
    assert _convert(bags, tmp_path / 'par', '--jobs', '2') == 0
    _assert_same_episodes(tmp_path / 'par', [tmp_path / 'seq'])
    for i in range(2):
        assert _convert(bags, tmp_path / f'shard{i}', '--num-shards', '2', '--shard-index', str(i)) == 0
    assert [LeRobotDataset(tmp_path / f'shard{i}').num_episodes for i in range(2)] == [1, 2]
    assert merge_main([str(tmp_path / 'shard0'), str(tmp_path / 'shard1'), '--output', str(tmp_path / 'merged'),
                       '--no-progress']) == 0
    _assert_same_episodes(tmp_path / 'merged', [tmp_path / 'seq'])
    seq = json.loads((tmp_path / 'seq/meta/stats.json').read_text())
    par = json.loads((tmp_path / 'par/meta/stats.json').read_text())
    for key in seq:
        for name in seq[key]:
            np.testing.assert_allclose(par[key][name], seq[key][name], rtol=1e-9, atol=1e-12)


def test_shard_index_out_of_range_is_a_usage_error(tmp_path, capsys):
    bags = _bags(tmp_path, 1)
    assert pytest.raises(SystemExit, _convert, bags, tmp_path / 'o', '--num-shards', '2', '--shard-index',
                         '2').value.code == 2
    assert '--shard-index 2 must be below --num-shards 2' in capsys.readouterr().err


@pytest.mark.parametrize('jobs', ['1', '2'])
def test_a_bag_that_breaks_while_its_frames_stream_is_left_out_whole(tmp_path, jobs, capsys):
    """A camera message that cannot be decoded is met in the second pass, after rows of the bag were written."""
    good = bf.write_bag(tmp_path / 'good', bf.xarm_messages(12, seed=1, camera='png'))
    msgs = bf.xarm_messages(40, seed=2, camera='png')
    cams = [i for i, m in enumerate(msgs) if m[0].endswith('/compressed')]
    topic, msgtype, recv, msg = msgs[cams[30]]
    msg.data = np.frombuffer(b'\x89PNG\r\n\x1a\n' + b'\x00' * 64, dtype=np.uint8)  # a PNG cut off after its signature
    bad = bf.write_bag(tmp_path / 'bad', msgs)
    camera = {'front': {'topic': '/camera/color/image_raw/compressed'}}
    cfg = bf.write_config(tmp_path / 'cfg.yaml', {'cameras': camera})
    out = tmp_path / 'ds'
    rc = convert_main([str(bad), str(good), '--config', str(cfg), '--output', str(out), '--no-progress', '--skip-bad',
                       '--jobs', jobs])
    assert rc == 0
    assert str(bad) in capsys.readouterr().err
    ds = LeRobotDataset(out)
    assert list(ds.episode_lengths) == [12] and ds.total_frames == 12
    np.testing.assert_array_equal(ds.frames(0, 'front')[5], bf.scene_image(5))
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.')) == []
