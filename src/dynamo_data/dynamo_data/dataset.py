"""LeRobot dataset v3 ("v3.0") writer and reader: the one dataset format of this project.

Layout (what LeRobot 0.4's own writer produces, so its loader opens ours unchanged):

    meta/info.json                                  features, fps, robot_type, path templates
    meta/stats.json                                 per feature min/max/mean/std/count
    meta/tasks.parquet                              task strings as the pandas index, column task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode
    data/chunk-000/file-000.parquet                 one row per frame, all episodes together
    videos/<key>/chunk-000/file-000.mp4             (video cameras) all episodes of one camera joined

Cameras are stored either as "image" features (PNG bytes inside the data parquet, lossless) or as
"video" features (H.264 mp4 written with PyAV). Timestamps are frame_index / fps as float32.

The writer streams episodes into a temporary directory beside the target and moves it into place
in `finalize()`, so an interrupted run never leaves a half dataset. Appending writes the new
episodes into new data/video files (file index + 1), which the v3 layout supports natively, so
existing video is never re-encoded.
"""
import io
import json
import os
import shutil
import struct
import uuid
import zlib
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from isal import isal_zlib

__all__ = ['CAMERA_PREFIX', 'DatasetError', 'DatasetWriter', 'LeRobotDataset', 'PNG_THREADS', 'encode_png']

CAMERA_PREFIX = 'observation.images.'
CODEBASE_VERSION = 'v3.0'
CHUNKS_SIZE = 1000
DATA_FILES_SIZE_IN_MB = 100
VIDEO_FILES_SIZE_IN_MB = 200
DATA_PATH = 'data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
VIDEO_PATH = 'videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4'
EPISODES_PATH = 'meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet'
INDEX_FEATURES = {
    'timestamp': 'float32',
    'frame_index': 'int64',
    'episode_index': 'int64',
    'index': 'int64',
    'task_index': 'int64',
}
# Files the writer regenerates on every finalize; everything else in an existing dataset is kept.
_GENERATED_META = ('meta/info.json', 'meta/stats.json', 'meta/tasks.parquet')
# Image statistics use at most this many frames per episode (as LeRobot samples frames for stats).
_STATS_FRAMES_PER_EPISODE = 100
_STATS_PIXELS_PER_SIDE = 64
# Image rows per parquet write (one row group): the PNG bytes of a batch stay far below arrow's
# 2 GiB binary-array limit and in memory only until written.
_PNG_ROWS_PER_WRITE = 64
# zlib releases the GIL, so frames compress in parallel on threads: one per core this process may use.
PNG_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count() or 1
_VIDEO_CODEC = 'libx264'
_VIDEO_CODEC_NAME = 'h264'
_VIDEO_OPTIONS = {'crf': '18', 'preset': 'veryfast', 'g': '2'}


class DatasetError(Exception):
    """Bad dataset input or a dataset on disk that does not follow the layout; names path/feature."""


def _chunk_file(counter):
    return divmod(counter, CHUNKS_SIZE)


def _fps_fraction(fps):
    return Fraction(fps).limit_denominator(1001)


