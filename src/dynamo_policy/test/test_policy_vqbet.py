"""VQ-BeT: the residual VQ tokenizer, fitting, multimodality, the artifact and determinism."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from _synthetic_policy_data import bimodal_episodes, first_actions, phase_episodes
from _synthetic_policy_data import policy_metadata as metadata

from dynamo_data.episode_split import split_episodes
from dynamo_policy.policies import Episode, PolicyConfigError, load_policy, make_policy
from dynamo_policy.policies.base import make_training_windows
from dynamo_policy.policies.vqbet import VQBeTConfig, VQBeTPolicy
from dynamo_policy.policies.vqbet.modeling_vqbet import EMACodebook, ResidualVQ, focal_loss, window_action_chunks
from dynamo_policy.training.metrics import action_errors

# Small training runs: the reference's network sizes, fewer and faster optimisation steps.
FAST = {'context_length': 2, 'horizon': 4, 'vq_epochs': 100, 'vq_batch_size': 256, 'epochs': 20,
        'batch_size': 64, 'learning_rate': 1e-3}


@pytest.fixture(scope='module')
def fitted():
    torch.set_num_threads(1)
    episodes = phase_episodes(12)
    train_ids, held_out_ids = split_episodes(len(episodes), 0.25, seed=0)
    training, held_out = [episodes[i] for i in train_ids], [episodes[i] for i in held_out_ids]
    policy = VQBeTPolicy(VQBeTConfig(**FAST), metadata())
    history = policy.fit(training, held_out)
    return policy, history, training, held_out


# --- building blocks ------------------------------------------------------------------------------
def test_codebook_ema_update_follows_the_reference_rule():
    codebook = EMACodebook(dim=2, size=3, decay=0.8)
    codebook.embed.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]))
    codebook.embed_avg.copy_(codebook.embed)
    codebook.cluster_size.copy_(torch.tensor([2.0, 1.0, 0.5]))
    x = torch.tensor([[0.1, -0.1], [0.9, 1.2], [1.1, 0.8], [0.2, 0.0]])
    index = codebook.nearest(x)
    assert index.tolist() == [0, 1, 1, 0]
    codebook.ema_update(x, index)
    counts = np.array([2.0, 2.0, 0.0])
    sums = np.array([[0.3, -0.1], [2.0, 2.0], [0.0, 0.0]])
    cluster = 0.8 * np.array([2.0, 1.0, 0.5]) + 0.2 * counts
    embed_avg = 0.8 * np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]) + 0.2 * sums
    smoothed = (cluster + 1e-5) / (cluster.sum() + 3 * 1e-5) * cluster.sum()
    np.testing.assert_allclose(codebook.cluster_size.numpy(), cluster, rtol=1e-6)
    np.testing.assert_allclose(codebook.embed.numpy(), embed_avg / smoothed[:, None], rtol=1e-5)


def test_residual_vq_quantises_what_the_first_layer_leaves():
    quantizer = ResidualVQ(dim=2, layers=2, codes=2, decay=0.8).eval()
    quantizer.codebooks[0].embed.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
    quantizer.codebooks[1].embed.copy_(torch.tensor([[0.0, 0.1], [0.0, -0.1]]))
    x = torch.tensor([[0.9, 0.12], [-1.2, -0.08]])
    quantised, codes, _ = quantizer(x)
    assert codes.tolist() == [[0, 0], [1, 1]]
    np.testing.assert_allclose(quantised.numpy(), [[1.0, 0.1], [-1.0, -0.1]], atol=1e-7)
    np.testing.assert_allclose(quantizer.latent(codes).numpy(), quantised.numpy())
    before = [c.embed.clone() for c in quantizer.codebooks]
    quantizer(x)
    assert all(torch.equal(a, c.embed) for a, c in zip(before, quantizer.codebooks)), 'eval leaves codes alone'


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_discounts_easy_examples():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.1, 0.2, 0.3]])
    target = torch.tensor([0, 1])
    assert torch.isclose(focal_loss(logits, target, 0.0), F.cross_entropy(logits, target))
    p = torch.softmax(logits, -1)[[0, 1], target]
    expected = (-(1 - p) ** 2 * p.log()).mean()
    assert torch.isclose(focal_loss(logits, target, 2.0), expected)


def test_each_window_position_gets_the_chunk_from_its_own_frame():
    actions = np.arange(5, dtype=np.float32)[:, None]
    episode = Episode(np.zeros((5, 2), np.float32), actions)
    chunks = window_action_chunks([episode], context_length=3, length=2)[..., 0]
    assert chunks.shape == (5, 3, 2)
    assert chunks[0].tolist() == [[0, 1], [0, 1], [0, 1]]     # padded start: every position shows frame 0
    assert chunks[3].tolist() == [[1, 2], [2, 3], [3, 4]]
    assert chunks[4, -1].tolist() == [4, 4]                     # the last action holds
    _, _, newest = make_training_windows([episode], 3, 2)
    np.testing.assert_array_equal(chunks[:, -1], newest[..., 0])


def test_inference_computes_only_the_sampled_codes_offsets_with_the_same_result():
    network = VQBeTPolicy(VQBeTConfig(context_length=2, horizon=4), metadata()).network
    features, codes = torch.randn(5, 256), torch.randint(0, 16, (5, 2))
    with torch.no_grad():
        torch.testing.assert_close(network._chunks(features, codes, all_offsets=False),
                                   network._chunks(features, codes), atol=1e-5, rtol=1e-5)


def test_bad_configuration_names_the_field():
    with pytest.raises(PolicyConfigError, match='n_embd'):
        VQBeTConfig.from_dict({'n_embd': 100, 'n_head': 6})
    with pytest.raises(PolicyConfigError, match='temperature'):
        VQBeTConfig.from_dict({'temperature': 0.0})
    with pytest.raises(PolicyConfigError, match='vq_layers'):
        VQBeTConfig.from_dict({'vq_layers': 3})


def test_defaults_are_the_dynamo_kitchen_configuration():
    config = VQBeTConfig()
    assert (config.n_layer, config.n_head, config.n_embd, config.dropout) == (6, 6, 120, 0.0)
    assert (config.vq_layers, config.vq_codes, config.vq_latent_dim) == (2, 16, 512)
    assert (config.offset_loss_weight, config.primary_code_weight, config.secondary_code_weight) == (100.0, 5.0, 0.5)
    assert config.context_length == 10


# --- training -------------------------------------------------------------------------------------
def test_vqbet_beats_predicting_the_mean_on_held_out_episodes(fitted):
    policy, history, training, held_out = fitted
    errors = action_errors(policy, held_out, training)
    assert errors['policy_chunk_mae'] < 0.5 * errors['mean_action_chunk_mae'], errors
    curve = history.series['validation MSE (normalised)']
    assert len(curve) == len(history.x) and curve[-1] < 0.5 * curve[0], curve
    assert policy.predict_action({'embedding': held_out[0].embeddings[:2]}).shape == (4, 3)


BIMODAL = {**FAST, 'vq_epochs': 300, 'epochs': 40, 'learning_rate': 1e-4}


def test_vqbet_samples_both_modes_where_the_mlp_predicts_their_mean():
    # With the offset loss on the true codes: the sampled actions land on both modes, not between.
    episodes = bimodal_episodes(count=8)
    policy = VQBeTPolicy(VQBeTConfig(**BIMODAL, offset_loss_codes='true'), metadata(6, ['a']))
    policy.fit(episodes)
    actions = first_actions(policy, episodes, 300)
    assert (actions > 0.5).mean() >= 0.25 and (actions < -0.5).mean() >= 0.25, np.percentile(actions, [5, 50, 95])
    assert (np.abs(actions) < 0.5).mean() < 0.1, np.percentile(actions, [5, 25, 50, 75, 95])

    mlp = make_policy('mlp', {'context_length': 2, 'horizon': 4, 'epochs': 30, 'dropout': 0.0, 'hidden_dims': [64]},
                      metadata(6, ['a']))
    mlp.fit(episodes)
    assert (np.abs(first_actions(mlp, episodes, 20)) < 0.5).mean() > 0.9, 'the MLP regresses to the mean'


def test_default_offset_loss_still_samples_both_modes_codes():
    # With the references' offset loss (sampled codes, the default) the tokenizer separates the modes
    # and the code head samples both; the offsets, though, drift between the modes here (see
    # modeling_vqbet), so only the codes are checked.
    episodes = bimodal_episodes(count=8)
    policy = VQBeTPolicy(VQBeTConfig(**BIMODAL), metadata(6, ['a']))
    policy.fit(episodes)
    network = policy.network
    chunks = policy.metadata.action_normalization.normalize(window_action_chunks(episodes, 2, 4))[:, -1]
    primary = network.vqvae.codes(torch.from_numpy(chunks).flatten(1))[:, 0]
    positive = set(primary[torch.from_numpy(chunks[:, 0, 0] > 0)].tolist())
    negative = set(primary[torch.from_numpy(chunks[:, 0, 0] < 0)].tolist())
    assert positive and negative and not positive & negative, (positive, negative)
    with torch.no_grad():
        window = torch.from_numpy(episodes[0].embeddings[3:5])[None].repeat(400, 1, 1)
        sampled = network.sample(window, None, 1.0, torch.Generator().manual_seed(0))
        codes, _ = network._sample_codes(network.features(window, None)[:, -1], 1.0, torch.Generator().manual_seed(0))
    assert sampled.shape == (400, 4, 1)
    on_positive = np.isin(codes[:, 0].numpy(), list(positive)).mean()
    on_negative = np.isin(codes[:, 0].numpy(), list(negative)).mean()
    assert on_positive >= 0.25 and on_negative >= 0.25, (on_positive, on_negative)


def test_artifact_round_trip_repeats_the_predictions(fitted, tmp_path):
    policy, _, _, held_out = fitted
    path = tmp_path / 'policy.pt'
    policy.save(path)
    loaded = load_policy(path)
    assert loaded.metadata.to_dict() == policy.metadata.to_dict()
    assert loaded.config == policy.config
    for candidate in (policy, loaded):
        candidate.reset()
    windows = [{'embedding': held_out[0].embeddings[i:i + 2]} for i in range(6)]
    np.testing.assert_array_equal(np.stack([loaded.predict_action(w) for w in windows]),
                                  np.stack([policy.predict_action(w) for w in windows]))


@pytest.mark.parametrize('sequentially_select', [True, False])
def test_same_seed_same_weights_and_predictions_and_reset_replays_an_episode(sequentially_select):
    episodes = phase_episodes(3, length=20)
    config = {**FAST, 'vq_epochs': 5, 'epochs': 3, 'sequentially_select': sequentially_select}

    def train(seed):
        policy = VQBeTPolicy(VQBeTConfig(**config, seed=seed), metadata(state_names=['a', 'b', 'c']))
        policy.fit(episodes)
        window = {'embedding': episodes[0].embeddings[:2], 'state': episodes[0].states[:2]}
        return policy, [policy.predict_action(window) for _ in range(4)]

    (first, first_chunks), (second, second_chunks), (other, _) = train(1), train(1), train(2)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key]), key
    assert not all(torch.equal(value, other.state_dict()[key]) for key, value in first.state_dict().items())
    np.testing.assert_array_equal(np.stack(first_chunks), np.stack(second_chunks))
    first.reset()
    window = {'embedding': episodes[0].embeddings[:2], 'state': episodes[0].states[:2]}
    np.testing.assert_array_equal(np.stack([first.predict_action(window) for _ in range(4)]), np.stack(first_chunks))
