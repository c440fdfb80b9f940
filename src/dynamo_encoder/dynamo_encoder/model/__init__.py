"""DynaMo models: image encoders, causal dynamics transformers, pretraining objectives."""

from __future__ import annotations

import dataclasses

from .byol import BYOLConfig, BYOLObjective
from .dynamo import DynaMoConfig, DynaMoObjective
from .encoder import ARCHITECTURES, ImageEncoder, build_encoder

# Pretraining objectives by name: (config dataclass, objective class). An objective is an nn.Module
# built as cls(encoder, config, window) with `name`, `encoder` (the module exported at the end),
# `forward(frames (B,T,V,H,W,3) uint8) -> (loss, {component: scalar tensor, ..., 'loss': loss})` and
# `after_optimizer_step(progress in [0, 1])`; its config dataclass has a `min_window` class
# attribute. New objectives register here.
OBJECTIVES = {
    'dynamo': (DynaMoConfig, DynaMoObjective),
    'byol': (BYOLConfig, BYOLObjective),   # single-image baseline (the paper's classic SSL comparison)
}


def objective_config(settings: dict):
    """{'name': ..., **fields} -> the objective's config dataclass (ValueError naming a bad key)."""
    settings = dict(settings)
    name = settings.pop('name', 'dynamo')
    if name not in OBJECTIVES:
        raise ValueError(f'unknown objective.name {name!r}; known: {sorted(OBJECTIVES)}')
    config_class = OBJECTIVES[name][0]
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        raise ValueError(f'unknown objective setting(s) {unknown} for objective {name!r}; known: {sorted(known)}')
    return config_class(**settings)


def build_objective(settings: dict, encoder: ImageEncoder, window: int):
    name = settings.get('name', 'dynamo')
    config = objective_config(settings)
    return OBJECTIVES[name][1](encoder, config, window)


__all__ = ['ARCHITECTURES', 'BYOLConfig', 'BYOLObjective', 'DynaMoConfig', 'DynaMoObjective', 'ImageEncoder',
           'OBJECTIVES', 'build_encoder', 'build_objective', 'objective_config']
