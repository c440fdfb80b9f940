"""Bad datasets and bad settings get clear errors that name the camera / episode / key / setting."""

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the synthetic data helper lives beside the tests
from _synthetic_data_pretrain import write_square_dataset  # noqa: E402

from dynamo_data import DatasetError  # noqa: E402
from dynamo_encoder.pretraining import cli  # noqa: E402
from dynamo_encoder.pretraining.config import ConfigError, apply_overrides, load_config  # noqa: E402
from dynamo_encoder.pretraining.trainer import CHECKPOINT, pretrain  # noqa: E402

torch.set_num_threads(1)

TINY = ['encoder.input_size=[16, 16]', 'data.window=4', 'optim.epochs=1', 'train.threads=1']


def config(*overrides):
    return apply_overrides(load_config('cpu_small'), TINY + list(overrides))


def test_missing_camera_is_named(tmp_path):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=16, cameras=('front',))
    with pytest.raises(ConfigError, match=r"camera\(s\) \['wrist'\] .* \(it has \['front'\]\)"):
        pretrain(dataset, tmp_path / 'run', config('data.cameras=[front, wrist]'), progress=False)


def test_missing_camera_through_the_cli_exits_2_with_the_message(tmp_path, capsys):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=16, cameras=('front',))
    status = cli.main(['--dataset', str(dataset), '--output', str(tmp_path / 'run'), '--config', 'cpu_small',
                       '--set', 'data.cameras=[wrist]', '--no-progress'])
    assert status == 2
    assert "camera(s) ['wrist']" in capsys.readouterr().err


def test_episode_shorter_than_the_window_is_named(tmp_path):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, size=16, lengths=[10, 3, 10])
    with pytest.raises(DatasetError, match=r'episode 1 has 3 frames, shorter than the training window of 4'):
        pretrain(dataset, tmp_path / 'run', config('data.val_fraction=0'), progress=False)


def write_nan(dataset: Path, key: str, episode: int, frame: int) -> None:
    """Put a NaN into `key` at (episode, frame).

    DatasetWriter refuses NaN, so corrupt the written parquet like a foreign tool might.
    """
    files = sorted((dataset / 'data').rglob('*.parquet'))
    table = pq.read_table(files[0])
    episodes = table.column('episode_index').to_numpy()
    frames = table.column('frame_index').to_numpy()
    values = np.stack(table.column(key).to_pylist()).astype(np.float32)
    values[np.flatnonzero((episodes == episode) & (frames == frame))[0], 1] = np.nan
    column_type = table.schema.field(key).type
    column = pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1]).cast(column_type)
    table = table.set_column(table.schema.get_field_index(key), key, column)
    pq.write_table(table, files[0])


@pytest.mark.parametrize('key, episode, frame', [('action', 2, 5), ('observation.state', 1, 3)])
def test_nan_state_or_action_is_named_with_episode_and_frame(tmp_path, key, episode, frame):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=16)
    write_nan(dataset, key, episode=episode, frame=frame)
    with pytest.raises(DatasetError, match=rf"'{key}' of episode {episode} has NaN/inf values "
                                           rf'\(first at frame {frame}\)'):
        pretrain(dataset, tmp_path / 'run', config(), progress=False)


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match='optim.lrate'):
        config('optim.lrate=0.1')
    with pytest.raises(ConfigError, match='latent_size'):
        config('objective.latent_size=4')
    with pytest.raises(ConfigError, match='encoder.arch'):
        config('encoder.arch=vit_huge')
    with pytest.raises(ConfigError, match='objective.target'):
        config('objective.target=sometimes')
    with pytest.raises(ConfigError, match='no_such_preset'):
        load_config('no_such_preset')
    with pytest.raises(ConfigError, match="optim.epochs must be an integer, got 'ten'"):
        config('optim.epochs=ten')
    with pytest.raises(ConfigError, match='objective.inverse.layers must be an integer, got 2.5'):
        config('objective.inverse.layers=2.5')
    with pytest.raises(ConfigError, match=r"--set 'optim.betas=\[0.9': the value is not valid YAML"):
        config('optim.betas=[0.9')


def test_window_too_short_for_dynamo_is_a_config_error():
    with pytest.raises(ConfigError, match="data.window must be at least 2 for objective 'dynamo'"):
        config('data.window=1')


# -- the command line: one line naming the problem, no traceback; 2 for usage and settings, 1 for unusable files ----

def run_cli(capsys, *argv):
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    assert 'Traceback' not in captured.out + captured.err
    return status, captured.err


def test_bad_arguments_exit_2_with_one_line_naming_them(tmp_path, capsys):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=2, length=6, size=16)
    base = ['--dataset', str(dataset), '--output', str(tmp_path / 'run'), '--no-progress']
    with pytest.raises(SystemExit) as exit_info:
        cli.main(base + ['--stop-after-steps', '0'])
    assert exit_info.value.code == 2
    assert '--stop-after-steps must be >= 1, got 0' in capsys.readouterr().err
    status, err = run_cli(capsys, *base, '--config', 'cpu_small', '--set', 'optim.epochs=ten')
    assert status == 2
    assert err.strip() == "pretrain: error: --set: optim.epochs must be an integer, got 'ten'"
    assert not (tmp_path / 'run' / CHECKPOINT).exists()


def test_a_missing_dataset_exits_1_with_one_line_naming_it(tmp_path, capsys):
    status, err = run_cli(capsys, '--dataset', str(tmp_path / 'no_dataset'), '--output', str(tmp_path / 'run'),
                          '--config', 'cpu_small', '--no-progress')
    assert status == 1 and len(err.strip().splitlines()) == 1 and 'no_dataset' in err


def test_an_unreadable_checkpoint_is_named_when_resuming(tmp_path, capsys):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=2, length=6, size=16)
    run = tmp_path / 'run'
    run.mkdir()
    (run / CHECKPOINT).write_bytes(b'not a checkpoint')
    status, err = run_cli(capsys, '--dataset', str(dataset), '--output', str(run), '--resume', '--no-progress')
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert f'{run / CHECKPOINT}: unreadable checkpoint' in err and 'remove it to start the run afresh' in err


def test_an_output_that_cannot_be_written_is_a_runtime_failure(tmp_path, capsys):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=2, length=6, size=16)
    blocked = tmp_path / 'file'
    blocked.write_text('a file where the run directory should go')
    status, err = run_cli(capsys, '--dataset', str(dataset), '--output', str(blocked / 'run'), '--config', 'cpu_small',
                          *[arg for setting in TINY for arg in ('--set', setting)], '--no-progress')
    assert status == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith('pretrain: failed: ') and str(blocked) in err
