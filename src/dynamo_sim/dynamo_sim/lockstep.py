"""When a lockstep simulator may step (ROS-free; sim_node feeds it events and owns the timers).

A lockstep step is due once the minimum pacing period has passed (always, without pacing) and
either a new command arrived on every awaited command topic (those with a publisher, and at least
one) or the lockstep timeout passed without that. A reset restarts the wait and, until the new
episode's first step, marks arriving commands as answers to the previous episode.
"""
from __future__ import annotations

from collections.abc import Iterable


class LockstepGate:
    def __init__(self, paced: bool):
        self.paced = paced                 # whether a minimum pacing period applies between steps
        self._pacing_done = True           # the pacing period since the last step has passed
        self._commanded: set[str] = set()  # topics with a new command since the last step
        self._timed_out = False            # the timeout passed since the last step (or reset)
        self._before_first_step = False    # reset, the new episode's first observations not yet out
        self.timeout_steps = 0             # steps of this episode taken on the timeout

    def reset_episode(self) -> None:
        self._commanded.clear()
        self._timed_out = False
        self._before_first_step = True
        self.timeout_steps = 0

    def command_is_stale(self) -> bool:
        """Tell whether a command arriving now answers the previous episode.

        E.g. the hold a policy sends when disabled just before the reset: the new episode's first
        observations are not out yet.
        """
        return self._before_first_step

    def on_command(self, topic: str, awaited: Iterable[str]) -> bool:
        """Note a command on `topic`; return whether to step now."""
        self._commanded.add(topic)
        return self._due(awaited)

    def on_pacing_done(self, awaited: Iterable[str]) -> bool:
        self._pacing_done = True
        return self._due(awaited)

    def on_timeout(self, awaited: Iterable[str]) -> bool:
        self._timed_out = True
        return self._due(awaited)

    def stepped(self) -> None:
        """Note that the simulator stepped: wait for new commands (and the pacing period) again."""
        self._commanded.clear()
        self._timed_out = False
        self._before_first_step = False
        self._pacing_done = not self.paced

    def _due(self, awaited: Iterable[str]) -> bool:
        if not self._pacing_done:
            return False
        complete = bool(self._commanded) and all(topic in self._commanded for topic in awaited)
        if complete:
            return True
        if self._timed_out:
            self.timeout_steps += 1
            return True
        return False
