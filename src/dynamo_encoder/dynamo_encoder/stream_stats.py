"""Rates, latency percentiles and drop counters of a stream-processing node (ROS-free).

The encoder node reports these on /diagnostics; keeping the bookkeeping here lets it be tested
without ROS and keeps the node a thin translation layer. Thread-safe: frames are counted in
subscription callbacks while outputs are counted in the inference thread.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Iterable, Sequence

import numpy as np

__all__ = ['StreamStatistics']


class StreamStatistics:
    """Sliding-window rates and latency percentiles plus cumulative counters.

    Rates are events in the last `window_s` seconds divided by the window (or by the time since
    start while the window is not yet full), so a stream that stops decays to 0 Hz.

    Inputs that were not used are counted by cause: dropped as stale, malformed, refused for one of
    the node's own `refusals` (reported as `frames_<reason>`, e.g. 'future_stamped'), or failed to
    encode. `recent_problems()` counts each cause over the window, for a diagnosis of the present.
    """

    def __init__(self, inputs: Iterable[str], window_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, refusals: Iterable[str] = ()):
        if window_s <= 0:
            raise ValueError(f'window_s must be > 0, got {window_s}')
        self.window_s = float(window_s)
        self._clock = clock
        self._lock = threading.Lock()
        self._start = clock()
        self._inputs = {name: deque() for name in inputs}
        self._outputs: deque[tuple[float, float, float]] = deque()  # (time, latency s, processing s)
        self.frames_received = {name: 0 for name in self._inputs}
        self.outputs_published = 0
        self.frames_dropped_stale = 0
        self.frames_malformed = 0
        self.encode_failures = 0
        self.frames_refused = {reason: 0 for reason in refusals}
        self._problems: deque[tuple[float, str]] = deque()   # (time, cause) of every unused input

    def frame_received(self, name: str) -> None:
        with self._lock:
            self._inputs[name].append(self._clock())
            self.frames_received[name] += 1

    def output_published(self, latency_s: float, processing_s: float) -> None:
        """One output: its latency since the input's stamp and how long computing it took."""
        with self._lock:
            self._outputs.append((self._clock(), float(latency_s), float(processing_s)))
            self.outputs_published += 1

    def frames_dropped(self, count: int) -> None:
        """Frames that were received in time but superseded by newer ones before being used."""
        with self._lock:
            self.frames_dropped_stale += int(count)
            self._problem('dropped_stale', int(count))

    def frame_malformed(self) -> None:
        """Count an input message that could not be read (bad encoding, size or data)."""
        with self._lock:
            self.frames_malformed += 1
            self._problem('malformed')

    def frame_refused(self, reason: str) -> None:
        """Count an input refused for one of the `refusals` given at construction."""
        with self._lock:
            if reason not in self.frames_refused:
                raise KeyError(f'unknown refusal {reason!r}; declared: {sorted(self.frames_refused)}')
            self.frames_refused[reason] += 1
            self._problem(reason)

    def encode_failed(self) -> None:
        """Count a well-formed input set that the model failed to process (not the input's fault)."""
        with self._lock:
            self.encode_failures += 1
            self._problem('encode_failures')

    def problem_seen(self, cause: str) -> None:
        """Record a problem that is no input's fault (e.g. the clock went back) for recent_problems()."""
        with self._lock:
            self._problem(cause)

    def recent_problems(self) -> dict[str, int]:
        """Return how many inputs went unused in the last window, by cause (causes without any are left out)."""
        with self._lock:
            self._forget_problems_before(self._clock() - self.window_s)
            counts: dict[str, int] = {}
            for _, cause in self._problems:
                counts[cause] = counts.get(cause, 0) + 1
            return counts

    def diagnose(self, values: dict[str, float | int], silent_inputs: Sequence[str], explanations: dict[str, str],
                 unmatched: str) -> tuple[str, str]:
        """Return the level ('OK', 'WARN' or 'ERROR') and a message describing the node's present state.

        `values` is a snapshot(); `silent_inputs` describes each input that sent nothing in the
        window. The recent problems are reported by cause: `explanations` maps a cause to a phrase
        with a `{count}` field (causes without one are left out). `unmatched` says why frames that
        arrive, none refused, still give no output while some are dropped as stale (e.g. no set
        within slop).
        """
        if silent_inputs:
            return 'WARN', 'no frames from ' + ', '.join(silent_inputs)
        recent = self.recent_problems()
        causes = [explanations[cause].format(count=count) for cause, count in recent.items() if cause in explanations]
        window = f'in the last {self.window_s:g} s'
        if values['output_rate_hz'] == 0.0:
            if causes:
                level = 'ERROR' if 'encode_failures' in recent else 'WARN'
                return level, f'frames arrive but nothing is published; {window}: ' + '; '.join(causes)
            if 'dropped_stale' in recent:
                return 'WARN', f'frames arrive but nothing is published: {unmatched}'
            return 'WARN', 'frames arrive but nothing has been published yet'
        if causes:
            return 'WARN', f'publishing, but {window}: ' + '; '.join(causes)
        return 'OK', 'publishing'

    def _problem(self, cause: str, count: int = 1) -> None:
        now = self._clock()
        self._problems.extend([(now, cause)] * count)
        self._forget_problems_before(now - self.window_s)   # bounded even if nobody asks

    def _forget_problems_before(self, horizon: float) -> None:
        while self._problems and self._problems[0][0] < horizon:
            self._problems.popleft()

    def snapshot(self) -> dict[str, float | int]:
        """Return the current values: rates in Hz, latency in ms (NaN before the first output), counters."""
        with self._lock:
            now = self._clock()
            horizon = now - self.window_s
            span = min(self.window_s, max(now - self._start, 1e-9))
            for times in self._inputs.values():
                while times and times[0] < horizon:
                    times.popleft()
            while self._outputs and self._outputs[0][0] < horizon:
                self._outputs.popleft()
            input_rates = {name: len(times) / span for name, times in self._inputs.items()}
            latencies_ms = np.array([latency for _, latency, _ in self._outputs]) * 1e3
            processing_ms = np.array([processing for _, _, processing in self._outputs]) * 1e3
            values: dict[str, float | int] = {
                # The slowest camera bounds how many synchronised sets can be formed.
                'input_rate_hz': min(input_rates.values()) if input_rates else 0.0,
                'output_rate_hz': len(self._outputs) / span,
                'latency_p50_ms': float(np.percentile(latencies_ms, 50)) if latencies_ms.size else float('nan'),
                'latency_p99_ms': float(np.percentile(latencies_ms, 99)) if latencies_ms.size else float('nan'),
                'processing_p50_ms': float(np.percentile(processing_ms, 50)) if processing_ms.size else float('nan'),
                'processing_p99_ms': float(np.percentile(processing_ms, 99)) if processing_ms.size else float('nan'),
                'frames_dropped_stale': self.frames_dropped_stale,
                'frames_malformed': self.frames_malformed,
                **{f'frames_{reason}': count for reason, count in self.frames_refused.items()},
                'encode_failures': self.encode_failures,
                'frames_received': sum(self.frames_received.values()),
                'outputs_published': self.outputs_published,
            }
            for name, rate in input_rates.items():
                values[f'input_rate_hz.{name}'] = rate
            return values