class _RunningStats:
    """Per-feature min/max/mean/std/count, mergeable with stats.json of an existing dataset."""

    def __init__(self, count=0, total=None, total_sq=None, minimum=None, maximum=None):
        self.count = count
        self.total = total
        self.total_sq = total_sq
        self.minimum = minimum
        self.maximum = maximum

    @classmethod
    def from_json(cls, entry):
        mean = np.asarray(entry['mean'], dtype=np.float64)
        std = np.asarray(entry['std'], dtype=np.float64)
        count = int(np.asarray(entry['count']).reshape(-1)[0])
        return cls(count, mean * count, (std**2 + mean**2) * count,
                   np.asarray(entry['min'], dtype=np.float64), np.asarray(entry['max'], dtype=np.float64))

    def update(self, samples, axis):
        """samples: array whose `axis` dims are reduced; the remaining dims form the stat shape."""
        samples = np.asarray(samples, dtype=np.float64)
        n = int(np.prod([samples.shape[a] for a in axis]))
        self.merge(n, samples.sum(axis=axis), (samples**2).sum(axis=axis),
                   samples.min(axis=axis), samples.max(axis=axis))

    def update_images(self, images):
        """uint8 (n, H, W, 3) frames -> per-channel stats of shape (3, 1, 1) in [0, 1], as LeRobot.

        Like LeRobot, a strided subsample of each frame (about 64 px a side) stands for the frame.
        """
        stride = max(1, min(images.shape[1:3]) // _STATS_PIXELS_PER_SIDE)
        pixels = np.ascontiguousarray(images[:, ::stride, ::stride]).reshape(-1, images.shape[-1])
        squares = np.einsum('ij,ij->j', pixels, pixels, dtype=np.float64)
        shape = (-1, 1, 1)
        self.merge(len(images), pixels.sum(axis=0, dtype=np.float64).reshape(shape) / 255 / pixels.shape[0] * len(images),
                   squares.reshape(shape) / 255**2 / pixels.shape[0] * len(images),
                   pixels.min(axis=0).reshape(shape) / 255.0, pixels.max(axis=0).reshape(shape) / 255.0)

    def merge(self, n, total, total_sq, lo, hi):
        if self.count == 0:
            self.total, self.total_sq, self.minimum, self.maximum = total, total_sq, lo, hi
        else:
            self.total = self.total + total
            self.total_sq = self.total_sq + total_sq
            self.minimum = np.minimum(self.minimum, lo)
            self.maximum = np.maximum(self.maximum, hi)
        self.count += n

    def to_json(self):
        mean = self.total / self.count
        std = np.sqrt(np.maximum(self.total_sq / self.count - mean**2, 0.0))
        return {'min': np.asarray(self.minimum).tolist(), 'max': np.asarray(self.maximum).tolist(),
                'mean': mean.tolist(), 'std': std.tolist(), 'count': [self.count]}


_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_PNG_IEND = struct.pack('>I', 0) + b'IEND' + struct.pack('>I', zlib.crc32(b'IEND'))
_IDAT_CRC = zlib.crc32(b'IDAT')


def encode_png(image, level=1):
    """uint8 (H, W, 3) -> PNG bytes (8-bit RGB, lossless).

    level 0 stores the rows uncompressed (about as fast as a copy, files as large as the pixels).
    level 1 deflates "Up"-filtered rows (each row minus the row above) with ISA-L (`isal`), whose
    level 1 is ~2.5x faster than zlib's fastest on camera frames at about the same size (224x224:
    0.45 ms / 82 kB vs zlib run-length 1.15 ms / 78 kB, zlib level 1 1.8 ms / 90 kB) and smaller
    on flat simulator renders. Levels 2-9 are zlib's LZ77 levels, worth it only for flat synthetic
    images. Both release the GIL, so frames encode in parallel on threads.
    """
    h, w, c = image.shape
    flat = image.reshape(h, w * c)
    rows = np.empty((h, 1 + w * c), dtype=np.uint8)
    if level == 0:
        rows[:, 0] = 0
        rows[:, 1:] = flat
    else:
        rows[:, 0] = 2  # Up: each row minus the row above (mod 256)
        rows[0, 1:] = flat[0]
        np.subtract(flat[1:], flat[:-1], out=rows[1:, 1:])
    idat = isal_zlib.compress(rows, 1) if level == 1 else zlib.compress(rows, level)
    header = struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b''.join([_PNG_SIGNATURE, struct.pack('>I', len(header)), b'IHDR', header,
                     struct.pack('>I', zlib.crc32(b'IHDR' + header)),
                     struct.pack('>I', len(idat)), b'IDAT', idat, struct.pack('>I', zlib.crc32(idat, _IDAT_CRC)),
                     _PNG_IEND])


def _image_column(pngs):
    """LeRobot's "image" feature column: a struct of the PNG bytes and a null path."""
    return pa.StructArray.from_arrays([pa.array(pngs, type=pa.binary()), pa.nulls(len(pngs), type=pa.string())],
                                      names=['bytes', 'path'])


def _leaf_paths(schema):
    """Parquet column paths of an arrow schema (struct children, list elements) for per-column options."""
    def walk(name, typ):
        if pa.types.is_struct(typ):
            return [p for i in range(typ.num_fields) for p in walk(f'{name}.{typ.field(i).name}', typ.field(i).type)]
        if pa.types.is_list(typ) or pa.types.is_fixed_size_list(typ) or pa.types.is_large_list(typ):
            return walk(f'{name}.list.element', typ.value_type)
        return [name]
    return [p for field in schema for p in walk(field.name, field.type)]


def _read_json(path):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing (not a LeRobot v3 dataset?)') from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f'{path}: cannot read JSON: {exc}') from exc


def _write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=4)
        f.write('\n')


