"""A node graph running for a tool of this process: evaluate's closed and open loops.

    with GraphRun(specs, log_dir, 'dynamo_evaluator') as graph:
        client = ServiceClient(graph.node, graph.executor, SetBool, '/policy_node/enable',
                               while_waiting=graph.check_alive)

The graph's node processes run on a DDS domain of their own (a leased ROS_DOMAIN_ID, loopback
discovery) with the graph's Fast DDS profile; this process joins that domain with an rclpy context
of its own only inside the block, and leaves os.environ as it found it, also when called from
Python. Leaving the block stops every process (SIGINT, then SIGTERM) and releases the domain.
The nodes run in process groups of their own, so a SIGTERM to this process (`kill`, a job
scheduler) would leave them running: inside the block it leaves the block instead, then exits
with code 143 (128 + SIGTERM).
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import ExitStack
from pathlib import Path

from dynamo_bringup.graph import NodeSpec, fastdds_environment
from dynamo_bringup.processes import DomainLease, NodeProcess, environment

LOG_TAIL_CHARS = 3000
SERVICE_TIMEOUT_S = 20.0
# The tools' services are idempotent (enable, reset to a seed): a request whose answer Fast DDS
# dropped while discovery was still settling is sent again after this long (ServiceClient).
RESEND_AFTER_S = 2.0


class GraphRun:
    def __init__(self, specs: list[NodeSpec], log_dir: Path, client_name: str):
        self.specs = specs
        self.log_dir = Path(log_dir)
        self.client_name = client_name
        self.processes: list[NodeProcess] = []
        self.node = None
        self.executor = None
        self._stack = ExitStack()

    def __enter__(self) -> GraphRun:
        with ExitStack() as stack:
            if threading.current_thread() is threading.main_thread():   # signal handlers live there
                stack.callback(signal.signal, signal.SIGTERM, signal.signal(signal.SIGTERM, _exit_on_sigterm))
            lease = DomainLease()
            stack.callback(lease.release)
            env = {**os.environ, **lease.environment(), 'PYTHONUNBUFFERED': '1'}
            for spec in self.specs:
                process = NodeProcess(spec.command(), spec.name, {**env, **spec.environment},
                                      self.log_dir / f'{spec.name}.log')
                stack.callback(process.stop)
                self.processes.append(process)
            stack.enter_context(environment({**lease.environment(), **fastdds_environment()}))
            self.node, self.executor = self._join(stack)
            self._stack = stack.pop_all()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def check_alive(self) -> None:
        """Raise RuntimeError, with the end of its log, if a node process has exited."""
        for process in self.processes:
            if process.returncode is not None:
                raise RuntimeError(f'{process.name} exited with {process.returncode}; the end of its log '
                                   f'{process.log_path}:\n{process.output()[-LOG_TAIL_CHARS:]}')

    def _join(self, stack: ExitStack):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor

        context = Context()
        rclpy.init(context=context)
        stack.callback(rclpy.try_shutdown, context=context)
        node = rclpy.create_node(self.client_name, context=context)
        stack.callback(node.destroy_node)
        executor = SingleThreadedExecutor(context=context)
        stack.callback(executor.shutdown)
        executor.add_node(node)
        return node, executor


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)   # unwinds the block, which stops the node processes
