"""run_node's exit codes and shutdown paths, through a real node executable (tiny_node.py) over DDS."""

import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ros

TINY_NODE = [sys.executable, str(Path(__file__).with_name('tiny_node.py'))]
START_TIMEOUT_S = 30.0


def start_tiny_node(ros_processes, *parameters):
    arguments = [part for parameter in parameters for part in ('-p', parameter)]
    return ros_processes.start([*TINY_NODE, '--ros-args', *arguments], name='tiny_node')


@pytest.mark.parametrize('signal_number', [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_shut_down_cleanly_with_exit_code_0(ros_processes, signal_number):
    node = start_tiny_node(ros_processes)
    node.wait_for_output('spinning', START_TIMEOUT_S)
    os.kill(node.pid, signal_number)
    assert node.wait(timeout=10) == 0
    output = node.output()
    assert 'shut down' in output and 'Traceback' not in output, output


def test_a_second_ctrl_c_during_shutdown_is_quiet(ros_processes):
    node = start_tiny_node(ros_processes, 'slow_shutdown:=20.0')
    node.wait_for_output('spinning', START_TIMEOUT_S)
    os.kill(node.pid, signal.SIGINT)
    node.wait_for_output('shutting down', 10)
    os.kill(node.pid, signal.SIGINT)
    assert node.wait(timeout=10) == 0
    output = node.output()
    assert 'shut down\n' not in output, 'the second Ctrl-C should have cut on_shutdown short'
    assert 'Traceback' not in output, output


def test_a_parameter_error_is_one_line_and_exit_code_2(ros_processes):
    node = start_tiny_node(ros_processes, 'fail:=parameter')
    assert node.wait(timeout=START_TIMEOUT_S) == 2
    output = node.output()
    assert "tiny_node: error: parameter 'fail' is 'parameter'\n" in output
    assert 'Traceback' not in output and 'shutting down' not in output, output


def test_a_runtime_error_is_one_line_and_exit_code_1_after_shutting_down(ros_processes):
    node = start_tiny_node(ros_processes, 'fail:=runtime')
    assert node.wait(timeout=START_TIMEOUT_S) == 1
    output = node.output()
    assert 'tiny_node: error: the tiny node failed while running\n' in output
    assert 'shut down' in output and 'Traceback' not in output, output


def test_an_unexpected_exception_keeps_its_traceback(ros_processes):
    node = start_tiny_node(ros_processes, 'fail:=bug')
    assert node.wait(timeout=START_TIMEOUT_S) == 1
    output = node.output()
    assert 'Traceback' in output and 'KeyError' in output and 'tiny_node: error' not in output, output
    assert 'shut down' in output, 'the node is shut down before the exception propagates'
