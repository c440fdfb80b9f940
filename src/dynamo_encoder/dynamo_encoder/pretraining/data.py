"""Training windows: T consecutive frames of every camera, never crossing an episode boundary.

Every frame is decoded once, resized to the encoder's input size with the encoder's own resize
function and written to a frame cache file, which training memory-maps: an epoch decodes nothing,
and a dataset larger than memory trains from the page cache. The file holds every episode of the
dataset (both splits) and is found again by the dataset's fingerprint, the cameras and the input
size, so later runs, other splits and the other ranks of a distributed run reuse it. One process
writes it (atomically, under a file lock); the others wait for it and then read it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from dynamo_data import DatasetError, LeRobotDataset
from dynamo_data.atomic import atomic_open

from ..model.encoder import resize_uint8_batch, to_channels_first
from .config import ConfigError

# Part of every cache key: bump when the decoded layout or the resize changes, so old files are not reused.
CACHE_FORMAT = 1
# The dataset reader keeps what it decoded; a fresh reader per this many bytes of decoded source
# frames bounds the memory of building the cache of a dataset larger than memory.
READER_BYTES = 256 * 2**20


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


def default_cache_dir() -> Path:
    """Return where frame caches live unless data.cache_dir says otherwise: $XDG_CACHE_HOME/dynamo_ros/frames."""
    base = os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache'
    return Path(base) / 'dynamo_ros' / 'frames'


def dataset_fingerprint(root: Path) -> str:
    """Return a hash of the dataset's files (relative path, size, modification time): rewriting any changes it."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(root).rglob('*') if p.is_file()):
        stat = path.stat()
        digest.update(f'{path.relative_to(root).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n'.encode())
    return digest.hexdigest()


@dataclass
class FrameCache:
    """Every frame of a dataset, resized, memory-mapped read-only: uint8 (N, V, H, W, 3), episodes back to back."""

    frames: torch.Tensor
    offsets: np.ndarray          # (episodes + 1,) index of each episode's first frame, then N
    path: Path


def _resized_episode(dataset: LeRobotDataset, episode: int, cameras: list[str],
                     input_size: tuple[int, int]) -> np.ndarray:
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
    return torch.stack(views, dim=1).numpy()  # (T, V, H, W, 3)


def _write_cache(dataset: LeRobotDataset, cameras: list[str], input_size: tuple[int, int], path: Path,
                 progress: bool) -> None:
    lengths = dataset.episode_lengths
    shape = (int(lengths.sum()), len(cameras), *input_size, 3)
    source_bytes_per_frame = sum(int(np.prod(dataset.camera_shape(c))) for c in cameras)
    with atomic_open(path, 'wb') as file:
        np.lib.format.write_array_header_1_0(file, {'descr': '|u1', 'fortran_order': False, 'shape': shape})
        reader, decoded = LeRobotDataset(dataset.root), 0   # not the caller's reader, which lives on
        bar = tqdm(total=int(np.prod(shape)), desc=f'caching frames in {path.name}', unit='B', unit_scale=True,
                   disable=not progress, leave=False)
        with bar:
            for episode in range(dataset.num_episodes):
                if decoded > READER_BYTES:
                    reader, decoded = LeRobotDataset(dataset.root), 0
                frames = _resized_episode(reader, episode, cameras, input_size)
                decoded += int(lengths[episode]) * source_bytes_per_frame
                file.write(frames.tobytes())
                bar.update(frames.nbytes)


def frame_cache_path(dataset: LeRobotDataset, cameras: list[str], input_size: tuple[int, int],
                     cache_dir: str | os.PathLike | None = None) -> Path:
    """Return the frame cache file of the dataset (as its files are now), cameras and input size.

    Its writer holds an exclusive lock (flock) on the same path with the suffix .lock.
    """
    key = json.dumps({'format': CACHE_FORMAT, 'dataset': dataset_fingerprint(dataset.root), 'cameras': cameras,
                      'input_size': list(input_size)})
    name = f'frames-{input_size[0]}x{input_size[1]}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy'
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / name


def open_frame_cache(dataset: LeRobotDataset, cameras: list[str], input_size: tuple[int, int],
                     cache_dir: str | os.PathLike | None = None, progress: bool = True) -> FrameCache:
    """Return the dataset's frame cache for these cameras and input size, writing it first if no process has."""
    path = frame_cache_path(dataset, cameras, input_size, cache_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix('.lock'), 'w') as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if progress:
                    print(f'pretrain: waiting for another process to finish the frame cache {path}', flush=True)
                fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                _write_cache(dataset, cameras, input_size, path, progress)
            # Read-only, shared: not counted by RLIMIT_DATA and backed by the page cache, not process memory.
            frames = np.load(path, mmap_mode='r')
    except OSError as exc:
        raise OSError(f'frame cache {path}: {exc.strerror or exc} (data.cache_dir sets where caches live)') from None
    expected = (int(dataset.episode_lengths.sum()), len(cameras), *input_size, 3)
    if frames.shape != expected or frames.dtype != np.uint8:
        raise DatasetError(f'{path}: frame cache holds {frames.dtype} {frames.shape}, expected uint8 {expected}; '
                           f'remove it to rebuild')
    with warnings.catch_warnings():
        # The mapping is read-only and only ever gathered from (a copy), never written through.
        warnings.filterwarnings('ignore', message='The given NumPy array is not writable')
        tensor = torch.from_numpy(frames)
    offsets = np.concatenate([[0], np.cumsum(dataset.episode_lengths)]).astype(np.int64)
    return FrameCache(tensor, offsets, path)


@dataclass
class WindowSet:
    """Windows of some episodes: the frame cache plus the first frame of every valid window."""

    frames: torch.Tensor        # uint8 (N, V, H, W, 3), the whole frame cache
    starts: torch.Tensor        # int64 (num_windows,), index into frames of each window's first frame
    episodes: list[int]
    window: int

    def __len__(self) -> int:
        return len(self.starts)

    def batch(self, window_indices: torch.Tensor) -> torch.Tensor:
        """Gather (B,) window indices as uint8 (B, T, V, H, W, 3) in ordinary (not mapped) CPU memory."""
        frame_indices = self.starts[window_indices].unsqueeze(1) + torch.arange(self.window)
        return self.frames[frame_indices]


def load_windows(cache: FrameCache, dataset: LeRobotDataset, episodes: list[int], window: int) -> WindowSet:
    """Index every window of `window` frames of the episodes in the frame cache."""
    lengths = dataset.episode_lengths
    for episode in episodes:
        if lengths[episode] < window:
            raise DatasetError(f'{dataset.root}: episode {episode} has {int(lengths[episode])} frames, '
                               f'shorter than the training window of {window} (data.window)')
    starts = [torch.arange(int(cache.offsets[e]), int(cache.offsets[e]) + int(lengths[e]) - window + 1)
              for e in episodes]
    starts = torch.cat(starts) if starts else torch.zeros(0, dtype=torch.long)
    return WindowSet(cache.frames, starts, list(episodes), window)