def _read_parquet(path, columns=None):
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing') from None
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise DatasetError(f'{path}: cannot read parquet: {exc}') from exc


def _read_episodes(root):
    files = sorted((root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
    if not files:
        raise DatasetError(f"{root / 'meta' / 'episodes'}: no episodes parquet files")
    episodes = pd.concat([_read_parquet(f).to_pandas() for f in files], ignore_index=True)
    return episodes.sort_values('episode_index', kind='stable').reset_index(drop=True)


def _read_tasks(root):
    path = root / 'meta' / 'tasks.parquet'
    try:
        tasks = pd.read_parquet(path)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing') from None
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f'{path}: cannot read parquet: {exc}') from exc
    if 'task_index' not in tasks.columns:
        raise DatasetError(f'{path}: no task_index column')
    return {str(task): int(i) for task, i in zip(tasks.index, tasks['task_index'])}


class _VideoFile:
    """One mp4 of one camera being written: frame i of the file has pts i (time base 1/fps)."""

    def __init__(self, path, fps, height, width):
        import av

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.container = av.open(str(path), mode='w')
        self.pix_fmt = 'yuv420p' if height % 2 == 0 and width % 2 == 0 else 'yuv444p'
        rate = _fps_fraction(fps)
        self.stream = self.container.add_stream(_VIDEO_CODEC, rate=rate, options=dict(_VIDEO_OPTIONS))
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.pix_fmt
        self.stream.time_base = 1 / rate
        self.frames = 0
        self.bytes = 0

    def add(self, frames):
        import av

        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format='rgb24')
            frame.pts = self.frames
            self.frames += 1
            for packet in self.stream.encode(frame):
                self.bytes += packet.size
                self.container.mux(packet)

    def close(self):
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()


