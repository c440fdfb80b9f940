"""Every console script answers a bad argument with exit code 2 and one clear line, never a traceback.

The scripts are found from the installed distributions' entry points, so a new script is covered
(and must get a row in BAD_ARGUMENTS) without anyone remembering to add it here.
"""
from __future__ import annotations

import subprocess
from importlib.metadata import distribution

import pytest

PACKAGES = ['dynamo_data', 'dynamo_encoder', 'dynamo_policy', 'dynamo_sim', 'dynamo_bringup', 'dynamo_util']

# A bad argument per script: an unknown option for argparse scripts, a parameter of the wrong type
# or value for the nodes (rclpy ignores unknown non-ROS arguments).
BAD_ARGUMENTS = {
    'convert_bags': ['--no-such-option'],
    'merge_datasets': ['--no-such-option'],
    'pretrain': ['--no-such-option'],
    'probe': ['--no-such-option'],
    'export_encoder': ['--no-such-option'],
    'train_policy': ['--no-such-option'],
    'record_demos': ['--no-such-option'],
    'evaluate': ['--no-such-option'],
    'demo': ['--no-such-option'],
    'encoder_node': ['--ros-args', '-p', 'threads:=many'],
    'policy_node': ['--ros-args', '-p', 'control_rate:=fast'],
    'sim_node': ['--ros-args', '-p', 'robot:=no_such_robot'],
}


def console_scripts() -> list[str]:
    return sorted(entry.name for package in PACKAGES
                  for entry in distribution(package).entry_points.select(group='console_scripts'))


def test_every_script_has_a_bad_argument_case():
    assert set(console_scripts()) == set(BAD_ARGUMENTS)


@pytest.mark.parametrize('script', sorted(BAD_ARGUMENTS))
def test_bad_argument_exits_2_with_one_clear_line(script, ros_env):
    result = subprocess.run([script, *BAD_ARGUMENTS[script]], capture_output=True, text=True, timeout=120,
                            env=ros_env, stdin=subprocess.DEVNULL)
    output = result.stdout + result.stderr
    assert result.returncode == 2, f'{script} exited {result.returncode}:\n{output}'
    assert 'Traceback' not in output, output
    assert 'error' in output.lower(), output
