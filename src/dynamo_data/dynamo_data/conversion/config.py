"""The converter's YAML config: which topics become which dataset features (validated up front).

One pydantic model describes the file; types are strict (a quoted "false" is not a boolean, "10" is
not a number), unknown keys are refused, and every mistake becomes one line naming the file and the
key. See src/dynamo_data/config/xarm_kitchen.yaml for a documented example of every key.
"""
import re
from pathlib import Path
from typing import Annotated, Literal, Union

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    PrivateAttr,
    Strict,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
)

__all__ = ['ConfigError', 'CameraSpec', 'SourceSpec', 'ActionSpec', 'ConversionConfig', 'load_config']

STAMP_SOURCES = ('header', 'receive')


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and the key."""


def _topic(value):
    if not value.startswith('/'):
        raise ValueError(f"expected a topic name starting with '/', got {value!r}")
    return value


def _positive(value):
    if value <= 0:
        raise ValueError(f'must be positive, got {value}')
    return value


def _range(lowest, highest=None):
    def check(value):
        if value < lowest or (highest is not None and value > highest):
            allowed = f'{lowest}..{highest}' if highest is not None else f'>= {lowest}'
            raise ValueError(f'must be {allowed}, got {value}')
        return value
    return check


def _names(values):
    if not values or not all(values):
        raise ValueError('expected a non-empty list of non-empty strings')
    if len(set(values)) != len(values):
        raise ValueError('contains duplicates')
    return values


def _pair(what, increasing):
    def check(values):
        if len(values) != 2 or (increasing and not values[1] > values[0]):
            raise ValueError(f'expected {what}')
        return values
    return check


def _text(value):
    if not value.strip():
        raise ValueError('expected a non-empty string')
    return value


Topic = Annotated[StrictStr, AfterValidator(_topic)]
Number = Annotated[float, Strict()]  # strict: an int is a number, a string or a boolean is not
Positive = Annotated[Number, AfterValidator(_positive)]
Names = Annotated[list[StrictStr], AfterValidator(_names)]
Stamp = Literal['header', 'receive']


class _Section(BaseModel):
    model_config = ConfigDict(extra='forbid')


class CameraSpec(_Section):
    """One camera: `cameras: {<name>: {topic, resize, depth_range, tolerance, stamp}}`."""

    topic: Topic
    resize: Annotated[list[Annotated[StrictInt, AfterValidator(_range(1))]],
                      AfterValidator(_pair('[height, width] positive integers', False))] | None = None
    # (near, far) mapped to 0..255 for mono16/16UC1/32FC1 cameras
    depth_range: Annotated[list[Number], AfterValidator(_pair('[near, far] with far > near', True))] | None = None
    tolerance: Positive | None = None
    stamp: Stamp | None = None
    _name: str = PrivateAttr('')

    @property
    def name(self):
        return self._name


class SourceSpec(_Section):
    """One topic that contributes elements to an array feature."""

    topic: Topic
    joints: Names | None = None  # JointState / JointTrajectory: element order by joint NAME
    velocities: StrictBool = False  # JointState: append velocities after positions
    point: Annotated[StrictInt, AfterValidator(_range(0))] = 0  # JointTrajectory: which point
    trajectory_field: Literal['positions', 'velocities', 'accelerations', 'effort'] = 'positions'
    names: Names | None = None  # Float64MultiArray element names (length = used elements)
    indices: list[Annotated[StrictInt, AfterValidator(_range(0))]] | None = None  # which elements of data
    fields: Names | None = None  # any message: numeric field paths (Twist default: linear/angular x,y,z)
    sync: Literal['nearest', 'hold'] = 'nearest'
    tolerance: Positive | None = None
    stamp: Stamp | None = None

    @field_validator('indices')
    @classmethod
    def _names_match_indices(cls, indices, info: ValidationInfo):
        names = info.data.get('names')
        if indices is not None and names is not None and len(names) != len(indices):
            raise ValueError(f'{len(indices)} indices for {len(names)} names')
        return indices


class ActionSpec(_Section):
    """The action: topics concatenated (`sources`), or derived from the state (`from_state`)."""

    sources: list[SourceSpec] = []
    from_state: Literal['next', 'delta'] | None = None


class TaskSpec(_Section):
    """Task labels from a std_msgs/String topic, optionally replaced by natural-language descriptions."""

    topic: Topic
    # label on the topic -> the description stored as the dataset's task (what language-conditioned
    # policies read); with it, every label met must have one
    descriptions: dict[StrictStr, Annotated[StrictStr, AfterValidator(_text)]] | None = None


class EpisodesSpec(_Section):
    """How a bag is cut into episodes."""

    split: Literal['bag', 'gap', 'marker'] = 'bag'
    gap_s: Positive | None = Field(None, validate_default=True)
    marker_topic: Topic | None = Field(None, validate_default=True)
    min_frames: Annotated[StrictInt, AfterValidator(_range(1))] = 2

    @field_validator('gap_s', 'marker_topic')
    @classmethod
    def _required_by_split(cls, value, info: ValidationInfo):
        needs = {'gap_s': 'gap', 'marker_topic': 'marker'}[info.field_name]
        if value is None and info.data.get('split') == needs:
            raise ValueError(f'required when split is {needs}')
        return value


def _one_or_many(value):
    return '<list>' if isinstance(value, list) else '<one>'


def _as_list(value):
    if isinstance(value, list) and not value:
        raise ValueError('needs at least one topic')
    return value if isinstance(value, list) else [value]


# `state: {topic: ...}` or `state: [{topic: ...}, ...]`; the tags (<...>) never show in messages
Sources = Annotated[Union[Annotated[SourceSpec, Tag('<one>')], Annotated[list[SourceSpec], Tag('<list>')]],
                    Discriminator(_one_or_many), AfterValidator(_as_list)]


def _action_kind(value):
    return '<derived>' if isinstance(value, dict) and 'from_state' in value else _one_or_many(value)


def _action(value):
    return value if isinstance(value, ActionSpec) else ActionSpec(sources=_as_list(value))


Action = Annotated[Union[Annotated[ActionSpec, Tag('<derived>')], Annotated[SourceSpec, Tag('<one>')],
                         Annotated[list[SourceSpec], Tag('<list>')]],
                   Discriminator(_action_kind), AfterValidator(_action)]
Task = Annotated[Union[Annotated[StrictStr, Tag('<label>')], Annotated[TaskSpec, Tag('<topic>')]],
                 Discriminator(lambda v: '<label>' if isinstance(v, str) else '<topic>')]


class ConversionConfig(_Section):
    """A whole converter config file."""

    fps: Positive
    robot_type: StrictStr
    cameras: dict[StrictStr, CameraSpec] | None = None
    state: Sources
    action: Action
    environment_state: Sources | None = None
    task: Task | None = None  # one label for every episode, or {topic, descriptions}
    tolerance: Positive | None = None  # seconds; default half a period
    stamp: Stamp = 'header'
    video: StrictBool = False
    episodes: EpisodesSpec = Field(default_factory=EpisodesSpec)
    png_compress_level: Annotated[StrictInt, AfterValidator(_range(0, 9))] = 1
    _path: Path = PrivateAttr(Path())

    @field_validator('fps')
    @classmethod
    def _whole_fps_as_int(cls, fps):
        return int(fps) if float(fps).is_integer() else fps

    @field_validator('cameras')
    @classmethod
    def _named_cameras(cls, cameras):
        for name, camera in (cameras or {}).items():
            camera._name = name
        return cameras

    @field_validator('environment_state', 'episodes', mode='before')
    @classmethod
    def _empty_is_default(cls, value, info: ValidationInfo):
        return value if value else ({} if info.field_name == 'episodes' else None)

    @property
    def path(self):
        return self._path

    @property
    def camera_specs(self):
        return list((self.cameras or {}).values())

    @property
    def environment_sources(self):
        return self.environment_state or []

    @property
    def task_label(self):
        return self.task if isinstance(self.task, str) else None

    @property
    def task_topic(self):
        return self.task.topic if isinstance(self.task, TaskSpec) else None

    @property
    def task_descriptions(self):
        return self.task.descriptions if isinstance(self.task, TaskSpec) else None

    @property
    def default_tolerance(self):
        return self.tolerance if self.tolerance is not None else 0.5 / self.fps


_TAG = re.compile(r'^<\w+>$')
_MESSAGES = {
    'missing': 'missing (required)',
    'bool_type': 'expected true or false, got {input!r}',
    'int_type': 'expected an integer, got {input!r}',
    'float_type': 'expected a number, got {input!r}',
    'string_type': 'expected a string, got {input!r}',
    'list_type': 'expected a list, got {input!r}',
    'dict_type': 'expected a mapping, got {kind}',
    'model_type': 'expected a mapping, got {kind}',
    'model_attributes_type': 'expected a mapping, got {kind}',
}


def _where(loc):
    where = ''
    for part in loc:
        if isinstance(part, int):
            where += f'[{part}]'
        elif not _TAG.match(str(part)):
            where += f'.{part}' if where else str(part)
    return where or 'top level'


def _describe(error):
    kind = error['type']
    if kind == 'literal_error':
        allowed = ', '.join(re.findall(r"'([^']*)'", error['ctx']['expected']))
        return f"one of {allowed}, got {error['input']!r}"
    if kind == 'value_error':
        return str(error['ctx']['error'])
    template = _MESSAGES.get(kind)
    if template:
        return template.format(input=error['input'], kind=type(error['input']).__name__)
    return error['msg']


def _format(path, exc):
    """One line for all the errors of a ValidationError; unknown keys grouped by the mapping they are in."""
    unknown, lines = {}, []
    for error in exc.errors():
        if error['type'] == 'extra_forbidden':
            unknown.setdefault(_where(error['loc'][:-1]), []).append(str(error['loc'][-1]))
        else:
            lines.append(f"{_where(error['loc'])}: {_describe(error)}")
    lines = [f"{where}: unknown key(s) {', '.join(keys)}" for where, keys in unknown.items()] + lines
    return f"{path}: {'; '.join(lines)}"


def load_config(path):
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding='utf-8'))
    except FileNotFoundError:
        raise ConfigError(f'{path}: config file not found') from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f'{path}: top level: expected a mapping of config keys, got {type(raw).__name__}')
    try:
        cfg = ConversionConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format(path, exc)) from None
    cfg._path = path
    return cfg
