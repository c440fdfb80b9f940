"""Join LeRobot v3 datasets of the same features into one (`merge_datasets`), e.g. the shards of a conversion.

Episodes keep the order of the sources; episode, frame and task indices are renumbered. A source's
data and video files become files of the result one for one (new file indices): files whose rows
already carry the result's indices (the parts DatasetWriter writes with offsets) are hard-linked,
the others are rewritten row group by row group (bounded memory; PNG bytes copied, not re-encoded),
videos are always linked. Per-episode statistics move with their episodes (their index features
shifted) and meta/stats.json is their aggregate.

Exit status: 0 merged; 1 when a source cannot be read, the sources differ (the message names the
feature) or the output is in the way; 2 on bad command-line usage.
"""
import argparse
import json
import os
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from tqdm import tqdm

from .layout import (
    CODEBASE_VERSION,
    EPISODES_PATH,
    DatasetError,
    chunk_file,
    read_episode_rows,
    read_json,
    read_tasks,
    write_episodes,
    write_json,
)
from .stats import QUANTILES, STATS_COLUMN_PREFIX, aggregate_stats, stats_from_columns, stats_to_json
from .writer import (
    carry_over_files,
    move_into_place,
    open_data_parquet,
    remove_stale_partials,
    with_episode_stats,
    write_tasks,
)

__all__ = ['merge_datasets', 'main']

# Statistics that move with a shift of the values (std and count do not).
_SHIFTED_STATS = ('min', 'max', 'mean', *QUANTILES)


class _Source:
    """One dataset to merge: its metadata, and where its episodes start in its own numbering."""

    def __init__(self, root):
        self.root = Path(root)
        if not (self.root / 'meta' / 'info.json').is_file():
            raise DatasetError(f'{self.root}: not a LeRobot v3 dataset (no meta/info.json)')
        self.info = read_json(self.root / 'meta' / 'info.json')
        if self.info.get('codebase_version') != CODEBASE_VERSION:
            raise DatasetError(f"{self.root / 'meta/info.json'}: codebase_version "
                               f"{self.info.get('codebase_version')!r}, expected {CODEBASE_VERSION}")
        self.tasks = read_tasks(self.root)
        self.rows = read_episode_rows(self.root)
        if not self.rows:
            raise DatasetError(f'{self.root}: dataset has no episodes')
        self.first_episode = int(self.rows[0]['episode_index'])
        self.first_index = int(self.rows[0]['dataset_from_index'])


def _check_same_kind(first, other):
    """Raise DatasetError naming what differs between two sources (fps, robot type, a feature)."""
    if abs(float(first.info['fps']) - float(other.info['fps'])) > 1e-9:
        raise DatasetError(f"{other.root}: fps {other.info['fps']} differs from {first.root}'s {first.info['fps']}")
    if first.info.get('robot_type') != other.info.get('robot_type'):
        raise DatasetError(f"{other.root}: robot_type {other.info.get('robot_type')!r} differs from "
                           f"{first.root}'s {first.info.get('robot_type')!r}")
    mine, theirs = first.info['features'], other.info['features']
    for key in list(mine) + [k for k in theirs if k not in mine]:
        if key not in theirs or key not in mine:
            where = other.root if key not in theirs else first.root
            raise DatasetError(f'{other.root}: feature {key!r} is missing from {where}; merge only datasets of '
                               'the same features')
        if mine[key] != theirs[key]:
            what = next(f for f in ('dtype', 'shape', 'names', 'info') if mine[key].get(f) != theirs[key].get(f))
            raise DatasetError(f"{other.root}: feature {key!r} differs from {first.root}'s in its {what} "
                               f'({theirs[key].get(what)!r} vs {mine[key].get(what)!r}); merge only datasets of '
                               'the same features')


def _shift_stats(row, key, shift):
    for name in _SHIFTED_STATS:
        column = f'{STATS_COLUMN_PREFIX}{key}/{name}'
        if row.get(column) is not None:
            row[column] = (np.asarray(row[column]) + shift).tolist()


