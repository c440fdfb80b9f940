"""Training windows: T consecutive frames of every camera, never crossing an episode boundary.

All frames are decoded once, resized to the encoder's input size with the encoder's own resize
function and kept in memory as one uint8 tensor per split, so an epoch decodes nothing. Windows
also carry the state and action rows of the same frames when the dataset has them (a few floats
per frame, so carrying them costs little next to the frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm import tqdm

from dynamo_data import DatasetError, LeRobotDataset

from ..model.encoder import resize_uint8_batch, to_channels_first

# Per-frame arrays a window can carry: its name in a window -> the dataset feature it is read from.
WINDOW_ARRAYS = {'state': 'observation.state', 'action': 'action'}


def split_episodes(num_episodes: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Episode-level train/validation split (validation empty when fraction is 0 or 1 episode)."""
    order = np.random.default_rng(seed).permutation(num_episodes)
    num_val = int(round(num_episodes * val_fraction))
    if val_fraction > 0 and num_episodes >= 2:
        num_val = min(max(num_val, 1), num_episodes - 1)
    else:
        num_val = 0
    return sorted(int(e) for e in order[num_val:]), sorted(int(e) for e in order[:num_val])


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
    if not cameras:
        if not dataset.camera_names:
            raise DatasetError(f'{dataset.root}: dataset has no camera features')
        return list(dataset.camera_names)
    missing = [c for c in cameras if c not in dataset.camera_names]
    if missing:
        raise DatasetError(f'{dataset.root}: camera(s) {missing} requested by data.cameras are not in the '
                           f'dataset (it has {dataset.camera_names or "no cameras"})')
    return list(cameras)


@dataclass
class WindowSet:
    """Frames of some episodes in memory plus the start index of every valid window."""

    frames: torch.Tensor        # uint8 (N, V, H, W, 3), episodes back to back
    starts: torch.Tensor        # int64 (num_windows,), index into frames of each window's first frame
    episodes: list[int]
    window: int
    # WINDOW_ARRAYS name -> float32 (N, D), row i belongs to frames[i]; only the arrays carried.
    arrays: dict[str, torch.Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.starts)

    def _frame_indices(self, window_indices: torch.Tensor) -> torch.Tensor:
        return self.starts[window_indices].unsqueeze(1) + torch.arange(self.window)

    def batch(self, window_indices: torch.Tensor) -> torch.Tensor:
        """(B,) CPU window indices -> uint8 (B, T, V, H, W, 3) on the device the frames live on."""
        return self.frames[self._frame_indices(window_indices).to(self.frames.device)]

    def batch_arrays(self, window_indices: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,) CPU window indices -> {name: float32 (B, T, D)} of the carried arrays, rows of the same
        frames as batch(); separate from batch() so steps that use frames only gather nothing more.
        """
        index = self._frame_indices(window_indices)
        return {name: values[index.to(values.device)] for name, values in self.arrays.items()}


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


def _episode_rows(dataset: LeRobotDataset, episodes: list[int], key: str) -> torch.Tensor:
    """float32 (N, D): the feature's rows of the episodes back to back, in the order of the cached frames."""
    rows = [dataset.array(episode, key) for episode in episodes]
    width = int(dataset.features[key]['shape'][0])
    return torch.from_numpy(np.concatenate(rows) if rows else np.zeros((0, width), np.float32))


def resolve_window_arrays(dataset: LeRobotDataset, arrays: list[str] | None) -> list[str]:
    """WINDOW_ARRAYS names to carry: None = every one the dataset has; a requested one it lacks is an error."""
    if arrays is None:
        return [name for name, key in WINDOW_ARRAYS.items() if key in dataset.array_keys]
    unknown = [name for name in arrays if name not in WINDOW_ARRAYS]
    if unknown:
        raise ValueError(f'window arrays {unknown} unknown; known: {sorted(WINDOW_ARRAYS)}')
    missing = [WINDOW_ARRAYS[name] for name in arrays if WINDOW_ARRAYS[name] not in dataset.array_keys]
    if missing:
        raise DatasetError(f'{dataset.root}: feature(s) {missing} requested for the training windows are not in '
                           f'the dataset (it has {dataset.array_keys or "no array features"})')
    return list(arrays)


def load_windows(dataset: LeRobotDataset, episodes: list[int], cameras: list[str], window: int,
                 input_size: tuple[int, int], progress: bool = True, what: str = 'frames', *,
                 arrays: list[str] | None = None) -> WindowSet:
    """Decode + resize the episodes' frames into one tensor and index every window of `window` frames.

    `arrays`: WINDOW_ARRAYS names the windows carry beside the frames (None = every one the dataset has).
    """
    lengths = dataset.episode_lengths
    for episode in episodes:
        if lengths[episode] < window:
            raise DatasetError(f'{dataset.root}: episode {episode} has {int(lengths[episode])} frames, '
                               f'shorter than the training window of {window} (data.window)')
    array_names = resolve_window_arrays(dataset, arrays)
    # Checked before the slow decode: a NaN would otherwise surface as a NaN loss far from its cause.
    check_arrays_finite(dataset, episodes, [WINDOW_ARRAYS[name] for name in array_names])
    carried = {name: _episode_rows(dataset, episodes, WINDOW_ARRAYS[name]) for name in array_names}
    chunks, starts, offset = [], [], 0
    for episode in tqdm(episodes, desc=f'caching {what}', unit='episode', disable=not progress, leave=False):
        chunks.append(_cache_episode(dataset, episode, cameras, input_size))
        length = int(lengths[episode])
        starts.append(torch.arange(offset, offset + length - window + 1))
        offset += length
    if not chunks:
        empty = torch.zeros((0, len(cameras), *input_size, 3), dtype=torch.uint8)
        return WindowSet(empty, torch.zeros(0, dtype=torch.long), [], window, carried)
    return WindowSet(torch.cat(chunks), torch.cat(starts), list(episodes), window, carried)
