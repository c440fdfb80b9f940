"""dynamo_data loads neither torch nor rclpy: bags convert on a data server that has neither.

Each check runs in a fresh interpreter, so modules imported by other tests of this session do not count.
"""
import json
import subprocess
import sys

import pytest

HEAVY = ('torch', 'rclpy')
# Run the console script exactly as installed: the entry point setup.py declares, with --help.
CONSOLE_SCRIPT = """
from importlib.metadata import entry_points
(convert_bags,) = [ep.load() for ep in entry_points(group='console_scripts', name='convert_bags')]
try:
    convert_bags(['--help'])
except SystemExit as exc:
    assert exc.code == 0, exc.code
"""


def _heavy_modules_loaded_by(code):
    probe = f'{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))'
    done = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize('code', ['import dynamo_data', 'import dynamo_data.conversion.cli', CONSOLE_SCRIPT],
                         ids=['package', 'cli module', 'convert_bags --help'])
def test_loads_neither_torch_nor_rclpy(code):
    assert _heavy_modules_loaded_by(code) == []


def test_the_probe_sees_torch_and_rclpy_when_they_are_imported():
    """Both are installed here, so an import of either anywhere in dynamo_data would be caught above."""
    assert _heavy_modules_loaded_by('import torch, rclpy') == list(HEAVY)
