"""LeRobot dataset v3 ("v3.0") layout: the one dataset format of this project.

Layout (what LeRobot 0.4's own writer produces, so its loader opens ours unchanged):

    meta/info.json                                  features, fps, robot_type, path templates
    meta/stats.json                                 per feature min/max/mean/std/count/q01..q99
    meta/tasks.parquet                              task strings as the pandas index, column task_index
    meta/episodes/chunk-000/file-000.parquet        one row per episode, with its statistics in
                                                    `stats/<feature>/<stat>` columns (stats.py)
    data/chunk-000/file-000.parquet                 one row per frame, all episodes together; schema
                                                    metadata `huggingface` (the `datasets` features)
    videos/<key>/chunk-000/file-000.mp4             (video cameras) all episodes of one camera joined

Cameras are stored either as "image" features (PNG bytes inside the data parquet, lossless) or as
"video" features (H.264 mp4). Timestamps are frame_index / fps as float32. Array features are
fixed-size lists of float32, except one-element ones, which are plain float32 columns (LeRobot reads
a feature of shape (1,) as a scalar).

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


def _episodes_files(root):
    files = sorted((root / 'meta' / 'episodes').glob('chunk-*/file-*.parquet'))
    if not files:
        raise DatasetError(f"{root / 'meta' / 'episodes'}: no episodes parquet files")
    return files


def read_episodes(root):
    """Read the episodes metadata of the dataset at `root` without the statistics columns, in episode order."""
    tables = [read_parquet(path) for path in _episodes_files(root)]
    episodes = pd.concat([t.select([n for n in t.column_names if not n.startswith('stats/')]).to_pandas()
                          for t in tables], ignore_index=True)
    return episodes.sort_values('episode_index', kind='stable').reset_index(drop=True)


def read_episode_rows(root):
    """Read the episodes metadata of the dataset at `root`, statistics included: one dict per episode, in order."""
    rows = [row for path in _episodes_files(root) for row in read_parquet(path).to_pylist()]
    return sorted(rows, key=lambda row: row['episode_index'])


def hf_features(features):
    """Return the `huggingface` schema metadata of a data parquet file: the `datasets` features of its columns.

    As LeRobot's writer stores it (through `datasets`), so `datasets.load_dataset` decodes image columns.
    """
    columns = {}
    for key, feature in features.items():
        if feature['dtype'] == 'video':
            continue
        if feature['dtype'] == 'image':
            columns[key] = {'_type': 'Image'}
        elif list(feature['shape']) == [1]:
            columns[key] = {'dtype': feature['dtype'], '_type': 'Value'}
        else:
            columns[key] = {'feature': {'dtype': feature['dtype'], '_type': 'Value'},
                            'length': int(feature['shape'][0]), '_type': 'List'}
    return {'huggingface': json.dumps({'info': {'features': columns}})}


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


def ordered_episode_row(row):
    """Return an episodes metadata row with its columns in the order LeRobot's writer puts them.

    episode_index, tasks, length, data/*, dataset_from/to_index, videos/*, stats/*, meta/episodes/*,
    then any other column as it came.
    """
    def rank(key):
        if key in _EPISODE_HEAD:
            return (0, _EPISODE_HEAD.index(key))
        for i, prefix in enumerate(('videos/', 'stats/', 'meta/episodes/')):
            if key.startswith(prefix):
                return (i + 1, 0)
        return (4, 0)
    return {key: row[key] for key in sorted(row, key=rank)}  # sorted is stable: ties keep their order


_EPISODE_HEAD = ['episode_index', 'tasks', 'length', 'data/chunk_index', 'data/file_index', 'dataset_from_index',
                 'dataset_to_index']


def write_episodes(path, rows):
    """Write episodes metadata rows (dicts, episode order) as one parquet file; tasks typed list<string>."""
    rows = [ordered_episode_row(row) for row in rows]
    table = pa.Table.from_pylist(rows)
    table = table.set_column(table.schema.get_field_index('tasks'), 'tasks',
                             pa.array([[str(t) for t in row['tasks']] for row in rows], type=pa.list_(pa.string())))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)
