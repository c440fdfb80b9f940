"""Convert rosbag2 bags into episodes of a LeRobot v3 dataset (ROS-free core of `convert_bags`).

Per bag: pass 1 reads only the configured topics and keeps, for cameras, just timestamps and the
image header (size/encoding checks); small messages are kept raw. After grid synchronisation, only
the messages that land on a kept grid time are deserialised; pass 2 decodes exactly those camera
frames while the dataset writer consumes them, so a bag of any length converts in bounded memory.

Each bag becomes a part dataset in a scratch directory beside the output (numbered where it goes in
the result, so its files are only linked into place), converted in this process or, with jobs > 1,
in worker processes (their parts are renumbered when joined); `merge_datasets` joins the parts, in
bag order, after the existing dataset when appending. A bad bag's part is simply dropped.
"""
import json
import multiprocessing
import os
import shutil
import struct
import sys
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..layout import DatasetError, read_json, read_tasks
from ..merge import merge_datasets
from ..png import PNG_THREADS
from ..reader import LeRobotDataset
from ..writer import DatasetWriter, remove_stale_partials
from .bag_reader import BagError, BagFile, header_stamp_ns, image_header
from .extract import IMAGE_TYPES, TASK_TYPE, ImageConverter, make_extractor
from .sync import make_grid, match_stream, split_segments, stream_report

__all__ = ['BagEpisode', 'BagResult', 'convert_bag', 'convert_bags', 'ConversionError', 'REPORT_PATH',
           'format_report', 'shard_bags']

REPORT_PATH = 'meta/dynamo_sync_report.json'
PREVIEW_FRAMES_PATH = 'meta/dynamo_preview_frames.png'
PREVIEW_CURVES_PATH = 'meta/dynamo_preview_curves.png'
# Header stamps may arrive slightly out of order (several publishers); a step back by more than
# this many grid periods, or backwards steps in more than this fraction of messages, is a clock jump.
_BACKWARD_PERIODS = 1.0
_BACKWARD_FRACTION = 0.05
# A header stamp this far (at least a second, or this many periods) from both neighbours' offsets to
# their receive times is a damaged stamp, not a clock step (a step moves every later message).
_STAMP_SPIKE_S = 1.0
_STAMP_SPIKE_PERIODS = 10
# float32 holds every integer up to 2**24 exactly; beyond, stamps and counters lose whole units.
_FLOAT32_EXACT = 2.0**24


class ConversionError(Exception):
    """The whole conversion cannot proceed (output exists, nothing converted, ...)."""


@dataclass
class BagEpisode:
    bag: str
    frames: dict  # camera -> its T frames (a sized iterable), decoded from the bag as they are consumed
    arrays: dict  # feature key -> float32 (T, D)
    task: str


@dataclass
class BagResult:
    """One synchronised bag; the bag stays open (use as a context manager) until its frames are consumed."""

    episodes: list
    names: dict  # feature key -> element names
    cameras: dict  # camera -> (H, W, 3)
    report: dict = field(default_factory=dict)
    bag: BagFile = None

    def close(self):
        if self.bag is not None:
            self.bag.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


@dataclass
class _Stream:
    role: str  # camera:<name> | observation.state | action | observation.environment_state
    topic: str
    msgtype: str
    mode: str
    tolerance_ns: int
    stamp: str
    spec: object
    times: np.ndarray = None  # sorted
    order: np.ndarray = None  # sorted position -> read index of the topic
    note: str = ''


class _TopicRecord:
    def __init__(self, keep_raw, has_header, is_image):
        self.keep_raw, self.has_header, self.is_image = keep_raw, has_header, is_image
        self.receive, self.header, self.raw = [], [], []
        self.invalid_stamps = []  # message indices whose header.stamp.nanosec is >= 1e9
        self.image_source = None
        self.first = None  # raw bytes of the first message (a camera's frame shape comes from it)


