"""A service client that waits for its server and for each answer, spinning its node meanwhile.

    reset = ServiceClient(node, executor, ResetEpisode, '/sim/reset_episode')
    answer = reset.call(ResetEpisode.Request(task='open_door', seed=4), timeout_s=20.0)

The node keeps receiving its other messages while a call waits, and `while_waiting` (e.g. a check
that the server's process is still alive) runs between spins, so a dead server fails the call at
once instead of after the timeout.

A response can be lost: Fast DDS drops it ("failed to send response (timeout)") when the server has
not yet discovered the client's response reader, which happens on a loaded machine right after the
client appears. A client of an idempotent service (enable, reset to a given seed, get a state) sets
`resend_after_s`, and the request is sent again when no answer came within that time.
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
                 while_waiting: Callable[[], None] | None = None, resend_after_s: float | None = None):
        self.name = srv_name
        self._client = node.create_client(srv_type, srv_name)
        self._executor = executor
        self._while_waiting = while_waiting
        self._resend_after_s = resend_after_s

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
        deadline = time.monotonic() + timeout_s
        while True:
            future = self._client.call_async(request)
            remaining = deadline - time.monotonic()
            wait_s = remaining if self._resend_after_s is None else min(self._resend_after_s, remaining)
            if self._spin_until(future.done, wait_s):
                return future.result()
            self._client.remove_pending_request(future)
            if time.monotonic() >= deadline:
                raise ServiceTimeoutError(f'service {self.name} did not answer within {timeout_s:g} s')

    def _spin_until(self, condition: Callable[[], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if self._while_waiting is not None:
                self._while_waiting()
            if time.monotonic() > deadline:
                return False
            self._executor.spin_once(timeout_sec=SPIN_PERIOD_S)
        return True
