"""The linear probe's maths: ridge + R^2 on held-out episodes, with a target that is known to be linear."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_encoder import probe  # noqa: E402
from dynamo_encoder.artifact import EncoderArtifact  # noqa: E402
from dynamo_encoder.probe import (  # noqa: E402
    embedding_statistics,
    fit_ridge_probe,
    nearest_neighbours,
    r2_per_dimension,
    r2_score,
)


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


def test_r2_per_dimension_scores_each_target_and_marks_constant_ones():
    y = np.stack([np.linspace(0, 1, 10), np.ones(10), np.linspace(0, 2, 10)], axis=1)
    prediction = np.stack([y[:, 0], y[:, 1], np.full(10, 1.0)], axis=1)   # exact, -, the mean
    per_dimension = r2_per_dimension(y, prediction)
    assert per_dimension[0] == pytest.approx(1.0) and np.isnan(per_dimension[1])
    assert per_dimension[2] == pytest.approx(0.0)
    assert r2_score(y, prediction) == pytest.approx(0.5)


def test_nearest_neighbours_come_from_other_episodes():
    xs, _ = episodes(4, 10, 8, seed=2)
    for (query_episode, _), found in nearest_neighbours(xs, num_queries=3, k=5, seed=0):
        assert len(found) == 5
        assert all(episode != query_episode for episode, _, _ in found)
        similarities = [s for _, _, s in found]
        assert similarities == sorted(similarities, reverse=True)


def test_effective_rank_counts_the_directions_the_embeddings_use():
    rng = np.random.default_rng(3)
    isotropic = embedding_statistics([rng.normal(size=(400, 16)) for _ in range(2)])
    assert 14 < isotropic['effective_rank'] <= 16 and isotropic['dim'] == 16
    assert isotropic['spread'] > 0.9
    # Dimensional collapse: 16-d embeddings that only vary along 2 directions.
    flat = rng.normal(size=(800, 2)) @ rng.normal(size=(2, 16))
    collapsed = embedding_statistics([flat])
    assert 1.5 < collapsed['effective_rank'] < 2.5
    # Complete collapse: every frame the same point up to tiny noise, so one direction dominates.
    point = embedding_statistics([np.ones((100, 16)) + 1e-6 * rng.normal(size=(100, 16))])
    assert point['spread'] < 1e-3


# -- the command line: one line naming the problem, no traceback; 2 for usage, 1 for unusable files ------------------

@pytest.fixture(scope='module')
def encoder_path(tmp_path_factory):
    path = tmp_path_factory.mktemp('probe_encoder') / 'encoder.pt'
    EncoderArtifact.random_init('resnet_small', ['front'], (16, 16), seed=0).save(path)
    return path


def run_probe(capsys, *argv):
    status = probe.main(list(argv))
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.out + captured.err
    return status, captured.err


def test_bad_arguments_exit_2_naming_them(tmp_path, encoder_path, capsys):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=4, size=16)
    for option, value, message in [('--test-fraction', '0', '--test-fraction must be in (0, 1), got 0.0'),
                                   ('--queries', '0', '--queries must be >= 1, got 0')]:
        with pytest.raises(SystemExit) as exit_info:
            probe.main(['--dataset', str(dataset), '--encoder', str(encoder_path), '--output', str(tmp_path / 'out'),
                        option, value])
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_unusable_inputs_exit_1_with_one_line_naming_them(tmp_path, encoder_path, capsys):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=1, length=4, size=16)
    (tmp_path / 'junk.pt').write_bytes(b'not an encoder')
    cases = [(tmp_path / 'no_dataset', encoder_path, 'no_dataset'),
             (dataset, tmp_path / 'junk.pt', 'junk.pt: not a readable encoder artifact'),
             (dataset, encoder_path, 'needs at least 2 episodes, the dataset has 1')]
    for dataset_dir, encoder, message in cases:
        status, err = run_probe(capsys, '--dataset', str(dataset_dir), '--encoder', str(encoder),
                                '--output', str(tmp_path / 'out'))
        assert status == 1 and len(err.strip().splitlines()) == 1 and message in err
    assert not (tmp_path / 'out' / 'probe.json').exists()
