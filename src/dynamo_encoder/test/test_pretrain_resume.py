"""Interrupting a run and resuming it gives the same steps, losses and final weights as one run."""

import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_encoder.artifact import EncoderArtifact  # noqa: E402
from dynamo_encoder.pretraining import cli  # noqa: E402
from dynamo_encoder.pretraining.config import ConfigError, apply_overrides, load_config  # noqa: E402
from dynamo_encoder.pretraining.trainer import CHECKPOINT, pretrain  # noqa: E402

torch.set_num_threads(1)

SETTINGS = ['encoder.input_size=[16, 16]', 'data.window=3', 'optim.batch_size=8', 'optim.epochs=2',
            'objective.inverse={layers: 1, heads: 2, width: 16, dropout: 0.1}',
            'objective.forward={layers: 1, heads: 2, width: 16, dropout: 0.2}',  # dropout: RNG state must resume too
            'train.threads=1']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_square_dataset(tmp_path_factory.mktemp('resume') / 'dataset', episodes=5, length=12, size=16)


def run_args(dataset, output, *extra):
    args = ['--dataset', str(dataset), '--output', str(output), '--config', 'cpu_small', '--no-progress']
    for setting in SETTINGS:
        args += ['--set', setting]
    return args + list(extra)


def history(run):
    return torch.load(run / CHECKPOINT, weights_only=True)['history']


@pytest.mark.parametrize('target', ['stop_gradient', 'ema'])
def test_resume_continues_at_the_same_step_with_the_same_loss(dataset, tmp_path, target):
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    assert cli.main(run_args(dataset, straight, '--set', f'objective.target={target}')) == 0
    expected = history(straight)
    total = len(expected)
    assert total >= 8

    stop = total // 2 + 1   # mid-epoch
    assert cli.main(run_args(dataset, interrupted, '--set', f'objective.target={target}',
                             '--stop-after-steps', str(stop))) == 0
    assert not (interrupted / 'encoder.pt').exists()
    state = torch.load(interrupted / CHECKPOINT, weights_only=True)
    assert state['step'] == stop

    # Without --resume an existing run is never overwritten.
    assert cli.main(run_args(dataset, interrupted, '--set', f'objective.target={target}')) == 2
    # --resume without --config takes the checkpoint's config.
    assert cli.main(['--dataset', str(dataset), '--output', str(interrupted), '--resume', '--no-progress']) == 0
    resumed = history(interrupted)
    assert [row['step'] for row in resumed] == [row['step'] for row in expected]
    assert resumed == expected   # every loss component and lr, bit for bit
    assert (EncoderArtifact.load(interrupted / 'encoder.pt').checksum
            == EncoderArtifact.load(straight / 'encoder.pt').checksum)


def test_resume_refuses_a_different_training_config(dataset, tmp_path):
    config = apply_overrides(load_config('cpu_small'), SETTINGS)
    pretrain(dataset, tmp_path, config, stop_after_steps=1, progress=False)
    changed = apply_overrides(config, ['optim.lr=0.5'])
    with pytest.raises(ConfigError, match=r'optim\.lr'):
        pretrain(dataset, tmp_path, changed, resume=True, progress=False)
    # Thread count is not part of the training recipe: resuming with another value is allowed.
    faster = apply_overrides(config, ['train.threads=1', 'optim.epochs=2'])
    assert pretrain(dataset, tmp_path, faster, resume=True, progress=False) == tmp_path / 'encoder.pt'


def test_ctrl_c_checkpoints_the_finished_step_and_resume_completes(dataset, tmp_path):
    run = tmp_path / 'run'
    command = [str(Path(sys.executable).parent / 'pretrain')] + run_args(dataset, run, '--set', 'optim.epochs=200')
    command.remove('--no-progress')   # the progress bar on stderr tells us training has started
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        seen, deadline = b'', time.monotonic() + 60
        started = re.compile(rb'[0-9]step/s')  # a measured rate: at least one step done
        while not started.search(seen) and time.monotonic() < deadline and process.poll() is None:
            ready, _, _ = select.select([process.stderr], [], [], 1.0)
            if ready:
                seen += os.read(process.stderr.fileno(), 4096)
        assert started.search(seen), seen.decode(errors='replace')
        process.send_signal(signal.SIGINT)
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0
    assert b'interrupted; checkpoint at step' in stdout
    state = torch.load(run / CHECKPOINT, weights_only=True)
    assert 0 < state['step'] == len(state['history']) < 200 * 5
    assert not (run / 'encoder.pt').exists()
    # The interrupted run continues where it stopped (shortened: thread count may change, epochs not).
    assert cli.main(['--dataset', str(dataset), '--output', str(run), '--resume', '--no-progress',
                     '--stop-after-steps', '3']) == 0
    assert torch.load(run / CHECKPOINT, weights_only=True)['step'] == state['step'] + 3