def merge_datasets(sources, output, overwrite=False, append=False, extras=None, progress=False):
    """Join the datasets at `sources` (in that order) into a new dataset at `output`; returns its root.

    append=True: `output` is the first source and its other files (reports, ...) are kept.
    extras: {relative path: bytes or str} files to store beside the LeRobot files. The result is
    moved into place only when complete.
    """
    output = Path(output)
    if not sources:
        raise DatasetError('no datasets to merge')
    loaded = [_Source(s) for s in sources]
    for other in loaded[1:]:
        _check_same_kind(loaded[0], other)
    appending = bool(append)
    if appending and output.resolve() != loaded[0].root.resolve():
        raise DatasetError(f'{output}: appending needs it as the first dataset to merge')
    if output.exists() and not (overwrite or appending):
        raise DatasetError(f'{output}: already exists; choose another output or overwrite it explicitly')
    if output.exists() and not appending and not (output / 'meta' / 'info.json').is_file() and (
            not output.is_dir() or any(output.iterdir())):
        raise DatasetError(f'{output}: exists and is not a LeRobot dataset; refusing to overwrite it')
    features = loaded[0].info['features']
    remove_stale_partials(output)
    tmp = output.parent / f'.{output.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    tmp.mkdir(parents=True)
    try:
        tasks, rows = {}, []
        data_counter = 0
        video_counters = {key: 0 for key, f in features.items() if f['dtype'] == 'video'}
        files = sum(len({(r['data/chunk_index'], r['data/file_index']) for r in s.rows}) for s in loaded)
        with tqdm(total=files, desc=f'merge into {output.name}', unit='file', disable=not progress) as bar:
            for source in loaded:
                for task in sorted(source.tasks, key=source.tasks.get):
                    tasks.setdefault(task, len(tasks))
                task_map = np.zeros(max(source.tasks.values()) + 1, dtype=np.int64)
                for task, index in source.tasks.items():
                    task_map[index] = tasks[task]
                episode_shift = len(rows) - source.first_episode
                index_shift = (rows[-1]['dataset_to_index'] if rows else 0) - source.first_index
                unchanged = episode_shift == 0 and index_shift == 0 and np.array_equal(task_map,
                                                                                      np.arange(len(task_map)))
                source_rows = with_episode_stats(source.root, source.rows, features)
                data_files, video_files = {}, {key: {} for key in video_counters}
                for old in source_rows:
                    row = dict(old)
                    data = (int(row['data/chunk_index']), int(row['data/file_index']))
                    if data not in data_files:
                        data_files[data] = chunk_file(data_counter)
                        data_counter += 1
                        _copy_data_file(source, data, tmp, data_files[data], unchanged, episode_shift, index_shift,
                                        task_map)
                        bar.update()
                    row['data/chunk_index'], row['data/file_index'] = data_files[data]
                    for key in video_counters:
                        video = (int(row[f'videos/{key}/chunk_index']), int(row[f'videos/{key}/file_index']))
                        if video not in video_files[key]:
                            video_files[key][video] = chunk_file(video_counters[key])
                            video_counters[key] += 1
                            _link(source.root / source.info['video_path'].format(
                                video_key=key, chunk_index=video[0], file_index=video[1]),
                                tmp / source.info['video_path'].format(
                                    video_key=key, chunk_index=video_files[key][video][0],
                                    file_index=video_files[key][video][1]))
                        row[f'videos/{key}/chunk_index'], row[f'videos/{key}/file_index'] = video_files[key][video]
                    row['episode_index'] = int(row['episode_index']) + episode_shift
                    row['dataset_from_index'] = int(row['dataset_from_index']) + index_shift
                    row['dataset_to_index'] = int(row['dataset_to_index']) + index_shift
                    _shift_stats(row, 'episode_index', episode_shift)
                    _shift_stats(row, 'index', index_shift)
                    _remap_task_stats(row, task_map, source)
                    row['meta/episodes/chunk_index'], row['meta/episodes/file_index'] = 0, 0
                    rows.append(row)
        for relpath, data in (extras or {}).items():
            (tmp / relpath).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relpath).write_bytes(data.encode('utf-8') if isinstance(data, str) else bytes(data))
        if appending:  # after the extras: a hard-linked file must never be written to
            carry_over_files(output, tmp, data_files=False)
        info = dict(loaded[0].info)
        total_frames = int(rows[-1]['dataset_to_index'])
        info.update({'total_episodes': len(rows), 'total_frames': total_frames, 'total_tasks': len(tasks),
                     'splits': {'train': f'0:{len(rows)}'}})
        write_json(tmp / 'meta' / 'info.json', info)
        write_json(tmp / 'meta' / 'stats.json', stats_to_json(aggregate_stats([stats_from_columns(r) for r in rows])))
        write_tasks(tmp / 'meta' / 'tasks.parquet', tasks)
        write_episodes(tmp / EPISODES_PATH.format(chunk_index=0, file_index=0), rows)
        move_into_place(tmp, output)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return output


