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

from dynamo_data import DatasetError, LeRobotDataset  # noqa: E402
from dynamo_encoder.pretraining import cli  # noqa: E402
from dynamo_encoder.pretraining.config import ConfigError, apply_overrides, load_config  # noqa: E402
from dynamo_encoder.pretraining.data import load_windows  # noqa: E402
from dynamo_encoder.pretraining.trainer import pretrain  # noqa: E402

torch.set_num_threads(1)

TINY = ['encoder.input_size=[16, 16]', 'data.window=4', 'optim.epochs=1', 'train.threads=1']


def config(*overrides):
    return apply_overrides(load_config('cpu_small'), TINY + list(overrides))


def test_missing_camera_is_named(tmp_path):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=16, cameras=('front',))
    with pytest.raises(DatasetError, match=r"camera\(s\) \['wrist'\] .* \(it has \['front'\]\)"):
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
    """Put a NaN into `key` at (episode, frame); DatasetWriter refuses NaN, so corrupt the written
    parquet like a foreign tool might.
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


def test_nan_actions_are_named_with_episode_and_frame(tmp_path):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=16)
    write_nan(dataset, 'action', episode=2, frame=5)
    with pytest.raises(DatasetError, match=r"'action' of episode 2 has NaN/inf values \(first at frame 5\)"):
        pretrain(dataset, tmp_path / 'run', config(), progress=False)


@pytest.mark.parametrize('key', ['observation.state', 'action'])
def test_windows_carrying_a_nan_state_or_action_are_refused_with_its_episode_and_frame(tmp_path, key):
    dataset = write_square_dataset(tmp_path / 'dataset', episodes=3, length=8, size=16)
    write_nan(dataset, key, episode=1, frame=3)
    with pytest.raises(DatasetError, match=rf"'{key}' of episode 1 has NaN/inf values \(first at frame 3\)"):
        load_windows(LeRobotDataset(dataset), [0, 1, 2], ['front'], window=4, input_size=(16, 16), progress=False)


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


def test_window_too_short_for_dynamo_is_a_config_error():
    with pytest.raises(ConfigError, match="data.window must be at least 2 for objective 'dynamo'"):
        config('data.window=1')
