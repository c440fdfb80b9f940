"""ROS-free helpers of the encoder node: the statistics it reports and the latest-slot handoff."""

import math
import threading

import pytest

from dynamo_encoder.frame_sync import FrameSynchronizer
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


def test_refusals_are_counted_by_declared_reason_and_an_undeclared_one_is_a_bug():
    stats = StreamStatistics(['front'], refusals=('future_stamped', 'oversized'))
    stats.frame_refused('future_stamped')
    stats.frame_refused('future_stamped')
    stats.frame_refused('oversized')
    values = stats.snapshot()
    assert values['frames_future_stamped'] == 2 and values['frames_oversized'] == 1
    assert values['frames_malformed'] == 0
    with pytest.raises(KeyError, match="unknown refusal 'typo'"):
        stats.frame_refused('typo')


def test_recent_problems_count_each_cause_over_the_window_only():
    clock = FakeClock()
    stats = StreamStatistics(['front'], window_s=2.0, clock=clock, refusals=('future_stamped',))
    stats.frame_refused('future_stamped')
    stats.frames_dropped(3)
    clock.now += 1.5
    stats.frame_malformed()
    stats.problem_seen('clock_jumped_back')
    assert stats.recent_problems() == {'future_stamped': 1, 'dropped_stale': 3, 'malformed': 1,
                                       'clock_jumped_back': 1}
    clock.now += 1.0   # the first two causes leave the window; the cumulative counters stay
    assert stats.recent_problems() == {'malformed': 1, 'clock_jumped_back': 1}
    assert stats.snapshot()['frames_future_stamped'] == 1 and stats.snapshot()['frames_dropped_stale'] == 3


EXPLANATIONS = {'future_stamped': '{count} frames stamped in the future refused',
                'malformed': '{count} malformed images skipped', 'encode_failures': '{count} sets failed to encode'}


def diagnosis(stats, silent=()):
    return stats.diagnose(stats.snapshot(), list(silent), EXPLANATIONS, 'no set within slop')


def test_diagnosis_names_the_present_cause_not_a_guess():
    """One future-stamped frame and nothing published used to read 'no synchronised sets within slop?'."""
    clock = FakeClock()
    stats = StreamStatistics(['front'], window_s=5.0, clock=clock, refusals=('future_stamped',))
    for _ in range(10):
        clock.now += 0.1
        stats.frame_received('front')
        stats.frame_refused('future_stamped')
    assert diagnosis(stats) == ('WARN', 'frames arrive but nothing is published; in the last 5 s: '
                                        '10 frames stamped in the future refused')
    for _ in range(10):   # good frames again: published, the refusals still in the window
        clock.now += 0.1
        stats.frame_received('front')
        stats.output_published(0.01, 0.005)
    assert diagnosis(stats) == ('WARN', 'publishing, but in the last 5 s: 10 frames stamped in the future refused')
    clock.now += 4.5   # the refusals leave the window, the good frames keep coming
    for _ in range(5):
        clock.now += 0.1
        stats.frame_received('front')
        stats.output_published(0.01, 0.005)
    assert diagnosis(stats) == ('OK', 'publishing')


def test_diagnosis_of_silence_stale_frames_and_failing_encodes():
    clock = FakeClock()
    stats = StreamStatistics(['front'], window_s=5.0, clock=clock)
    clock.now += 1.0
    assert diagnosis(stats, ["camera 'front' (/image)"]) == ('WARN', "no frames from camera 'front' (/image)")
    stats.frame_received('front')
    assert diagnosis(stats) == ('WARN', 'frames arrive but nothing has been published yet')
    stats.frames_dropped(1)
    assert diagnosis(stats) == ('WARN', 'frames arrive but nothing is published: no set within slop')
    stats.encode_failed()
    level, message = diagnosis(stats)
    assert level == 'ERROR' and message.endswith('1 sets failed to encode')


def test_a_busy_worker_next_encodes_the_newest_set_never_one_a_newer_set_superseded():
    """The encoder node's pipeline, single-threaded: synchroniser -> slot -> worker."""
    sync, slot = FrameSynchronizer(['front', 'wrist'], slop_ns=5), LatestSlot()
    superseded = []
    encoded = []

    def frame_arrives(camera, stamp):
        synced = sync.add(camera, stamp, f'{camera}{stamp}')
        if synced is not None and (replaced := slot.put(synced)) is not None:
            superseded.append(replaced.stamp_ns)

    def worker_takes():
        encoded.append(slot.take(timeout=0).stamp_ns)

    frame_arrives('front', 100)
    frame_arrives('wrist', 101)
    worker_takes()                       # busy encoding the set of 101 while three newer sets complete
    for stamp in (200, 300, 400):
        frame_arrives('front', stamp)
        frame_arrives('wrist', stamp + 2)
    worker_takes()
    assert encoded == [101, 402] and superseded == [202, 302]
    assert slot.take(timeout=0) is None   # nothing older is left behind to be encoded later
