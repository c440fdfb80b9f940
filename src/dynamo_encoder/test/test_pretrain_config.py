"""Presets: `default` carries the paper's settings, `cpu_small` the small CPU ones; overrides are checked."""

from dynamo_encoder.model import objective_config
from dynamo_encoder.pretraining.config import apply_overrides, config_from_dict, load_config


def test_default_preset_reproduces_the_paper_settings():
    config = load_config('default')
    objective = objective_config(config.objective)
    assert (config.encoder.arch, config.encoder.input_size) == ('resnet18', [224, 224])
    assert (objective.inverse.layers, objective.inverse.heads, objective.inverse.width) == (6, 6, 120)
    assert (objective.forward.layers, objective.forward.heads, objective.forward.width) == (6, 6, 120)
    assert 0.0 <= objective.forward.dropout <= 0.3 and 8 <= objective.latent_dim <= 64
    assert (objective.target, objective.covariance_weight) == ('stop_gradient', 0.04)
    assert (objective.ema_beta_start, objective.ema_beta_end) == (0.99, 1.0)
    assert objective.forward_model and objective.inverse_model and objective.bottleneck
    assert 2 <= config.data.window <= 5
    optim = config.optim
    assert (optim.lr, optim.grad_clip, optim.batch_size, optim.epochs) == (1e-4, 0.1, 64, 40)
    assert config.optim.warmup_fraction > 0
    # The dataclass defaults are the same recipe: a YAML with only a few keys changes only those.
    bare = config_from_dict({})
    assert objective_config(bare.objective) == objective
    assert {k: v for k, v in bare.to_dict().items() if k != 'objective'} == \
        {k: v for k, v in config.to_dict().items() if k != 'objective'}


def test_cpu_small_preset_is_the_small_setting():
    config = load_config('cpu_small')
    objective = objective_config(config.objective)
    assert config.encoder.arch == 'resnet_small' and config.encoder.input_size == [64, 64]
    assert (objective.inverse.layers, objective.inverse.heads, objective.inverse.width) == (4, 4, 72)
    assert (objective.forward.layers, objective.forward.heads, objective.forward.width) == (4, 4, 72)


def test_overrides_parse_yaml_values_and_nested_objective_keys(tmp_path):
    config = apply_overrides(load_config('cpu_small'),
                             ['optim.epochs=3', 'data.cameras=[front, wrist]', 'objective.forward.dropout=0.3'])
    assert config.optim.epochs == 3 and config.data.cameras == ['front', 'wrist']
    assert objective_config(config.objective).forward.dropout == 0.3
    assert objective_config(config.objective).forward.width == 72   # the rest of the section is kept
    partial = tmp_path / 'mine.yaml'
    partial.write_text('optim: {epochs: 2}\n')
    mine = load_config(str(partial))
    assert mine.optim.epochs == 2 and mine.optim.lr == 1e-4 and mine.encoder.arch == 'resnet18'
