"""LeRobot dataset v3 ("v3.0") layout: the one dataset format of this project.

Layout (what LeRobot 0.4's own writer produces, so its loader opens ours unchanged):

    meta/info.json                                  features, fps, robot_type, path templates
    meta/stats.json                                 per feature min/max/mean/std/count
    meta/tasks.parquet                              task strings as the pandas index, column task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode
    data/chunk-000/file-000.parquet                 one row per frame, all episodes together
    videos/<key>/chunk-000/file-000.mp4             (video cameras) all episodes of one camera joined

Cameras are stored either as "image" features (PNG bytes inside the data parquet, lossless) or as
"video" features (H.264 mp4). Timestamps are frame_index / fps as float32.

This module holds the layout's constants and path templates and reads/writes its metadata files;
writer.py writes a dataset, reader.py reads one.
"""
import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

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


class DatasetError(Exception):
    """Bad dataset input or a dataset on disk that does not follow the layout; names path/feature."""


def chunk_file(counter):
    """Split a running file counter into (chunk index, file index within the chunk)."""
    return divmod(counter, CHUNKS_SIZE)


def read_json(path):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing (not a LeRobot v3 dataset?)') from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f'{path}: cannot read JSON: {exc}') from exc


def write_json(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        json.dump(obj, f, indent=4)
        f.write('\n')


def read_parquet(path, columns=None):
    try:
        return pq.read_table(path, columns=columns)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing') from None
    except (OSError, pa.ArrowException, KeyError) as exc:
        raise DatasetError(f'{path}: cannot read parquet: {exc}') from exc


def read_episodes(root):
    """Read the episodes metadata of the dataset at `root`, one row per episode in episode order."""
    files = sorted((root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
    if not files:
        raise DatasetError(f"{root / 'meta' / 'episodes'}: no episodes parquet files")
    episodes = pd.concat([read_parquet(f).to_pandas() for f in files], ignore_index=True)
    return episodes.sort_values('episode_index', kind='stable').reset_index(drop=True)


def read_tasks(root):
    """Read {task string: task index} of the dataset at `root`."""
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
