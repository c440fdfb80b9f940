"""The linear probe's maths: ridge + R^2 on held-out episodes, with a target that is known to be linear."""

import numpy as np
import pytest

from dynamo_encoder.probe import fit_ridge_probe, nearest_neighbours, r2_score


def episodes(num, length, dim, seed, noise_features=0):
    rng = np.random.default_rng(seed)
    mixing = rng.normal(size=(2, dim))
    xs, ys = [], []
    for _ in range(num):
        y = rng.uniform(-1, 1, size=(length, 2))
        x = y @ mixing + 0.01 * rng.normal(size=(length, dim))
        if noise_features:
            x = np.concatenate([x, rng.normal(size=(length, noise_features))], axis=1)
        xs.append(x)
        ys.append(y)
    return xs, ys


def test_ridge_probe_recovers_a_linear_target_on_held_out_episodes():
    xs, ys = episodes(8, 30, 16, seed=0, noise_features=64)
    predict = fit_ridge_probe(xs[:6], ys[:6])
    assert r2_score(np.concatenate(ys[6:]), predict(np.concatenate(xs[6:]))) > 0.95


def test_unrelated_features_score_near_zero_not_high():
    rng = np.random.default_rng(1)
    xs = [rng.normal(size=(30, 32)) for _ in range(8)]
    ys = [rng.uniform(size=(30, 2)) for _ in range(8)]
    predict = fit_ridge_probe(xs[:6], ys[:6])
    assert r2_score(np.concatenate(ys[6:]), predict(np.concatenate(xs[6:]))) < 0.1


def test_r2_ignores_constant_targets_and_refuses_all_constant():
    y = np.stack([np.linspace(0, 1, 10), np.ones(10)], axis=1)
    assert r2_score(y, y) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='do not vary'):
        r2_score(np.ones((5, 2)), np.zeros((5, 2)))


def test_nearest_neighbours_come_from_other_episodes():
    xs, _ = episodes(4, 10, 8, seed=2)
    for (query_episode, _), found in nearest_neighbours(xs, num_queries=3, k=5, seed=0):
        assert len(found) == 5
        assert all(episode != query_episode for episode, _, _ in found)
        similarities = [s for _, _, s in found]
        assert similarities == sorted(similarities, reverse=True)