def _pass1(bag, topics, records, progress):
    total = sum(bag.counts.get(t, 0) for t in topics)
    with tqdm(total=total, desc=f'read {bag.path.name}', unit='msg', disable=not progress, leave=False) as bar:
        for topic, receive_ns, data in bag.read(topics):
            rec = records[topic]
            rec.receive.append(receive_ns)
            try:
                if rec.has_header:
                    stamp, valid = header_stamp_ns(data)
                    rec.header.append(stamp)
                    if not valid:
                        rec.invalid_stamps.append(len(rec.receive) - 1)
                source = image_header(data) if rec.is_image else None
            except (struct.error, IndexError):
                raise BagError(f'{bag.name}: topic {topic}: message {len(rec.receive) - 1} is only {len(data)} bytes, '
                               'too short for its type (the bag is damaged there); leave the bag out (--skip-bad)') \
                    from None
            if rec.keep_raw:
                rec.raw.append(data)
            if rec.first is None:
                rec.first = bytes(data)
            if rec.is_image:
                if rec.image_source is None:
                    rec.image_source = source
                elif source != rec.image_source:
                    h, w, enc = rec.image_source
                    raise BagError(f'{bag.name}: topic {topic}: image changed mid-bag at message '
                                   f'{len(rec.receive) - 1} from {enc} {w}x{h} to {source[2]} {source[1]}x{source[0]}')
            bar.update()


def _stream_times(bag, stream, rec, fps):
    """Chosen time source of a stream, checked for clock jumps, sorted."""
    times = None
    if stream.stamp == 'header':
        if not rec.has_header:
            stream.note = 'no header: receive time'
        elif not np.any(np.asarray(rec.header)):  # never set (sim time may legitimately start at 0)
            stream.note = 'header.stamp unset: receive time'
        else:
            times = np.asarray(rec.header, dtype=np.int64)
            stream.note = 'header.stamp'
            _check_stamps(bag, stream, times, np.asarray(rec.receive, dtype=np.int64), rec.invalid_stamps, fps)
    if times is None:
        times = np.asarray(rec.receive, dtype=np.int64)
        stream.note = stream.note or 'receive time'
    steps = np.diff(times)
    backwards = steps < 0
    if backwards.any():
        worst = int(np.argmin(steps))
        if -steps[worst] > _BACKWARD_PERIODS * 1e9 / fps or backwards.mean() > _BACKWARD_FRACTION:
            raise BagError(f'{bag.name}: topic {stream.topic}: clock jumps backwards by {-steps[worst] / 1e9:.3f} s '
                           f'at message {worst + 1} ({stream.note}); {int(backwards.sum())} backward step(s). '
                           'Split the recording, or use `stamp: receive` if only the driver clock is wrong')
    stream.order = np.argsort(times, kind='stable')
    stream.times = times[stream.order]


def _check_stamps(bag, stream, stamps, receive, invalid, fps):
    """Refuse header stamps that are damaged (isolated spikes, nanosec out of range), naming the message."""
    offsets = stamps - receive
    threshold = max(_STAMP_SPIKE_S, _STAMP_SPIKE_PERIODS / fps) * 1e9
    padded = np.concatenate([offsets[1:2], offsets, offsets[-2:-1]]) if len(offsets) > 1 else np.repeat(offsets, 3)
    spikes = (np.abs(offsets - padded[:-2]) > threshold) & (np.abs(offsets - padded[2:]) > threshold)
    bad = sorted(set(np.flatnonzero(spikes).tolist()) | set(invalid))
    if not bad:
        return
    k = bad[0]
    good = np.delete(offsets, bad)
    spread = f'{np.abs(good - np.median(good)).max() / 1e9:.3f} s' if good.size else 'n/a'
    why = ('nanosec >= 1e9' if k in invalid else
           f'{abs(offsets[k] - (np.median(good) if good.size else 0)) / 1e9:.1f} s away from its receive time, '
           f'the other messages within {spread}')
    raise BagError(f'{bag.name}: topic {stream.topic}: header.stamp of {len(bad)} message(s) is damaged (first: '
                   f'message {k}, stamp {stamps[k] / 1e9:.3f} s, {why}); the bag is corrupt there: leave it out '
                   '(--skip-bad), or set `stamp: receive` for this topic to ignore its header stamps')