def _remap_task_stats(row, task_map, source):
    """Move the task_index statistics of an episode to the merged task numbering (one task per episode)."""
    low, high = (row.get(f'{STATS_COLUMN_PREFIX}task_index/{s}') for s in ('min', 'max'))
    if low is None or task_map.size == 0 or np.array_equal(task_map, np.arange(len(task_map))):
        return
    if np.asarray(low).ravel()[0] != np.asarray(high).ravel()[0]:
        raise DatasetError(f"{source.root}: episode {row['episode_index']} has several task indices; merging "
                           'datasets whose episodes change task is not supported')
    _shift_stats(row, 'task_index', int(task_map[int(np.asarray(low).ravel()[0])]) - int(np.asarray(low).ravel()[0]))


def _link(src, dst):
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileNotFoundError:
        raise DatasetError(f'{src}: missing') from None
    except OSError:
        shutil.copy2(src, dst)


def _copy_data_file(source, data, tmp, target, unchanged, episode_shift, index_shift, task_map):
    """Give a source's data file its place in the result: linked as it is, or rewritten with the new indices."""
    path = source.root / source.info['data_path'].format(chunk_index=data[0], file_index=data[1])
    dst = tmp / source.info['data_path'].format(chunk_index=target[0], file_index=target[1])
    if unchanged:
        _link(path, dst)
        return
    try:
        parquet = pq.ParquetFile(path)
        writer = open_data_parquet(dst, parquet.schema_arrow)
        with writer:
            for group in range(parquet.num_row_groups):
                table = parquet.read_row_group(group)
                shifted = {'episode_index': np.asarray(table.column('episode_index')) + episode_shift,
                           'index': np.asarray(table.column('index')) + index_shift,
                           'task_index': task_map[np.asarray(table.column('task_index'))]}
                for name, values in shifted.items():
                    table = table.set_column(table.schema.get_field_index(name), name, pa.array(values, pa.int64()))
                writer.write_table(table)
    except FileNotFoundError:
        raise DatasetError(f'{path}: missing') from None
    except (OSError, pa.ArrowException, KeyError, IndexError) as exc:
        raise DatasetError(f'{path}: cannot read parquet: {exc}') from exc


def build_parser():
    parser = argparse.ArgumentParser(prog='merge_datasets', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('datasets', nargs='+', metavar='DATASET', help='LeRobot v3 dataset directory, in order')
    parser.add_argument('--output', required=True, help='merged dataset directory')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output dataset')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        root = merge_datasets(args.datasets, args.output, overwrite=args.overwrite, progress=not args.no_progress)
    except (DatasetError, OSError) as exc:
        print(f'merge_datasets: error: {exc}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('merge_datasets: interrupted; nothing was written', file=sys.stderr)
        return 130
    info = json.loads((root / 'meta' / 'info.json').read_text())
    print(f"wrote {root}: {info['total_episodes']} episode(s), {info['total_frames']} frame(s) "
          f'from {len(args.datasets)} dataset(s)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
