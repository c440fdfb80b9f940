"""Resumable pipelines of named steps, as the demo and bench/claim.py run them.

A step is one console script a user would run (or, for work that has none, a call in this
process) with a marker: a file that exists only once the step finished, the step's own final
output. A step whose marker exists is done and is skipped, so rerunning a pipeline resumes it.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dynamo_bringup.processes import resolve_executable

LOG_TAIL_CHARS = 2000  # of a failed step's log, quoted in its error


class StepFailed(RuntimeError):
    """A step's command exited non-zero, or the step finished without writing its marker."""

    def __init__(self, message: str, returncode: int = 1):
        super().__init__(message)
        self.returncode = returncode


@dataclass(frozen=True)
class Step:
    name: str
    marker: Path                                          # exists only once the step finished: its own final output
    command: list[str] = field(default_factory=list)      # console script and its arguments
    bag_dirs: list[Path] = field(default_factory=list)    # their bags are appended to `command` when it runs
    call: Callable[[], None] | None = None                # instead of a command: work done in this process
    marker_text: str | None = None                        # written to `marker` once the command succeeded, for
                                                          # a command whose output has no final file of its own

    @property
    def done(self) -> bool:
        return self.marker.exists()

    def run(self, log: Path | None = None, announce: Callable[[list[str]], None] | None = None) -> None:
        """Run the step's call or command, then check that its marker exists.

        A command's output goes to `log`, after the command line, or else to this process's stdout;
        `announce` sees the command line before the command starts. Raise StepFailed when the
        command exits non-zero or the step leaves no marker.
        """
        if self.call is not None:
            self.call()
        else:
            command = [*self.command, *(bag for directory in self.bag_dirs for bag in _recorded_bags(directory))]
            if announce is not None:
                announce(command)
            executable = [resolve_executable(command[0]), *command[1:]]
            if log is None:
                returncode = subprocess.run(executable).returncode
            else:
                with open(log, 'w') as output:
                    output.write('$ ' + shlex.join(command) + '\n')
                    output.flush()
                    returncode = subprocess.run(executable, stdout=output, stderr=subprocess.STDOUT).returncode
            if returncode != 0:
                details = '' if log is None else f'; log {log}:\n{log.read_text()[-LOG_TAIL_CHARS:]}'
                raise StepFailed(f'step "{self.name}" failed with exit code {returncode}{details}', returncode)
            if self.marker_text is not None:
                self.marker.write_text(self.marker_text)
        if not self.done:
            raise StepFailed(f'step "{self.name}" finished without writing {self.marker}')


def record_demos_step(name: str, task: str, episodes: int, bags: Path) -> Step:
    """Return the step that records `episodes` scripted-expert demonstrations of `task` as bags in `bags`."""
    # record_demos writes one bag per episode and no final file: the step marks the directory complete
    return Step(name, bags / 'COMPLETE',
                ['record_demos', '--task', task, '--episodes', str(episodes), '--output', str(bags)],
                marker_text='all demonstrations recorded\n')


def convert_bags_step(name: str, bag_dirs: list[Path], config_file: str, dataset: Path) -> Step:
    """Return the step that converts the bags in `bag_dirs` to the LeRobot dataset `dataset`."""
    return Step(name, dataset / 'meta' / 'info.json',
                ['convert_bags', '--config', str(converter_config(config_file)), '--output', str(dataset)],
                bag_dirs=bag_dirs)


def converter_config(file_name: str) -> Path:
    """Return the path of a convert_bags config that dynamo_data ships (share/dynamo_data/config)."""
    from ament_index_python.packages import get_package_share_directory
    return Path(get_package_share_directory('dynamo_data')) / 'config' / file_name


def _recorded_bags(directory: Path) -> list[str]:
    """Return the bags recorded in `directory` (its subdirectories with a metadata.yaml), sorted."""
    return [str(metadata.parent) for metadata in sorted(directory.glob('*/metadata.yaml'))]
