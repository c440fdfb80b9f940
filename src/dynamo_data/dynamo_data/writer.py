"""Write (or append to) a LeRobot v3 dataset, episode by episode (layout: see layout.py).

The writer streams episodes into a temporary directory beside the target and moves it into place
in `finalize()`, so an interrupted run never leaves a half dataset. Appending writes the new
episodes into new data/video files (file index + 1), which the v3 layout supports natively, so
existing video is never re-encoded.

Camera frames stream through: an episode's frames may come from any iterable (a bag being decoded),
and only a bounded window of frames and encoded PNGs is in memory at a time, whatever the length.
"""
import json
import math
import os
import shutil
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .layout import (
    CAMERA_PREFIX,
    CHUNKS_SIZE,
    CODEBASE_VERSION,
    DATA_FILES_SIZE_IN_MB,
    DATA_PATH,
    EPISODES_PATH,
    INDEX_FEATURES,
    VIDEO_FILES_SIZE_IN_MB,
    VIDEO_PATH,
    DatasetError,
    chunk_file,
    hf_features,
    read_episode_rows,
    read_json,
    read_tasks,
    write_episodes,
    write_json,
)
from .png import PNG_THREADS, encode_png
from .reader import LeRobotDataset
from .stats import (
    STATS_COLUMN_PREFIX,
    ImageStats,
    aggregate_stats,
    array_stats,
    stats_columns,
    stats_from_columns,
    stats_to_json,
)
from .video import VIDEO_CODEC_NAME, VideoFile, pixel_format

# Files the writer regenerates on every finalize; everything else in an existing dataset is kept.
_GENERATED_META = ('meta/info.json', 'meta/stats.json', 'meta/tasks.parquet')
# Image rows per parquet write (one row group): the PNG bytes of a batch stay far below arrow's
# 2 GiB binary-array limit and in memory only until written.
_PNG_ROWS_PER_WRITE = 64
# Frames handed to the PNG threads ahead of the parquet writes, per thread: enough to keep every
# thread busy while a batch is written, few enough that memory does not grow with the episode.
_FRAMES_IN_FLIGHT_PER_THREAD = 8


def _image_column(pngs, first_frame):
    """LeRobot's "image" feature column: a struct of the PNG bytes and the frame's file name (as LeRobot's)."""
    paths = [f'frame-{i:06d}.png' for i in range(first_frame, first_frame + len(pngs))]
    return pa.StructArray.from_arrays([pa.array(pngs, type=pa.binary()), pa.array(paths, type=pa.string())],
                                      names=['bytes', 'path'])


def _array_column(values):
    """Return a float32 (T, D) array as its data column: fixed-size lists, a plain column when D is 1 (as LeRobot)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    if values.shape[1] == 1:
        return pa.array(values[:, 0])
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def _leaf_paths(schema):
    """Parquet column paths of an arrow schema (struct children, list elements) for per-column options."""
    def walk(name, typ):
        if pa.types.is_struct(typ):
            return [p for i in range(typ.num_fields) for p in walk(f'{name}.{typ.field(i).name}', typ.field(i).type)]
        if pa.types.is_list(typ) or pa.types.is_fixed_size_list(typ) or pa.types.is_large_list(typ):
            return walk(f'{name}.list.element', typ.value_type)
        return [name]
    return [p for field in schema for p in walk(field.name, field.type)]


def open_data_parquet(path, schema):
    """Open a data parquet file for writing with `schema` (its metadata included)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # PNG bytes are already compressed: snappy on them only costs time
    # (and a dictionary of distinct frames is pointless)
    leaves = _leaf_paths(schema)
    codecs = {leaf: 'NONE' if leaf.startswith(CAMERA_PREFIX) else 'SNAPPY' for leaf in leaves}
    dictionary = [leaf for leaf in leaves if not leaf.startswith(CAMERA_PREFIX)]
    return pq.ParquetWriter(path, schema, compression=codecs, use_dictionary=dictionary)


