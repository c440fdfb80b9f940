"""The trainer's speed levers compute the same training step: channels-last and compiled vs contiguous NCHW."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_encoder.pretraining.config import ConfigError, apply_overrides, load_config  # noqa: E402
from dynamo_encoder.pretraining.trainer import Pretrainer, has_fast_bf16  # noqa: E402

torch.set_num_threads(1)

# Dropout off: compiled code draws its dropout masks from another generator than eager code.
SETTINGS = ['encoder.input_size=[16, 16]', 'data.window=3', 'optim.batch_size=8', 'data.val_fraction=0.0',
            'objective.inverse={layers: 1, heads: 2, width: 16, dropout: 0.0}',
            'objective.forward={layers: 1, heads: 2, width: 16, dropout: 0.0}',
            'optim.grad_clip=1000.0',   # far above the gradient norm: the raw gradients are compared
            'train.precision=fp32', 'train.device=cpu']


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_square_dataset(tmp_path_factory.mktemp('speed') / 'dataset', episodes=4, length=10, size=16)


def first_step(dataset, run_dir, *settings):
    """Return (loss components, {parameter name: gradient}) of a run's first step."""
    config = apply_overrides(load_config('cpu_small'), SETTINGS + list(settings))
    trainer = Pretrainer(config, dataset, run_dir, progress=False)
    row = trainer.advance()
    gradients = {name: p.grad.detach().clone(memory_format=torch.contiguous_format)
                 for name, p in trainer.objective.named_parameters() if p.grad is not None}
    return row, gradients, trainer


def assert_same_step(reference, other):
    (ref_row, ref_grads, _), (row, grads, _) = reference, other
    for key in ('loss', 'dynamics', 'covariance'):
        assert abs(row[key] - ref_row[key]) <= 1e-4, key
    assert set(grads) == set(ref_grads)
    scale = max(float(g.abs().max()) for g in ref_grads.values())
    for name, gradient in ref_grads.items():
        torch.testing.assert_close(grads[name], gradient, atol=1e-4 * scale, rtol=0, msg=name)


def test_channels_last_training_is_the_contiguous_training(dataset, tmp_path):
    contiguous = first_step(dataset, tmp_path / 'nchw', 'train.memory_format=contiguous')
    channels_last = first_step(dataset, tmp_path / 'nhwc', 'train.memory_format=channels_last')
    stem = channels_last[2].objective.encoder.stem[0].weight
    assert stem.is_contiguous(memory_format=torch.channels_last) and not stem.is_contiguous()
    assert contiguous[2].objective.encoder.stem[0].weight.is_contiguous()
    assert_same_step(contiguous, channels_last)


@pytest.mark.slow   # about a minute of compiling on a loaded 2-core CPU
def test_compiled_training_is_the_eager_training(dataset, tmp_path):
    eager = first_step(dataset, tmp_path / 'eager')
    compiled = first_step(dataset, tmp_path / 'compiled', 'train.compile=true')
    assert compiled[2].model is not compiled[2].objective   # the step ran through torch.compile
    assert_same_step(eager, compiled)


def test_the_default_layout_is_contiguous_on_the_cpu_and_a_bad_layout_is_a_config_error(dataset, tmp_path):
    trainer = first_step(dataset, tmp_path / 'auto')[2]
    assert load_config('cpu_small').train.memory_format == 'auto'
    assert trainer.objective.encoder.stem[0].weight.is_contiguous()
    with pytest.raises(ConfigError, match='train.memory_format'):
        apply_overrides(load_config('default'), ['train.memory_format=nhwc'])


def test_auto_precision_picks_bf16_only_on_hardware_with_fast_bf16():
    assert has_fast_bf16(torch.device('cpu')) == torch.cpu._is_amx_tile_supported()
    assert not has_fast_bf16(torch.device('meta'))
