"""Property-based: whatever the damage to a bag or a config, convert_bags ends in one clear line or a dataset.

Never a traceback, never a partial output, and --skip-bad always goes on past the damaged bag.
Bounded (few examples, no deadline) so the file runs in well under half a minute.
"""
import contextlib
import io
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: the bag factory lives beside the tests
import _bag_factory_conversion as bf  # noqa: E402

from dynamo_data import LeRobotDataset  # noqa: E402
from dynamo_data.conversion.cli import main  # noqa: E402

_SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope='module')
def work(tmp_path_factory):
    """Pristine bags of both storages, a good bag and a valid config, written once for all examples."""
    root = tmp_path_factory.mktemp('damage')
    pristine = {storage: bf.write_bag(root / f'pristine_{storage}', bf.xarm_messages(12), storage)
                for storage in ('mcap', 'sqlite3')}
    return root, pristine, bf.write_bag(root / 'good', bf.xarm_messages(6, seed=1)), bf.write_config(root / 'cfg.yaml')


def _run(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([*map(str, argv), '--no-progress'])
    return rc, err.getvalue()


@_SETTINGS
@given(storage=st.sampled_from(['mcap', 'sqlite3']), where=st.floats(0, 1), size=st.integers(1, 5000),
       damage=st.sampled_from(['truncate', 'garble', 'zero']), seed=st.integers(0, 2**16))
def test_a_damaged_storage_file_never_crashes_a_batch(work, storage, where, size, damage, seed):
    root, pristine, good, config = work
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmp = Path(tmp)
        bag = shutil.copytree(pristine[storage], tmp / 'bag')
        data_file = next(p for p in bag.iterdir() if p.suffix in ('.mcap', '.db3'))
        raw = bytearray(data_file.read_bytes())
        at = int(where * (len(raw) - 1))
        if damage == 'truncate':
            del raw[at:]
        else:
            end = min(len(raw), at + size)
            raw[at:end] = (np.random.default_rng(seed).integers(0, 256, end - at, dtype=np.uint8).tobytes()
                           if damage == 'garble' else bytes(end - at))
        data_file.write_bytes(raw)
        rc, err = _run([bag, good, '--config', config, '--output', tmp / 'ds', '--skip-bad'])
        assert 'Traceback' not in err and rc == 0, err
        episodes = LeRobotDataset(tmp / 'ds').num_episodes
        skipped = [line for line in err.splitlines() if line.startswith(f'  {bag}: ')]
        assert episodes == 2 - len(skipped)  # the damaged bag converted, or is listed as skipped
        assert all(str(bag) in line for line in skipped)  # the listed reason names the bag's file(s)
        assert sorted(p.name for p in tmp.iterdir()) == ['bag', 'ds']  # no temp dirs


_WRONG_VALUES = st.one_of(st.text(max_size=6), st.integers(-3, 3), st.floats(allow_nan=False), st.booleans(),
                          st.none(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3),
                                                                                          st.integers(), max_size=2))


def _paths(node, prefix=()):
    yield prefix
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


@_SETTINGS
@given(data=st.data())
def test_a_config_with_any_value_replaced_is_a_config_error_or_works(work, data):
    root, _, good, config = work
    cfg = yaml.safe_load(config.read_text())
    cfg['episodes'] = {'split': 'gap', 'gap_s': 2.0, 'min_frames': 2}
    cfg['cameras']['front']['depth_range'] = [0.1, 2.0]
    path = data.draw(st.sampled_from([p for p in _paths(cfg) if p]))
    value = data.draw(_WRONG_VALUES)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        tmp = Path(tmp)
        (tmp / 'cfg.yaml').write_text(yaml.safe_dump(cfg))
        rc, err = _run([good, '--config', tmp / 'cfg.yaml', '--output', tmp / 'ds'])
        assert 'Traceback' not in err, err
        if rc == 2:
            assert err.startswith(f"convert_bags: error: {tmp / 'cfg.yaml'}: ") and err.count('\n') == 1, err
        elif rc == 1:
            assert err.count('\n') == 1 and str(good) in err, err
        else:
            assert rc == 0 and LeRobotDataset(tmp / 'ds').num_episodes == 1
