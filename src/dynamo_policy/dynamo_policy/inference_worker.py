"""Policy inference on its own thread, so a slow predict_action never blocks control (ROS-free).

The node's subscription callbacks submit each observation window and return at once; the worker
predicts the newest one whenever it is free (dynamo_encoder's LatestSlot: an observation replaced
before the worker took it is skipped, never queued), and hands each result to `deliver`, which must
be thread-safe (the node queues it for its executor). The control timer and the watchdog keep
running on the ensembled chunks meanwhile.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from dynamo_encoder.latest_slot import LatestSlot
from dynamo_policy.controller import PredictionRequest


@dataclass(frozen=True)
class InferenceResult:
    request: PredictionRequest
    tag: Any                   # what the submitter attached (the node: the observation's header stamp)
    chunk: np.ndarray | None   # None when predict_action raised
    error: Exception | None
    seconds: float             # predict_action's compute time


class InferenceWorker:
    def __init__(self, policy, deliver: Callable[[InferenceResult], None]):
        self.policy = policy
        self._deliver = deliver
        self._slot = LatestSlot()
        self._thread = threading.Thread(target=self._run, name='policy-inference', daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: PredictionRequest, tag: Any = None) -> bool:
        """Hand over the newest observation window; return whether an older one was skipped for it."""
        return self._slot.put((request, tag)) is not None

    def stop(self, timeout: float) -> bool:
        """Stop taking work and wait up to `timeout` s for a prediction in progress; return whether it ended.

        Nothing is delivered after stop() (a prediction that outlives the wait is dropped): the
        receiver may be going away.
        """
        self._slot.close()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        epoch = None
        while (item := self._slot.take()) is not None:
            request, tag = item
            if request.epoch != epoch:
                self.policy.reset()   # a new episode (enable) or timeline: forget per-episode state
                epoch = request.epoch
            started = time.perf_counter()
            try:
                chunk, error = self.policy.predict_action(request.window), None
            except Exception as exc:  # a policy failing on one window must not end inference
                chunk, error = None, exc
            if not self._slot.closed:
                self._deliver(InferenceResult(request, tag, chunk, error, time.perf_counter() - started))
