"""EpisodeClock: the first episode waits for a command or a reset; sim time never goes back (no ROS)."""
import pytest

from dynamo_sim.episode_clock import EpisodeClock

PERIOD = 0.1


class FakeEpisode:
    """Stands in for the simulated episode: its time advances only when the physics steps."""

    def __init__(self):
        self.time = 0.0
        self.steps = 0

    def step(self):
        self.time += PERIOD
        self.steps += 1


def _run(clock: EpisodeClock, episode: FakeEpisode, ticks: int) -> list[float]:
    """Tick `ticks` times as sim_node does; return the sim time of every tick's observations."""
    stamps = []
    for _ in range(ticks):
        if clock.tick():
            episode.step()
        stamps.append(clock.sim_time(episode.time))
    return stamps


def test_the_first_episode_holds_still_until_a_command_while_sim_time_runs():
    clock, episode = EpisodeClock(PERIOD), FakeEpisode()
    waiting = _run(clock, episode, 50)   # longer than an episode: loading nodes take their time
    assert episode.steps == 0 and not clock.started
    assert waiting == pytest.approx([PERIOD * (i + 1) for i in range(50)])
    assert clock.on_command() is True
    assert clock.on_command() is False, 'only the first command starts the episode'
    running = _run(clock, episode, 3)
    assert episode.steps == 3
    assert running == pytest.approx([5.1, 5.2, 5.3])


def test_a_reset_starts_an_episode_without_a_command_and_time_continues():
    clock, episode = EpisodeClock(PERIOD), FakeEpisode()
    _run(clock, episode, 4)
    clock.on_reset(episode.time)
    episode = FakeEpisode()                  # the simulator's reset restarts the episode time
    assert _run(clock, episode, 2) == pytest.approx([0.5, 0.6])
    assert episode.steps == 2
    clock.on_reset(episode.time)
    assert clock.sim_time(FakeEpisode().time) == pytest.approx(0.6), 'a reset does not move sim time back'
