"""GraphRun stops its node processes when its own process gets SIGTERM (a `kill`, a job scheduler)."""

import os
import signal
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.ros

SCRIPT = """
import sys, time
from dynamo_bringup.graph import BringupArguments, node_graph
from dynamo_bringup.graph_run import GraphRun
specs = [spec for spec in node_graph('xarm', BringupArguments(sim=True)) if spec.name == 'sim_node']
with GraphRun(specs, sys.argv[1], 'graph_run_test') as graph:
    print('node pid', graph.processes[0].popen.pid, flush=True)
    time.sleep(600)
"""


def running(pid: int) -> bool:
    try:
        with open(f'/proc/{pid}/stat') as stat:
            return stat.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


def test_sigterm_to_the_tool_stops_the_graph_s_nodes(ros_env, tmp_path):
    tool = subprocess.Popen([sys.executable, '-c', SCRIPT, str(tmp_path / 'logs')], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ros_env)
    line = tool.stdout.readline()
    assert line.startswith('node pid'), tool.stderr.read()[-3000:]
    node_pid = int(line.split()[-1])
    assert running(node_pid)
    tool.send_signal(signal.SIGTERM)
    assert tool.wait(timeout=60) == 128 + signal.SIGTERM
    assert 'Traceback' not in tool.stderr.read()
    deadline = time.monotonic() + 10
    while running(node_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(node_pid), 'sim_node outlived the tool that started it'
    with pytest.raises(ProcessLookupError):
        os.kill(node_pid, 0)
