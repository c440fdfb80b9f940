"""A service client that waits for its server and for each answer, spinning its node meanwhile.

    reset = ServiceClient(node, executor, ResetEpisode, '/sim/reset_episode')
    answer = reset.call(ResetEpisode.Request(task='open_door', seed=4), timeout_s=20.0)

The node keeps receiving its other messages while a call waits, and `while_waiting` (e.g. a check
that the server's process is still alive) runs between spins, so a dead server fails the call at
once instead of after the timeout.
"""

from __future__ import annotations

import time
from typing import Callable

from rclpy.executors import Executor
from rclpy.node import Node

SPIN_PERIOD_S = 0.05


class ServiceUnavailableError(TimeoutError):
    """The service had no server within the time given."""


class ServiceTimeoutError(TimeoutError):
    """The server did not answer a request within the time given."""


class ServiceClient:
    """One service of one node; `executor` spins that node (and whatever else it holds)."""

    def __init__(self, node: Node, executor: Executor, srv_type, srv_name: str,
                 while_waiting: Callable[[], None] | None = None):
        self.name = srv_name
        self._client = node.create_client(srv_type, srv_name)
        self._executor = executor
        self._while_waiting = while_waiting

    def wait_until_available(self, timeout_s: float) -> None:
        """Spin until a server of the service is discovered; ServiceUnavailableError after `timeout_s`."""
        # A request sent before the client has discovered its server can be lost.
        if not self._spin_until(self._client.service_is_ready, timeout_s):
            raise ServiceUnavailableError(f'service {self.name} not available after {timeout_s:g} s')

    def call(self, request, timeout_s: float):
        """Send `request` once the server is there and return its answer.

        Waits at most `timeout_s` for the server and again at most `timeout_s` for the answer;
        ServiceUnavailableError or ServiceTimeoutError after that.
        """
        self.wait_until_available(timeout_s)
        future = self._client.call_async(request)
        if not self._spin_until(future.done, timeout_s):
            self._client.remove_pending_request(future)
            raise ServiceTimeoutError(f'service {self.name} did not answer within {timeout_s:g} s')
        return future.result()

    def _spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self._while_waiting is not None:
                self._while_waiting()
            if time.monotonic() > deadline:
                return False
            self._executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        return True
