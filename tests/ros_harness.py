"""Pytest fixtures for tests that run real ROS 2 nodes over real DDS.

Loaded for every test directory by the root conftest.py. Each test session leases its own
ROS_DOMAIN_ID (dynamo_bringup.processes.DomainLease: parallel sessions never hear each other) and
keeps discovery on loopback. Node executables run as subprocesses with `--ros-args`, their
output goes to a log file, and teardown stops each one with SIGINT, then SIGTERM, then SIGKILL,
and fails the test if anything of the process group is left behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from dynamo_bringup.processes import DomainLease, NodeProcess, environment

SIGINT_GRACE_S = 10.0
SIGTERM_GRACE_S = 3.0


@pytest.fixture(scope='session')
def ros_env():
    """Environment of this session's ROS processes, also applied to this process."""
    lease = DomainLease()
    env = {
        **lease.environment(),
        'RMW_IMPLEMENTATION': 'rmw_fastrtps_cpp',
        'PYTHONUNBUFFERED': '1',
        'MUJOCO_GL': os.environ.get('MUJOCO_GL', 'egl'),
    }
    with environment(env):
        yield dict(os.environ)
    lease.release()


class RosProcess(NodeProcess):
    """A node process with the waits tests need."""

    def __init__(self, command: list[str], name: str, env: dict, log_dir: Path,
                 sigint_grace_s: float = SIGINT_GRACE_S):
        super().__init__(command, name, env, log_dir / f'{name}.log')
        self.sigint_grace_s = sigint_grace_s

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself; its exit code."""
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f'{self.name} still running after {timeout} s; output:\n{self.output()}') from None

    def wait_for_output(self, pattern: str, timeout: float) -> re.Match:
        """Wait until the process output matches a regular expression."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern)
        while time.monotonic() < deadline:
            match = regex.search(self.output())
            if match:
                return match
            if self.popen.poll() is not None:
                match = regex.search(self.output())
                if match:
                    return match
                raise AssertionError(
                    f'{self.name} exited ({self.popen.returncode}) before printing {pattern!r}; '
                    f'output:\n{self.output()}')
            time.sleep(0.05)
        raise AssertionError(f'{self.name} did not print {pattern!r} in {timeout} s; output:\n{self.output()}')

    def stop(self) -> int:
        return super().stop(self.sigint_grace_s, SIGTERM_GRACE_S)

    def orphans_left(self) -> bool:
        """Whether any process of this node's group outlived it (checked after stop())."""
        deadline = time.monotonic() + 2.0
        while self.group_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        alive = self.group_alive()
        if alive:
            os.killpg(self.popen.pid, signal.SIGKILL)
        return alive


class RosProcesses:
    """Starts node executables for one test and stops them all at its end."""

    def __init__(self, env: dict, log_dir: Path):
        self._env = env
        self._log_dir = log_dir
        self.processes: list[RosProcess] = []

    def start(self, command: list[str], name: str | None = None, env: dict | None = None,
              sigint_grace_s: float = SIGINT_GRACE_S) -> RosProcess:
        name = name or Path(command[0]).name
        proc = RosProcess(command, name, {**self._env, **(env or {})}, self._log_dir, sigint_grace_s)
        self.processes.append(proc)
        return proc

    def stop_all(self) -> list[str]:
        orphaned = []
        for proc in reversed(self.processes):
            proc.stop()
            if proc.orphans_left():
                orphaned.append(proc.name)
        return orphaned


@pytest.fixture
def ros_processes(ros_env, tmp_path):
    """Launcher of node executables; every process is stopped and checked for orphans at teardown."""
    launcher = RosProcesses(ros_env, tmp_path)
    yield launcher
    orphaned = launcher.stop_all()
    assert not orphaned, f'processes left behind by: {orphaned}'


class TestNode:
    """An rclpy node inside the test process, with helpers to wait on the graph and on messages."""

    def __init__(self, rclpy, context, name: str):
        from rclpy.executors import SingleThreadedExecutor
        self._rclpy = rclpy
        self.node = rclpy.create_node(name, context=context)
        self.executor = SingleThreadedExecutor(context=context)
        self.executor.add_node(self.node)

    def spin_until(self, predicate: Callable[[], bool], timeout: float, what: str = 'condition') -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f'timed out after {timeout} s waiting for {what}')
            self.executor.spin_once(timeout_sec=0.05)

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=0.05)

    def collect(self, msg_type, topic: str, qos=10) -> list:
        """Subscribe and return the list the received messages are appended to."""
        received = []
        self.node.create_subscription(msg_type, topic, received.append, qos)
        return received

    def wait_for_topic(self, topic: str, timeout: float = 20.0) -> None:
        """Wait until some other participant publishes `topic`."""
        self.spin_until(lambda: self.node.count_publishers(topic) > 0, timeout, f'a publisher on {topic}')

    def wait_for_subscriber(self, topic: str, timeout: float = 20.0) -> None:
        self.spin_until(lambda: self.node.count_subscribers(topic) > 0, timeout, f'a subscriber on {topic}')

    def destroy(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()


@pytest.fixture
def ros_node(ros_env, request):
    """Give this test a fresh rclpy context and a node in it."""
    import rclpy
    from rclpy.context import Context
    context = Context()
    rclpy.init(context=context)
    name = 'test_' + re.sub(r'\W', '_', request.node.name)[:40]
    node = TestNode(rclpy, context, name)
    yield node
    node.destroy()
    rclpy.shutdown(context=context)
