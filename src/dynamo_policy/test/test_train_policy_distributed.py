"""Data-parallel train_policy: two gloo processes train Diffusion Policy like one process with the same global batch.

Started as users start it, with torchrun (`python -m torch.distributed.run`). Each point of the
training curve is the global batch's noise MSE averaged over an epoch; the two runs compute the same
thing up to float rounding (measured: the curves agree to 1e-7 relative over 4 epochs).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from _synthetic_policy_data import XARM_ACTIONS, write_synthetic_dataset

from dynamo_policy.policies import load_policy
from dynamo_policy.training.cli import main as train_policy

SETTINGS = ['--set', 'down_dims=[16, 32]', '--set', 'diffusion_step_embed_dim=16', '--set', 'epochs=4',
            '--set', 'batch_size=16', '--set', 'warmup_steps=2', '--set', 'horizon=4',
            '--set', 'prediction_horizon=8']
TOLERANCE = 1e-5


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('distributed') / 'dataset', XARM_ACTIONS)


def arguments(dataset, encoder_path, output, policy):
    return ['--dataset', str(dataset), '--encoder', str(encoder_path), '--output', str(output),
            '--cache-dir', str(output.parent / f'{output.name}_cache'), '--quiet', '--policy', policy]


def torchrun(processes, *command):
    return subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone',
                           f'--nproc-per-node={processes}', shutil.which('train_policy'), *command],
                          env={**os.environ, 'OMP_NUM_THREADS': '1'}, capture_output=True, text=True, timeout=300)


def curve(output):
    return json.loads((output / 'metrics.json').read_text())['history']['series']['train noise MSE']


@pytest.mark.slow
def test_two_processes_train_diffusion_like_one_with_the_same_global_batch(dataset, encoder_path, tmp_path):
    one, two = tmp_path / 'one', tmp_path / 'two'
    assert train_policy(arguments(dataset, encoder_path, one, 'diffusion') + SETTINGS) == 0
    result = torchrun(2, *arguments(dataset, encoder_path, two, 'diffusion'), *SETTINGS)
    assert result.returncode == 0, result.stderr[-3000:]
    expected, measured = curve(one), curve(two)
    assert len(measured) == len(expected) == 4
    assert measured == pytest.approx(expected, rel=TOLERANCE)
    # Rank 0 alone wrote the outputs, once; its policy is the one-process policy up to rounding.
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())
    weights = [load_policy(run / 'policy.pt').state_dict() for run in (one, two)]
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-3, atol=1e-5, msg=name)


@pytest.mark.slow
def test_a_head_that_trains_in_one_process_is_refused_under_torchrun(dataset, encoder_path, tmp_path):
    result = torchrun(2, *arguments(dataset, encoder_path, tmp_path / 'knn', 'knn'))
    assert result.returncode != 0
    assert "train_policy: error: --policy knn trains in one process; data-parallel training (torchrun) is for " \
           "['diffusion']" in result.stderr, result.stderr[-3000:]
    assert not (tmp_path / 'knn').exists()
