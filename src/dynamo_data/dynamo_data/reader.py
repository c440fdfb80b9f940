"""Read a LeRobot v3 dataset (layout: see layout.py)."""
import io
from pathlib import Path

import numpy as np
import pyarrow as pa

from .layout import (
    CAMERA_PREFIX,
    CODEBASE_VERSION,
    INDEX_FEATURES,
    DatasetError,
    read_episodes,
    read_json,
    read_parquet,
    read_tasks,
)
from .video import decode_video


class LeRobotDataset:
    """Read a LeRobot v3 dataset written by DatasetWriter (or by LeRobot itself).

    Decoded camera frames are cached: each video file is decoded once, as a whole.
    """

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f'{self.root}: dataset directory does not exist')
        info_path = self.root / 'meta' / 'info.json'
        self.info = read_json(info_path)
        if self.info.get('codebase_version') != CODEBASE_VERSION:
            raise DatasetError(f"{info_path}: codebase_version {self.info.get('codebase_version')!r}, "
                               f"expected {CODEBASE_VERSION!r}")
        try:
            self.fps = self.info['fps']
            self.robot_type = self.info['robot_type']
            self.features = self.info['features']
            self._data_path = self.info['data_path']
            self._video_path = self.info.get('video_path')
        except KeyError as exc:
            raise DatasetError(f'{info_path}: missing key {exc}') from None
        self.camera_names = [k[len(CAMERA_PREFIX):] for k, v in self.features.items()
                             if k.startswith(CAMERA_PREFIX) and v.get('dtype') in ('image', 'video')]
        self.array_keys = [k for k, v in self.features.items()
                           if v.get('dtype') == 'float32' and k not in INDEX_FEATURES]
        stats_path = self.root / 'meta' / 'stats.json'
        self.stats = read_json(stats_path) if stats_path.exists() else {}
        self._tasks_by_index = {i: t for t, i in read_tasks(self.root).items()}
        self._episodes = read_episodes(self.root)
        self.num_episodes = len(self._episodes)
        if self.num_episodes == 0:
            raise DatasetError(f'{self.root}: dataset has no episodes')
        expected = np.arange(self.num_episodes)
        if not np.array_equal(self._episodes['episode_index'].to_numpy(), expected):
            raise DatasetError(f"{self.root / 'meta' / 'episodes'}: episode indices are not 0..{self.num_episodes - 1}")
        self.episode_lengths = self._episodes['length'].to_numpy(dtype=np.int64)
        self._arrays = {}  # (episode, key) -> float32 (T, D)
        self._rows = {}  # episode -> (data file path, row indices within that file)
        self._load_arrays()
        self._frame_cache = {}
        self._video_cache = {}

    # -- metadata -----------------------------------------------------------------------------
    def feature_names(self, key):
        if key not in self.features:
            raise DatasetError(f"{self.root}: no feature {key!r} (have {', '.join(self.features)})")
        return list(self.features[key].get('names') or [])

    def camera_shape(self, camera):
        return tuple(self.features[self._camera_key(camera)]['shape'])

    @property
    def total_frames(self):
        return int(self.episode_lengths.sum())

    def task(self, episode):
        self._check_episode(episode)
        tasks = list(self._episodes.at[episode, 'tasks'])
        if not tasks:
            raise DatasetError(f'{self.root}: episode {episode} has no task')
        return str(tasks[0])

    def _check_episode(self, episode):
        if not 0 <= int(episode) < self.num_episodes:
            raise DatasetError(f'{self.root}: episode {episode} out of range (0..{self.num_episodes - 1})')

    def _camera_key(self, camera):
        if camera not in self.camera_names:
            raise DatasetError(f"{self.root}: no camera {camera!r} (have {', '.join(self.camera_names) or 'none'})")
        return CAMERA_PREFIX + camera

    # -- arrays -------------------------------------------------------------------------------
    def _load_arrays(self):
        by_file = {}
        for ep, row in self._episodes.iterrows():
            path = self.root / self._data_path.format(chunk_index=int(row['data/chunk_index']),
                                                      file_index=int(row['data/file_index']))
            by_file.setdefault(path, []).append(ep)
        for path, episodes in by_file.items():
            table = read_parquet(path, columns=self.array_keys + list(INDEX_FEATURES))
            episode_column = table.column('episode_index').to_numpy()
            frame_column = table.column('frame_index').to_numpy()
            values = {}
            for key in self.array_keys:
                width = int(self.features[key]['shape'][0])
                flat = table.column(key).combine_chunks().flatten().to_numpy(zero_copy_only=False)
                values[key] = flat.astype(np.float32, copy=False).reshape(-1, width)
            for ep in episodes:
                rows = np.flatnonzero(episode_column == ep)
                rows = rows[np.argsort(frame_column[rows], kind='stable')]
                if len(rows) != self.episode_lengths[ep] or not np.array_equal(
                        frame_column[rows], np.arange(len(rows))):
                    expected = self.episode_lengths[ep]
                    raise DatasetError(f'{path}: episode {ep} has {len(rows)} frames with frame_index not '
                                       f'0..{expected - 1} (episodes metadata says {expected})')
                self._rows[ep] = (path, rows)
                for key in self.array_keys:
                    self._arrays[(ep, key)] = values[key][rows]

    def array(self, episode, key):
        self._check_episode(episode)
        if key not in self.array_keys:
            raise DatasetError(f"{self.root}: no array feature {key!r} (have {', '.join(self.array_keys)})")
        return self._arrays[(int(episode), key)]

    # -- cameras ------------------------------------------------------------------------------
    def frames(self, episode, camera):
        """uint8 (T, H, W, 3) frames of one episode (read-only view into the decoded cache)."""
        self._check_episode(episode)
        key = self._camera_key(camera)
        cached = self._frame_cache.get((int(episode), camera))
        if cached is not None:
            return cached
        if self.features[key]['dtype'] == 'video':
            frames = self._video_frames(int(episode), key)
        else:
            frames = self._image_frames(int(episode), key)
        frames.flags.writeable = False
        self._frame_cache[(int(episode), camera)] = frames
        return frames

    def _image_frames(self, episode, key):
        from PIL import Image

        path, rows = self._rows[episode]
        column = read_parquet(path, columns=[key]).column(key).combine_chunks()
        png_bytes = column.field('bytes').take(pa.array(rows))
        h, w, c = self.features[key]['shape']
        out = np.empty((len(rows), h, w, c), dtype=np.uint8)
        for i, data in enumerate(png_bytes.to_pylist()):
            if data is None:
                raise DatasetError(f'{path}: {key} frame {i} of episode {episode} has no image bytes')
            with Image.open(io.BytesIO(data)) as img:
                image = np.asarray(img.convert('RGB'))
            if image.shape != (h, w, c):
                raise DatasetError(f'{path}: {key} frame {i} of episode {episode} is {image.shape}, '
                                   f'expected {(h, w, c)}')
            out[i] = image
        return out

    def _video_frames(self, episode, key):
        row = self._episodes.loc[episode]
        try:
            chunk, file = int(row[f'videos/{key}/chunk_index']), int(row[f'videos/{key}/file_index'])
            start_ts = float(row[f'videos/{key}/from_timestamp'])
        except KeyError as exc:
            raise DatasetError(f'{self.root}: episodes metadata lacks {exc} for video feature {key}') from None
        path = self.root / self._video_path.format(video_key=key, chunk_index=chunk, file_index=file)
        decoded = self._video_cache.get(path)
        if decoded is None:
            decoded = self._video_cache[path] = decode_video(path, tuple(self.features[key]['shape']), self.fps)
        start = int(round(start_ts * self.fps))
        length = int(self.episode_lengths[episode])
        if start + length > len(decoded):
            raise DatasetError(f'{path}: has {len(decoded)} frames, episode {episode} needs frames '
                               f'{start}..{start + length - 1}')
        return decoded[start:start + length]