def _check_float32(bag, stream, names, values, times):
    """Refuse values float32 cannot hold to the unit (stamps, counters), instead of rounding them silently."""
    lossy = (np.abs(values) >= _FLOAT32_EXACT) & (values.astype(np.float32) != values)
    if lossy.any():
        row, col = np.argwhere(lossy)[0]
        value = float(values[row, col])
        raise BagError(f'{bag.name}: topic {stream.topic}: {names[col]} = {value!r} at t={times[row] / 1e9:.3f} s '
                       f'cannot be stored as float32 (it becomes {float(np.float32(value))!r}; float32 is exact only '
                       f'up to 2**24): leave this field out of the config (`fields`/`indices` pick the others)')


def _deserialize(bag, topic, msgtype, data):
    try:
        return bag.typestore.deserialize_cdr(data, msgtype)
    except Exception as exc:  # noqa: BLE001 - any decoding failure of a stored message is bad input
        raise BagError(f'{bag.name}: topic {topic}: cannot deserialise {msgtype}: '
                       f'{type(exc).__name__}: {exc}') from None


def _task_for(bag, cfg, task_label, records, start_ns_list):
    if task_label:
        return [task_label] * len(start_ns_list)
    if cfg.task_label:
        return [cfg.task_label] * len(start_ns_list)
    if not cfg.task_topic:
        raise BagError(f'{bag.name}: no task label: set `task` in the config or pass --task')
    rec = records[cfg.task_topic]
    times = np.asarray(rec.receive, dtype=np.int64)
    order = np.argsort(times, kind='stable')
    texts = [str(_deserialize(bag, cfg.task_topic, TASK_TYPE, rec.raw[i]).data).strip() for i in order]
    tasks = []
    for start in start_ns_list:
        before = np.searchsorted(times[order], start, side='right') - 1
        text = texts[max(before, 0)]
        if not text:
            raise BagError(f'{bag.name}: topic {cfg.task_topic}: empty task string')
        if cfg.task_descriptions is not None:
            if text not in cfg.task_descriptions:
                raise BagError(f"{bag.name}: topic {cfg.task_topic}: task {text!r} has no entry in {cfg.path}'s "
                               f"task.descriptions (it has: {', '.join(sorted(cfg.task_descriptions))}); add one")
            text = cfg.task_descriptions[text]
        tasks.append(text)
    return tasks


def convert_bag(path, cfg, task_label=None, progress=False):
    """Synchronise one bag into episodes; raises BagError naming the bag/topic/field on bad input.

    Returns an open BagResult: its episodes' frames are decoded from the bag as they are iterated.
    """
    bag = BagFile(path)
    try:
        return _synchronise(bag, cfg, task_label, progress)
    except BaseException:
        bag.close()
        raise


