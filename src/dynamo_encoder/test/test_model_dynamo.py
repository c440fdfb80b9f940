"""The DynaMo objective: where gradients flow, and what each ablation switch changes."""

import pytest
import torch

from dynamo_encoder.model import build_encoder, build_objective
from dynamo_encoder.model.dynamo import ema_beta, embedding_spread, off_diagonal_covariance
from dynamo_encoder.pretraining.config import ABLATIONS, apply_overrides, load_config

torch.set_num_threads(1)

WINDOW = 4
TINY = {'encoder.arch': 'resnet_small', 'encoder.input_size': [16, 16], 'data.window': WINDOW,
        'objective.latent_dim': 8,
        'objective.inverse': {'layers': 1, 'heads': 2, 'width': 16, 'dropout': 0.0},
        'objective.forward': {'layers': 1, 'heads': 2, 'width': 16, 'dropout': 0.0}}


def make_objective(**overrides):
    config = apply_overrides(load_config('cpu_small'), {**TINY, **overrides})
    encoder = build_encoder(config.encoder.arch, config.encoder.input_size, seed=0)
    return build_objective(config.objective, encoder, config.data.window), config


def frames(steps=WINDOW, views=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, steps, views, 16, 16, 3), dtype=torch.uint8, generator=generator)


def compute(objective, x=None):
    return objective.compute(frames() if x is None else x)


def test_forward_loss_reaches_encoder_through_forward_and_inverse_models():
    objective, _ = make_objective()
    out = compute(objective)
    grad = torch.autograd.grad(out.components['dynamics'], out.embeddings, retain_graph=True)[0]
    # The last frame of the window enters the forward model only through z_T (inverse model);
    # as a target it is under stop-gradient. A non-zero gradient there = the inverse path works.
    assert grad[:, -1].abs().sum() > 0
    # The first frame is never a target: its gradient comes through the forward model input.
    assert grad[:, 0].abs().sum() > 0
    out.components['dynamics'].backward()
    for name, module in [('encoder', objective.encoder), ('inverse', objective.inverse_model),
                         ('forward', objective.forward_model)]:
        total = sum(p.grad.abs().sum() for p in module.parameters() if p.grad is not None)
        assert total > 0, f'no gradient reached the {name} model'


def test_stop_gradient_target_gets_no_gradient():
    objective, _ = make_objective(**{'objective.inverse_model': False})
    out = compute(objective)
    assert not out.targets.requires_grad
    grad = torch.autograd.grad(out.components['dynamics'], out.embeddings)[0]
    # Without the inverse model the last frame is only a (stop-gradient) target: exactly zero gradient.
    assert torch.count_nonzero(grad[:, -1]) == 0
    assert grad[:, 0].abs().sum() > 0


def test_ema_target_is_not_trained_and_follows_the_online_encoder():
    objective, _ = make_objective(**{'objective.target': 'ema'})
    out = compute(objective)
    assert not out.targets.requires_grad
    out.loss.backward()
    assert all(p.grad is None for p in objective.target_encoder.parameters())
    assert sum(p.grad.abs().sum() for p in objective.inverse_model.parameters()) > 0
    # Move the online encoder, then one EMA update at progress 0 (beta 0.99) moves the target 1% of the way.
    online = next(objective.encoder.parameters())
    target = next(objective.target_encoder.parameters())
    before = target.detach().clone()
    with torch.no_grad():
        online.add_(1.0)
    objective.after_optimizer_step(0.0)
    torch.testing.assert_close(target, 0.99 * before + 0.01 * online.detach())
    assert ema_beta(0.0, 0.99, 1.0) == pytest.approx(0.99)
    assert ema_beta(0.5, 0.99, 1.0) == pytest.approx(0.995)
    assert ema_beta(1.0, 0.99, 1.0) == pytest.approx(1.0)


