"""The lint gate: ruff (pinned in requirements.lock, configured in ruff.toml) finds nothing in the tree.

ros2/demos runs ament_flake8 and ament_pep257 per package; one ruff run covers the same checks
(pyflakes, pycodestyle, import order, quote style, docstring basics) for every package, the
tests and the benchmarks, so `make test` and CI fail on a finding.
"""
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_ruff_finds_nothing():
    result = subprocess.run([sys.executable, '-m', 'ruff', 'check', '--no-cache', '--output-format', 'concise', '.'],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f'ruff check found:\n{result.stdout}{result.stderr}'
