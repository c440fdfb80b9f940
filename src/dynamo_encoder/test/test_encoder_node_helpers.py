"""ROS-free helpers of the encoder node: the statistics it reports and the latest-slot handoff."""

import math
import threading

import pytest

from dynamo_encoder.latest_slot import LatestSlot
from dynamo_encoder.stream_stats import StreamStatistics


class FakeClock:
    """A settable time source, so rates are exact instead of depending on the machine's load."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_rates_count_events_in_the_window_and_decay_when_the_stream_stops():
    clock = FakeClock()
    stats = StreamStatistics(['front', 'wrist'], window_s=2.0, clock=clock)
    for _ in range(60):                  # 2 s of front frames at 30 Hz, wrist at 10 Hz
        clock.now += 1 / 30
        stats.frame_received('front')
    for _ in range(20):
        stats.frame_received('wrist')
    for _ in range(10):
        stats.output_published(0.010, 0.005)
    values = stats.snapshot()
    assert values['input_rate_hz.front'] == pytest.approx(30.0)
    assert values['input_rate_hz.wrist'] == pytest.approx(10.0)
    assert values['input_rate_hz'] == pytest.approx(10.0)     # the slowest camera
    assert values['output_rate_hz'] == pytest.approx(5.0)
    assert values['frames_received'] == 80
    clock.now += 2.5
    values = stats.snapshot()
    assert values['input_rate_hz'] == 0.0 and values['output_rate_hz'] == 0.0
    assert values['frames_received'] == 80 and values['outputs_published'] == 10  # counters stay


def test_rate_before_the_window_is_full_uses_the_elapsed_time():
    clock = FakeClock()
    stats = StreamStatistics(['front'], window_s=10.0, clock=clock)
    clock.now += 1.0
    for _ in range(30):
        stats.frame_received('front')
    assert stats.snapshot()['input_rate_hz'] == pytest.approx(30.0)


def test_latency_percentiles_over_the_window():
    clock = FakeClock()
    stats = StreamStatistics(['front'], window_s=5.0, clock=clock)
    assert math.isnan(stats.snapshot()['latency_p50_ms'])
    stats.output_published(1.0, 1.0)     # leaves the window below
    clock.now += 6.0
    for latency_ms in range(1, 101):
        stats.output_published(latency_ms / 1000, latency_ms / 2000)
    values = stats.snapshot()
    assert values['latency_p50_ms'] == pytest.approx(50.5)
    assert values['latency_p99_ms'] == pytest.approx(99.01)
    assert values['processing_p50_ms'] == pytest.approx(25.25)
    assert values['processing_p99_ms'] == pytest.approx(49.505)


def test_drop_malformed_and_encode_failure_counters_accumulate_separately():
    stats = StreamStatistics(['front'])
    stats.frames_dropped(2)
    stats.frames_dropped(3)
    stats.frame_malformed()
    stats.encode_failed()
    stats.encode_failed()
    values = stats.snapshot()
    assert values['frames_dropped_stale'] == 5 and values['frames_malformed'] == 1
    assert values['encode_failures'] == 2


def test_latest_slot_keeps_only_the_newest_item_and_returns_the_replaced_one():
    slot = LatestSlot()
    assert slot.put('a') is None
    assert slot.put('b') == 'a'
    assert slot.take(timeout=0) == 'b'
    assert slot.take(timeout=0.01) is None


def test_latest_slot_wakes_a_waiting_worker_on_put_and_on_close():
    slot = LatestSlot()
    taken = []
    first_taken = threading.Event()

    def worker_loop():
        taken.append(slot.take())
        first_taken.set()
        taken.append(slot.take())   # blocks until close()

    worker = threading.Thread(target=worker_loop)
    worker.start()
    slot.put('frame set')
    assert first_taken.wait(timeout=5)
    slot.close()
    worker.join(timeout=5)
    assert not worker.is_alive()
    assert taken == ['frame set', None]
    slot.put('after close')
    assert slot.take(timeout=0) is None and slot.closed