def remove_stale_partials(root):
    """Remove the temp dirs of writers killed without a chance to clean up (their process no longer exists)."""
    for path in root.parent.glob(f'.{root.name}.partial-*'):
        try:
            pid = int(path.name.rsplit('-', 2)[-2])
            os.kill(pid, 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (ValueError, IndexError, PermissionError):
            continue


class DatasetWriter:
    """Write (or append to) a LeRobot v3 dataset, episode by episode.

    cameras: {name: (H, W, 3)}; arrays: {feature key: [element names]} (float32 features such as
    "observation.state", "action", "observation.environment_state").
    video=True stores cameras as mp4 ("video" features), otherwise PNG in the parquet ("image").
    append=True adds episodes to the dataset at `root` (features and fps must match);
    overwrite=True replaces it; with neither, an existing `root` is an error.
    png_threads: threads that encode PNG frames (default: one per core this process may use).
    episode_offset, index_offset, tasks: number episodes and frames from these offsets and look task
    indices up in `tasks` ({task: index}, extended as new tasks come): the writer then writes one part
    of a larger dataset, which `merge_datasets` joins to the others without rewriting its files.
    """

    def __init__(self, root, fps, robot_type, cameras, arrays, video=False, *, append=False,
                 overwrite=False, png_compress_level=1, png_threads=PNG_THREADS, episode_offset=0, index_offset=0,
                 tasks=None):
        self.root = Path(root)
        if append and overwrite:
            raise DatasetError('append and overwrite are exclusive')
        if not fps or fps <= 0:
            raise DatasetError(f'fps must be positive, got {fps!r}')
        self.fps = fps
        self.robot_type = str(robot_type)
        self.video = bool(video)
        self.cameras = {str(k): tuple(int(x) for x in v) for k, v in cameras.items()}
        for name, shape in self.cameras.items():
            if len(shape) != 3 or shape[2] != 3 or min(shape) <= 0:
                raise DatasetError(f'camera {name!r}: shape must be (H, W, 3), got {shape}')
        self.arrays = {str(k): [str(n) for n in v] for k, v in arrays.items()}
        for key, names in self.arrays.items():
            if key.startswith(CAMERA_PREFIX) or key in INDEX_FEATURES:
                raise DatasetError(f'array feature {key!r}: reserved name')
            if not names:
                raise DatasetError(f'array feature {key!r}: needs at least one element name')
        self.append = bool(append)
        self.overwrite = bool(overwrite)
        self.png_compress_level = int(png_compress_level)
        if not 0 <= self.png_compress_level <= 9:
            raise DatasetError(f'png_compress_level must be 0..9, got {png_compress_level}')
        self.png_threads = max(1, int(png_threads))
        self._features = self._build_features()

        self._tasks = dict(tasks or {})
        self._episode_rows = []
        self._next_episode = int(episode_offset)
        self._next_index = int(index_offset)
        self._data_counter = 0
        self._video_counter = {cam: 0 for cam in self.cameras}
        if self.root.exists():
            if self.append:
                self._load_existing()
            elif not self.overwrite:
                raise DatasetError(f'{self.root}: already exists (append to it, or overwrite it explicitly)')
            elif not (self.root / 'meta' / 'info.json').is_file() and (
                    not self.root.is_dir() or any(self.root.iterdir())):
                raise DatasetError(f'{self.root}: exists and is not a LeRobot dataset; refusing to overwrite it')
        elif self.append:
            raise DatasetError(f'{self.root}: cannot append, no dataset there')
        remove_stale_partials(self.root)
        self._tmp = self.root.parent / f'.{self.root.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        self._tmp.mkdir(parents=True)
        self._parquet = None
        self._parquet_bytes = 0
        self._videos = {}
        self._pool = None
        self._finalized = False
        self._broken = False
        self._added = 0  # episodes added by this writer

    # -- set-up -------------------------------------------------------------------------------
    def _build_features(self):
        features = {}
        for cam, (h, w, c) in self.cameras.items():
            entry = {'dtype': 'video' if self.video else 'image', 'shape': [h, w, c],
                     'names': ['height', 'width', 'channels']}
            if self.video:
                entry['info'] = {
                    'video.height': h, 'video.width': w, 'video.codec': VIDEO_CODEC_NAME,
                    'video.pix_fmt': pixel_format(h, w),
                    'video.is_depth_map': False, 'video.fps': self.fps, 'video.channels': c,
                    'has_audio': False,
                }
            features[CAMERA_PREFIX + cam] = entry
        for key, names in self.arrays.items():
            features[key] = {'dtype': 'float32', 'shape': [len(names)], 'names': list(names)}
        for key, dtype in INDEX_FEATURES.items():
            features[key] = {'dtype': dtype, 'shape': [1], 'names': None}
        return features

    def _load_existing(self):
        path = self.root / 'meta' / 'info.json'
        info = read_json(path)
        if info.get('codebase_version') != CODEBASE_VERSION:
            raise DatasetError(f"{path}: codebase_version {info.get('codebase_version')!r}, "
                               f'expected {CODEBASE_VERSION}')
        if abs(float(info.get('fps', 0)) - float(self.fps)) > 1e-9:
            raise DatasetError(f"{path}: cannot append at fps {self.fps}, dataset has fps {info.get('fps')}")
        if info.get('features') != json.loads(json.dumps(self._features)):
            old, new = set(info.get('features', {})), set(self._features)
            diff = sorted(old ^ new) or sorted(k for k in old if info['features'][k] != self._features[k])
            raise DatasetError(f"{path}: cannot append, features differ from the dataset's ({', '.join(diff)})")
        if info.get('robot_type') != self.robot_type:
            raise DatasetError(f"{path}: cannot append robot_type {self.robot_type!r} to {info.get('robot_type')!r}")
        self._tasks = read_tasks(self.root)
        self._episode_rows = with_episode_stats(self.root, read_episode_rows(self.root), self._features)
        self._next_episode = int(info['total_episodes'])
        self._next_index = int(info['total_frames'])

        def next_counter(prefix):
            used = [int(r[f'{prefix}/chunk_index']) * CHUNKS_SIZE + int(r[f'{prefix}/file_index'])
                    for r in self._episode_rows]
            return max(used) + 1 if used else 0

        self._data_counter = next_counter('data')
        for cam in self.cameras if self.video else ():
            self._video_counter[cam] = next_counter(f'videos/{CAMERA_PREFIX}{cam}')

    # -- writing ------------------------------------------------------------------------------
    @property
    def features(self):
        return json.loads(json.dumps(self._features))

    @property
    def num_episodes(self):
        """Return the index the next episode gets (the episode count, for a whole dataset)."""
        return self._next_episode

    @property
    def num_frames(self):
        """Return the index the next frame gets (the frame count, for a whole dataset)."""
        return self._next_index

    @property
    def tasks(self):
        """Return {task: task index} of the tasks met so far."""
        return dict(self._tasks)

    def write_extra(self, relpath, data):
        """Store an extra file (e.g. a report or preview) in the dataset, beside the LeRobot files."""
        path = self._tmp / relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode('utf-8') if isinstance(data, str) else bytes(data))

    def read_extra(self, relpath):
        """Bytes of an extra file of the dataset being appended to (None if absent)."""
        for base in (self._tmp, self.root):
            if (base / relpath).is_file():
                return (base / relpath).read_bytes()
        return None

    def _validate(self, frames, arrays):
        if set(frames) != set(self.cameras):
            raise DatasetError(f'episode cameras {sorted(frames)} != dataset cameras {sorted(self.cameras)}')
        if set(arrays) != set(self.arrays):
            raise DatasetError(f'episode arrays {sorted(arrays)} != dataset arrays {sorted(self.arrays)}')
        lengths = {}
        for cam, images in frames.items():
            if isinstance(images, np.ndarray) and (images.dtype != np.uint8 or images.shape[1:] != self.cameras[cam]):
                raise DatasetError(f"camera {cam!r}: expected uint8 (T, {', '.join(map(str, self.cameras[cam]))}), "
                                   f"got {images.dtype} {images.shape}")
            try:
                lengths[CAMERA_PREFIX + cam] = len(images)
            except TypeError:
                raise DatasetError(f'camera {cam!r}: frames must be an array or a sized iterable of frames, '
                                   f'got {type(images).__name__}') from None
        for key, values in arrays.items():
            values = np.asarray(values)
            if values.ndim != 2 or values.shape[1] != len(self.arrays[key]):
                raise DatasetError(f'array {key!r}: expected (T, {len(self.arrays[key])}), got {values.shape}')
            if not np.all(np.isfinite(values)):
                raise DatasetError(f'array {key!r}: contains NaN or infinite values')
            lengths[key] = len(values)
        if len(set(lengths.values())) != 1:
            raise DatasetError(f'episode features have different lengths: {lengths}')
        length = next(iter(lengths.values()))
        if length == 0:
            raise DatasetError('episode has no frames')
        return length

    def _checked_frame(self, cam, index, image):
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.shape != self.cameras[cam]:
            raise DatasetError(f'camera {cam!r}: frame {index} is {image.dtype} {image.shape}, expected uint8 '
                               f'{self.cameras[cam]}')
        return image

    def _encode_png(self, image):
        return encode_png(image, self.png_compress_level)

    def _png_pool(self):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.png_threads)
        return self._pool

    def _open_parquet(self, schema):
        chunk, file = chunk_file(self._data_counter)
        path = self._tmp / DATA_PATH.format(chunk_index=chunk, file_index=file)
        self._parquet = open_data_parquet(path, schema.with_metadata(hf_features(self._features)))
        self._parquet_bytes = 0

    def add_episode(self, frames, arrays, task):
        """Append one episode; returns its episode index.

        frames: {camera: its T frames}, each a uint8 (T, H, W, 3) array or any iterable with a length
        that yields T uint8 (H, W, 3) frames (consumed once, camera by camera in step, as written).
        arrays: {feature key: float (T, D)}. A frame source that fails half way leaves the writer
        unusable: abort it.
        """
        if self._finalized:
            raise DatasetError('writer already finalized')
        if self._broken:
            raise DatasetError('an earlier episode failed half way through writing; abort this writer')
        task = str(task)
        if not task:
            raise DatasetError('episode task must be a non-empty string')
        length = self._validate(frames, arrays)
        try:
            return self._write_episode(frames, arrays, task, length)
        except BaseException:
            self._broken = True
            raise

    def _write_episode(self, frames, arrays, task, length):
        episode = self._next_episode
        task_index = self._tasks.setdefault(task, len(self._tasks))
        frame_index = np.arange(length, dtype=np.int64)
        index = self._next_index + frame_index
        timestamp = (frame_index / self.fps).astype(np.float32)
        arrays = {key: np.asarray(arrays[key], dtype=np.float32) for key in self.arrays}
        columns = {key: _array_column(values) for key, values in arrays.items()}
        index_values = {'timestamp': timestamp, 'frame_index': frame_index,
                        'episode_index': np.full(length, episode, dtype=np.int64), 'index': index,
                        'task_index': np.full(length, task_index, dtype=np.int64)}
        columns.update((key, pa.array(values)) for key, values in index_values.items())
        if self._parquet is not None and self._parquet_bytes > DATA_FILES_SIZE_IN_MB * 1e6:
            self._parquet.close()
            self._data_counter += 1
            self._parquet = None

        row = {'episode_index': episode, 'tasks': [task], 'length': length}
        video_starts = self._start_videos() if self.video else {}
        image_stats = self._stream_frames(frames, columns, length)
        data_chunk, data_file = chunk_file(self._data_counter)
        row.update({'data/chunk_index': data_chunk, 'data/file_index': data_file,
                    'dataset_from_index': int(index[0]), 'dataset_to_index': int(index[-1]) + 1})
        for cam, start in video_starts.items():
            key, video = CAMERA_PREFIX + cam, self._videos[cam]
            chunk, file = chunk_file(self._video_counter[cam])
            row.update({f'videos/{key}/chunk_index': chunk, f'videos/{key}/file_index': file,
                        f'videos/{key}/from_timestamp': start / self.fps,
                        f'videos/{key}/to_timestamp': video.frames / self.fps})
        stats = {CAMERA_PREFIX + cam: s.result() for cam, s in image_stats.items()}
        stats.update((key, array_stats(values)) for key, values in arrays.items())
        stats.update((key, array_stats(values)) for key, values in index_values.items())
        row.update(stats_columns(stats))
        row['meta/episodes/chunk_index'] = 0
        row['meta/episodes/file_index'] = 0
        self._episode_rows.append(row)
        self._next_episode += 1
        self._next_index += length
        self._added += 1
        return episode

    def _stream_frames(self, frames, columns, length):
        """Encode the episode's frames as they come and write its rows; return the cameras' ImageStats."""
        cams = list(self.cameras)
        image_stats = {cam: ImageStats(length) for cam in cams}
        png = bool(cams) and not self.video
        rows_per_write = _PNG_ROWS_PER_WRITE if png else length
        batches_in_flight = max(2, math.ceil(_FRAMES_IN_FLIGHT_PER_THREAD * self.png_threads / rows_per_write))
        pending = deque()  # (first row, {camera: [PNG futures]}) batches being encoded, oldest first
        batch = {cam: [] for cam in cams}
        first, count = 0, 0
        for row in islice(zip(*(iter(frames[cam]) for cam in cams)), length) if cams else ():
            for cam, image in zip(cams, row):
                image = self._checked_frame(cam, count, image)
                image_stats[cam].add(count, image)
                if self.video:
                    self._videos[cam].add(image)
                else:
                    batch[cam].append(self._png_pool().submit(self._encode_png, image))
            count += 1
            if png and count - first == rows_per_write:
                pending.append((first, batch))
                batch, first = {cam: [] for cam in cams}, count
                while len(pending) > batches_in_flight:
                    self._write_rows(*pending.popleft(), columns)
        if cams and count != length:
            raise DatasetError(f'episode has {length} frames, but its cameras gave {count}')
        if png and count > first:
            pending.append((first, batch))
        while pending:
            self._write_rows(*pending.popleft(), columns)
        if not png:
            self._write_rows(0, {}, columns)
        return image_stats

    def _write_rows(self, first, pngs, columns):
        count = len(next(iter(pngs.values()))) if pngs else len(columns['index'])
        batch = {CAMERA_PREFIX + cam: _image_column([f.result() for f in futures], first)
                 for cam, futures in pngs.items()}
        batch.update((key, values.slice(first, count)) for key, values in columns.items())
        table = pa.table(batch)
        if self._parquet is None:
            self._open_parquet(table.schema)
        self._parquet.write_table(table)
        self._parquet_bytes += table.nbytes

    def _start_videos(self):
        """Open (or continue) each camera's mp4 for a new episode; return {camera: its first frame in the file}."""
        starts = {}
        for cam in self.cameras:
            video = self._videos.get(cam)
            if video is not None and video.bytes > VIDEO_FILES_SIZE_IN_MB * 1e6:
                video.close()
                self._video_counter[cam] += 1
                video = None
            if video is None:
                chunk, file = chunk_file(self._video_counter[cam])
                path = self._tmp / VIDEO_PATH.format(video_key=CAMERA_PREFIX + cam, chunk_index=chunk, file_index=file)
                h, w, _ = self.cameras[cam]
                video = self._videos[cam] = VideoFile(path, self.fps, h, w)
            starts[cam] = video.frames
        return starts

    # -- finishing ----------------------------------------------------------------------------
    def _info(self):
        total = self._next_episode
        return {
            'codebase_version': CODEBASE_VERSION,
            'robot_type': self.robot_type,
            'total_episodes': total,
            'total_frames': self._next_index,
            'total_tasks': len(self._tasks),
            'chunks_size': CHUNKS_SIZE,
            'data_files_size_in_mb': DATA_FILES_SIZE_IN_MB,
            'video_files_size_in_mb': VIDEO_FILES_SIZE_IN_MB,
            'fps': self.fps,
            'splits': {'train': f'0:{total}'},
            'data_path': DATA_PATH,
            'video_path': VIDEO_PATH if self.video and self.cameras else None,
            'features': self._features,
        }

    def _close_files(self):
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)  # an abort need not encode the rest of an episode
            self._pool = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None
        for video in self._videos.values():
            video.close()
        self._videos = {}

    def finalize(self):
        """Write the metadata and move the dataset into place; returns the dataset root."""
        if self._finalized:
            raise DatasetError('writer already finalized')
        if self._broken:
            self.abort()
            raise DatasetError(f'{self.root}: an episode failed half way through writing; nothing was written')
        if not self._added:
            self.abort()
            raise DatasetError(f'{self.root}: no episodes to write')
        self._close_files()
        self._finalized = True
        tmp = self._tmp
        meta = tmp / 'meta'
        meta.mkdir(parents=True, exist_ok=True)
        if self.append:
            carry_over_files(self.root, tmp)
        write_json(meta / 'info.json', self._info())
        stats = aggregate_stats([stats_from_columns(row) for row in self._episode_rows])
        write_json(meta / 'stats.json', stats_to_json(stats))
        write_tasks(meta / 'tasks.parquet', self._tasks)
        write_episodes(tmp / EPISODES_PATH.format(chunk_index=0, file_index=0), self._episode_rows)
        move_into_place(tmp, self.root)
        return self.root

    def abort(self):
        """Discard everything written by this writer; the existing dataset (if any) is untouched."""
        self._finalized = True
        try:
            self._close_files()
        except Exception:  # noqa: BLE001 - files are removed anyway
            pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not self._finalized:
            self.abort()
        return False


