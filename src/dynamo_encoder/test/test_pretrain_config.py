"""Presets load into exactly the values they hold and reach the models built from them; overrides are checked."""

import pytest
import yaml

from dynamo_encoder.model import build_encoder, build_objective, objective_config
from dynamo_encoder.pretraining.config import PRESETS_DIR, apply_overrides, config_from_dict, load_config
from dynamo_encoder.pretraining.trainer import flatten_settings

PRESETS = sorted(path.stem for path in PRESETS_DIR.glob('*.yaml'))


def test_the_shipped_presets_are_found():
    assert {'default', 'cpu_small', 'franka_kitchen', 'block_pushing', 'push_t', 'libero_goal'} <= set(PRESETS)


@pytest.mark.parametrize('preset', PRESETS)
def test_a_preset_loads_into_exactly_the_values_its_file_holds(preset):
    written = flatten_settings(yaml.safe_load((PRESETS_DIR / f'{preset}.yaml').read_text()))
    loaded = flatten_settings(load_config(preset).to_dict())
    assert {key: loaded.get(key) for key in written} == written


@pytest.mark.parametrize('preset', PRESETS)
def test_preset_settings_reach_the_models_the_trainer_builds(preset):
    config = load_config(preset)
    settings = objective_config(config.objective)
    encoder = build_encoder(config.encoder.arch, config.encoder.input_size, seed=0)
    objective = build_objective(config.objective, encoder, config.data.window, seed=0)
    assert (encoder.arch, list(encoder.input_size)) == (config.encoder.arch, config.encoder.input_size)
    assert objective.encoder is encoder and objective.window == config.data.window
    assert objective.latent_dim == settings.latent_dim
    for model, model_settings in ((objective.inverse_model, settings.inverse),
                                  (objective.forward_model, settings.forward)):
        assert len(model.blocks) == model_settings.layers
        assert model.blocks[0].attn.heads == model_settings.heads
        assert model.input_proj.out_features == model_settings.width
        assert model.dropout.p == model_settings.dropout
        assert model.position.shape[1] == config.data.window
    assert objective.inverse_model.output_proj.out_features == settings.latent_dim


def test_the_dataclass_defaults_are_the_default_preset():
    # A YAML with only a few keys changes only those: the rest is the default preset's recipe.
    config = load_config('default')
    bare = config_from_dict({})
    assert objective_config(bare.objective) == objective_config(config.objective)
    assert {k: v for k, v in bare.to_dict().items() if k != 'objective'} == \
        {k: v for k, v in config.to_dict().items() if k != 'objective'}


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
