"""Policies on frozen-encoder embeddings, ROS-free.

`make_policy(name, config, metadata)` and `load_policy(path)` are the only entry points the node
and the training code use; a policy is added by registering it in POLICIES: kNN, an MLP,
VQ-BeT and Diffusion Policy today.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from dynamo_policy.policies.base import (
    ARTIFACT_FORMAT_VERSION,
    Episode,
    Normalization,
    Policy,
    PolicyArtifactError,
    PolicyConfig,
    PolicyConfigError,
    PolicyMetadata,
    TrainingHistory,
)
from dynamo_policy.policies.diffusion.modeling_diffusion import DiffusionPolicy
from dynamo_policy.policies.knn.modeling_knn import KNNPolicy
from dynamo_policy.policies.mlp.modeling_mlp import MLPPolicy
from dynamo_policy.policies.vqbet.modeling_vqbet import VQBeTPolicy

POLICIES: dict[str, type[Policy]] = {
    policy.name: policy for policy in (KNNPolicy, MLPPolicy, VQBeTPolicy, DiffusionPolicy)}

__all__ = ['ARTIFACT_FORMAT_VERSION', 'Episode', 'Normalization', 'POLICIES', 'Policy',
           'PolicyArtifactError', 'PolicyConfig', 'PolicyConfigError', 'PolicyMetadata',
           'TrainingHistory', 'load_policy', 'make_config', 'make_policy']


def _policy_class(name: str) -> type[Policy]:
    if name not in POLICIES:
        raise PolicyConfigError(f'unknown policy {name!r}; known: {sorted(POLICIES)}')
    return POLICIES[name]


def make_config(name: str, values: dict[str, Any] | None = None) -> PolicyConfig:
    """Build the named policy's configuration from plain values (defaults for missing fields)."""
    return _policy_class(name).config_class.from_dict(values or {})


def make_policy(name: str, config: PolicyConfig | dict[str, Any] | None,
                metadata: PolicyMetadata) -> Policy:
    """Build an untrained policy of the registered name."""
    policy_class = _policy_class(name)
    if not isinstance(config, PolicyConfig):
        config = policy_class.config_class.from_dict(config or {})
    return policy_class(config, metadata)


def load_policy(path: str | Path) -> Policy:
    """Load a trained policy from its artifact; PolicyArtifactError naming the file on any problem."""
    path = Path(path)
    if not path.is_file():
        raise PolicyArtifactError(f'policy file {path} does not exist')
    try:
        payload = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt or foreign file
        reason = str(error).partition('\n')[0]
        raise PolicyArtifactError(f'policy file {path} is not a readable policy artifact: {reason}') from error
    if not isinstance(payload, dict) or 'format_version' not in payload:
        raise PolicyArtifactError(f'policy file {path} is not a dynamo_policy artifact (no format_version)')
    if payload['format_version'] != ARTIFACT_FORMAT_VERSION:
        raise PolicyArtifactError(f'policy file {path} has format version {payload["format_version"]}, '
                                  f'this code reads version {ARTIFACT_FORMAT_VERSION}')
    try:
        metadata = PolicyMetadata.from_dict(payload['metadata'])
        policy = make_policy(payload['policy_name'], payload['config'], metadata)
        policy.load_state_dict(payload['state_dict'])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        reason = ' '.join(str(error).split())
        raise PolicyArtifactError(f'policy file {path} is incompatible with this code: {reason}') from error
    return policy
