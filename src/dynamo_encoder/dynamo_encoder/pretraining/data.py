"""Training windows: T consecutive frames of every camera, never crossing an episode boundary.

All frames are decoded once, resized to the encoder's input size with the encoder's own resize
function and kept in memory as one uint8 tensor per split, so an epoch decodes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from dynamo_data import DatasetError, LeRobotDataset

from ..model.encoder import resize_uint8_batch, to_channels_first
from .config import ConfigError


def check_arrays_finite(dataset: LeRobotDataset, episodes: list[int], keys: list[str]) -> None:
    """Raise DatasetError naming the key, episode and frame of the first NaN/inf value."""
    for episode in episodes:
        for key in keys:
            values = dataset.array(episode, key)
            bad = ~np.isfinite(values)
            if bad.any():
                frame = int(np.argwhere(bad)[0][0])
                raise DatasetError(f'{dataset.root}: {key!r} of episode {episode} has NaN/inf values '
                                   f'(first at frame {frame})')


def resolve_cameras(dataset: LeRobotDataset, cameras: list[str] | None) -> list[str]:
    """Return the cameras to train on: data.cameras (ConfigError if the dataset lacks one), else all of them."""
    if not cameras:
        if not dataset.camera_names:
            raise DatasetError(f'{dataset.root}: dataset has no camera features')
        return list(dataset.camera_names)
    missing = [c for c in cameras if c not in dataset.camera_names]
    if missing:
        raise ConfigError(f'{dataset.root}: camera(s) {missing} requested by data.cameras are not in the '
                          f'dataset (it has {dataset.camera_names or "no cameras"})')
    return list(cameras)


@dataclass
class WindowSet:
    """Frames of some episodes in memory plus the start index of every valid window."""

    frames: torch.Tensor        # uint8 (N, V, H, W, 3), episodes back to back
    starts: torch.Tensor        # int64 (num_windows,), index into frames of each window's first frame
    episodes: list[int]
    window: int

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, window_indices: torch.Tensor) -> torch.Tensor:
        """Gather (B,) CPU window indices as uint8 (B, T, V, H, W, 3) on the device the frames live on."""
        frame_indices = self.starts[window_indices].unsqueeze(1) + torch.arange(self.window)
        return self.frames[frame_indices.to(self.frames.device)]


def _cache_episode(dataset: LeRobotDataset, episode: int, cameras: list[str],
                   input_size: tuple[int, int]) -> torch.Tensor:
    views = []
    for camera in cameras:
        frames = torch.from_numpy(np.array(dataset.frames(episode, camera)))  # writable copy for torch
        if tuple(frames.shape[1:3]) != tuple(input_size):
            chunks = []
            for start in range(0, len(frames), 256):  # bounded memory for the float copy
                x = resize_uint8_batch(to_channels_first(frames[start:start + 256]).float(), input_size)
                chunks.append(x.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
            frames = torch.cat(chunks)
        views.append(frames)
    return torch.stack(views, dim=1)  # (T, V, H, W, 3)


def load_windows(dataset: LeRobotDataset, episodes: list[int], cameras: list[str], window: int,
                 input_size: tuple[int, int], progress: bool = True, what: str = 'frames') -> WindowSet:
    """Decode + resize the episodes' frames into one tensor and index every window of `window` frames."""
    lengths = dataset.episode_lengths
    for episode in episodes:
        if lengths[episode] < window:
            raise DatasetError(f'{dataset.root}: episode {episode} has {int(lengths[episode])} frames, '
                               f'shorter than the training window of {window} (data.window)')
    chunks, starts, offset = [], [], 0
    for episode in tqdm(episodes, desc=f'caching {what}', unit='episode', disable=not progress, leave=False):
        chunks.append(_cache_episode(dataset, episode, cameras, input_size))
        length = int(lengths[episode])
        starts.append(torch.arange(offset, offset + length - window + 1))
        offset += length
    if not chunks:
        empty = torch.zeros((0, len(cameras), *input_size, 3), dtype=torch.uint8)
        return WindowSet(empty, torch.zeros(0, dtype=torch.long), [], window)
    return WindowSet(torch.cat(chunks), torch.cat(starts), list(episodes), window)
