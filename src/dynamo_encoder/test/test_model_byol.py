"""The BYOL baseline objective: its augmentations, where gradients flow, the EMA target, and a real run."""

import csv
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_encoder.artifact import EncoderArtifact  # noqa: E402
from dynamo_encoder.model import BYOLObjective, build_encoder, build_objective, objective_config  # noqa: E402
from dynamo_encoder.model.augmentations import (  # noqa: E402
    adjust_hue,
    color_jitter,
    random_gaussian_blur,
    random_grayscale,
    random_resized_crop,
    random_solarize,
)
from dynamo_encoder.model.byol import BYOLConfig, augment  # noqa: E402
from dynamo_encoder.pretraining import cli  # noqa: E402
from dynamo_encoder.pretraining.config import ConfigError, load_config  # noqa: E402
from dynamo_encoder.pretraining.trainer import CHECKPOINT  # noqa: E402

torch.set_num_threads(1)

SMALL_HEADS = {'projector_hidden_dim': 32, 'projector_dim': 16, 'predictor_hidden_dim': 32}


def make_objective(**settings):
    encoder = build_encoder('resnet_small', (16, 16), seed=0)
    return build_objective({'name': 'byol', **SMALL_HEADS, **settings}, encoder, 2)


def frames(batch=2, steps=2, views=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, steps, views, 16, 16, 3), dtype=torch.uint8, generator=generator)


def images(count=6, size=16, seed=0):
    return frames(batch=count, steps=1, views=1, seed=seed).reshape(count, size, size, 3)


# -- building -------------------------------------------------------------------------------------

def test_builds_by_name_with_the_defaults_and_trains_on_single_frames():
    encoder = build_encoder('resnet_small', (16, 16), seed=0)
    objective = build_objective({'name': 'byol'}, encoder, 1)
    assert isinstance(objective, BYOLObjective) and objective.name == 'byol'
    assert objective.encoder is encoder
    assert objective.config == BYOLConfig() and BYOLConfig.min_window == 1
    loss, components = objective(frames(steps=1))
    assert set(components) == {'loss', 'spread'}
    assert loss.requires_grad and math.isfinite(float(loss.detach()))
    assert not components['spread'].requires_grad and float(components['spread']) > 0


def test_loss_is_zero_when_the_prediction_matches_the_target_and_large_when_unrelated():
    # No augmentation: both views are the image itself, and at initialisation the target network is
    # a copy of the online one. With the predictor set to the identity (relu(z) - relu(-z) = z), the
    # prediction equals the target projection, so the regression loss 2 - 2 cos is 0.
    unaugmented = {'crop_scale': [1.0, 1.0], 'crop_ratio': [1.0, 1.0], 'flip_probability': 0.0,
                   'jitter_probability': 0.0, 'grayscale_probability': 0.0, 'blur_probability': [0.0, 0.0],
                   'solarize_probability': [0.0, 0.0]}
    objective = make_objective(**unaugmented)
    objective.eval()
    width = SMALL_HEADS['projector_dim']
    identity = torch.eye(width)
    with torch.no_grad():
        first, second = objective.predictor[0], objective.predictor[3]
        first.weight.copy_(torch.cat([identity, -identity]))
        second.weight.copy_(torch.cat([identity, -identity], dim=1))
        first.bias.zero_()
        second.bias.zero_()
        matched, _ = objective(frames())
        # A target projector unrelated to the online one: the same predictions now miss their targets.
        objective.target_projector[3].weight.normal_(generator=torch.Generator().manual_seed(1))
        unrelated, _ = objective(frames())
    assert float(matched) < 1e-5
    assert float(unrelated) > 0.5


def test_unknown_or_bad_byol_settings_are_named():
    with pytest.raises(ValueError, match=r"unknown objective setting\(s\) \['latent_dim'\] for objective 'byol'"):
        objective_config({'name': 'byol', 'latent_dim': 8})
    with pytest.raises(ValueError, match='objective.crop_scale'):
        objective_config({'name': 'byol', 'crop_scale': [0.0, 1.0]})
    with pytest.raises(ValueError, match=r'objective.solarize_probability must be a pair'):
        objective_config({'name': 'byol', 'solarize_probability': 0.2})
    # YAML gives lists; they become pairs.
    assert objective_config({'name': 'byol', 'blur_probability': [0.5, 0.5]}).blur_probability == (0.5, 0.5)


# -- gradients and the target network ------------------------------------------------------------

