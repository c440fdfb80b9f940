import pytest

from dynamo_data.atomic import atomic_open


def test_completed_block_replaces_the_file(tmp_path):
    path = tmp_path / 'out.txt'
    path.write_text('old')
    with atomic_open(path) as f:
        f.write('new')
        assert path.read_text() == 'old'   # not visible until the block completes
    assert path.read_text() == 'new'
    assert [p.name for p in tmp_path.iterdir()] == ['out.txt']


def test_failed_block_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / 'out.bin'
    path.write_bytes(b'old')
    with pytest.raises(RuntimeError):
        with atomic_open(path, 'wb') as f:
            f.write(b'half')
            raise RuntimeError('killed half way')
    assert path.read_bytes() == b'old'
    assert [p.name for p in tmp_path.iterdir()] == ['out.bin']


def test_refuses_modes_that_would_read_or_append(tmp_path):
    with pytest.raises(ValueError, match='mode'):
        with atomic_open(tmp_path / 'x', 'a'):
            pass
