"""kNN and MLP fit small datasets, round-trip through their artifact, and fail clearly."""

import numpy as np
import pytest
import torch
from _synthetic_policy_data import phase_episodes
from _synthetic_policy_data import policy_metadata as metadata

from dynamo_data.episode_split import split_episodes
from dynamo_policy.policies import (
    POLICIES,
    Episode,
    Normalization,
    PolicyArtifactError,
    PolicyConfigError,
    load_policy,
    make_policy,
)
from dynamo_policy.training.metrics import action_errors


@pytest.mark.parametrize('name, config', [
    ('knn', {'k': 3, 'horizon': 4}),
    ('mlp', {'epochs': 60, 'horizon': 4, 'context_length': 2, 'hidden_dims': [64, 64], 'dropout': 0.0}),
])
def test_policy_beats_predicting_the_mean_on_held_out_episodes(name, config):
    episodes = phase_episodes(12)
    train_ids, held_out_ids = split_episodes(len(episodes), 0.25, seed=0)
    training = [episodes[i] for i in train_ids]
    held_out = [episodes[i] for i in held_out_ids]
    policy = make_policy(name, config, metadata())
    history = policy.fit(training, held_out)
    errors = action_errors(policy, held_out, training)
    assert errors['policy_chunk_mae'] < 0.5 * errors['mean_action_chunk_mae'], errors
    assert history.series['validation MSE (normalised)'], 'a validation curve is recorded'


def test_mlp_training_loss_decreases():
    policy = make_policy('mlp', {'epochs': 30, 'horizon': 2, 'dropout': 0.0}, metadata())
    history = policy.fit(phase_episodes(6))
    losses = history.series['train MSE (normalised)']
    assert losses[-1] < 0.5 * losses[0]


def test_mlp_initial_weights_and_training_follow_its_seed_and_leave_the_global_rng_alone():
    def trained(seed):
        policy = make_policy('mlp', {'epochs': 3, 'horizon': 2, 'dropout': 0.0, 'seed': seed}, metadata())
        initial = {k: v.clone() for k, v in policy.state_dict().items()}
        policy.fit(phase_episodes(3))
        return initial, policy.state_dict()

    rng = torch.get_rng_state()
    (initial, final), (initial_again, final_again) = trained(0), trained(0)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(initial[k], initial_again[k]) and torch.equal(final[k], final_again[k]) for k in initial)
    other_initial, _ = trained(1)
    assert not torch.equal(initial['layers.0.weight'], other_initial['layers.0.weight'])
    # The seeded initialisation keeps torch's default scale for nn.Linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    bound = 1 / np.sqrt(initial['layers.0.weight'].shape[1])
    assert 0.9 * bound < float(initial['layers.0.weight'].abs().max()) <= bound


def test_knn_returns_the_neighbours_chunks_weighted_by_distance():
    # Two training frames far apart; the query sits on the first one: its chunk dominates.
    embeddings = np.array([[0.0, 0.0], [10.0, 0.0]], np.float32)
    actions = np.array([[1.0], [3.0]], np.float32)
    policy = make_policy('knn', {'k': 2, 'horizon': 1}, metadata(2, ['a']))
    policy.fit([Episode(embeddings[:1], actions[:1]), Episode(embeddings[1:], actions[1:])])
    near_first = policy.predict_action({'embedding': np.array([[0.5, 0.0]], np.float32)})
    halfway = policy.predict_action({'embedding': np.array([[5.0, 0.0]], np.float32)})
    assert near_first.shape == (1, 1)
    assert abs(near_first[0, 0] - 1.0) < 1e-3      # exp(-9) weight for the far neighbour
    assert abs(halfway[0, 0] - 2.0) < 1e-5         # equal distances: equal votes


@pytest.mark.parametrize('state_weight, nearest_action', [(0.0, 1.0), (0.5, 1.0), (1.0, 3.0), (3.0, 3.0)])
def test_knn_state_weight_balances_embedding_and_state_distance_as_documented(state_weight, nearest_action):
    """Frame A is nearer the query in embedding (1 vs 2), frame B in z-scored state (0 vs 2).

    Squared distances: A 1 + 4 w^2, B 4 + 0 w^2, so A is the neighbour for w < sqrt(3) / 2.
    """
    frame_a = Episode(np.array([[0.0, 0.0]], np.float32), np.array([[1.0]], np.float32), np.array([[0.0]], np.float32))
    frame_b = Episode(np.array([[3.0, 0.0]], np.float32), np.array([[3.0]], np.float32), np.array([[2.0]], np.float32))
    policy = make_policy('knn', {'k': 1, 'horizon': 1, 'state_weight': state_weight}, metadata(2, ['a'], ['s']))
    policy.fit([frame_a, frame_b])       # state z-scores: A -1, B +1
    query = {'embedding': np.array([[1.0, 0.0]], np.float32), 'state': np.array([[2.0]], np.float32)}
    assert policy.predict_action(query)[0, 0] == pytest.approx(nearest_action)


def test_knn_default_state_weight_is_the_plain_concatenation_used_before_it_existed():
    assert make_policy('knn', {}, metadata()).config.state_weight == 1.0