def test_gradients_reach_the_online_network_but_not_the_target():
    objective = make_objective()
    loss, _ = objective(frames())
    loss.backward()
    for name, module in [('encoder', objective.encoder), ('projector', objective.projector),
                         ('predictor', objective.predictor)]:
        total = sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None)
        assert total > 0, f'no gradient reached the online {name}'
    for module in (objective.target_encoder, objective.target_projector):
        assert all(not p.requires_grad and p.grad is None for p in module.parameters())
    # The trainer optimises what requires grad: exactly the online network.
    online = {id(p) for m in (objective.encoder, objective.projector, objective.predictor) for p in m.parameters()}
    assert {id(p) for p in objective.parameters() if p.requires_grad} == online


def test_target_moves_towards_the_online_network_by_the_scheduled_tau():
    objective = make_objective()
    pairs = [(objective.target_encoder, objective.encoder), (objective.target_projector, objective.projector)]
    with torch.no_grad():
        for _, online in pairs:
            for parameter in online.parameters():
                parameter.add_(1.0)
        objective.encoder.stem[1].running_mean.fill_(3.0)
    before = [[p.detach().clone() for p in target.parameters()] for target, _ in pairs]
    objective.after_optimizer_step(0.5)   # cosine from 0.99 to 1.0: tau = 0.995 halfway
    for (target, online), previous in zip(pairs, before):
        for moved, start, goal in zip(target.parameters(), previous, online.parameters()):
            torch.testing.assert_close(moved, 0.995 * start + 0.005 * goal.detach())
    assert torch.equal(objective.target_encoder.stem[1].running_mean, objective.encoder.stem[1].running_mean)
    # At the end of training tau is 1: the target stays where it is.
    frozen = [p.detach().clone() for p in objective.target_encoder.parameters()]
    objective.after_optimizer_step(1.0)
    assert all(torch.equal(a, b) for a, b in zip(objective.target_encoder.parameters(), frozen))


def test_each_augmentations_prediction_regresses_the_other_augmentations_target():
    objective = make_objective()
    objective.eval()   # fixed augmentations and BatchNorm running statistics: the pieces can be rerun

    def prediction(view):
        return objective.predictor(objective.projector(objective.encoder(view)))

    def target(view):
        return objective.target_projector(objective.target_encoder(view))

    def regression(p, z):
        return 2 - 2 * torch.nn.functional.cosine_similarity(p, z, dim=-1)

    x = frames()
    with torch.no_grad():
        loss, _ = objective(x)
        first, second = objective.augmented_views(x.reshape(-1, 16, 16, 3))
        expected = torch.cat([regression(prediction(first), target(second)),
                              regression(prediction(second), target(first))]).mean()
    torch.testing.assert_close(loss, expected)


def test_eval_mode_loss_is_fixed_and_leaves_the_global_rng_alone():
    objective = make_objective()
    objective.eval()
    x = frames()
    rng = torch.get_rng_state()
    with torch.no_grad():
        first, _ = objective(x)
        second, _ = objective(x)
    assert torch.equal(rng, torch.get_rng_state())
    assert torch.equal(first, second)


# -- augmentations --------------------------------------------------------------------------------

def test_augmented_views_keep_shape_and_range_and_differ():
    x = images()
    torch.manual_seed(0)
    first, second = augment(x, BYOLConfig(), 0), augment(x, BYOLConfig(), 1)
    for view in (first, second):
        assert view.shape == x.shape and view.dtype == torch.float32
        assert float(view.min()) >= 0.0 and float(view.max()) <= 255.0
        assert not torch.allclose(view, x.float(), atol=1.0)
    assert not torch.allclose(first, second, atol=1.0)


def test_augmentations_are_reproducible_under_the_global_seed():
    x = images()

    def views(seed):
        torch.manual_seed(seed)
        return torch.cat([augment(x, BYOLConfig(), 0), augment(x, BYOLConfig(), 1)])

    assert torch.equal(views(1), views(1))
    assert not torch.equal(views(1), views(2))


def test_full_crop_is_the_image_and_a_sure_flip_mirrors_it():
    x = torch.rand(3, 3, 8, 8)
    torch.testing.assert_close(random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), 0.0), x)
    torch.testing.assert_close(random_resized_crop(x, (1.0, 1.0), (1.0, 1.0), 1.0), x.flip(-1))
    # A small crop zooms in: neighbouring output pixels come from a smaller patch, so it is smoother.
    wide = torch.rand(64, 3, 16, 24)
    zoomed = random_resized_crop(wide, (0.1, 0.1), (3 / 4, 4 / 3), 0.0)
    assert zoomed.shape == wide.shape
    assert zoomed.diff(dim=-1).abs().mean() < 0.5 * wide.diff(dim=-1).abs().mean()


