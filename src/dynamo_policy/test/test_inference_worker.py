"""InferenceWorker: predict_action on its own thread, newest observation first, policy reset per epoch."""

import queue
import threading

import numpy as np
import pytest

from dynamo_policy.controller import PredictionRequest
from dynamo_policy.inference_worker import InferenceWorker


class GatedPolicy:
    """A policy whose predict_action waits until the test opens the gate (a slow policy, on demand)."""

    def __init__(self):
        self.gate = threading.Event()
        self.started = queue.SimpleQueue()
        self.resets = 0

    def reset(self):
        self.resets += 1

    def predict_action(self, window):
        self.started.put(window['embedding'][0, 0])
        assert self.gate.wait(10.0), 'the test never opened the gate'
        if window['embedding'][0, 0] < 0:
            raise ValueError('cannot predict from a negative embedding')
        return np.full((2, 1), window['embedding'][0, 0], np.float32)


def request(value, epoch=0):
    return PredictionRequest(float(value), {'embedding': np.full((1, 1), value, np.float32)}, epoch)


@pytest.fixture
def worker_and_results():
    policy, results = GatedPolicy(), queue.SimpleQueue()
    worker = InferenceWorker(policy, results.put)
    worker.start()
    yield policy, worker, results
    policy.gate.set()
    assert worker.stop(10.0)


def test_the_newest_observation_wins_while_the_policy_is_busy(worker_and_results):
    policy, worker, results = worker_and_results
    assert not worker.submit(request(1), tag='first')
    assert policy.started.get(timeout=10) == 1          # busy with the first one
    assert not worker.submit(request(2))
    assert worker.submit(request(3), tag='third'), 'the second was skipped for the third'
    policy.gate.set()
    first, third = results.get(timeout=10), results.get(timeout=10)
    assert (first.tag, third.tag) == ('first', 'third')
    assert third.chunk[0, 0] == 3 and third.error is None and third.seconds >= 0
    assert results.empty()


def test_a_new_epoch_resets_the_policy_and_a_failure_is_delivered_not_fatal(worker_and_results):
    policy, worker, results = worker_and_results
    policy.gate.set()
    worker.submit(request(1, epoch=0))
    results.get(timeout=10)
    worker.submit(request(-1, epoch=0))
    failed = results.get(timeout=10)
    assert failed.chunk is None and 'negative' in str(failed.error)
    assert policy.resets == 1
    worker.submit(request(2, epoch=1))
    assert results.get(timeout=10).chunk[0, 0] == 2
    assert policy.resets == 2, 'a new episode starts with a reset policy'


def test_stop_waits_for_the_prediction_in_progress_up_to_a_timeout():
    policy, results = GatedPolicy(), queue.SimpleQueue()
    worker = InferenceWorker(policy, results.put)
    worker.start()
    worker.submit(request(1))
    policy.started.get(timeout=10)
    assert not worker.stop(0.05), 'still predicting'
    policy.gate.set()
    assert worker.stop(10.0)
    assert not worker.submit(request(2))
    assert results.empty(), 'nothing is delivered once stopped, not even the prediction that was running'
    assert policy.started.empty(), 'nothing is predicted once stopped'