def _synchronise(bag, cfg, task_label, progress):
    """Pass 1 and the synchronisation of an open bag: arrays and tasks of its episodes; frames stream later."""
    streams = []
    for cam in cfg.camera_specs:
        msgtype = bag.require(cam.topic, f'camera {cam.name!r}')
        if msgtype not in IMAGE_TYPES:
            raise BagError(f"{bag.name}: camera topic {cam.topic} has type {msgtype}, expected one of "
                           f"{', '.join(IMAGE_TYPES)}")
        streams.append(_Stream(f'camera:{cam.name}', cam.topic, msgtype, 'nearest',
                               int((cam.tolerance or cfg.default_tolerance) * 1e9), cam.stamp or cfg.stamp, cam))
    roles = [('observation.state', cfg.state), ('action', cfg.action.sources),
             ('observation.environment_state', cfg.environment_sources)]
    for key, sources in roles:
        for spec in sources:
            msgtype = bag.require(spec.topic, key)
            streams.append(_Stream(key, spec.topic, msgtype, spec.sync,
                                   int((spec.tolerance or cfg.default_tolerance) * 1e9),
                                   spec.stamp or cfg.stamp, spec))
    marker_topic = cfg.episodes.marker_topic if cfg.episodes.split == 'marker' else None
    extra = [t for t in (cfg.task_topic if not (task_label or cfg.task_label) else None, marker_topic) if t]
    for topic in extra:
        msgtype = bag.require(topic, 'task' if topic == cfg.task_topic else 'episode marker')
        if topic == cfg.task_topic and msgtype != TASK_TYPE:
            raise BagError(f'{bag.name}: task topic {topic} has type {msgtype}, expected {TASK_TYPE}')
    topics = list(dict.fromkeys([s.topic for s in streams] + extra))
    bag.build_typestore(topics)

    records = {}
    for topic in topics:
        msgtype = bag.topics[topic]
        is_camera = msgtype in IMAGE_TYPES and any(s.topic == topic and s.role.startswith('camera:')
                                                   for s in streams)
        records[topic] = _TopicRecord(keep_raw=not is_camera, has_header=bag.has_header(msgtype),
                                      is_image=is_camera and msgtype == IMAGE_TYPES[0])
    _pass1(bag, topics, records, progress)
    for topic in topics:
        if not records[topic].receive:
            hint = (f' (the bag index lists {bag.counts[topic]}: metadata.yaml and the storage file disagree)'
                    if bag.counts.get(topic) else '')
            raise BagError(f'{bag.name}: topic {topic} is present but has 0 messages{hint}')
    for stream in streams:
        _stream_times(bag, stream, records[stream.topic], cfg.fps)

    grid = make_grid([(s.times, s.mode, s.tolerance_ns) for s in streams], cfg.fps)
    matches = [match_stream(grid, s.times, s.mode, s.tolerance_ns) for s in streams]
    kept = np.ones(len(grid), dtype=bool)
    for idx, _ in matches:
        kept &= idx >= 0
    markers = None
    if marker_topic:
        markers = np.asarray(records[marker_topic].receive, dtype=np.int64)
        if bag.has_header(bag.topics[marker_topic]) and all(records[marker_topic].header):
            markers = np.asarray(records[marker_topic].header, dtype=np.int64)
    segments = split_segments(grid, kept, cfg.fps,
                              gap_s=cfg.episodes.gap_s if cfg.episodes.split == 'gap' else None, markers=markers)
    min_frames = cfg.episodes.min_frames + (1 if cfg.action.from_state else 0)
    short = [len(s) for s in segments if len(s) < min_frames]
    segments = [s for s in segments if len(s) >= min_frames]
    report = {'bag': bag.name, 'path': str(bag.path.resolve()), 'warnings': list(bag.warnings),
              'grid_times': int(len(grid)),
              'kept_frames': int(sum(len(s) for s in segments)), 'episodes': len(segments),
              'short_segments_dropped': short,
              'episode_starts_s': [float((grid[s[0]] - grid[0]) / 1e9) for s in segments], 'topics': []}
    for stream, (idx, dt) in zip(streams, matches):
        row = {'topic': stream.topic, 'role': stream.role, 'time': stream.note, 'sync': stream.mode}
        row.update(stream_report(stream.times, idx, dt, kept))
        report['topics'].append(row)
    if not segments and short:
        extra = ' (+1: action.from_state needs the next frame)' if cfg.action.from_state else ''
        raise BagError(f'{bag.name}: no episode is as long as episodes.min_frames = {cfg.episodes.min_frames}'
                       f'{extra}: synchronisation at {cfg.fps} fps kept segment(s) of {short} frame(s); lower '
                       f'episodes.min_frames in {cfg.path}, or leave the bag out (--skip-bad)')
    if not segments:
        k = int(np.argmin([r['matched'] for r in report['topics']]))
        worst, stream = report['topics'][k], streams[k]
        detail = (f"; topic {worst['topic']} matched {worst['matched']} of {len(grid)} grid times "
                  f"(tolerance {stream.tolerance_ns / 1e9:.3f} s, {worst['time']})")
        raise BagError(f'{bag.name}: empty episode after synchronisation at {cfg.fps} fps{detail}')

    positions = np.concatenate(segments)  # grid positions that become dataset rows, in order
    names, arrays = {}, {}
    for key, _ in roles:
        parts, part_names = [], []
        for stream, (idx, _) in zip(streams, matches):
            if stream.role != key:
                continue
            rec = records[stream.topic]
            extractor = make_extractor(stream.spec, stream.msgtype, f'{bag.name}: topic {stream.topic}')
            needed = idx[positions]
            unique, inverse = np.unique(needed, return_inverse=True)
            values = np.stack([extractor(_deserialize(bag, stream.topic, stream.msgtype,
                                                      rec.raw[stream.order[i]])) for i in unique])
            bad = ~np.isfinite(values)
            if bad.any():
                row, col = np.argwhere(bad)[0]
                raise BagError(f'{bag.name}: topic {stream.topic}: {extractor.names[col]} is {values[row, col]} '
                               f'at t={stream.times[unique[row]] / 1e9:.3f} s ({int(bad.any(axis=1).sum())} '
                               'message(s) with non-finite values)')
            _check_float32(bag, stream, extractor.names, values, stream.times[unique])
            parts.append(values[inverse])
            part_names += extractor.names
        if parts:
            arrays[key] = np.concatenate(parts, axis=1)
            names[key] = part_names

    tasks = _task_for(bag, cfg, task_label, records, [int(grid[s[0]]) for s in segments])

    rows = np.cumsum([0] + [len(s) for s in segments])
    ends = rows[1:] - (1 if cfg.action.from_state else 0)  # action.from_state: the last frame has no action
    kept_rows = np.concatenate([np.arange(lo, hi) for lo, hi in zip(rows[:-1], ends)])
    cameras = _CameraRows(bag, cfg, streams, matches, positions, kept_rows, records, progress)
    if cfg.action.from_state:
        names['action'] = list(names['observation.state']) if cfg.action.from_state == 'next' \
            else [f'{n}.delta' for n in names['observation.state']]
    episodes = []
    for k in range(len(segments)):
        lo, hi = rows[k], rows[k + 1]
        ep_arrays = {key: values[lo:hi].astype(np.float32) for key, values in arrays.items()}
        if cfg.action.from_state:
            state = ep_arrays['observation.state']
            ep_arrays['action'] = state[1:] if cfg.action.from_state == 'next' else state[1:] - state[:-1]
            ep_arrays = {key: v[: len(v) - 1] if key != 'action' else v for key, v in ep_arrays.items()}
        ep_frames = {cam.name: _CameraFrames(cameras, cam.name, lo, ends[k]) for cam in cfg.camera_specs}
        episodes.append(BagEpisode(bag.name, ep_frames, ep_arrays, tasks[k]))
    return BagResult(episodes, names, cameras.shapes, report, bag)


