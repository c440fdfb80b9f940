"""train_policy end to end: LeRobot v3 dataset + encoder artifact -> policy artifact and reports."""

import json

import numpy as np
import pytest
from _synthetic_policy_data import XARM_ACTIONS, write_synthetic_dataset

from dynamo_data import LeRobotDataset
from dynamo_encoder.artifact import EncoderArtifact
from dynamo_policy.policies import load_policy
from dynamo_policy.training.cli import main as train_policy
from dynamo_policy.training.embedding_cache import episode_embeddings


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp('train') / 'dataset', XARM_ACTIONS)


def run(dataset, encoder_path, output, cache, *extra):
    assert train_policy(['--dataset', str(dataset), '--encoder', str(encoder_path), '--output', str(output),
                         '--cache-dir', str(cache), '--quiet', *extra]) == 0


def test_mlp_with_state_writes_artifact_curve_and_beats_the_mean(dataset, encoder_path, tmp_path, capsys):
    output = tmp_path / 'mlp'
    run(dataset, encoder_path, output, tmp_path / 'cache', '--policy', 'mlp', '--use-state',
        '--set', 'epochs=40', '--set', 'horizon=4', '--set', 'context_length=2')
    assert sorted(p.name for p in output.iterdir()) == ['config.yaml', 'metrics.json', 'policy.pt',
                                                         'training_curve.png']
    assert (output / 'training_curve.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    metrics = json.loads((output / 'metrics.json').read_text())
    assert metrics['held_out_episodes'] and not set(metrics['held_out_episodes']) & set(metrics['training_episodes'])
    assert metrics['policy_chunk_mae'] < 0.5 * metrics['mean_action_chunk_mae'], metrics
    assert 'predicting the mean' in capsys.readouterr().out

    policy = load_policy(output / 'policy.pt')
    encoder = EncoderArtifact.load(encoder_path)
    meta = policy.metadata
    assert (policy.name, policy.horizon, policy.context_length) == ('mlp', 4, 2)
    assert (meta.encoder_checksum, meta.encoder_name, meta.camera_names) == (
        encoder.checksum, encoder.name, ['front'])
    assert meta.embedding_dim == encoder.output_dim
    assert meta.action_names == XARM_ACTIONS and meta.state_names == XARM_ACTIONS
    assert meta.step_period == pytest.approx(0.1)
    # Deployment path: the encoder's embedding of a dataset frame -> a chunk in real units.
    ds = LeRobotDataset(dataset)
    embedding = encoder.encode({'front': ds.frames(0, 'front')[5]})
    chunk = policy.predict_action({'embedding': embedding[None], 'state': ds.array(0, 'observation.state')[5:6]})
    assert chunk.shape == (4, len(XARM_ACTIONS)) and np.all(np.isfinite(chunk))


def test_embeddings_are_computed_once_per_encoder(dataset, encoder_path, tmp_path, capsys):
    cache = tmp_path / 'cache'
    run(dataset, encoder_path, tmp_path / 'a', cache, '--policy', 'knn')
    assert 'embeddings from cache' not in capsys.readouterr().out
    run(dataset, encoder_path, tmp_path / 'b', cache, '--policy', 'knn', '--set', 'k=3')
    assert 'embeddings from cache' in capsys.readouterr().out
    assert len(list(cache.iterdir())) == 1
    # Another encoder must not reuse them.
    other = tmp_path / 'other_encoder.pt'
    EncoderArtifact.random_init('resnet_small', ['front'], (32, 32), seed=1).save(other)
    ds = LeRobotDataset(dataset)
    fresh = episode_embeddings(ds, EncoderArtifact.load(other), cache, show_progress=False)
    assert len(list(cache.iterdir())) == 2
    cached = episode_embeddings(ds, EncoderArtifact.load(encoder_path), cache, show_progress=False)
    assert not np.allclose(fresh[0], cached[0])
    assert [len(e) for e in cached] == ds.episode_lengths.tolist()


@pytest.mark.parametrize('option, value, message, status', [
    ('--dataset', 'no_such_dataset', 'no_such_dataset', 1),
    ('--encoder', 'no_such_encoder.pt', 'no_such_encoder.pt', 1),
    ('--encoder', 'three_cameras.pt', "needs camera(s) ['wrist', 'top']", 1),
    ('--set', 'k=0', 'k must be >= 1', 2),
    ('--set', 'kk=3', 'kk', 2),
    ('--set', 'k=three', "k must be an integer, got 'three'", 2),
    ('--set', 'k=[3', "--set 'k=[3': not valid YAML", 2),
])
def test_bad_input_exits_non_zero_with_one_line_naming_it(dataset, encoder_path, tmp_path, capsys, option, value,
                                                          message, status):
    EncoderArtifact.random_init('resnet_small', ['front', 'wrist', 'top'], (32, 32), seed=0).save(
        tmp_path / 'three_cameras.pt')
    args = {'--dataset': str(dataset), '--encoder': str(encoder_path)}
    argv = ['--policy', 'knn', '--output', str(tmp_path / 'out'), '--cache-dir', str(tmp_path / 'cache'), '--quiet']
    if option in args:
        args[option] = str(tmp_path / value)
    else:
        argv += [option, value]
    assert train_policy([a for pair in args.items() for a in pair] + argv) == status
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.out + captured.err
    assert len(captured.err.strip().splitlines()) == 1 and message in captured.err
    assert not (tmp_path / 'out' / 'policy.pt').exists()


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    from dynamo_policy.training.cli import resolve_config_values
    config = tmp_path / 'config.yaml'
    config.write_text('learning_rate: 1e-4\nweight_decay: -2.5E+3\nname: 1e4x\n')
    values = resolve_config_values(config, ['adam_eps=3e-8', 'k=5'])
    assert values == {'learning_rate': 1e-4, 'weight_decay': -2500.0, 'name': '1e4x', 'adam_eps': 3e-8, 'k': 5}


@pytest.mark.parametrize('option, value, message', [
    ('--validation-fraction', '1', '--validation-fraction must be in [0, 1), got 1.0'),
    ('--threads', '0', '--threads must be >= 1, got 0'),
    ('--policy', 'transformer', "argument --policy: invalid choice: 'transformer'"),
])
def test_bad_arguments_exit_2_with_the_usage(dataset, encoder_path, tmp_path, capsys, option, value, message):
    argv = {'--dataset': str(dataset), '--encoder': str(encoder_path), '--policy': 'knn',
            '--output': str(tmp_path / 'out'), option: value}
    with pytest.raises(SystemExit) as exit_info:
        train_policy([a for pair in argv.items() for a in pair])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_an_output_that_cannot_be_written_is_a_runtime_failure(dataset, encoder_path, tmp_path, capsys):
    blocked = tmp_path / 'file'
    blocked.write_text('a file where the output directory should go')
    status = train_policy(['--dataset', str(dataset), '--encoder', str(encoder_path), '--policy', 'knn',
                           '--output', str(blocked / 'out'), '--cache-dir', str(tmp_path / 'cache'), '--quiet'])
    captured = capsys.readouterr()
    assert status == 1 and 'Traceback' not in captured.out + captured.err
    assert captured.err.startswith('train_policy: failed: ') and str(blocked) in captured.err
