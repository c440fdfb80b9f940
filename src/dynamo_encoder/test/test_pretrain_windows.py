"""Training windows: consecutive frames of one episode, all cameras, episode-level split, cached once."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_data import DatasetError, DatasetWriter, LeRobotDataset  # noqa: E402
from dynamo_encoder.artifact import EncoderArtifact  # noqa: E402
from dynamo_encoder.pretraining.config import apply_overrides, load_config  # noqa: E402
from dynamo_encoder.pretraining.data import load_windows, split_episodes  # noqa: E402
from dynamo_encoder.pretraining.trainer import pretrain  # noqa: E402

torch.set_num_threads(1)

LENGTHS = [7, 5, 9]


def write_labelled_dataset(root, arrays=True):
    """Every frame's pixels say (episode, frame index, camera) so windows can be checked exactly; the
    state/action rows (when `arrays`) are random, so only the rows of the right frames match them.
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


def window_origins(batch):
    """(episode, first frame index) of each window of a batch, read from the labelled pixels."""
    centre = batch[:, 0, 0, 8, 8].int()
    return list(zip((centre[:, 0] // 10).tolist(), (centre[:, 1] // 10).tolist()))


def test_windows_are_consecutive_frames_of_one_episode_for_every_camera(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    windows = load_windows(dataset, [0, 1, 2], ['front', 'wrist'], window=4, input_size=(16, 16), progress=False)
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


def test_windows_carry_the_state_and_action_rows_of_their_frames(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    windows = load_windows(dataset, [2, 0], ['front'], window=4, input_size=(16, 16), progress=False)
    indices = torch.arange(len(windows)).flip(0)  # any order: rows follow the windows, not the cache
    arrays = windows.batch_arrays(indices)
    assert sorted(arrays) == ['action', 'state']
    assert arrays['state'].dtype == torch.float32 and arrays['state'].shape == (len(windows), 4, 3)
    assert arrays['action'].shape == (len(windows), 4, 2)
    origins = window_origins(windows.batch(indices))
    assert sorted(origins) == [(e, f) for e in (0, 2) for f in range(LENGTHS[e] - 4 + 1)]
    for row, (episode, first) in enumerate(origins):
        frames = slice(first, first + 4)
        assert np.array_equal(arrays['state'][row].numpy(), dataset.array(episode, 'observation.state')[frames])
        assert np.array_equal(arrays['action'][row].numpy(), dataset.array(episode, 'action')[frames])


def test_windows_carry_only_the_requested_arrays(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset')
    windows = load_windows(dataset, [0], ['front'], window=4, input_size=(16, 16), progress=False, arrays=['action'])
    assert list(windows.batch_arrays(torch.arange(len(windows)))) == ['action']
    assert load_windows(dataset, [0], ['front'], window=4, input_size=(16, 16), progress=False, arrays=[]).arrays == {}
    empty = load_windows(dataset, [], ['front'], window=4, input_size=(16, 16), progress=False)
    assert empty.arrays['state'].shape == (0, 3) and empty.arrays['action'].shape == (0, 2)


def test_a_dataset_without_state_or_action_gives_frame_only_windows(tmp_path):
    dataset = write_labelled_dataset(tmp_path / 'dataset', arrays=False)
    windows = load_windows(dataset, [0, 1, 2], ['front'], window=4, input_size=(16, 16), progress=False)
    assert windows.arrays == {} and windows.batch_arrays(torch.arange(len(windows))) == {}
    assert windows.batch(torch.arange(len(windows))).shape == (len(windows), 4, 1, 16, 16, 3)
    with pytest.raises(DatasetError, match=r"feature\(s\) \['action'\] requested .* \(it has no array features\)"):
        load_windows(dataset, [0], ['front'], window=4, input_size=(16, 16), progress=False, arrays=['action'])


def test_split_is_by_episode_and_deterministic():
    train, val = split_episodes(20, 0.1, seed=3)
    assert sorted(train + val) == list(range(20)) and len(val) == 2
    assert (train, val) == split_episodes(20, 0.1, seed=3)
    assert split_episodes(1, 0.1, seed=0) == ([0], [])
    assert split_episodes(5, 0.0, seed=0) == ([0, 1, 2, 3, 4], [])


def test_two_camera_run_exports_an_encoder_for_both_cameras(tmp_path):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=32, cameras=('front', 'wrist'))
    config = apply_overrides(load_config('cpu_small'), ['encoder.input_size=[32, 32]', 'optim.epochs=1',
                                                        'data.window=3', 'train.threads=1'])
    artifact = EncoderArtifact.load(pretrain(dataset, tmp_path / 'run', config, progress=False))
    assert artifact.camera_names == ['front', 'wrist'] and artifact.output_dim == 256
    frames = LeRobotDataset(dataset)
    embedding = artifact.encode({c: frames.frames(0, c)[0] for c in ('front', 'wrist')})
    assert embedding.shape == (256,) and np.isfinite(embedding).all()
