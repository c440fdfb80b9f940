"""Read a LeRobot v3 dataset (layout: see layout.py)."""
import io
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .layout import (
    CAMERA_PREFIX,
    CODEBASE_VERSION,
    INDEX_FEATURES,
    DatasetError,
    read_episode_rows,
    read_episodes,
    read_json,
    read_tasks,
)
from .stats import ImageStats, array_stats, stats_frame_indices, stats_from_columns
from .video import decode_video

# Decoded camera frames kept for repeated reads, at most this many bytes (least recently used go first).
FRAME_CACHE_BYTES = 256 * 2**20
# Episodes whose arrays are kept (they are small: frames x elements x 4 bytes).
_ARRAY_CACHE_EPISODES = 4096


class _LRU:
    """A dict that forgets its least recently used entries beyond `capacity` (counted with `size`)."""

    def __init__(self, capacity, size=lambda value: 1):
        self._items = OrderedDict()
        self._capacity, self._size, self._used = capacity, size, 0

    def get(self, key):
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key, value):
        self._items[key] = value
        self._used += self._size(value)
        while self._used > self._capacity and len(self._items) > 1:
            _, old = self._items.popitem(last=False)
            self._used -= self._size(old)


class LeRobotDataset:
    """Read a LeRobot v3 dataset written by DatasetWriter (or by LeRobot itself).

    Reading an episode reads only the parquet row groups that hold it and, for video, decodes only its
    frames (from the key frame before them): its cost and memory do not depend on the dataset's size.
    Opening reads the metadata and each data file's footer. Decoded frames are cached up to
    `frame_cache_bytes` (least recently used first out); an episode larger than that is not cached.
    """

    def __init__(self, root, frame_cache_bytes=FRAME_CACHE_BYTES):
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
        # episodes are read by position; a part that DatasetWriter wrote with offsets numbers them from its offset
        self._first_episode = int(self._episodes['episode_index'].iloc[0]) if self.num_episodes else 0
        expected = self._first_episode + np.arange(self.num_episodes)
        if not np.array_equal(self._episodes['episode_index'].to_numpy(), expected):
            raise DatasetError(f"{self.root / 'meta' / 'episodes'}: episode indices are not consecutive "
                               f"({self._first_episode}..{self._first_episode + self.num_episodes - 1})")
        self.episode_lengths = self._episodes['length'].to_numpy(dtype=np.int64)
        self._files = {}  # data file -> (parquet metadata, [(first index, last index)] per row group)
        for ep in range(self.num_episodes):
            path = self._data_file(ep)
            if path not in self._files:
                self._files[path] = _row_group_ranges(path)
        self._arrays = _LRU(_ARRAY_CACHE_EPISODES)
        self._frames = _LRU(frame_cache_bytes, size=lambda frames: frames.nbytes)
        self._frame_cache_bytes = frame_cache_bytes
        self._episode_stats = None

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

    def episode_stats(self, episode):
        """Return the statistics stored for one episode, {feature: {stat: array}} ({} if it has none)."""
        self._check_episode(episode)
        if self._episode_stats is None:
            self._episode_stats = [stats_from_columns(row) for row in read_episode_rows(self.root)]
        return self._episode_stats[int(episode)]

    def compute_episode_stats(self, episode):
        """Return one episode's statistics computed from its data (what the writer stores for it)."""
        self._check_episode(episode)
        length = int(self.episode_lengths[episode])
        stats = {}
        for camera in self.camera_names:
            image_stats = ImageStats(length)
            sample = stats_frame_indices(length)
            for i, frame in zip(sample, self.frames_at(episode, camera, sample)):
                image_stats.add(int(i), frame)
            stats[CAMERA_PREFIX + camera] = image_stats.result()
        table = self._episode_table(int(episode), self.array_keys + list(INDEX_FEATURES))
        for key in self.array_keys:
            stats[key] = array_stats(self._column_values(table, key))
        for key in INDEX_FEATURES:
            stats[key] = array_stats(table.column(key).to_numpy())
        return stats

    def _check_episode(self, episode):
        if not 0 <= int(episode) < self.num_episodes:
            raise DatasetError(f'{self.root}: episode {episode} out of range (0..{self.num_episodes - 1})')

    def _camera_key(self, camera):
        if camera not in self.camera_names:
            raise DatasetError(f"{self.root}: no camera {camera!r} (have {', '.join(self.camera_names) or 'none'})")
        return CAMERA_PREFIX + camera

    # -- rows ---------------------------------------------------------------------------------
    def _data_file(self, episode):
        row = self._episodes.loc[episode]
        return self.root / self._data_path.format(chunk_index=int(row['data/chunk_index']),
                                                  file_index=int(row['data/file_index']))

    def _episode_table(self, episode, columns, frames=None):
        """Return the episode's rows (all, or the given frame indices), ordered by frame_index."""
        path = self._data_file(episode)
        metadata, ranges = self._files[path]
        first = int(self._episodes.at[episode, 'dataset_from_index'])
        length = int(self.episode_lengths[episode])
        wanted = first + (np.arange(length) if frames is None else np.asarray(frames, dtype=np.int64))
        ordered = np.sort(wanted)
        groups = [g for g, (a, b) in enumerate(ranges)  # those holding a wanted row (all, without statistics)
                  if a is None or np.searchsorted(ordered, a) < np.searchsorted(ordered, b, side='right')]
        read = list(dict.fromkeys([*columns, 'index', 'frame_index', 'episode_index']))
        try:
            table = pq.ParquetFile(path, metadata=metadata).read_row_groups(groups, columns=read)
        except (OSError, pa.ArrowException, KeyError) as exc:
            raise DatasetError(f'{path}: cannot read episode {episode}: {exc}') from exc
        table = table.filter(pc.is_in(table.column('index'), pa.array(wanted)))
        table = table.take(pc.sort_indices(table, [('frame_index', 'ascending')]))
        frame_index = table.column('frame_index').to_numpy()
        if not np.array_equal(frame_index, wanted - first) or np.any(table.column('episode_index').to_numpy()
                                                                       != self._first_episode + episode):
            raise DatasetError(f'{path}: episode {episode} rows {first}..{first + length - 1} do not hold its '
                               f'frames 0..{length - 1} (episodes metadata and data disagree)')
        return table

    def _column_values(self, table, key):
        column = table.column(key).combine_chunks()
        if pa.types.is_list(column.type) or pa.types.is_fixed_size_list(column.type):
            column = column.flatten()
        width = int(self.features[key]['shape'][0])
        return column.to_numpy(zero_copy_only=False).astype(np.float32, copy=False).reshape(-1, width)

    # -- arrays -------------------------------------------------------------------------------
    def array(self, episode, key):
        """Return float32 (T, D) values of one array feature of one episode."""
        self._check_episode(episode)
        if key not in self.array_keys:
            raise DatasetError(f"{self.root}: no array feature {key!r} (have {', '.join(self.array_keys)})")
        arrays = self._arrays.get(int(episode))
        if arrays is None:
            table = self._episode_table(int(episode), self.array_keys)
            arrays = {k: self._column_values(table, k) for k in self.array_keys}
            self._arrays.put(int(episode), arrays)
        return arrays[key]

    # -- cameras ------------------------------------------------------------------------------
    def frames(self, episode, camera):
        """Return uint8 (T, H, W, 3) frames of one episode (read-only; cached while they fit the cache)."""
        self._check_episode(episode)
        key = self._camera_key(camera)
        cached = self._frames.get((int(episode), camera))
        if cached is not None:
            return cached
        frames = self._read_frames(int(episode), key, None)
        frames.flags.writeable = False
        if frames.nbytes <= self._frame_cache_bytes:
            self._frames.put((int(episode), camera), frames)
        return frames

    def frames_at(self, episode, camera, indices):
        """Return uint8 (len(indices), H, W, 3): the frames of one episode at the given frame indices (uncached)."""
        self._check_episode(episode)
        key = self._camera_key(camera)
        indices = np.asarray(indices, dtype=np.int64)
        length = int(self.episode_lengths[episode])
        if indices.size and (indices.min() < 0 or indices.max() >= length):
            raise DatasetError(f'{self.root}: episode {episode} has frames 0..{length - 1}, not {indices.tolist()}')
        return self._read_frames(int(episode), key, indices)

    def _read_frames(self, episode, key, indices):
        if self.features[key]['dtype'] == 'video':
            return self._video_frames(episode, key, indices)
        return self._image_frames(episode, key, indices)

    def _image_frames(self, episode, key, indices):
        from PIL import Image

        path = self._data_file(episode)
        order = None if indices is None else np.unique(indices, return_inverse=True)
        table = self._episode_table(episode, [key], None if order is None else order[0])
        h, w, c = self.features[key]['shape']
        out = np.empty((table.num_rows, h, w, c), dtype=np.uint8)
        frame_index = table.column('frame_index').to_numpy()
        for i, data in enumerate(table.column(key).combine_chunks().field('bytes').to_pylist()):
            if data is None:
                raise DatasetError(f'{path}: {key} frame {frame_index[i]} of episode {episode} has no image bytes')
            try:
                with Image.open(io.BytesIO(data)) as img:
                    image = np.asarray(img.convert('RGB'))
            except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
                raise DatasetError(f'{path}: {key} frame {frame_index[i]} of episode {episode} is not a readable '
                                   f'image: {exc}') from None
            if image.shape != (h, w, c):
                raise DatasetError(f'{path}: {key} frame {frame_index[i]} of episode {episode} is {image.shape}, '
                                   f'expected {(h, w, c)}')
            out[i] = image
        return out if order is None else out[order[1]]

    def _video_frames(self, episode, key, indices):
        row = self._episodes.loc[episode]
        try:
            chunk, file = int(row[f'videos/{key}/chunk_index']), int(row[f'videos/{key}/file_index'])
            start_ts = float(row[f'videos/{key}/from_timestamp'])
        except KeyError as exc:
            raise DatasetError(f'{self.root}: episodes metadata lacks {exc} for video feature {key}') from None
        path = self.root / self._video_path.format(video_key=key, chunk_index=chunk, file_index=file)
        shape = tuple(self.features[key]['shape'])
        start = int(round(start_ts * self.fps))
        if indices is None:
            return decode_video(path, shape, self.fps, start, int(self.episode_lengths[episode]))
        out = np.empty((len(indices), *shape), dtype=np.uint8)
        for i, frame in enumerate(indices):
            out[i] = decode_video(path, shape, self.fps, start + int(frame), 1)[0]
        return out


def _row_group_ranges(path):
    """Return a data file's parquet metadata and each row group's (first, last) `index` (None when not recorded)."""
    try:
        metadata = pq.read_metadata(path)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing') from None
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f'{path}: cannot read parquet: {exc}') from exc
    leaves = [metadata.schema.column(i).path for i in range(metadata.num_columns)]
    column = leaves.index('index') if 'index' in leaves else None
    ranges = []
    for g in range(metadata.num_row_groups):
        stats = metadata.row_group(g).column(column).statistics if column is not None else None
        ranges.append((int(stats.min), int(stats.max)) if stats is not None and stats.has_min_max else (None, None))
    return metadata, ranges