def _remove_stale_partials(root):
    """Temp dirs of writers killed without a chance to clean up (their process no longer exists)."""
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
    """

    def __init__(self, root, fps, robot_type, cameras, arrays, video=False, *, append=False,
                 overwrite=False, png_compress_level=1):
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
        self._features = self._build_features()

        self._tasks = {}
        self._episode_rows = []
        self._stats = {}
        self._next_episode = 0
        self._next_index = 0
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
        _remove_stale_partials(self.root)
        self._tmp = self.root.parent / f'.{self.root.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}'
        self._tmp.mkdir(parents=True)
        self._parquet = None
        self._parquet_bytes = 0
        self._videos = {}
        self._pool = None
        self._finalized = False

    # -- set-up -------------------------------------------------------------------------------
    def _build_features(self):
        features = {}
        for cam, (h, w, c) in self.cameras.items():
            entry = {'dtype': 'video' if self.video else 'image', 'shape': [h, w, c],
                     'names': ['height', 'width', 'channels']}
            if self.video:
                entry['info'] = {
                    'video.height': h, 'video.width': w, 'video.codec': _VIDEO_CODEC_NAME,
                    'video.pix_fmt': 'yuv420p' if h % 2 == 0 and w % 2 == 0 else 'yuv444p',
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
        info = _read_json(self.root / 'meta' / 'info.json')
        path = self.root / 'meta' / 'info.json'
        if info.get('codebase_version') != CODEBASE_VERSION:
            raise DatasetError(f"{path}: codebase_version {info.get('codebase_version')!r}, expected {CODEBASE_VERSION}")
        if abs(float(info.get('fps', 0)) - float(self.fps)) > 1e-9:
            raise DatasetError(f"{path}: cannot append at fps {self.fps}, dataset has fps {info.get('fps')}")
        if info.get('features') != json.loads(json.dumps(self._features)):
            old, new = set(info.get('features', {})), set(self._features)
            diff = sorted(old ^ new) or sorted(k for k in old if info['features'][k] != self._features[k])
            raise DatasetError(f"{path}: cannot append, features differ from the dataset's ({', '.join(diff)})")
        if info.get('robot_type') != self.robot_type:
            raise DatasetError(f"{path}: cannot append robot_type {self.robot_type!r} to {info.get('robot_type')!r}")
        self._tasks = _read_tasks(self.root)
        episodes = _read_episodes(self.root)
        self._episode_rows = episodes.to_dict('records')
        for row in self._episode_rows:
            row['tasks'] = [str(t) for t in row['tasks']]
        self._next_episode = int(info['total_episodes'])
        self._next_index = int(info['total_frames'])
        stats = _read_json(self.root / 'meta' / 'stats.json')
        self._stats = {k: _RunningStats.from_json(v) for k, v in stats.items()}

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
        return self._next_episode

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
            images = np.asarray(images)
            if images.dtype != np.uint8 or images.shape[1:] != self.cameras[cam]:
                raise DatasetError(f"camera {cam!r}: expected uint8 (T, {', '.join(map(str, self.cameras[cam]))}), "
                                   f"got {images.dtype} {images.shape}")
            lengths[CAMERA_PREFIX + cam] = len(images)
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

    def _encode_png(self, image):
        return encode_png(image, self.png_compress_level)

    def _png_pool(self):
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=PNG_THREADS)
        return self._pool

    def _open_parquet(self, schema):
        chunk, file = _chunk_file(self._data_counter)
        path = self._tmp / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        # PNG bytes are already compressed: snappy on them only costs time
        # (and a dictionary of distinct frames is pointless)
        leaves = _leaf_paths(schema)
        codecs = {leaf: 'NONE' if leaf.startswith(CAMERA_PREFIX) else 'SNAPPY' for leaf in leaves}
        dictionary = [leaf for leaf in leaves if not leaf.startswith(CAMERA_PREFIX)]
        self._parquet = pq.ParquetWriter(path, schema, compression=codecs, use_dictionary=dictionary)
        self._parquet_bytes = 0

    def add_episode(self, frames, arrays, task):
        """Append one episode; returns its episode index."""
        if self._finalized:
            raise DatasetError('writer already finalized')
        task = str(task)
        if not task:
            raise DatasetError('episode task must be a non-empty string')
        length = self._validate(frames, arrays)
        episode = self._next_episode
        task_index = self._tasks.setdefault(task, len(self._tasks))
        frame_index = np.arange(length, dtype=np.int64)
        index = self._next_index + frame_index

        pngs = {}  # camera -> one future per frame; the pool encodes ahead while batches are written
        if not self.video:
            for cam in self.cameras:
                pngs[cam] = [self._png_pool().submit(self._encode_png, image) for image in frames[cam]]
        columns = {}
        for key, names in self.arrays.items():
            values = np.ascontiguousarray(arrays[key], dtype=np.float32)
            columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), len(names))
        timestamp = (frame_index / self.fps).astype(np.float32)
        columns['timestamp'] = pa.array(timestamp)
        columns['frame_index'] = pa.array(frame_index)
        columns['episode_index'] = pa.array(np.full(length, episode, dtype=np.int64))
        columns['index'] = pa.array(index)
        columns['task_index'] = pa.array(np.full(length, task_index, dtype=np.int64))
        if self._parquet is not None and self._parquet_bytes > DATA_FILES_SIZE_IN_MB * 1e6:
            self._parquet.close()
            self._data_counter += 1
            self._parquet = None
        rows_per_write = _PNG_ROWS_PER_WRITE if pngs else length
        for lo in range(0, length, rows_per_write):
            hi = min(lo + rows_per_write, length)
            batch = {CAMERA_PREFIX + cam: _image_column([f.result() for f in futures[lo:hi]])
                     for cam, futures in pngs.items()}
            batch.update((key, values.slice(lo, hi - lo)) for key, values in columns.items())
            table = pa.table(batch)
            if self._parquet is None:
                self._open_parquet(table.schema)
            self._parquet.write_table(table)
            self._parquet_bytes += table.nbytes
        data_chunk, data_file = _chunk_file(self._data_counter)

        row = {'episode_index': episode, 'tasks': [task], 'length': length,
               'data/chunk_index': data_chunk, 'data/file_index': data_file,
               'dataset_from_index': int(index[0]), 'dataset_to_index': int(index[-1]) + 1}
        if self.video:
            for cam in self.cameras:
                row.update(self._add_video(cam, frames[cam]))
        row['meta/episodes/chunk_index'] = 0
        row['meta/episodes/file_index'] = 0
        self._episode_rows.append(row)

        sample = np.unique(np.linspace(0, length - 1, min(length, _STATS_FRAMES_PER_EPISODE)).astype(int))
        for cam in self.cameras:
            self._stats.setdefault(CAMERA_PREFIX + cam, _RunningStats()).update_images(np.asarray(frames[cam])[sample])
        for key in self.arrays:
            self._stats.setdefault(key, _RunningStats()).update(np.asarray(arrays[key], np.float32), axis=(0,))
        index_values = {'timestamp': timestamp, 'frame_index': frame_index, 'index': index,
                        'episode_index': np.full(length, episode), 'task_index': np.full(length, task_index)}
        for key, values in index_values.items():
            self._stats.setdefault(key, _RunningStats()).update(np.asarray(values)[:, None], axis=(0,))

        self._next_episode += 1
        self._next_index += length
        return episode

    def _add_video(self, cam, frames):
        key = CAMERA_PREFIX + cam
        video = self._videos.get(cam)
        if video is not None and video.bytes > VIDEO_FILES_SIZE_IN_MB * 1e6:
            video.close()
            self._video_counter[cam] += 1
            video = None
        if video is None:
            chunk, file = _chunk_file(self._video_counter[cam])
            path = self._tmp / VIDEO_PATH.format(video_key=key, chunk_index=chunk, file_index=file)
            h, w, _ = self.cameras[cam]
            video = self._videos[cam] = _VideoFile(path, self.fps, h, w)
        start = video.frames
        video.add(np.asarray(frames))
        chunk, file = _chunk_file(self._video_counter[cam])
        return {f'videos/{key}/chunk_index': chunk, f'videos/{key}/file_index': file,
                f'videos/{key}/from_timestamp': start / self.fps,
                f'videos/{key}/to_timestamp': video.frames / self.fps}

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
        if self._next_episode == 0:
            self.abort()
            raise DatasetError(f'{self.root}: no episodes to write')
        self._close_files()
        self._finalized = True
        tmp = self._tmp
        meta = tmp / 'meta'
        meta.mkdir(parents=True, exist_ok=True)
        if self.append:
            self._carry_over_existing(tmp)
        _write_json(meta / 'info.json', self._info())
        _write_json(meta / 'stats.json', {k: s.to_json() for k, s in self._stats.items()})
        tasks = sorted(self._tasks, key=self._tasks.get)
        pd.DataFrame({'task_index': [self._tasks[t] for t in tasks]},
                     index=pd.Index(tasks, name='task')).to_parquet(meta / 'tasks.parquet')
        episodes_path = tmp / EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        episodes = pa.Table.from_pylist(self._episode_rows)
        episodes = episodes.set_column(episodes.schema.get_field_index('tasks'), 'tasks',
                                       pa.array([r['tasks'] for r in self._episode_rows], type=pa.list_(pa.string())))
        pq.write_table(episodes, episodes_path)

        if self.root.exists():
            backup = self.root.parent / f'.{self.root.name}.replaced-{uuid.uuid4().hex[:8]}'
            os.replace(self.root, backup)
            os.replace(tmp, self.root)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.replace(tmp, self.root)
        return self.root

    def _carry_over_existing(self, tmp):
        """Hard-link (or copy) the existing dataset's files that this writer does not regenerate."""
        for src in self.root.rglob('*'):
            rel = src.relative_to(self.root).as_posix()
            if not src.is_file() or rel in _GENERATED_META or rel.startswith('meta/episodes/'):
                continue
            dst = tmp / rel
            if dst.exists():  # a file written in this session (e.g. an updated report) wins
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)

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


