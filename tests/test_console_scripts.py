"""Every console script answers a bad argument with exit code 2 and one clear line, never a traceback.

The scripts are found from the installed distributions' entry points, so a new script is covered
(and must get a row in BAD_ARGUMENTS) without anyone remembering to add it here.
"""
from __future__ import annotations

import signal
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


# The node executables ros2 launch starts, and the module each one imports (torch or MuJoCo: seconds).
NODE_MODULES = {'encoder_node': 'dynamo_encoder.encoder_node', 'policy_node': 'dynamo_policy.policy_node',
                'sim_node': 'dynamo_sim.sim_node'}


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


@pytest.mark.parametrize('script', sorted(NODE_MODULES))
def test_ctrl_c_while_a_node_imports_exits_0_without_a_traceback(script, ros_env):
    # PYTHONPROFILEIMPORTTIME reports each import on stderr as it completes: the signal goes out
    # once the package's light entry_points module has loaded, before the node module has.
    process = subprocess.Popen([script], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True, env={**ros_env, 'PYTHONPROFILEIMPORTTIME': '1'})
    imported = []
    for line in process.stderr:
        imported.append(line.rpartition('|')[2].strip())
        if imported[-1] in (NODE_MODULES[script].partition('.')[0] + '.entry_points', NODE_MODULES[script]):
            process.send_signal(signal.SIGINT)
            break
    rest = process.stderr.read()
    imported += [line.rpartition('|')[2].strip() for line in rest.splitlines()]
    assert process.wait(timeout=30) == 0, rest[-3000:]
    assert 'Traceback' not in rest, rest[-3000:]
    assert NODE_MODULES[script] not in imported, 'the Ctrl-C came after the import; this test did not test it'