def write_tasks(path, tasks):
    """Write meta/tasks.parquet from {task: task index}: the task strings as the pandas index (as LeRobot)."""
    names = sorted(tasks, key=tasks.get)
    pd.DataFrame({'task_index': [tasks[t] for t in names]}, index=pd.Index(names, name='task')).to_parquet(path)


def carry_over_files(root, tmp, data_files=True):
    """Hard-link (or copy) into `tmp` the files of the dataset at `root` that a writer does not regenerate.

    Files already in `tmp` (e.g. an updated report) win; data/ and videos/ only with `data_files`.
    """
    for src in root.rglob('*'):
        rel = src.relative_to(root).as_posix()
        if not src.is_file() or rel in _GENERATED_META or rel.startswith('meta/episodes/') or (
                not data_files and rel.startswith(('data/', 'videos/'))):
            continue
        dst = tmp / rel
        if dst.exists():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)


def move_into_place(tmp, root):
    """Replace `root` (if any) by the finished dataset at `tmp` (same file system: renames only)."""
    if root.exists():
        backup = root.parent / f'.{root.name}.replaced-{uuid.uuid4().hex[:8]}'
        os.replace(root, backup)
        os.replace(tmp, root)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        os.replace(tmp, root)


def with_episode_stats(root, rows, features):
    """Return meta/episodes rows of the dataset at `root`, each with the statistics columns of every feature.

    Rows that lack them (datasets written before they existed) get them computed from the episode's data.
    """
    needed = [f'{STATS_COLUMN_PREFIX}{key}/max' for key in features]
    if all(all(row.get(column) is not None for column in needed) for row in rows):
        return rows
    dataset = LeRobotDataset(root)
    return [row if all(row.get(c) is not None for c in needed) else
            {**row, **stats_columns(dataset.compute_episode_stats(int(row['episode_index'])))} for row in rows]