class _CameraRows:
    """Pass 2: the camera frames of a bag's dataset rows, decoded from the bag as they are asked for.

    Only the messages that land on kept rows are deserialised and decoded, each once (a message
    nearest to several grid times fills them all). Frames wait here only until taken: rows are taken
    in order, so what waits is what the bag stores ahead of its row (one camera ahead of another).
    """

    def __init__(self, bag, cfg, streams, matches, positions, kept_rows, records, progress):
        self._bag, self._progress = bag, progress
        self._targets = {}  # topic -> {read index: [(camera, row)]}
        self.shapes, self._converters, self._msgtypes = {}, {}, {}
        for stream, (idx, _) in zip(streams, matches):
            if not stream.role.startswith('camera:'):
                continue
            name = stream.spec.name
            targets = self._targets.setdefault(stream.topic, {})
            for row, sorted_i in zip(kept_rows.tolist(), idx[positions[kept_rows]].tolist()):
                targets.setdefault(int(stream.order[sorted_i]), []).append((name, row))
            conv = self._converters[name] = ImageConverter(stream.spec, stream.msgtype,
                                                           f'{bag.name}: camera {name!r} topic {stream.topic}')
            self._msgtypes[stream.topic] = stream.msgtype
            first = _deserialize(bag, stream.topic, stream.msgtype, records[stream.topic].first)
            self.shapes[name] = conv.frame_shape(first)
        self.shapes = {cam.name: self.shapes[cam.name] for cam in cfg.camera_specs}
        self._ready = {}  # (camera, row) -> frame, decoded and not yet taken
        self._messages = None

    def take(self, camera, row):
        """Return the frame of `camera` at dataset row `row` (each is taken once)."""
        if self._messages is None:
            self._messages = self._decode()
        while (camera, row) not in self._ready:
            if next(self._messages, None) is None:
                raise BagError(f'{self._bag.name}: camera {camera!r}: the message of row {row} was not found on the '
                               'second read (the bag changed during the conversion?)')
        return self._ready.pop((camera, row))

    def _decode(self):
        """Decode the wanted camera messages in the bag's order; yields after each (True)."""
        counters = dict.fromkeys(self._targets, -1)
        total = sum(len(v) for v in self._targets.values())
        with tqdm(total=total, desc=f'decode {self._bag.path.name}', unit='frame', disable=not self._progress,
                  leave=False) as bar:
            for topic, _, data in self._bag.read(list(self._targets)):
                counters[topic] += 1
                targets = self._targets[topic].get(counters[topic])
                if not targets:
                    continue
                msg = _deserialize(self._bag, topic, self._msgtypes[topic], data)
                decoded = {}
                for camera, row in targets:
                    if camera not in decoded:
                        decoded[camera] = self._converters[camera](msg)
                    self._ready[(camera, row)] = decoded[camera]
                bar.update()
                yield True