def test_views_are_separate_sequences_with_the_loss_averaged_over_views():
    objective, _ = make_objective()
    objective.eval()  # BatchNorm running stats, so each view's embedding does not depend on the other
    x = frames(views=2)
    both = objective.compute(x).components['dynamics']
    per_view = [objective.compute(x[:, :, v:v + 1]).components['dynamics'] for v in range(2)]
    torch.testing.assert_close(both, (per_view[0] + per_view[1]) / 2)


def test_spread_monitor_reads_zero_for_collapsed_embeddings():
    spread_out = torch.randn(500, 64)
    collapsed = torch.ones(500, 64) + 1e-6 * torch.randn(500, 64)
    assert 0.8 < float(embedding_spread(spread_out)) < 1.2
    assert float(embedding_spread(collapsed)) < 1e-3


def test_covariance_term_is_mean_squared_off_diagonal():
    x = torch.randn(200, 5, dtype=torch.float64)
    cov = torch.cov(x.T)
    expected = (cov - torch.diag(torch.diag(cov))).square().sum() / (5 * 4)
    torch.testing.assert_close(off_diagonal_covariance(x), expected.float())


@pytest.mark.parametrize('ablation', sorted(ABLATIONS))
def test_each_ablation_changes_the_computation_it_names(ablation):
    baseline, _ = make_objective()
    objective, config = make_objective(**ABLATIONS[ablation])
    if ablation == 'short_context':
        assert config.data.window == 2 and objective.window == 2
        out = compute(objective, frames(steps=2))
        assert out.predictions.shape[1] == 1
        with pytest.raises(ValueError, match='longer than the model context'):
            objective.compute(frames(steps=WINDOW))
        return
    out, base = compute(objective), baseline.compute(frames())
    if ablation == 'no_forward_model':
        assert objective.forward_model is None and baseline.forward_model is not None
        torch.testing.assert_close(out.predictions, objective.latent_decoder(out.latents[:, 1:]))
    elif ablation == 'no_inverse_model':
        assert out.latents is None and base.latents is not None
        # The prediction of step t+1 can no longer see frame t+1 (it did through z_{t+1}).
        grad = torch.autograd.grad(out.predictions[:, 0].sum(), out.embeddings)[0]
        assert torch.count_nonzero(grad[:, 1]) == 0
        base_grad = torch.autograd.grad(base.predictions[:, 0].sum(), base.embeddings)[0]
        assert base_grad[:, 1].abs().sum() > 0
    elif ablation == 'no_bottleneck':
        assert base.latents.shape[-1] == 8
        assert out.latents.shape[-1] == objective.encoder.embedding_dim == 128
    elif ablation == 'no_covariance_reg':
        assert 'covariance' not in out.components
        torch.testing.assert_close(out.loss, out.components['dynamics'])
        torch.testing.assert_close(base.loss, base.components['dynamics'] + 0.04 * base.components['covariance'])
    elif ablation == 'no_stop_gradient':
        assert out.targets.requires_grad and not base.targets.requires_grad
        # With the target branch live, the last frame gets gradient from being a target as well.
        only_target, _ = make_objective(**ABLATIONS[ablation], **{'objective.inverse_model': False})
        o = compute(only_target)
        grad = torch.autograd.grad(o.components['dynamics'], o.embeddings)[0]
        assert grad[:, -1].abs().sum() > 0
    else:
        pytest.fail(f'no check for ablation {ablation}')


def test_seeded_build_is_reproducible_and_leaves_the_global_rng_alone():
    config = apply_overrides(load_config('cpu_small'), TINY)

    def build(seed):
        encoder = build_encoder(config.encoder.arch, config.encoder.input_size, seed=seed)
        return build_objective(config.objective, encoder, config.data.window, seed=seed).state_dict()

    rng = torch.get_rng_state()
    first, again, other = build(0), build(0), build(1)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first['inverse_model.input_proj.weight'], other['inverse_model.input_proj.weight'])