class LeRobotDataset:
    """Read a LeRobot v3 dataset written by DatasetWriter (or by LeRobot itself).

    Decoded camera frames are cached: each video file is decoded once, as a whole.
    """

    def __init__(self, root):
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetError(f'{self.root}: dataset directory does not exist')
        info_path = self.root / 'meta' / 'info.json'
        self.info = _read_json(info_path)
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
        self.stats = _read_json(stats_path) if stats_path.exists() else {}
        self._tasks_by_index = {i: t for t, i in _read_tasks(self.root).items()}
        self._episodes = _read_episodes(self.root)
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
            table = _read_parquet(path, columns=self.array_keys + list(INDEX_FEATURES))
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
                    raise DatasetError(f'{path}: episode {ep} has {len(rows)} frames with frame_index not '
                                       f'0..{self.episode_lengths[ep] - 1} (episodes metadata says {self.episode_lengths[ep]})')
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
        column = _read_parquet(path, columns=[key]).column(key).combine_chunks()
        png_bytes = column.field('bytes').take(pa.array(rows))
        h, w, c = self.features[key]['shape']
        out = np.empty((len(rows), h, w, c), dtype=np.uint8)
        for i, data in enumerate(png_bytes.to_pylist()):
            if data is None:
                raise DatasetError(f'{path}: {key} frame {i} of episode {episode} has no image bytes')
            with Image.open(io.BytesIO(data)) as img:
                image = np.asarray(img.convert('RGB'))
            if image.shape != (h, w, c):
                raise DatasetError(f'{path}: {key} frame {i} of episode {episode} is {image.shape}, expected {(h, w, c)}')
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
            decoded = self._video_cache[path] = self._decode_video(path, key)
        start = int(round(start_ts * self.fps))
        length = int(self.episode_lengths[episode])
        if start + length > len(decoded):
            raise DatasetError(f'{path}: has {len(decoded)} frames, episode {episode} needs frames {start}..{start + length - 1}')
        return decoded[start:start + length]

    def _decode_video(self, path, key):
        import av

        if not path.is_file():
            raise DatasetError(f'{path}: video file missing')
        h, w, c = self.features[key]['shape']
        frames = {}
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = 'AUTO'
                time_base = stream.time_base
                for frame in container.decode(stream):
                    idx = int(round(float(frame.pts * time_base) * self.fps))
                    frames[idx] = frame.to_ndarray(format='rgb24')
        except av.FFmpegError as exc:
            raise DatasetError(f'{path}: cannot decode video: {exc}') from exc
        if not frames:
            raise DatasetError(f'{path}: video has no frames')
        count = max(frames) + 1
        if len(frames) != count:
            raise DatasetError(f'{path}: video frames are not contiguous ({len(frames)} frames, last index {count - 1})')
        out = np.empty((count, h, w, c), dtype=np.uint8)
        for idx, image in frames.items():
            if image.shape != (h, w, c):
                raise DatasetError(f'{path}: frame {idx} is {image.shape}, expected {(h, w, c)}')
            out[idx] = image
        return out