def test_a_dimension_constant_in_training_normalises_a_small_deployment_reading_to_a_bounded_value():
    values = np.random.default_rng(0).normal(size=(500, 8))
    values[:, 3] = 0.5                    # a dead unit
    normalization = Normalization.fit(values)
    reading = values.mean(axis=0)
    reading[3] = 0.52
    normalized = normalization.normalize(reading[None])[0]
    # An absolute 1e-6 floor read 2e4 here; the relative floor keeps it near 0.02 / (0.01 * 1).
    assert 1.0 < abs(normalized[3]) < 3.0, normalized
    others = [0, 1, 2, 4, 5, 6, 7]
    np.testing.assert_allclose(normalization.std[others], values.std(axis=0)[others], rtol=1e-6)
    constant = Normalization.fit(np.full((10, 2), 4.0))
    np.testing.assert_allclose(constant.normalize(np.array([[4.02, 3.0]])), [[0.02, -1.0]], rtol=1e-5)


# Settings that keep each trained head small enough for a round trip in a few seconds.
FAST_SETTINGS = {
    'mlp': {'epochs': 2},
    'vqbet': {'vq_epochs': 2, 'epochs': 2, 'batch_size': 64},
    'diffusion': {'epochs': 2, 'batch_size': 64, 'prediction_horizon': 4, 'down_dims': [32, 64],
                  'diffusion_step_embed_dim': 32},
}


@pytest.mark.parametrize('name', sorted(POLICIES))
def test_artifact_round_trip_keeps_predictions_and_metadata(name, tmp_path):
    episodes = phase_episodes(4)
    policy = make_policy(name, {'horizon': 3, 'context_length': 2, **FAST_SETTINGS.get(name, {})},
                         metadata(state_names=['a', 'b', 'c']))
    policy.fit(episodes)
    path = tmp_path / 'policy.pt'
    policy.save(path)
    loaded = load_policy(path)
    window = {'embedding': episodes[0].embeddings[:5], 'state': episodes[0].states[:5]}
    np.testing.assert_allclose(loaded.predict_action(window), policy.predict_action(window), rtol=1e-5, atol=1e-6)
    assert loaded.predict_action(window).shape == (3, 3)
    assert loaded.metadata.to_dict() == policy.metadata.to_dict()
    assert (loaded.name, loaded.context_length, loaded.horizon) == (name, 2, 3)
    assert [p.name for p in tmp_path.iterdir()] == ['policy.pt'], 'no temp files left behind'


def test_short_windows_are_padded_like_episode_starts():
    policy = make_policy('knn', {'horizon': 2, 'context_length': 3}, metadata())
    episodes = phase_episodes(3)
    policy.fit(episodes)
    first = episodes[0].embeddings[:1]
    padded = np.repeat(first, 3, axis=0)
    np.testing.assert_allclose(policy.predict_action({'embedding': first}),
                               policy.predict_action({'embedding': padded}))


def test_missing_and_foreign_artifacts_are_named(tmp_path):
    with pytest.raises(PolicyArtifactError, match=str(tmp_path / 'missing.pt')):
        load_policy(tmp_path / 'missing.pt')
    foreign = tmp_path / 'foreign.pt'
    torch.save({'something': 1}, foreign)
    with pytest.raises(PolicyArtifactError, match='foreign.pt'):
        load_policy(foreign)
    garbage = tmp_path / 'garbage.pt'
    garbage.write_bytes(b'not a torch file')
    with pytest.raises(PolicyArtifactError, match='garbage.pt'):
        load_policy(garbage)


def test_bad_configuration_names_the_field():
    with pytest.raises(PolicyConfigError, match='horizon'):
        make_policy('mlp', {'horizon': 0}, metadata())
    with pytest.raises(PolicyConfigError, match='no_such_field'):
        make_policy('knn', {'no_such_field': 1}, metadata())
    with pytest.raises(PolicyConfigError, match='unknown policy'):
        make_policy('transformer', {}, metadata())


def test_wrong_embedding_size_is_refused():
    policy = make_policy('knn', {}, metadata())
    policy.fit(phase_episodes(2))
    with pytest.raises(ValueError, match='expects 12'):
        policy.predict_action({'embedding': np.zeros((1, 5), np.float32)})


@pytest.mark.parametrize('name', ['mlp', 'vqbet', 'diffusion'])
def test_every_head_bounds_a_dead_embedding_unit_and_a_joint_that_never_moved(name):
    """Embedding unit 0 and joint 'b' are constant in training and read 0.02 off at deployment."""
    episodes = phase_episodes(4)
    for episode in episodes:
        episode.embeddings[:, 0] = 0.3
        episode.states[:, 1] = -1.0
    policy = make_policy(name, {'horizon': 2, **FAST_SETTINGS[name]}, metadata(state_names=['a', 'b', 'c']))
    policy.fit(episodes)
    # 0.02 / (0.01 * typical std): the embedding units' typical std is about 1.2, so about 1.7;
    # the joints' about 0.29, so 7. (An absolute 1e-6 floor read 2e4.)
    embedding_reading = 0.02 / float(policy.network.embedding_std[0])
    assert embedding_reading < 3.0
    joint_reading = policy.metadata.state_normalization.normalize(np.array([[0.0, -0.98, 0.0]]))[0, 1]
    typical_joint_std = np.sqrt(np.mean(np.concatenate([e.states for e in episodes]).var(axis=0)))
    assert abs(joint_reading) == pytest.approx(0.02 / (Normalization.RELATIVE_STD_FLOOR * typical_joint_std), rel=1e-3)
