"""The simulator's time across episodes, and when its first episode starts (ROS-free; sim_node ticks it).

sim_node publishes observations at every tick from its start, but its first episode starts only
with the first command (a controller was enabled) or a reset: until then the robot holds still,
each tick advances the sim time by one control period without stepping the physics (so /clock
runs and the nodes' watchdogs see fresh observations), and the episode's steps and its timeout
have not begun. Loading an encoder and a policy can take longer than an episode; without the
wait, the first episode would be over before any controller could act, and nothing would start
another. Sim time never goes back: an episode's time continues the previous ones' and the wait.
"""
from __future__ import annotations


class EpisodeClock:
    def __init__(self, control_period: float):
        self.control_period = control_period
        self.started = False       # the first command or a reset came: ticks step the physics
        self._offset = 0.0         # sim time before the current episode: earlier episodes and the wait

    def sim_time(self, episode_time: float) -> float:
        """Return the sim time at `episode_time` seconds into the current episode."""
        return self._offset + episode_time

    def tick(self) -> bool:
        """Return whether this tick steps the physics; before the start it only advances the sim time."""
        if not self.started:
            self._offset += self.control_period
        return self.started

    def on_command(self) -> bool:
        """Note a valid command; return whether it started the first episode."""
        starts = not self.started
        self.started = True
        return starts

    def on_reset(self, episode_time: float) -> None:
        """Note a reset `episode_time` seconds into the current episode: the next one starts now."""
        self._offset += episode_time
        self.started = True
