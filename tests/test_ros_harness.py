"""The harness itself: stubborn processes are stopped, leaked children are reported, domains are private."""

import os
import sys
import textwrap
from pathlib import Path

from ros_harness import RosProcesses


def _script(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return [sys.executable, str(path)]


def test_session_environment_is_private_and_local(ros_env):
    assert ros_env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'LOCALHOST'
    assert 1 <= int(ros_env['ROS_DOMAIN_ID']) <= 101
    assert os.environ['ROS_DOMAIN_ID'] == ros_env['ROS_DOMAIN_ID']


def test_process_ignoring_sigint_is_terminated(ros_env, tmp_path):
    launcher = RosProcesses(ros_env, tmp_path)
    stubborn = launcher.start(_script(tmp_path, 'stubborn.py', """
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        print('ready', flush=True)
        time.sleep(60)
    """), name='stubborn', sigint_grace_s=1.0)
    stubborn.wait_for_output('ready', timeout=10)
    assert launcher.stop_all() == []
    assert stubborn.returncode == -15  # SIGTERM ended it after SIGINT was ignored


def test_leaked_child_is_reported_as_orphan(ros_env, tmp_path):
    launcher = RosProcesses(ros_env, tmp_path)
    parent = launcher.start(_script(tmp_path, 'leaky.py', """
        import subprocess, sys, time
        ignore_signals = ('import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); '
                          'signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)')
        subprocess.Popen([sys.executable, '-c', ignore_signals])
        print('spawned', flush=True)
        time.sleep(60)
    """), name='leaky', sigint_grace_s=1.0)
    parent.wait_for_output('spawned', timeout=10)
    assert launcher.stop_all() == ['leaky']
