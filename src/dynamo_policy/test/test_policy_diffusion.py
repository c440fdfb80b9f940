"""Diffusion Policy: its schedulers against the published formulas, fitting, multimodality, the artifact."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _synthetic_policy_data import bimodal_episodes, first_actions, phase_episodes
from _synthetic_policy_data import policy_metadata as metadata

from dynamo_data.episode_split import split_episodes
from dynamo_policy.policies import Episode, PolicyConfigError, load_policy, make_policy
from dynamo_policy.policies.base import make_training_windows
from dynamo_policy.policies.diffusion import CPU_SMALL_PRESET, DiffusionConfig, DiffusionPolicy
from dynamo_policy.policies.diffusion.modeling_diffusion import (
    EMA,
    ConditionalResidualBlock1D,
    DiffusionNetwork,
    action_sequences,
    cosine_with_warmup,
)
from dynamo_policy.policies.diffusion.schedulers import NoiseSchedule, squaredcos_cap_v2_betas
from dynamo_policy.training.metrics import action_errors

# A small U-Net and a short, fast schedule: the reference's structure, far fewer optimisation steps.
FAST = {'context_length': 2, 'horizon': 4, 'prediction_horizon': 8, 'down_dims': [64],
        'diffusion_step_embed_dim': 32, 'epochs': 80, 'batch_size': 64, 'learning_rate': 3e-3, 'warmup_steps': 20}


@pytest.fixture(scope='module')
def fitted():
    torch.set_num_threads(1)
    episodes = phase_episodes(12)
    train_ids, held_out_ids = split_episodes(len(episodes), 0.25, seed=0)
    training, held_out = [episodes[i] for i in train_ids], [episodes[i] for i in held_out_ids]
    policy = DiffusionPolicy(DiffusionConfig(**FAST), metadata())
    history = policy.fit(training, held_out)
    return policy, history, training, held_out


# --- schedulers against the published formulas -----------------------------------------------------
def test_squaredcos_cap_v2_matches_its_closed_form():
    schedule = NoiseSchedule(100)

    def f(s):
        return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2

    expected = np.array([f((i + 1) / 100) / f(0.0) for i in range(100)])
    np.testing.assert_allclose(schedule.alphas_cumprod[:99].numpy(), expected[:99], rtol=1e-6, atol=1e-8)
    betas = squaredcos_cap_v2_betas(100)
    assert betas[-1] == 0.999 and (betas[:-1] < 0.999).all() and (betas > 0).all()   # only the last is capped
    assert float(schedule.alphas_cumprod[0]) > 0.999 and float(schedule.alphas_cumprod[-1]) < 1e-4


def test_forward_process_mixes_signal_and_noise():
    schedule = NoiseSchedule(100)
    x0, noise, t = torch.randn(3, 4, 2), torch.randn(3, 4, 2), torch.tensor([0, 50, 99])
    a = schedule.alphas_cumprod[t].view(3, 1, 1)
    torch.testing.assert_close(schedule.add_noise(x0, noise, t), a.sqrt() * x0 + (1 - a).sqrt() * noise)


def test_inference_timesteps_leading_and_trailing():
    schedule = NoiseSchedule(100)
    assert schedule.inference_timesteps(10, 'leading') == list(range(90, -1, -10))
    assert schedule.inference_timesteps(10, 'trailing') == list(range(99, 8, -10))
    assert schedule.inference_timesteps(100, 'leading') == list(range(99, -1, -1))
    assert schedule.inference_timesteps(100, 'trailing') == list(range(99, -1, -1))
    with pytest.raises(ValueError, match='num_inference_steps'):
        schedule.inference_timesteps(101)


@pytest.mark.parametrize('spacing', ['leading', 'trailing'])
def test_last_ddim_step_with_the_true_noise_returns_x0(spacing):
    schedule = NoiseSchedule(100, clip_sample=False)
    x0, noise = torch.rand(2, 8, 3) * 2 - 1, torch.randn(2, 8, 3)
    last = schedule.inference_timesteps(10, spacing)[-1]
    x_t = schedule.add_noise(x0, noise, torch.tensor([last, last]))
    x_prev, x0_hat = schedule.ddim_step(noise, last, x_t, 10)
    torch.testing.assert_close(x_prev, x0, atol=1e-5, rtol=0)
    torch.testing.assert_close(x0_hat, x0, atol=1e-5, rtol=0)


@pytest.mark.parametrize('steps, spacing', [(100, 'leading'), (10, 'leading'), (10, 'trailing')])
def test_ddim_with_the_true_noise_stays_on_the_forward_process_and_reconstructs(steps, spacing):
    # eta = 0: a model that returns the noise that made x_T keeps every x_t on the forward process
    # (Song et al. 2021, eq. 12), so the last step lands on x0.
    # In float64: near t = 99 (alphas_cumprod ~ 2e-7) float32 rounding is amplified ~2000 times.
    schedule = NoiseSchedule(100, clip_sample=False)
    x0, noise = torch.rand(4, 16, 2, dtype=torch.float64) * 2 - 1, torch.randn(4, 16, 2, dtype=torch.float64)

    def forward(t):
        a = float(schedule.alphas_cumprod[t])
        return math.sqrt(a) * x0 + math.sqrt(1 - a) * noise

    timesteps = schedule.inference_timesteps(steps, spacing)
    x = forward(timesteps[0])
    for index, t in enumerate(timesteps):
        x, _ = schedule.ddim_step(noise, t, x, steps)
        if index + 1 < len(timesteps):
            torch.testing.assert_close(x, forward(timesteps[index + 1]), atol=1e-9, rtol=0)
    torch.testing.assert_close(x, x0, atol=1e-9, rtol=0)


def test_one_ddim_step_is_song_et_al_equation_12():
    schedule = NoiseSchedule(100, clip_sample=False)
    x_t, eps = torch.randn(2, 8, 3), torch.randn(2, 8, 3)
    a_t, a_prev = float(schedule.alphas_cumprod[50]), float(schedule.alphas_cumprod[40])
    expected = math.sqrt(a_prev) * (x_t - math.sqrt(1 - a_t) * eps) / math.sqrt(a_t) + math.sqrt(1 - a_prev) * eps
    torch.testing.assert_close(schedule.ddim_step(eps, 50, x_t, 10)[0], expected)


def test_clip_sample_clips_the_predicted_x0():
    schedule = NoiseSchedule(100, clip_sample=True)
    x_t = torch.full((1, 8, 1), 5.0)
    _, x0_hat = schedule.ddim_step(torch.zeros_like(x_t), 30, x_t, 10)
    assert float(x0_hat.max()) == 1.0


# --- network, EMA, schedule -----------------------------------------------------------------------
def test_film_split_equals_the_reference_concatenated_condition():
    block = ConditionalResidualBlock1D(8, 16, step_dim=6, global_dim=10, kernel_size=5, n_groups=8)
    step, global_cond = torch.randn(3, 6), torch.randn(3, 10)
    reference = block.cond_encoder(torch.cat([step, global_cond], dim=-1))
    split = F.linear(F.mish(step), block.cond_encoder[1].weight[:, :6]) + block.global_film(F.mish(global_cond))
    torch.testing.assert_close(split, reference)


def test_unet_denoises_the_prediction_horizon_and_presets_are_valid():
    config = DiffusionConfig(**CPU_SMALL_PRESET)
    network = DiffusionNetwork(embedding_dim=16, state_dim=2, action_dim=3, config=config)
    out = network.unet(torch.randn(2, 16, 3), torch.tensor([3, 70]), torch.randn(2, 2 * 18))
    assert out.shape == (2, 16, 3)
    default = DiffusionConfig()
    assert (default.context_length, default.prediction_horizon, default.horizon) == (2, 16, 8)
    assert (default.down_dims, default.kernel_size, default.diffusion_step_embed_dim) == ([256, 512, 1024], 5, 256)
    assert (default.num_train_timesteps, default.num_inference_steps) == (100, 10)


def test_ema_follows_the_reference_warmup_schedule():
    config = DiffusionConfig()
    ema = EMA(torch.nn.Linear(1, 1), config)
    assert ema.decay(0) == 0.0 and ema.decay(1) == 0.0
    assert math.isclose(ema.decay(2), 1 - 2 ** -0.75)
    assert math.isclose(ema.decay(10 ** 9), 0.9999)
    model, averaged = torch.nn.Linear(1, 1), torch.nn.Linear(1, 1)
    ema = EMA(averaged, config)
    ema.step(model)                                    # decay 0: a copy
    torch.testing.assert_close(averaged.weight, model.weight)
    ema.step(model)
    with torch.no_grad():
        before = averaged.weight.clone()
        model.weight.add_(1.0)
    ema.step(model)                                    # decay(2)
    decay = 1 - 2 ** -0.75
    torch.testing.assert_close(averaged.weight, decay * before + (1 - decay) * model.weight)


def test_cosine_schedule_with_warmup():
    assert cosine_with_warmup(0, 10, 110) == 0.0
    assert math.isclose(cosine_with_warmup(5, 10, 110), 0.5)
    assert math.isclose(cosine_with_warmup(10, 10, 110), 1.0)
    assert math.isclose(cosine_with_warmup(60, 10, 110), 0.5)
    assert math.isclose(cosine_with_warmup(110, 10, 110), 0.0, abs_tol=1e-12)


def test_sequences_start_at_the_oldest_observation_padded_like_the_reference():
    episode = Episode(np.zeros((5, 2), np.float32), np.arange(5, dtype=np.float32)[:, None])
    sequences = action_sequences([episode], start=-1, length=4)[..., 0]
    assert sequences[0].tolist() == [0, 0, 1, 2]       # frame 0: padded before, executed part from row 1
    assert sequences[4].tolist() == [3, 4, 4, 4]
    _, _, chunks = make_training_windows([episode], 2, 3)
    np.testing.assert_array_equal(sequences[:, 1:4], chunks[..., 0])


def test_bad_configuration_names_the_field():
    with pytest.raises(PolicyConfigError, match='prediction_horizon'):
        DiffusionConfig.from_dict({'prediction_horizon': 8, 'horizon': 8})
    with pytest.raises(PolicyConfigError, match='prediction_horizon'):
        DiffusionConfig.from_dict({'prediction_horizon': 18})
    with pytest.raises(PolicyConfigError, match='timestep_spacing'):
        DiffusionConfig.from_dict({'timestep_spacing': 'linspace'})
    with pytest.raises(PolicyConfigError, match='down_dims'):
        DiffusionConfig.from_dict({'down_dims': [60, 120]})


# --- training -------------------------------------------------------------------------------------
def test_diffusion_beats_predicting_the_mean_on_held_out_episodes(fitted):
    policy, history, training, held_out = fitted
    errors = action_errors(policy, held_out, training)
    assert errors['policy_chunk_mae'] < 0.5 * errors['mean_action_chunk_mae'], errors
    curve = history.series['validation MSE (normalised)']
    assert len(curve) == len(history.x) and curve[-1] < 0.5 * curve[0], curve
    assert policy.predict_action({'embedding': held_out[0].embeddings[:2]}).shape == (4, 3)


def test_diffusion_samples_both_modes_where_the_mlp_predicts_their_mean():
    episodes = bimodal_episodes()
    policy = DiffusionPolicy(DiffusionConfig(**{**FAST, 'epochs': 160}), metadata(6, ['a']))
    policy.fit(episodes)
    actions = first_actions(policy, episodes, 100)
    assert (actions > 0.5).mean() >= 0.25 and (actions < -0.5).mean() >= 0.25, np.percentile(actions, [5, 50, 95])
    assert (np.abs(actions) < 0.5).mean() < 0.1, np.percentile(actions, [5, 25, 50, 75, 95])

    mlp = make_policy('mlp', {'context_length': 2, 'horizon': 4, 'epochs': 30, 'dropout': 0.0, 'hidden_dims': [64]},
                      metadata(6, ['a']))
    mlp.fit(episodes)
    assert (np.abs(first_actions(mlp, episodes, 20)) < 0.5).mean() > 0.9, 'the MLP regresses to the mean'


def test_artifact_round_trip_repeats_the_predictions(fitted, tmp_path):
    policy, _, _, held_out = fitted
    path = tmp_path / 'policy.pt'
    policy.save(path)
    loaded = load_policy(path)
    assert loaded.metadata.to_dict() == policy.metadata.to_dict()
    assert loaded.config == policy.config
    for candidate in (policy, loaded):
        candidate.reset()
    windows = [{'embedding': held_out[0].embeddings[i:i + 2]} for i in range(4)]
    np.testing.assert_array_equal(np.stack([loaded.predict_action(w) for w in windows]),
                                  np.stack([policy.predict_action(w) for w in windows]))


def test_same_seed_same_weights_predictions_and_the_ema_is_what_is_saved():
    episodes = phase_episodes(3, length=20)
    config = {**FAST, 'epochs': 3, 'batch_size': 16}

    def train(**settings):
        policy = DiffusionPolicy(DiffusionConfig(**{**config, **settings}), metadata(state_names=['a', 'b', 'c']))
        policy.fit(episodes)
        window = {'embedding': episodes[0].embeddings[:2], 'state': episodes[0].states[:2]}
        return policy, np.stack([policy.predict_action(window) for _ in range(3)])

    (first, first_chunks), (second, second_chunks) = train(seed=1), train(seed=1)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    np.testing.assert_array_equal(first_chunks, second_chunks)
    assert not np.array_equal(first_chunks[0], first_chunks[1]), 'successive calls sample afresh'
    first.reset()
    window = {'embedding': episodes[0].embeddings[:2], 'state': episodes[0].states[:2]}
    np.testing.assert_array_equal(np.stack([first.predict_action(window) for _ in range(3)]), first_chunks)
    # The training run does not depend on the EMA; the saved weights do: they are the EMA copy.
    raw, _ = train(seed=1, ema_max_decay=0.0)
    assert not torch.equal(raw.state_dict()['unet.final_conv.1.weight'], first.state_dict()['unet.final_conv.1.weight'])
