"""DynaMo models: image encoders, causal dynamics transformers, pretraining objectives."""

from __future__ import annotations

import dataclasses

from .byol import BYOLConfig, BYOLObjective
from .dynamo import DynaMoConfig, DynaMoObjective
from .encoder import ARCHITECTURES, ImageEncoder, build_encoder, seeded_initialisation

# Pretraining objectives by name: (config dataclass, objective class). An objective is an nn.Module
# built as cls(encoder, config, window) with `name`, `encoder` (the module exported at the end),
# `forward(frames (B,T,V,H,W,3) uint8) -> (loss, {component: scalar tensor, ..., 'loss': loss})` and
# `after_optimizer_step(progress in [0, 1])`; its config dataclass has a `min_window` class
# attribute. New objectives register here.
OBJECTIVES = {
    'dynamo': (DynaMoConfig, DynaMoObjective),
    'byol': (BYOLConfig, BYOLObjective),   # single-image baseline (the paper's classic SSL comparison)
}


def check_setting_types(config_class, settings: dict, prefix: str = '') -> None:
    """Raise ValueError naming `prefix` + key for a setting whose type does not fit its field's default.

    YAML gives int, float, bool, str, lists and mappings: an int is a valid float, a list a valid
    pair, a mapping sets a nested dataclass (checked in turn). A field whose default is None takes
    anything; keys that are not fields are left to the caller, which names them as unknown.
    """
    fields = {f.name: f for f in dataclasses.fields(config_class)}
    for key, value in settings.items():
        if key not in fields:
            continue
        field = fields[key]
        default = field.default if field.default_factory is dataclasses.MISSING else field.default_factory()
        if default is None:
            continue
        if dataclasses.is_dataclass(default):
            if not isinstance(value, dict):
                raise ValueError(f'{prefix}{key} must be a mapping, got {value!r}')
            check_setting_types(type(default), value, f'{prefix}{key}.')
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if isinstance(default, bool):
            fits, kind = isinstance(value, bool), 'true or false'
        elif isinstance(default, int):
            fits, kind = number and isinstance(value, int), 'an integer'
        elif isinstance(default, float):
            fits, kind = number, 'a number'
        elif isinstance(default, (list, tuple)):
            pair = isinstance(default, tuple) and len(default) == 2
            fits, kind = isinstance(value, (list, tuple)), 'a pair [a, b]' if pair else 'a list'
        elif isinstance(default, str):
            fits, kind = isinstance(value, str), 'a string'
        else:
            fits, kind = isinstance(value, type(default)), f'a {type(default).__name__}'
        if not fits:
            raise ValueError(f'{prefix}{key} must be {kind}, got {value!r}')


def objective_config(settings: dict):
    """Build the objective's config dataclass from {'name': ..., **fields} (ValueError naming a bad key)."""
    settings = dict(settings)
    name = settings.pop('name', 'dynamo')
    if name not in OBJECTIVES:
        raise ValueError(f'unknown objective.name {name!r}; known: {sorted(OBJECTIVES)}')
    config_class = OBJECTIVES[name][0]
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f'unknown objective setting(s) {unknown} for objective {name!r}; known: {sorted(known)}')
    check_setting_types(config_class, settings, 'objective.')
    return config_class(**settings)


def build_objective(settings: dict, encoder: ImageEncoder, window: int, seed: int | None = None):
    """Build the objective named in `settings` around `encoder`.

    With `seed`, the weights it adds to the encoder (dynamics models, heads) depend on the seed only.
    """
    name = settings.get('name', 'dynamo')
    config = objective_config(settings)
    with seeded_initialisation(seed):
        return OBJECTIVES[name][1](encoder, config, window)


__all__ = ['ARCHITECTURES', 'BYOLConfig', 'BYOLObjective', 'DynaMoConfig', 'DynaMoObjective', 'ImageEncoder',
           'OBJECTIVES', 'build_encoder', 'build_objective', 'check_setting_types', 'objective_config']
