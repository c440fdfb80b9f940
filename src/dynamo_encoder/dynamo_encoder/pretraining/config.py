"""Pretraining configuration: dataclasses, YAML presets shipped in the package, dotted overrides.

A preset name (`default`, `cpu_small`) refers to presets/<name>.yaml inside this package; any other
value is a path to a YAML file. A YAML file only needs the keys it changes: everything else keeps
the dataclass defaults (which reproduce the paper's settings).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml

from dynamo_data.atomic import atomic_open

from ..model import ARCHITECTURES, check_setting_types, objective_config

PRESETS_DIR = Path(__file__).resolve().parent / 'presets'
MEMORY_FORMATS = {'channels_last': torch.channels_last, 'contiguous': torch.contiguous_format}


class ConfigError(ValueError):
    """A bad preset, YAML file or setting; the message names it."""


@dataclass
class EncoderSettings:
    arch: str = 'resnet18'
    input_size: list[int] = field(default_factory=lambda: [224, 224])  # (H, W) frames are resized to


@dataclass
class DataSettings:
    window: int = 5                  # T consecutive frames per training sample (paper: 2 to 5)
    cameras: list[str] | None = None  # None = every camera of the dataset, in dataset order
    val_fraction: float = 0.1        # episodes held out for the validation loss
    split_seed: int = 0
    cache_dir: str | None = None     # where decoded frames are cached; None = $XDG_CACHE_HOME/dynamo_ros/frames


@dataclass
class OptimSettings:
    lr: float = 1e-4
    weight_decay: float = 0.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    grad_clip: float = 0.1           # max global gradient norm
    warmup_fraction: float = 0.05    # linear warm-up over this fraction of the steps, then cosine decay
    min_lr_fraction: float = 0.0     # cosine decays to lr * min_lr_fraction
    batch_size: int = 64
    epochs: int = 40


@dataclass
class TrainSettings:
    seed: int = 0
    threads: int = 0                 # torch CPU threads; 0 = torch's default
    device: str = 'auto'             # auto | cpu | cuda | cuda:N
    precision: str = 'auto'          # auto (bf16 autocast where the hardware has fast bf16, else fp32) | fp32 | bf16
    # Layout of the encoder's convolutions: channels_last, contiguous (NCHW, as the official trainer) or
    # auto: channels_last on CUDA (the layout of cuDNN's tensor-core convolutions), contiguous on the CPU,
    # where channels_last training measured no faster (bench/pretrain_throughput.py). Same numbers within 1e-4.
    memory_format: str = 'auto'
    # torch.compile the training step: on the CPU minutes of compiling for no measured gain
    # (bench/pretrain_throughput.py), so off unless asked.
    compile: bool = False
    checkpoint_every: int = 500      # steps between checkpoints (also at every epoch end)
    sync_batchnorm: bool = True      # several processes: BatchNorm statistics over the global batch (as the paper)


@dataclass
class PretrainConfig:
    encoder: EncoderSettings = field(default_factory=EncoderSettings)
    objective: dict = field(default_factory=lambda: {'name': 'dynamo'})
    data: DataSettings = field(default_factory=DataSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    train: TrainSettings = field(default_factory=TrainSettings)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def validate(self) -> 'PretrainConfig':
        if self.encoder.arch not in ARCHITECTURES:
            raise ConfigError(f'encoder.arch: unknown {self.encoder.arch!r}; known: {sorted(ARCHITECTURES)}')
        if len(self.encoder.input_size) != 2 or min(self.encoder.input_size) < 16:
            raise ConfigError(f'encoder.input_size must be [H, W] of at least 16 px, got {self.encoder.input_size}')
        if not 0.0 <= self.data.val_fraction < 1.0:
            raise ConfigError(f'data.val_fraction must be in [0, 1), got {self.data.val_fraction}')
        if self.optim.batch_size < 1 or self.optim.epochs < 1:
            raise ConfigError('optim.batch_size and optim.epochs must be positive')
        if self.data.cache_dir is not None and not isinstance(self.data.cache_dir, str):
            raise ConfigError(f'data.cache_dir must be a directory path or null, got {self.data.cache_dir!r}')
        if self.train.precision not in ('auto', 'fp32', 'bf16'):
            raise ConfigError(f'train.precision must be auto, fp32 or bf16, got {self.train.precision!r}')
        if self.train.memory_format not in ('auto', *MEMORY_FORMATS):
            raise ConfigError(f'train.memory_format must be auto, channels_last or contiguous, '
                              f'got {self.train.memory_format!r}')
        try:
            objective = objective_config(self.objective)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f'objective: {exc}') from None
        if self.data.window < objective.min_window:
            raise ConfigError(f'data.window must be at least {objective.min_window} for objective '
                              f'{self.objective.get("name", "dynamo")!r}, got {self.data.window}')
        return self


# The paper's ablations as settings (`pretrain --set` keys); names follow the paper's table.
ABLATIONS: dict[str, dict[str, object]] = {
    'no_forward_model': {'objective.forward_model': False},
    'no_inverse_model': {'objective.inverse_model': False},
    'no_bottleneck': {'objective.bottleneck': False},
    'no_covariance_reg': {'objective.covariance_weight': 0.0},
    'no_stop_gradient': {'objective.target': 'none'},
    'short_context': {'data.window': 2},
}


def _from_dict(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise ConfigError(f'{where}: expected a mapping, got {type(values).__name__}')
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(f'{where}: unknown key(s) {unknown}; known: {sorted(known)}')
    kwargs = {}
    for name, value in values.items():
        default = known[name].default_factory() if known[name].default_factory is not dataclasses.MISSING \
            else known[name].default
        if dataclasses.is_dataclass(default):
            kwargs[name] = _from_dict(type(default), value, f'{where}.{name}' if where else name)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def config_from_dict(values: dict, where: str = '') -> PretrainConfig:
    values = copy.deepcopy(values or {})
    objective = values.pop('objective', None)
    config = _from_dict(PretrainConfig, values, where or 'config')
    try:
        check_setting_types(PretrainConfig, values)
    except ValueError as exc:
        raise ConfigError(f'{where or "config"}: {exc}') from None
    if objective is not None:
        if not isinstance(objective, dict):
            raise ConfigError(f'{where or "config"}: objective must be a mapping')
        config.objective = {'name': 'dynamo', **objective}
    return config.validate()


def load_config(preset_or_path: str = 'default') -> PretrainConfig:
    """Load a preset name (presets/<name>.yaml in this package) or a YAML file path as a validated config."""
    path = PRESETS_DIR / f'{preset_or_path}.yaml'
    if not path.exists():
        path = Path(preset_or_path)
        if not path.exists():
            presets = sorted(p.stem for p in PRESETS_DIR.glob('*.yaml'))
            raise ConfigError(f'--config {preset_or_path!r}: neither a preset ({", ".join(presets)}) nor a YAML file')
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f'{path}: invalid YAML: {" ".join(str(exc).split())}') from None
    return config_from_dict(values, where=str(path))


def apply_overrides(config: PretrainConfig, overrides: dict[str, object] | list[str]) -> PretrainConfig:
    """Apply dotted `key=value` overrides (values parsed as YAML) and re-validate."""
    if isinstance(overrides, list):
        parsed = {}
        for item in overrides:
            if '=' not in item:
                raise ConfigError(f'--set {item!r}: expected key=value')
            key, value = item.split('=', 1)
            try:
                parsed[key.strip()] = yaml.safe_load(value)
            except yaml.YAMLError as exc:
                problem = ' '.join(str(exc).split())
                raise ConfigError(f'--set {item!r}: the value is not valid YAML ({problem})') from None
        overrides = parsed
    values = config.to_dict()
    for key, value in overrides.items():
        parts = key.split('.')
        node = values
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                if parts[0] == 'objective' and part not in node:
                    node[part] = {}
                else:
                    raise ConfigError(f'--set {key}: unknown section {part!r}')
            node = node[part]
        if parts[0] != 'objective' and parts[-1] not in node:
            raise ConfigError(f'--set {key}: unknown key {parts[-1]!r}; known: {sorted(node)}')
        node[parts[-1]] = value
    return config_from_dict(values, where='--set')


def save_config(config: PretrainConfig, path: Path) -> None:
    with atomic_open(path) as file:
        yaml.safe_dump(config.to_dict(), file, sort_keys=False)
