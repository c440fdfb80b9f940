"""Start and stop node executables as processes, on a DDS domain of their own, on loopback."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DOMAIN_IDS = range(1, 102)


class DomainLease:
    """Exclusive use of one ROS_DOMAIN_ID on this machine, held until release() (a lock file per id)."""

    def __init__(self):
        lock_dir = Path(tempfile.gettempdir()) / 'dynamo_ros_domains'
        lock_dir.mkdir(exist_ok=True)
        # Start at a pid-dependent id so concurrent users rarely contend for the same lock.
        offset = os.getpid() % len(DOMAIN_IDS)
        for i in range(len(DOMAIN_IDS)):
            domain_id = DOMAIN_IDS[(offset + i) % len(DOMAIN_IDS)]
            handle = open(lock_dir / f'{domain_id}.lock', 'w')
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            self.domain_id, self._handle = domain_id, handle
            return
        raise RuntimeError(f'every ROS_DOMAIN_ID in {DOMAIN_IDS} is in use on this machine')

    def environment(self) -> dict[str, str]:
        """Variables that keep ROS traffic on this domain and on loopback."""
        return {'ROS_DOMAIN_ID': str(self.domain_id), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}

    def release(self) -> None:
        self._handle.close()


@contextmanager
def environment(variables: dict[str, str]) -> Iterator[None]:
    """Set environment variables of this process inside the block; restore their previous values after it."""
    saved = {key: os.environ.get(key) for key in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def resolve_executable(name: str) -> str:
    """Return the path of a console script of this environment (beside its python) or of anything on PATH."""
    local = Path(sys.prefix) / 'bin' / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f'executable {name!r} is neither in {local.parent} nor on PATH')
    return found


class NodeProcess:
    """A node executable in its own process group, its output in a log file."""

    def __init__(self, command: list[str], name: str, env: dict[str, str], log_path: Path):
        self.name = name
        self.log_path = Path(log_path)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, 'wb')
        self.popen = subprocess.Popen(
            [resolve_executable(command[0]), *command[1:]], env=env, stdout=self._log,
            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def stop(self, sigint_grace_s: float = 10.0, sigterm_grace_s: float = 3.0) -> int:
        """SIGINT (as Ctrl-C and launch do), then SIGTERM, then SIGKILL to the whole group."""
        for sig, grace in ((signal.SIGINT, sigint_grace_s), (signal.SIGTERM, sigterm_grace_s)):
            if self.popen.poll() is None:
                os.kill(self.popen.pid, sig)
                try:
                    self.popen.wait(timeout=grace)
                except subprocess.TimeoutExpired:
                    continue
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()
        self._log.close()
        return self.popen.returncode

    def group_alive(self) -> bool:
        """Whether any process of this node's group is still running."""
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