def test_colour_operations():
    red = torch.zeros(1, 3, 2, 2)
    red[:, 0] = 1.0
    green = torch.zeros(1, 3, 2, 2)
    green[:, 1] = 1.0
    torch.testing.assert_close(adjust_hue(red, torch.tensor([1 / 3])), green)
    x = torch.rand(4, 3, 8, 8)
    # No jitter strength: every adjustment is the identity (the hue one through HSV and back).
    torch.testing.assert_close(color_jitter(x, 0.0, 0.0, 0.0, 0.0, 1.0), x)
    jittered = color_jitter(x, 0.4, 0.4, 0.2, 0.1, 1.0)
    assert jittered.shape == x.shape and float(jittered.min()) >= 0 and float(jittered.max()) <= 1
    assert not torch.allclose(jittered, x)
    grey = random_grayscale(x, 1.0)
    assert torch.equal(grey[:, 0], grey[:, 1]) and torch.equal(grey[:, 1], grey[:, 2])
    torch.testing.assert_close(random_solarize(x, 1.0), torch.where(x >= 0.5, 1.0 - x, x))
    assert torch.equal(random_solarize(x, 0.0), x) and torch.equal(random_grayscale(x, 0.0), x)


def test_blur_keeps_flat_images_and_spreads_a_point_without_losing_light():
    flat = torch.full((2, 3, 9, 9), 0.3)
    torch.testing.assert_close(random_gaussian_blur(flat, (0.5, 2.0), 1.0), flat)
    point = torch.zeros(2, 3, 9, 9)
    point[:, :, 4, 4] = 1.0
    blurred = random_gaussian_blur(point, (1.0, 1.0), 1.0)
    torch.testing.assert_close(blurred.sum(dim=(2, 3)), torch.ones(2, 3))
    assert float(blurred[0, 0, 4, 4]) < 0.5 and float(blurred[0, 0, 4, 5]) > 0
    assert torch.equal(random_gaussian_blur(point, (1.0, 1.0), 0.0), point)


# -- a real pretraining run -----------------------------------------------------------------------

@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_square_dataset(tmp_path_factory.mktemp('byol') / 'dataset', episodes=5, length=8, size=16)


@pytest.fixture
def byol_yaml(tmp_path):
    path = tmp_path / 'byol.yaml'
    path.write_text(yaml.safe_dump({
        'encoder': {'arch': 'resnet_small', 'input_size': [16, 16]},
        'objective': {'name': 'byol', **SMALL_HEADS},
        'data': {'window': 1, 'val_fraction': 0.2},
        'optim': {'batch_size': 8, 'epochs': 2},
        'train': {'threads': 1},
    }))
    return path


def test_pretrain_with_byol_from_a_yaml_config_writes_an_encoder(dataset, byol_yaml, tmp_path):
    config = load_config(str(byol_yaml))
    assert config.objective == {'name': 'byol', **SMALL_HEADS} and config.data.window == 1
    run = tmp_path / 'run'
    assert cli.main(['--dataset', str(dataset), '--output', str(run), '--config', str(byol_yaml),
                     '--no-progress']) == 0
    artifact = EncoderArtifact.load(run / 'encoder.pt')
    assert artifact.name == 'byol-resnet_small' and artifact.arch == 'resnet_small'
    rows = list(csv.DictReader((run / 'metrics.csv').open()))
    assert len(rows) == 8   # 4 training episodes x 8 frames / batch 8, 2 epochs
    assert all(math.isfinite(float(r['loss'])) and float(r['spread']) > 0 for r in rows)
    assert sum(1 for r in rows if r['val_loss']) == 2


def test_byol_run_resumes_with_the_same_augmentations(dataset, byol_yaml, tmp_path):
    def run(output, *extra):
        return cli.main(['--dataset', str(dataset), '--output', str(output), '--config', str(byol_yaml),
                         '--no-progress', *extra])

    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    assert run(straight) == 0
    assert run(interrupted, '--stop-after-steps', '5') == 0
    assert run(interrupted, '--resume') == 0
    history = [torch.load(r / CHECKPOINT, weights_only=True)['history'] for r in (straight, interrupted)]
    assert history[0] == history[1]
    assert (EncoderArtifact.load(interrupted / 'encoder.pt').checksum
            == EncoderArtifact.load(straight / 'encoder.pt').checksum)


def test_a_bad_byol_setting_in_a_yaml_config_is_a_config_error(tmp_path):
    path = tmp_path / 'bad.yaml'
    path.write_text(yaml.safe_dump({'objective': {'name': 'byol', 'hue': 0.7}}))
    with pytest.raises(ConfigError, match=r'objective: objective.hue must be in \[0, 0.5\]'):
        load_config(str(path))
