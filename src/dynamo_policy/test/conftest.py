"""Fixtures of dynamo_policy's tests: a random-init encoder and policies trained by train_policy.

The policies are trained on tiny synthetic datasets through the real train_policy code, once per
test session.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# Tests import their data helpers (_synthetic_policy_data) from this directory (importlib mode).
sys.path.insert(0, str(Path(__file__).parent))

from _synthetic_policy_data import IMAGE_SIZE, write_synthetic_dataset  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Run each test on one torch thread: small models are fastest so, and results do not vary."""
    import torch
    torch.set_num_threads(1)


@pytest.fixture(scope='session')
def encoder_path(tmp_path_factory) -> Path:
    """Write a "no pretraining" encoder artifact: real architecture, seeded random weights."""
    from dynamo_encoder.artifact import EncoderArtifact
    path = tmp_path_factory.mktemp('encoder') / 'encoder.pt'
    EncoderArtifact.random_init('resnet_small', ['front'], (IMAGE_SIZE, IMAGE_SIZE), seed=0).save(path)
    return path


@pytest.fixture(scope='session')
def trained_policy(tmp_path_factory, encoder_path):
    """Return train(action_names, policy='knn', use_state=False, *settings) -> policy.pt path.

    Each policy is trained by train_policy's main() on a synthetic dataset, once per arguments.
    """
    from dynamo_policy.training.cli import main as train_policy
    cache: dict[tuple, Path] = {}
    embedding_cache = tmp_path_factory.mktemp('embedding_cache')

    def train(action_names: list[str], policy: str = 'knn', use_state: bool = False, *settings: str) -> Path:
        key = (tuple(action_names), policy, use_state, settings)
        if key not in cache:
            work = tmp_path_factory.mktemp(f'{policy}_{len(action_names)}')
            dataset = work / 'dataset'
            if not dataset.exists():
                write_synthetic_dataset(dataset, action_names)
            argv = ['--dataset', str(dataset), '--encoder', str(encoder_path), '--policy', policy,
                    '--output', str(work / 'out'), '--cache-dir', str(embedding_cache), '--quiet']
            argv += ['--use-state'] if use_state else []
            for setting in settings:
                argv += ['--set', setting]
            assert train_policy(argv) == 0
            cache[key] = work / 'out' / 'policy.pt'
        return cache[key]

    return train
