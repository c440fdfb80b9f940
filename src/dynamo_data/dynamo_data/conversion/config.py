"""The converter's YAML config: which topics become which dataset features (validated up front).

See src/dynamo_data/config/xarm_kitchen.yaml for a documented example of every key.
"""
from dataclasses import dataclass, field
from pathlib import Path

import yaml

__all__ = ['ConfigError', 'CameraSpec', 'SourceSpec', 'ActionSpec', 'ConversionConfig', 'load_config']

ARRAY_FEATURES = {'state': 'observation.state', 'action': 'action',
                  'environment_state': 'observation.environment_state'}
SYNC_MODES = ('nearest', 'hold')
STAMP_SOURCES = ('header', 'receive')


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key."""


@dataclass
class CameraSpec:
    name: str
    topic: str
    resize: tuple | None = None  # (H, W)
    depth_range: tuple | None = None  # (near, far) mapped to 0..255 for mono16/16UC1/32FC1 cameras
    tolerance: float | None = None
    stamp: str | None = None


@dataclass
class SourceSpec:
    """One topic that contributes elements to an array feature."""

    topic: str
    joints: list | None = None  # JointState / JointTrajectory: element order by joint NAME
    velocities: bool = False  # JointState: append velocities after positions
    point: int = 0  # JointTrajectory: which point
    trajectory_field: str = 'positions'  # JointTrajectory point field
    names: list | None = None  # Float64MultiArray element names (length = used elements)
    indices: list | None = None  # Float64MultiArray: which elements of data (default: all)
    fields: list | None = None  # any message: numeric field paths (Twist default: linear/angular x,y,z)
    sync: str = 'nearest'
    tolerance: float | None = None
    stamp: str | None = None


@dataclass
class ActionSpec:
    sources: list = field(default_factory=list)  # SourceSpec list, concatenated
    from_state: str | None = None  # "next" or "delta"


@dataclass
class ConversionConfig:
    path: Path
    fps: float
    robot_type: str
    cameras: list
    state: list
    action: ActionSpec
    environment_state: list
    task: str | None = None
    task_topic: str | None = None
    tolerance: float | None = None  # seconds; default half a period
    stamp: str = 'header'
    video: bool = False
    split: str = 'bag'  # bag | gap | marker
    gap_s: float | None = None
    marker_topic: str | None = None
    min_episode_frames: int = 2
    png_compress_level: int = 1

    @property
    def default_tolerance(self):
        return self.tolerance if self.tolerance is not None else 0.5 / self.fps


def _err(path, key, msg):
    return ConfigError(f'{path}: {key}: {msg}')


def _check_keys(path, where, entry, allowed):
    if not isinstance(entry, dict):
        raise _err(path, where, f'expected a mapping, got {type(entry).__name__}')
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise _err(path, where, f"unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(allowed))})")


def _positive(path, key, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise _err(path, key, f'expected a number, got {value!r}') from None
    if value <= 0:
        raise _err(path, key, f'must be positive, got {value}')
    return value


def _integer(path, key, value, lowest, highest=None):
    # bool is an int subclass, but `point: true` is a mistake, not 1
    if isinstance(value, bool) or not isinstance(value, int):
        raise _err(path, key, f'expected an integer, got {value!r}')
    if value < lowest or (highest is not None and value > highest):
        allowed = f'{lowest}..{highest}' if highest is not None else f'>= {lowest}'
        raise _err(path, key, f'must be {allowed}, got {value}')
    return value


def _flag(path, key, value):
    # bool('false') is True: a quoted "false" must not switch a feature on
    if not isinstance(value, bool):
        raise _err(path, key, f'expected true or false, got {value!r}')
    return value


def _str_list(path, key, value):
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise _err(path, key, 'expected a non-empty list of strings')
    if len(set(value)) != len(value):
        raise _err(path, key, 'contains duplicates')
    return list(value)


def _source(path, where, entry):
    allowed = {'topic', 'joints', 'velocities', 'point', 'trajectory_field', 'names', 'indices', 'fields',
               'sync', 'tolerance', 'stamp'}
    _check_keys(path, where, entry, allowed)
    if not isinstance(entry.get('topic'), str) or not entry['topic'].startswith('/'):
        raise _err(path, f'{where}.topic', "expected a topic name starting with '/'")
    spec = SourceSpec(topic=entry['topic'])
    if 'joints' in entry:
        spec.joints = _str_list(path, f'{where}.joints', entry['joints'])
    spec.velocities = _flag(path, f'{where}.velocities', entry.get('velocities', False))
    spec.point = _integer(path, f'{where}.point', entry.get('point', 0), 0)
    spec.trajectory_field = str(entry.get('trajectory_field', 'positions'))
    if spec.trajectory_field not in ('positions', 'velocities', 'accelerations', 'effort'):
        raise _err(path, f'{where}.trajectory_field', 'one of positions, velocities, accelerations, effort')
    if 'names' in entry:
        spec.names = _str_list(path, f'{where}.names', entry['names'])
    if 'indices' in entry:
        if not isinstance(entry['indices'], list) or not all(isinstance(i, int) and i >= 0 for i in entry['indices']):
            raise _err(path, f'{where}.indices', 'expected a list of non-negative integers')
        spec.indices = list(entry['indices'])
        if spec.names is not None and len(spec.names) != len(spec.indices):
            raise _err(path, f'{where}.names', f'{len(spec.names)} names for {len(spec.indices)} indices')
    if 'fields' in entry:
        spec.fields = _str_list(path, f'{where}.fields', entry['fields'])
    spec.sync = entry.get('sync', 'nearest')
    if spec.sync not in SYNC_MODES:
        raise _err(path, f'{where}.sync', f"one of {', '.join(SYNC_MODES)}, got {spec.sync!r}")
    if 'tolerance' in entry:
        spec.tolerance = _positive(path, f'{where}.tolerance', entry['tolerance'])
    if 'stamp' in entry:
        spec.stamp = entry['stamp']
        if spec.stamp not in STAMP_SOURCES:
            raise _err(path, f'{where}.stamp', f"one of {', '.join(STAMP_SOURCES)}")
    return spec


def _sources(path, key, value):
    entries = value if isinstance(value, list) else [value]
    if not entries:
        raise _err(path, key, 'needs at least one topic')
    return [_source(path, f'{key}[{i}]' if isinstance(value, list) else key, e) for i, e in enumerate(entries)]


def load_config(path):
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise ConfigError(f'{path}: config file not found') from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f'{path}: cannot read YAML: {exc}') from None
    top = {'fps', 'robot_type', 'cameras', 'state', 'action', 'environment_state', 'task', 'tolerance',
           'stamp', 'video', 'episodes', 'png_compress_level'}
    _check_keys(path, 'top level', raw, top)
    for key in ('fps', 'robot_type', 'state', 'action'):
        if key not in raw:
            raise _err(path, key, 'missing (required)')
    fps = _positive(path, 'fps', raw['fps'])
    fps = int(fps) if float(fps).is_integer() else fps

    cameras = []
    cams = raw.get('cameras') or {}
    if not isinstance(cams, dict):
        raise _err(path, 'cameras', f'expected a mapping of camera name to topic, got {type(cams).__name__}')
    for name, entry in cams.items():
        where = f'cameras.{name}'
        _check_keys(path, where, entry, {'topic', 'resize', 'depth_range', 'tolerance', 'stamp'})
        if not isinstance(entry.get('topic'), str) or not entry['topic'].startswith('/'):
            raise _err(path, f'{where}.topic', "expected a topic name starting with '/'")
        spec = CameraSpec(name=str(name), topic=entry['topic'])
        if 'resize' in entry:
            size = entry['resize']
            if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
                raise _err(path, f'{where}.resize', 'expected [height, width] positive integers')
            spec.resize = tuple(size)
        if 'depth_range' in entry:
            rng = entry['depth_range']
            numbers = isinstance(rng, list) and len(rng) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in rng)
            if not (numbers and rng[1] > rng[0]):
                raise _err(path, f'{where}.depth_range', 'expected [near, far] with far > near')
            spec.depth_range = (float(rng[0]), float(rng[1]))
        if 'tolerance' in entry:
            spec.tolerance = _positive(path, f'{where}.tolerance', entry['tolerance'])
        if 'stamp' in entry:
            if entry['stamp'] not in STAMP_SOURCES:
                raise _err(path, f'{where}.stamp', f"one of {', '.join(STAMP_SOURCES)}")
            spec.stamp = entry['stamp']
        cameras.append(spec)

    state = _sources(path, 'state', raw['state'])
    action_raw = raw['action']
    if isinstance(action_raw, dict) and 'from_state' in action_raw:
        _check_keys(path, 'action', action_raw, {'from_state'})
        if action_raw['from_state'] not in ('next', 'delta'):
            raise _err(path, 'action.from_state', f"one of next, delta, got {action_raw['from_state']!r}")
        action = ActionSpec(from_state=action_raw['from_state'])
    else:
        action = ActionSpec(sources=_sources(path, 'action', action_raw))
    environment_state = _sources(path, 'environment_state', raw['environment_state']) \
        if raw.get('environment_state') else []

    cfg = ConversionConfig(path=path, fps=fps, robot_type=str(raw['robot_type']), cameras=cameras, state=state,
                           action=action, environment_state=environment_state)
    task = raw.get('task')
    if isinstance(task, str):
        cfg.task = task
    elif isinstance(task, dict):
        _check_keys(path, 'task', task, {'topic'})
        cfg.task_topic = task.get('topic')
    elif task is not None:
        raise _err(path, 'task', 'expected a label string or {topic: /task}')
    if 'tolerance' in raw:
        cfg.tolerance = _positive(path, 'tolerance', raw['tolerance'])
    cfg.stamp = raw.get('stamp', 'header')
    if cfg.stamp not in STAMP_SOURCES:
        raise _err(path, 'stamp', f"one of {', '.join(STAMP_SOURCES)}, got {cfg.stamp!r}")
    cfg.video = _flag(path, 'video', raw.get('video', False))
    cfg.png_compress_level = _integer(path, 'png_compress_level', raw.get('png_compress_level', 1), 0, 9)
    episodes = raw.get('episodes') or {}
    _check_keys(path, 'episodes', episodes, {'split', 'gap_s', 'marker_topic', 'min_frames'})
    cfg.split = episodes.get('split', 'bag')
    if cfg.split not in ('bag', 'gap', 'marker'):
        raise _err(path, 'episodes.split', f'one of bag, gap, marker, got {cfg.split!r}')
    if cfg.split == 'gap':
        cfg.gap_s = _positive(path, 'episodes.gap_s', episodes.get('gap_s'))
    if cfg.split == 'marker':
        cfg.marker_topic = episodes.get('marker_topic')
        if not isinstance(cfg.marker_topic, str):
            raise _err(path, 'episodes.marker_topic', 'required when split is marker')
    cfg.min_episode_frames = _integer(path, 'episodes.min_frames', episodes.get('min_frames', 2), 1)
    return cfg
