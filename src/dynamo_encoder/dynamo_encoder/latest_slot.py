"""A one-item handoff between a producer and a worker thread that never builds a backlog.

The encoder node's subscription callbacks put each synchronised frame set here and return at
once; the inference thread takes the newest one whenever it is free. A set that is replaced
before the worker took it is handed back to the producer so it can be counted as dropped.
"""
from __future__ import annotations

import threading
from typing import Any

__all__ = ['LatestSlot']


class LatestSlot:
    def __init__(self):
        self._cond = threading.Condition()
        self._item: Any = None
        self._full = False
        self._closed = False

    def put(self, item: Any) -> Any:
        """Store `item`, replacing any item not yet taken; the replaced item, or None."""
        with self._cond:
            replaced = self._item if self._full else None
            self._item, self._full = item, True
            self._cond.notify()
            return replaced

    def take(self, timeout: float | None = None) -> Any:
        """Take the newest item, waiting up to `timeout` s; None on timeout or once closed."""
        with self._cond:
            self._cond.wait_for(lambda: self._full or self._closed, timeout)
            if self._closed or not self._full:
                return None
            item, self._item, self._full = self._item, None, False
            return item

    def close(self) -> None:
        """Wake the worker for good: every later take() returns None."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed
