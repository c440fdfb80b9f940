"""The ROS-free approximate-time synchroniser of the encoder node."""

import pytest

from dynamo_encoder.frame_sync import FrameSynchronizer, FutureStampError, StampError

MS = 1_000_000
S = 1_000_000_000


def test_single_camera_passes_every_frame_in_order():
    sync = FrameSynchronizer(['front'], slop_ns=0)
    sets = [sync.add('front', stamp * MS, f'frame{stamp}') for stamp in (10, 20, 30)]
    assert [s.stamp_ns for s in sets] == [10 * MS, 20 * MS, 30 * MS]
    assert [s.frames for s in sets] == [('frame10',), ('frame20',), ('frame30',)]
    assert sync.dropped_stale == 0


def test_two_cameras_match_within_slop_and_set_stamp_is_the_newest_frame():
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=5 * MS)
    assert sync.add('front', 100 * MS, 'f100') is None
    synced = sync.add('wrist', 103 * MS, 'w103')
    assert synced is not None
    assert synced.stamp_ns == 103 * MS
    assert synced.stamps_ns == (100 * MS, 103 * MS)
    assert synced.frames == ('f100', 'w103')  # camera order, not arrival order


@pytest.mark.parametrize('offset_ms, matches', [(5, True), (6, False), (-5, True), (-6, False)])
def test_slop_edge_is_inclusive(offset_ms, matches):
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=5 * MS)
    sync.add('front', 100 * MS, 'f')
    synced = sync.add('wrist', (100 + offset_ms) * MS, 'w')
    assert (synced is not None) == matches


def test_newest_complete_set_is_chosen_and_older_candidates_count_as_stale():
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=2 * MS, queue_size=5)
    for stamp in (100, 110, 120):
        assert sync.add('front', stamp * MS, f'f{stamp}') is None
    # The wrist frame matches the newest front frame: the two older front frames are stale.
    synced = sync.add('wrist', 121 * MS, 'w121')
    assert synced.frames == ('f120', 'w121')
    assert sync.dropped_stale == 2
    assert sync.pending('front') == 0 and sync.pending('wrist') == 0


def test_out_of_order_and_duplicate_frames_are_dropped_as_stale():
    sync = FrameSynchronizer(['front'], slop_ns=0)
    assert sync.add('front', 200 * MS, 'new') is not None
    assert sync.add('front', 150 * MS, 'late') is None   # arrived after a newer set went out
    assert sync.add('front', 200 * MS, 'again') is None  # duplicate stamp
    assert sync.dropped_stale == 2
    assert sync.add('front', 201 * MS, 'next').frames == ('next',)


def test_out_of_order_arrival_before_matching_still_pairs_correctly():
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=1 * MS, queue_size=4)
    sync.add('front', 130 * MS, 'f130')
    sync.add('front', 110 * MS, 'f110')   # arrives late but nothing newer was emitted yet
    synced = sync.add('wrist', 110 * MS, 'w110')
    assert synced.frames == ('f110', 'w110')
    # The newer front frame is still a candidate for the next wrist frame.
    assert sync.add('wrist', 130 * MS, 'w130').frames == ('f130', 'w130')
    assert sync.dropped_stale == 0


def test_late_frame_of_one_camera_can_still_join_a_newer_set():
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=10 * MS)
    assert sync.add('front', 100 * MS, 'f100') is None
    assert sync.add('wrist', 95 * MS, 'w95').stamp_ns == 100 * MS
    # 97 ms is newer than the wrist frame already used, so it may pair with a newer front frame.
    assert sync.add('wrist', 97 * MS, 'w97') is None
    assert sync.add('front', 105 * MS, 'f105').frames == ('f105', 'w97')


def test_silent_camera_yields_nothing_and_bounded_candidates():
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=5 * MS, queue_size=3)
    for stamp in range(0, 1000, 33):
        assert sync.add('front', stamp * MS, stamp) is None
    assert sync.pending('front') == 3
    assert sync.dropped_stale == len(range(0, 1000, 33)) - 3
    # When the silent camera finally speaks it matches the newest front frame it can.
    synced = sync.add('wrist', 991 * MS, 'w')
    assert synced.frames == (990, 'w')


def test_reset_forgets_candidates_and_history():
    sync = FrameSynchronizer(['front'], slop_ns=0)
    sync.add('front', 500 * MS, 'a')
    sync.reset()
    assert sync.add('front', 100 * MS, 'b').frames == ('b',)


