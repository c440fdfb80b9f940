"""Resample message streams onto one fixed-rate grid (pure numpy, times in integer nanoseconds).

nearest: each grid time takes the message nearest in time if within the tolerance.
hold:    each grid time takes the latest message at or before it (commands published on change,
         e.g. a gripper trajectory); no message yet means no match.
A grid time where any stream has no match is dropped, never filled.
"""
import numpy as np

__all__ = ['make_grid', 'match_stream', 'stream_report', 'split_segments']


def make_grid(streams, fps):
    """Grid from the moment every stream has started to the end of the shortest nearest-stream.

    streams: list of (sorted times ns, mode, tolerance ns). Returns int64 grid times (may be empty).
    """
    start = max(int(t[0]) for t, _, _ in streams)
    ends = [int(t[-1]) + tol for t, mode, tol in streams if mode == 'nearest']
    end = min(ends) if ends else max(int(t[-1]) for t, _, _ in streams)
    if end < start:
        return np.empty(0, dtype=np.int64)
    count = int(np.floor((end - start) * fps / 1e9)) + 1
    return start + np.round(np.arange(count) * (1e9 / fps)).astype(np.int64)


def match_stream(grid, times, mode, tolerance_ns):
    """-> (message index per grid time or -1, signed dt seconds grid - message time (nan if none))."""
    times = np.asarray(times, dtype=np.int64)
    if mode == 'hold':
        idx = np.searchsorted(times, grid, side='right') - 1
        ok = idx >= 0
    else:
        right = np.clip(np.searchsorted(times, grid), 0, len(times) - 1)
        left = np.clip(right - 1, 0, len(times) - 1)
        use_left = np.abs(grid - times[left]) <= np.abs(times[right] - grid)
        idx = np.where(use_left, left, right)
        ok = np.abs(grid - times[idx]) <= tolerance_ns
    idx = np.where(ok, idx, -1)
    dt = np.where(ok, (grid - times[np.maximum(idx, 0)]) / 1e9, np.nan)
    return idx, dt


def stream_report(times, idx, dt, kept):
    """Per-topic numbers for the sync report (kept = grid times that made it into the dataset)."""
    matched = idx >= 0
    abs_dt = np.abs(dt[matched & kept])
    gaps = np.diff(np.asarray(times, dtype=np.int64)) / 1e9
    return {
        'messages': int(len(times)),
        'matched': int(matched.sum()),
        'dropped': int((~matched).sum()),
        'median_abs_dt_s': float(np.median(abs_dt)) if abs_dt.size else None,
        'max_abs_dt_s': float(abs_dt.max()) if abs_dt.size else None,
        'longest_gap_s': float(gaps.max()) if gaps.size else 0.0,
    }


def split_segments(grid, kept, fps, gap_s=None, markers=None):
    """Split kept grid positions into episodes -> list of index arrays into grid.

    Always splits where grid times were dropped for longer than gap_s (if given), and at every
    marker time (if given); without either the kept frames form one episode.
    """
    positions = np.flatnonzero(kept)
    if positions.size == 0:
        return []
    cuts = np.zeros(positions.size, dtype=bool)
    if gap_s is not None:
        cuts[1:] |= (np.diff(grid[positions]) / 1e9) > gap_s
    if markers is not None and len(markers):
        segment = np.searchsorted(np.sort(np.asarray(markers, dtype=np.int64)), grid[positions], side='right')
        cuts[1:] |= segment[1:] != segment[:-1]
    return np.split(positions, np.flatnonzero(cuts))