class _CameraFrames:
    """One camera's frames of one episode (dataset rows lo..hi-1), decoded from the bag when iterated."""

    def __init__(self, rows, camera, lo, hi):
        self._rows, self._camera, self._lo, self._hi = rows, camera, int(lo), int(hi)

    def __len__(self):
        return self._hi - self._lo

    def __iter__(self):
        for row in range(self._lo, self._hi):
            yield self._rows.take(self._camera, row)


def format_report(report):
    """Plain-text table of one bag's sync report."""
    head = (f"{report['bag']}: {report['kept_frames']} of {report['grid_times']} grid times kept, "
            f"{report['episodes']} episode(s)")
    cols = ['topic', 'role', 'time', 'sync', 'messages', 'matched', 'dropped', 'median|dt|', 'max|dt|', 'longest gap']
    rows = []
    for t in report['topics']:
        def ms(v):
            return '-' if v is None else f'{v * 1e3:.1f}ms'
        rows.append([t['topic'], t['role'], t['time'], t['sync'], str(t['messages']), str(t['matched']),
                     str(t['dropped']), ms(t['median_abs_dt_s']), ms(t['max_abs_dt_s']), f"{t['longest_gap_s']:.3f}s"])
    widths = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    lines = [head, '  ' + '  '.join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ['  ' + '  '.join(v.ljust(w) for v, w in zip(r, widths)) for r in rows]
    return '\n'.join(lines)


def _warn(message):
    print(f'convert_bags: warning: {message}', file=sys.stderr)


def check_output_writable(output):
    """Raise ConversionError unless the dataset at `output` can be created (checked before any bag is read)."""
    ancestor = output.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConversionError(f'{output}: cannot be created: {ancestor} is a file, not a directory; '
                              'choose another --output')
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConversionError(f'{output}: cannot be created: {ancestor} is not writable; choose another --output')


def shard_bags(bags, num_shards, shard_index):
    """Return shard `shard_index` of `num_shards`: a contiguous slice, so shards merged in order keep the bag order."""
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConversionError(f'shard index {shard_index} is not in 0..{num_shards - 1}')
    count = len(bags)
    return list(bags)[shard_index * count // num_shards:(shard_index + 1) * count // num_shards]


@dataclass
class _Part:
    """A bag converted into a part dataset."""

    bag: str
    root: Path
    names: dict
    cameras: dict
    report: dict
    episodes: int
    frames: int
    tasks: dict


def _convert_part(bag_path, cfg, root, task_label, progress, png_threads, episode_offset=0, index_offset=0,
                  tasks=None):
    """Convert one bag into a part dataset at `root` (episodes and frames numbered from the offsets)."""
    with convert_bag(bag_path, cfg, task_label=task_label, progress=progress) as result:
        writer = DatasetWriter(root, fps=cfg.fps, robot_type=cfg.robot_type, cameras=result.cameras,
                               arrays=result.names, video=cfg.video, png_compress_level=cfg.png_compress_level,
                               png_threads=png_threads, episode_offset=episode_offset, index_offset=index_offset,
                               tasks=tasks)
        with writer:
            for ep in result.episodes:
                writer.add_episode(frames=ep.frames, arrays=ep.arrays, task=ep.task)
            writer.finalize()
    return _Part(str(bag_path), Path(root), result.names, result.cameras, result.report,
                 writer.num_episodes - episode_offset, writer.num_frames - index_offset, writer.tasks)


def _convert_part_in_worker(bag_path, cfg, root, task_label, png_threads):
    """_convert_part in a worker process: the bag's error message instead of its exception (which may not pickle)."""
    try:
        return _convert_part(bag_path, cfg, root, task_label, False, png_threads)
    except (BagError, DatasetError) as exc:
        return str(exc)


def _check_part(part, first, existing):
    """Raise BagError when a bag's features differ from the first bag's (or from the dataset appended to)."""
    if first is not None and part.names != first.names:
        diff = [k for k in part.names if part.names[k] != first.names.get(k)] or sorted(set(first.names) -
                                                                                        set(part.names))
        key = diff[0]
        raise BagError(f"{part.bag}: feature element names of {', '.join(diff)} differ from the first bag's "
                       f"({first.names.get(key)} vs {part.names.get(key)})")
    if first is not None and part.cameras != first.cameras:
        cam = next(c for c in part.cameras if part.cameras[c] != first.cameras.get(c))
        raise BagError(f'{part.bag}: camera {cam!r} frames are {part.cameras[cam]}, earlier bags '
                       f'{first.cameras.get(cam)}; set `resize` in the config')
    if existing is not None:
        features = read_json(part.root / 'meta' / 'info.json')['features']
        old = existing['features']
        diff = [k for k in list(old) + list(features) if old.get(k) != features.get(k)]
        if diff:
            raise BagError(f"{part.bag}: cannot append, features differ from the dataset's ({diff[0]}: "
                           f'{features.get(diff[0])} vs {old.get(diff[0])})')


def convert_bags(bags, cfg, output, append=False, overwrite=False, skip_bad=False, task_label=None,
                 progress=False, log=print, warn=_warn, jobs=1):
    """Convert bags into the dataset at `output`. Returns (converted bag names, {bad bag: message}).

    jobs: bags converted at once, each in its own process (the dataset is in bag order either way).
    Raises BagError for the first bad bag (unless skip_bad), ConversionError when nothing converts
    or the output is in the way; the dataset is only moved into place when every step succeeded.
    What was read around in a damaged bag goes to `warn` (and the sync report).
    """
    from .preview import preview_episodes, render_preview

    output = Path(output)
    check_output_writable(output)
    if output.exists() and not (append or overwrite):
        raise ConversionError(f'{output}: already exists; pass --append to add episodes or --overwrite to replace it')
    if append and not output.exists():
        raise ConversionError(f'{output}: --append given but there is no dataset there')
    existing = LeRobotDataset(output) if append else None
    done = _converted_paths(output) if append else set()
    todo = []
    for bag_path in bags:
        if str(Path(bag_path).resolve()) in done:  # re-running an interrupted --append resumes
            log(f'{bag_path}: already in {output}, skipped')
        else:
            todo.append(bag_path)
    if not todo:
        log(f'{output}: every bag given is already in the dataset; nothing to append')
        return [], {}
    output.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(output)
    scratch = output.parent / f'.{output.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}'
    scratch.mkdir()
    try:
        parts, failures = _convert_parts(todo, cfg, scratch, existing, skip_bad, task_label, progress, log, warn,
                                         max(1, int(jobs)))
        if not parts:
            raise ConversionError('no bag could be converted:\n' + '\n'.join(f'  {m}' for m in failures.values()))
        sources = ([output] if append else []) + [p.root for p in parts]
        first_episode = existing.num_episodes if existing else 0
        for part in parts:
            part.report['episode_indices'] = list(range(first_episode, first_episode + part.episodes))
            first_episode += part.episodes
        old = (output / REPORT_PATH) if append else None
        old_reports = json.loads(old.read_text())['bags'] if old is not None and old.is_file() else []
        report = json.dumps({'fps': cfg.fps, 'config': str(cfg.path), 'bags': old_reports + [p.report for p in parts],
                             'skipped': failures}, indent=2)
        frames_png, curves_png = render_preview(preview_episodes([LeRobotDataset(s) for s in sources]),
                                                parts[0].names)
        merge_datasets(sources, output, overwrite=overwrite, append=append, progress=progress and len(sources) > 1,
                       extras={REPORT_PATH: report, PREVIEW_FRAMES_PATH: frames_png, PREVIEW_CURVES_PATH: curves_png})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return [p.bag for p in parts], failures


def _convert_parts(bags, cfg, scratch, existing, skip_bad, task_label, progress, log, warn, jobs):
    """Convert each bag into a part dataset under `scratch`; return (parts in bag order, {bad bag: message})."""
    parts, failures, first = [], {}, None
    existing_info = existing.info if existing is not None else None
    episode, index = (existing.num_episodes, existing.total_frames) if existing is not None else (0, 0)
    tasks = read_tasks(existing.root) if existing is not None else {}

    def accept(part):
        nonlocal first
        _check_part(part, first, existing_info)
        first = first or part
        for message in part.report['warnings']:
            warn(message)
        log(format_report(part.report))
        parts.append(part)

    def reject(bag_path, message):
        failures[str(bag_path)] = message
        log(f'SKIPPED {message}')

    bar = tqdm(total=len(bags), desc='bags', unit='bag', disable=not progress or len(bags) < 2)
    with bar:
        if jobs == 1:
            for k, bag_path in enumerate(bags):
                try:
                    part = _convert_part(bag_path, cfg, scratch / f'part-{k:05d}', task_label, progress, PNG_THREADS,
                                         episode, index, tasks)
                    accept(part)
                    episode, index, tasks = episode + part.episodes, index + part.frames, part.tasks
                except (BagError, DatasetError) as exc:
                    if not skip_bad:
                        raise
                    shutil.rmtree(scratch / f'part-{k:05d}', ignore_errors=True)
                    reject(bag_path, str(exc))
                bar.update()
            return parts, failures
        threads = max(1, PNG_THREADS // jobs)
        # spawn: a fork of a process with threads (tqdm's monitor, the PNG pools) may deadlock
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context('spawn')) as pool:
            futures = [pool.submit(_convert_part_in_worker, bag_path, cfg, scratch / f'part-{k:05d}', task_label,
                                   threads) for k, bag_path in enumerate(bags)]
            try:
                for bag_path, future in zip(bags, futures):
                    outcome = future.result()
                    try:
                        if isinstance(outcome, str):
                            raise BagError(outcome)
                        accept(outcome)
                    except BagError as exc:
                        if not skip_bad:
                            raise
                        reject(bag_path, str(exc))
                    bar.update()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
    return parts, failures


def _converted_paths(root):
    path = root / REPORT_PATH
    if not path.is_file():
        return set()
    try:
        return {b['path'] for b in json.loads(path.read_text())['bags'] if 'path' in b}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConversionError(f'{path}: unreadable sync report: {exc}') from None