def test_bad_arguments_are_refused_with_a_reason():
    with pytest.raises(ValueError, match='at least one camera'):
        FrameSynchronizer([], slop_ns=0)
    with pytest.raises(ValueError, match='unique'):
        FrameSynchronizer(['a', 'a'], slop_ns=0)
    with pytest.raises(ValueError, match='slop'):
        FrameSynchronizer(['a'], slop_ns=-1)
    with pytest.raises(ValueError, match='max_ahead'):
        FrameSynchronizer(['a'], slop_ns=0, max_ahead_ns=-1)
    with pytest.raises(KeyError, match="unknown camera 'b'"):
        FrameSynchronizer(['a'], slop_ns=0).add('b', 0, None)


class FrameSource:
    """Frames of a camera at `rate_hz` stamped by a clock that the test moves (a fake node clock)."""

    def __init__(self, sync, start_ns=1000 * S, rate_hz=10):
        self.sync, self.now_ns, self.period_ns = sync, start_ns, S // rate_hz

    def offer(self, camera, stamp_ns, frame):
        """admit() then add(), as the encoder node does; the set, or None."""
        self.sync.admit(stamp_ns, self.now_ns)
        return self.sync.add(camera, stamp_ns, frame)

    def good_frames(self, count, camera='front'):
        """Advance the clock one period per frame, each frame stamped with it; the sets that came out."""
        sets = []
        for i in range(count):
            self.now_ns += self.period_ns
            sets.append(self.offer(camera, self.now_ns, f'good{i}'))
        return sets


@pytest.mark.parametrize('ahead_s', [3600, 5, 2])
def test_a_future_stamped_frame_is_refused_and_the_next_good_frame_goes_through(ahead_s):
    """One frame an hour (or 5 s, 2 s) ahead used to hold back every later frame for that long."""
    sync = FrameSynchronizer(['front'], slop_ns=0, max_ahead_ns=500 * MS)
    source = FrameSource(sync)
    assert all(source.good_frames(3))
    with pytest.raises(FutureStampError, match=rf'stamped {ahead_s}\.000 s ahead of the clock \(at most 0\.500 s'):
        source.offer('front', source.now_ns + ahead_s * S, 'future')
    sets = source.good_frames(30)
    assert [s.frames for s in sets] == [(f'good{i}',) for i in range(30)]
    assert sync.dropped_stale == 0 and sync.clock_jumps_back == 0


def test_a_stamp_within_the_tolerance_ahead_is_used_and_holds_back_older_frames_at_most_that_long():
    sync = FrameSynchronizer(['front'], slop_ns=0, max_ahead_ns=500 * MS)
    source = FrameSource(sync, rate_hz=10)
    assert source.offer('front', source.now_ns + 500 * MS, 'ahead').frames == ('ahead',)   # the edge is inclusive
    # Frames stamped with the clock are older than that set until the clock passes it: 5 periods.
    assert [s is not None for s in source.good_frames(7)] == [False] * 5 + [True] * 2
    with pytest.raises(FutureStampError):
        source.offer('front', source.now_ns + 500 * MS + 1, 'just beyond')


def test_a_clock_that_jumps_back_restarts_synchronisation_at_once():
    """A simulator restarted at t=0 (or an NTP step back): new frames are encoded, not held back for 1000 s."""
    sync = FrameSynchronizer(['front', 'wrist'], slop_ns=5 * MS, max_ahead_ns=500 * MS)
    source = FrameSource(sync, start_ns=1000 * S)
    for i in range(3):
        source.now_ns += 100 * MS
        source.offer('front', source.now_ns, f'f{i}')
        assert source.offer('wrist', source.now_ns + 2 * MS, f'w{i}') is not None
    source.offer('front', source.now_ns + 100 * MS, 'pending front frame')   # a candidate from before the jump
    source.now_ns = 5 * S
    assert sync.admit(source.now_ns, source.now_ns) == 1000 * S + 400 * MS - 5 * S
    assert sync.clock_jumps_back == 1 and sync.dropped_stale == 1   # the pending candidate
    source.offer('front', source.now_ns, 'f after')
    assert source.offer('wrist', source.now_ns + 1 * MS, 'w after').frames == ('f after', 'w after')
    assert sync.admit(source.now_ns + 100 * MS, source.now_ns + 100 * MS) == 0   # restarted once, not again


def test_a_late_frame_while_the_clock_runs_on_is_stale_not_a_clock_jump():
    sync = FrameSynchronizer(['front'], slop_ns=0, max_ahead_ns=500 * MS)
    source = FrameSource(sync)
    source.good_frames(5)
    assert source.offer('front', source.now_ns - 3 * S, 'late by 3 s') is None
    assert sync.dropped_stale == 1 and sync.clock_jumps_back == 0
    assert all(source.good_frames(2))


def test_a_negative_stamp_is_refused():
    sync = FrameSynchronizer(['front'], slop_ns=0)
    with pytest.raises(StampError, match='negative stamp'):
        sync.admit(-1, 0)
