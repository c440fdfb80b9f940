"""Training windows: consecutive frames of one episode, all cameras, cached once."""

import fcntl
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_data import DatasetWriter, LeRobotDataset  # noqa: E402
from dynamo_encoder.artifact import EncoderArtifact  # noqa: E402
from dynamo_encoder.pretraining.config import apply_overrides, load_config  # noqa: E402
from dynamo_encoder.pretraining.data import frame_cache_path, load_windows, open_frame_cache  # noqa: E402
from dynamo_encoder.pretraining.trainer import pretrain  # noqa: E402

torch.set_num_threads(1)

LENGTHS = [7, 5, 9]


def write_labelled_dataset(root, arrays=True):
    """Write frames whose pixels say (episode, frame index, camera), so windows can be checked exactly.

    With `arrays`, the dataset also has (random) state and action rows, as real datasets do.
    """
    rng = np.random.default_rng(0)
    features = {'observation.state': ['s0', 's1', 's2'], 'action': ['a0', 'a1']} if arrays else {}
    writer = DatasetWriter(root, fps=10, robot_type='test', cameras={'front': (16, 16, 3), 'wrist': (24, 24, 3)},
                           arrays=features, video=False)
    for episode, length in enumerate(LENGTHS):
        frames = {}
        for camera_index, (camera, size) in enumerate([('front', 16), ('wrist', 24)]):
            f = np.zeros((length, size, size, 3), np.uint8)
            f[..., 0] = 10 * episode
            f[..., 1] = 10 * np.arange(length)[:, None, None]
            f[..., 2] = 100 * camera_index
            frames[camera] = f
        writer.add_episode(frames=frames, task='t',
                           arrays={key: rng.normal(size=(length, len(names))).astype(np.float32)
                                   for key, names in features.items()})
    writer.finalize()
    return LeRobotDataset(root)


def windows_of(dataset, episodes, cameras, cache_dir):
    cache = open_frame_cache(dataset, cameras, (16, 16), cache_dir, progress=False)
    return load_windows(cache, dataset, episodes, window=4)


def test_windows_are_consecutive_frames_of_one_episode_for_every_camera(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    windows = windows_of(dataset, [0, 1, 2], ['front', 'wrist'], tmp_path / 'cache')
    assert len(windows) == sum(n - 4 + 1 for n in LENGTHS)
    assert windows.frames.dtype == torch.uint8 and windows.frames.shape == (sum(LENGTHS), 2, 16, 16, 3)
    batch = windows.batch(torch.arange(len(windows)))
    assert batch.shape == (len(windows), 4, 2, 16, 16, 3)
    centre = batch[:, :, :, 8, 8].int()          # (windows, T, views, rgb); the wrist view was resized 24 -> 16
    episodes, frame_values, cameras = centre[..., 0] // 10, centre[..., 1] // 10, centre[..., 2] // 100
    assert torch.all(episodes == episodes[:, :1])                                  # never crosses an episode
    assert torch.all(frame_values[:, 1:] - frame_values[:, :-1] == 1)               # consecutive frames
    assert torch.all(cameras == torch.tensor([0, 1]))                                # camera order kept
    starts = sorted(zip(episodes[:, 0, 0].tolist(), frame_values[:, 0, 0].tolist()))
    assert starts == [(e, f) for e, n in enumerate(LENGTHS) for f in range(n - 4 + 1)]


def test_a_dataset_without_state_or_action_gives_the_same_windows(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset', arrays=False)
    windows = windows_of(dataset, [0, 1, 2], ['front'], tmp_path / 'cache')
    assert windows.batch(torch.arange(len(windows))).shape == (len(windows), 4, 1, 16, 16, 3)


def test_no_episodes_give_an_empty_window_set(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    empty = windows_of(dataset, [], ['front', 'wrist'], tmp_path / 'cache')
    assert len(empty) == 0 and empty.batch(torch.zeros(0, dtype=torch.long)).shape == (0, 4, 2, 16, 16, 3)


def test_two_camera_run_exports_an_encoder_for_both_cameras(tmp_path):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=32, cameras=('front', 'wrist'))
    config = apply_overrides(load_config('cpu_small'), ['encoder.input_size=[32, 32]', 'optim.epochs=1',
                                                        'data.window=3', 'train.threads=1'])
    artifact = EncoderArtifact.load(pretrain(dataset, tmp_path / 'run', config, progress=False))
    assert artifact.camera_names == ['front', 'wrist'] and artifact.output_dim == 256
    frames = LeRobotDataset(dataset)
    embedding = artifact.encode({c: frames.frames(0, c)[0] for c in ('front', 'wrist')})
    assert embedding.shape == (256,) and np.isfinite(embedding).all()


def test_the_frame_cache_is_written_once_and_found_again(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    first = open_frame_cache(dataset, ['front', 'wrist'], (16, 16), tmp_path / 'cache', progress=False)
    written = first.path.stat().st_mtime_ns
    again = open_frame_cache(LeRobotDataset(dataset.root), ['front', 'wrist'], (16, 16), tmp_path / 'cache',
                             progress=False)
    assert again.path == first.path and again.path.stat().st_mtime_ns == written
    assert torch.equal(again.frames, first.frames) and list(first.offsets) == [0, 7, 12, 21]
    assert open_frame_cache(dataset, ['front', 'wrist'], (8, 8), tmp_path / 'cache', progress=False).path != first.path
    assert open_frame_cache(dataset, ['front'], (16, 16), tmp_path / 'cache', progress=False).path != first.path
    # A rewritten dataset is a new dataset: its frames are cached afresh.
    shutil.rmtree(dataset.root)
    rewritten = write_labelled_dataset(dataset.root)
    assert frame_cache_path(rewritten, ['front', 'wrist'], (16, 16), tmp_path / 'cache') != first.path
    assert sorted(p.suffix for p in (tmp_path / 'cache').iterdir()) == ['.lock'] * 3 + ['.npy'] * 3


def test_a_process_waits_for_the_writer_of_the_frame_cache_and_reads_its_file(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    path = frame_cache_path(dataset, ['front'], (16, 16), tmp_path / 'cache')
    path.parent.mkdir()
    opened = []
    with open(path.with_suffix('.lock'), 'w') as lock:   # another writer at work
        fcntl.flock(lock, fcntl.LOCK_EX)
        reader = threading.Thread(target=lambda: opened.append(
            open_frame_cache(dataset, ['front'], (16, 16), tmp_path / 'cache', progress=False)))
        reader.start()
        reader.join(timeout=1.0)
        assert reader.is_alive() and not path.exists()     # waits, writes nothing meanwhile
    reader.join(timeout=60)
    assert len(opened) == 1 and opened[0].path == path
    assert opened[0].frames.shape == (sum(LENGTHS), 1, 16, 16, 3)
    assert [p.name for p in path.parent.iterdir() if p.name.endswith('.tmp')] == []
