"""Atomic file writes: the one way every output of dynamo-ros is written.

A reader (or a resumed run) sees either the previous complete file or the new complete file,
never a truncated one, even if the writer is killed half way.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = 'w', **kwargs) -> Iterator[IO]:
    """Write `path` atomically: a temporary file beside it replaces it only if the block completes.

    The temporary file is on the same file system (os.replace is atomic there) and is removed
    if the block raises.

    Binary or text as `mode` says ('w' or 'wb'); kwargs go to open() (encoding, newline, ...).
    Anything that writes to a file object works: `torch.save(obj, f)`, `fig.savefig(f, format='png')`,
    `np.savez(f, ...)`, `json.dump(obj, f)`.
    """
    if mode not in ('w', 'wb'):
        raise ValueError(f"atomic_open writes a new file: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent)
    try:
        with os.fdopen(fd, mode, **kwargs) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
