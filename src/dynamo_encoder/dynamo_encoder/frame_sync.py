"""Approximate-time synchronisation of N camera streams by header stamp (ROS-free).

message_filters' ApproximateTimeSynchronizer is not available on these machines, and the
encoder node needs less than it offers: it only ever wants the NEWEST complete set of frames
(one per camera, all stamps within `slop` of each other), never a queue of old sets. So each
camera keeps just a few newest candidates, every new frame triggers a search for the newest
complete set, and whatever can no longer become part of a newer set is dropped and counted.

Because sets never go back in time, one frame stamped in the future would hold back every later
frame until the clock caught up with it (an hour, for a stamp an hour ahead). So a caller with a
clock passes each stamp through `admit()` first: stamps more than `max_ahead_ns` ahead of the
clock are refused, and when the clock is found behind what was already admitted (a simulator
restarted, an NTP step) synchronisation restarts instead of waiting for the clock to catch up.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any, Sequence

__all__ = ['FrameSynchronizer', 'FutureStampError', 'StampError', 'SyncedFrames']


class StampError(ValueError):
    """A frame stamp the synchroniser cannot use; the message says why."""


class FutureStampError(StampError):
    """A frame stamped further ahead of the clock than the synchroniser accepts."""

    def __init__(self, ahead_ns: int, max_ahead_ns: int):
        super().__init__(f'stamped {ahead_ns / 1e9:.3f} s ahead of the clock (at most {max_ahead_ns / 1e9:.3f} s '
                         'accepted): check the clock of its source, or use_sim_time')
        self.ahead_ns = ahead_ns


@dataclass(frozen=True)
class SyncedFrames:
    """One frame per camera, in the synchroniser's camera order."""

    stamp_ns: int                 # the newest stamp of the set (the set's stamp)
    stamps_ns: tuple[int, ...]    # each camera's frame stamp
    frames: tuple[Any, ...]       # each camera's payload (whatever was passed to add())


class FrameSynchronizer:
    """Matches frames of several cameras whose stamps lie within `slop_ns` of each other.

    `add()` returns the newest complete set as soon as one exists that is newer than the last
    set returned, else None. Time never goes backwards: a frame that is not newer than its
    camera's frame in the last returned set (late, out-of-order or duplicate) is dropped as
    stale, and so is every candidate older than the frames just returned, or pushed out of its
    camera's `queue_size` newest candidates. `dropped_stale` counts them all.

    `admit(stamp_ns, now_ns)` checks a stamp against a clock before the frame is decoded and added:
    see the module docstring. `clock_jumps_back` counts the restarts it made.
    """

    def __init__(self, camera_names: Sequence[str], slop_ns: int, queue_size: int = 3, max_ahead_ns: int = 0):
        if not camera_names:
            raise ValueError('FrameSynchronizer needs at least one camera')
        if len(set(camera_names)) != len(camera_names):
            raise ValueError(f'camera names must be unique, got {list(camera_names)}')
        if slop_ns < 0:
            raise ValueError(f'slop must be >= 0, got {slop_ns} ns')
        if queue_size < 1:
            raise ValueError(f'queue_size must be >= 1, got {queue_size}')
        if max_ahead_ns < 0:
            raise ValueError(f'max_ahead must be >= 0, got {max_ahead_ns} ns')
        self.camera_names = tuple(camera_names)
        self.slop_ns = int(slop_ns)
        self.queue_size = int(queue_size)
        self.max_ahead_ns = int(max_ahead_ns)
        self._index = {name: i for i, name in enumerate(self.camera_names)}
        self.dropped_stale = 0
        self.clock_jumps_back = 0
        self.reset()

    def reset(self) -> None:
        """Forget all candidates and the last returned set (counters are kept)."""
        # Per camera: candidates sorted by stamp, as parallel lists for bisect.
        self._stamps: list[list[int]] = [[] for _ in self.camera_names]
        self._frames: list[list[Any]] = [[] for _ in self.camera_names]
        self._last_used: list[int | None] = [None] * len(self.camera_names)
        self._last_set_stamp: int | None = None

    def pending(self, camera: str) -> int:
        """How many candidates `camera` holds right now."""
        return len(self._stamps[self._camera_index(camera)])

    def admit(self, stamp_ns: int, now_ns: int | None) -> int:
        """Check a frame stamp against the clock reading `now_ns` before the frame is added.

        Raise StampError for a negative stamp, FutureStampError for one more than `max_ahead_ns`
        ahead of `now_ns`. Every stamp held (candidates and the last set) was at most `max_ahead_ns`
        ahead of the clock when admitted, so one now further ahead means the clock went back: then
        everything held is dropped (counted as stale) and synchronisation starts afresh. Return how
        far the newest held stamp was ahead of the clock in that case (ns), else 0. With `now_ns`
        None (no clock yet, e.g. sim time before the first /clock) only the sign is checked.
        """
        stamp_ns = int(stamp_ns)
        if stamp_ns < 0:
            raise StampError(f'negative stamp {stamp_ns / 1e9:.3f} s')
        if now_ns is None:
            return 0
        now_ns = int(now_ns)
        held = [stamps[-1] for stamps in self._stamps if stamps]
        if self._last_set_stamp is not None:
            held.append(self._last_set_stamp)
        jump_ns = 0
        if held and max(held) > now_ns + self.max_ahead_ns:
            jump_ns = max(held) - now_ns
            self.dropped_stale += sum(len(stamps) for stamps in self._stamps)
            self.clock_jumps_back += 1
            self.reset()
        if stamp_ns > now_ns + self.max_ahead_ns:
            raise FutureStampError(stamp_ns - now_ns, self.max_ahead_ns)
        return jump_ns

    def add(self, camera: str, stamp_ns: int, frame: Any) -> SyncedFrames | None:
        """Offer one camera frame; the newest complete set if this frame completes one."""
        cam = self._camera_index(camera)
        stamp_ns = int(stamp_ns)
        last_used = self._last_used[cam]
        if last_used is not None and stamp_ns <= last_used:
            self.dropped_stale += 1
            return None
        stamps, frames = self._stamps[cam], self._frames[cam]
        pos = bisect.bisect_left(stamps, stamp_ns)
        if pos < len(stamps) and stamps[pos] == stamp_ns:
            # A second frame with the same stamp on one camera: keep the one that came last.
            frames[pos] = frame
            self.dropped_stale += 1
        else:
            stamps.insert(pos, stamp_ns)
            frames.insert(pos, frame)
            if len(stamps) > self.queue_size:
                del stamps[0], frames[0]
                self.dropped_stale += 1
        return self._take_newest_set()

    def _camera_index(self, camera: str) -> int:
        try:
            return self._index[camera]
        except KeyError:
            raise KeyError(f'unknown camera {camera!r}; cameras: {list(self.camera_names)}') from None

    def _take_newest_set(self) -> SyncedFrames | None:
        # Every candidate is a possible newest frame (pivot) of a set; try them newest first and
        # complete each with every other camera's newest candidate in [pivot - slop, pivot].
        pivots = sorted(
            ((stamp, cam) for cam, stamps in enumerate(self._stamps) for stamp in stamps), reverse=True)
        for pivot_stamp, pivot_cam in pivots:
            if self._last_set_stamp is not None and pivot_stamp <= self._last_set_stamp:
                return None
            chosen = []
            for cam, stamps in enumerate(self._stamps):
                if cam == pivot_cam:
                    chosen.append(stamps.index(pivot_stamp))
                    continue
                pos = bisect.bisect_right(stamps, pivot_stamp) - 1
                if pos < 0 or stamps[pos] < pivot_stamp - self.slop_ns:
                    break
                chosen.append(pos)
            else:
                return self._emit(pivot_stamp, chosen)
        return None

    def _emit(self, set_stamp: int, chosen: list[int]) -> SyncedFrames:
        stamps_out, frames_out = [], []
        for cam, pos in enumerate(chosen):
            stamps, frames = self._stamps[cam], self._frames[cam]
            stamps_out.append(stamps[pos])
            frames_out.append(frames[pos])
            self._last_used[cam] = stamps[pos]
            # Older candidates can only form sets older than this one: they are stale now.
            self.dropped_stale += pos
            del stamps[:pos + 1], frames[:pos + 1]
        self._last_set_stamp = set_stamp
        return SyncedFrames(stamp_ns=set_stamp, stamps_ns=tuple(stamps_out), frames=tuple(frames_out))
