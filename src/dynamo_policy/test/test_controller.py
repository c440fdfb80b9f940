"""PolicyController: every control and safety rule of policy_node, with explicit times (no ROS, no sleeps).

Times are seconds of a fake clock; an observation's prediction comes back at once unless a test
holds it back (a slow policy). test_policy_node.py covers the same rules once each through DDS.
"""

import math

import numpy as np
import pytest

from dynamo_policy.controller import RECENT_S, ControlConfig, PolicyController
from dynamo_policy.safety import SafetyFilter

ACTIONS = ('joint1', 'drive_joint')
CHECKSUM = 'goodgoodgoodgood'
PERIOD = 0.1        # control period = the dataset's step period
TIMEOUT = 0.5


def make_controller(autostart=True, max_velocity=1.0, velocity_commands=False, horizon_actions=ACTIONS):
    config = ControlConfig(action_names=horizon_actions, state_names=(), context_length=1, embedding_dim=2,
                           encoder_checksum=CHECKSUM, step_period=PERIOD, control_period=PERIOD,
                           observation_timeout=TIMEOUT, ensemble_m=0.0, velocity_commands=velocity_commands,
                           autostart=autostart)
    safety = SafetyFilter(len(horizon_actions), lower=[-5.0], upper=[5.0], max_velocity=[max_velocity],
                          max_interval=PERIOD, velocity_commands=velocity_commands)
    return PolicyController(config, safety)


def ramp(stamp, horizon=10, dim=2, speed=1.0):
    """Return a chunk whose row due at time t is speed * t (a trajectory moving at `speed` units/s)."""
    due = stamp + PERIOD * np.arange(1, horizon + 1)
    return np.repeat((speed * due)[:, None], dim, axis=1).astype(np.float32)


def constant(value, horizon=10, dim=2):
    return np.full((horizon, dim), value, np.float32)


class Rig:
    """Feeds a controller events and records the commands it sends and the notes it logs."""

    def __init__(self, controller):
        self.controller = controller
        self.sent = []      # (now, values, is_stop)
        self.notes = []

    def _record(self, now, reaction):
        self.notes += reaction.notes
        if reaction.command is not None:
            assert np.all(np.isfinite(reaction.command)), 'a command carried a non-finite value'
            self.sent.append((now, np.array(reaction.command), reaction.stop))
        return reaction

    def joints(self, now=0.0, **positions):
        return self._record(now, self.controller.joint_state(list(positions), list(positions.values())))

    def observe(self, stamp, chunk, now=None, checksum=CHECKSUM, predict=True):
        """Deliver an embedding stamped `stamp` at `now`, and its prediction `chunk` at once unless predict=False."""
        now = stamp if now is None else now
        reaction = self._record(now, self.controller.observation(stamp, [0.0, 0.0], now, checksum, 'enc'))
        if reaction.predict is not None and predict:
            self.predicted(reaction.predict, chunk, now)
        return reaction

    def predicted(self, request, chunk, now):
        return self._record(now, self.controller.prediction(request, chunk, now))

    def tick(self, now):
        return self._record(now, self.controller.tick(now))

    def enable(self, now):
        return self._record(now, self.controller.enable(now))

    def disable(self, now):
        return self._record(now, self.controller.disable(now))

    def keys(self):
        return [note.key for note in self.notes]

    def values(self):
        return np.array([values for _, values, _ in self.sent])


def commanding_rig(start=0.0, **kwargs) -> Rig:
    """Return a rig whose controller commands from joint positions `start`, after one observation at t = 1.0."""
    rig = Rig(make_controller(**kwargs))
    rig.joints(joint1=start, drive_joint=start)
    rig.observe(1.0, ramp(1.0))
    assert rig.controller.commanding
    return rig


# --- starting: measured positions, enable -----------------------------------------------------
def test_nothing_is_sent_until_every_commanded_joint_is_measured_then_the_first_command_is_limited():
    rig = Rig(make_controller())
    rig.joints(joint1=0.2)                       # e.g. the xArm's joint_states without drive_joint
    rig.observe(1.0, constant(1.5))
    assert rig.sent == []
    waiting = [note.text for note in rig.notes if note.key == 'waiting_joint_states']
    assert waiting and "['drive_joint']" in waiting[0]
    assert "waiting for joint_states of ['drive_joint']" in rig.controller.status(1.0).message

    rig.joints(joint1=0.2, drive_joint=0.0)
    rig.observe(1.1, constant(1.5))
    (_, first, _), = rig.sent
    np.testing.assert_allclose(first, [0.2 + 0.1, 0.0 + 0.1])   # max_velocity 1/s for one control period


def test_enabling_needs_joint_states_measured_after_it():
    rig = Rig(make_controller(autostart=False))
    rig.joints(joint1=0.0, drive_joint=0.0)
    rig.observe(0.5, constant(0.5))
    assert rig.sent == [], 'disabled: no command'
    rig.enable(1.0)
    rig.observe(1.1, constant(0.5))
    assert rig.sent == [], 'the positions measured before enabling may be stale'
    rig.joints(now=1.15, joint1=0.3, drive_joint=0.3)
    rig.observe(1.2, constant(0.5))
    np.testing.assert_allclose(rig.sent[0][1], [0.4, 0.4])


def test_non_finite_joint_positions_count_as_unknown_and_never_reach_a_command():
    rig = Rig(make_controller())
    rig.joints(joint1=math.nan, drive_joint=0.0)
    assert any(note.key == 'non_finite_joint' and "['joint1']" in note.text for note in rig.notes)
    rig.observe(1.0, constant(1.0))
    assert rig.sent == [], 'joint1 is unknown: nothing to start from'

    rig.joints(joint1=0.0, drive_joint=0.0)
    rig.observe(1.1, constant(1.0))
    rig.joints(joint1=math.nan, drive_joint=0.0)   # NaN while commanding, then a stop
    rig.tick(1.7)                                   # the watchdog
    now, hold, is_stop = rig.sent[-1]
    assert is_stop
    np.testing.assert_allclose(hold, rig.sent[-2][1]), 'the hold falls back to the last (finite) command'

    rig.disable(1.8)
    rig.enable(1.9)
    rig.joints(joint1=math.nan, drive_joint=0.1)
    rig.observe(2.0, constant(1.0))
    assert len(rig.sent) == 2, 'enabled with joint1 unknown: nothing is sent'
    # Every command was finite (Rig asserts it on each one).


def test_a_hold_never_leaves_the_joint_limits_whatever_the_measured_position():
    rig = commanding_rig()
    rig.joints(now=1.05, joint1=100.0, drive_joint=-0.5)   # a finite but impossible joint state, then a stop
    rig.tick(1.7)                                            # the watchdog
    _, hold, is_stop = rig.sent[-1]
    assert is_stop
    np.testing.assert_allclose(hold, [5.0, -0.5]), 'held at the upper limit, not at 100'


def test_observations_taken_before_enable_are_ignored():
    rig = Rig(make_controller(autostart=False))
    rig.joints(joint1=0.0, drive_joint=0.0)
    rig.enable(2.0)
    rig.joints(now=2.0, joint1=0.0, drive_joint=0.0)
    assert rig.observe(1.95, constant(0.5), now=2.01).predict is None   # e.g. the previous episode's last frame
    assert rig.sent == []
    assert rig.observe(2.05, constant(0.5)).predict is not None
    assert len(rig.sent) == 1


def test_predictions_in_flight_across_an_enable_are_dropped():
    rig = commanding_rig()
    request = rig.observe(1.1, None, predict=False).predict
    rig.disable(1.15)
    rig.enable(1.2)
    rig.joints(now=1.2, joint1=0.0, drive_joint=0.0)
    sent = len(rig.sent)
    assert not rig.predicted(request, constant(3.0), 1.25).used
    assert len(rig.sent) == sent


# --- commanding ------------------------------------------------------------------------------
def test_the_timer_commands_the_chunk_between_observations():
    rig = commanding_rig(start=1.0)
    assert rig.sent[-1][1][0] == pytest.approx(1.1)   # row 0 of the chunk, due at 1.1
    rig.tick(1.05)
    assert len(rig.sent) == 1, 'within a control period of the prediction the next observation is due'
    rig.tick(1.15)
    rig.tick(1.25)
    np.testing.assert_allclose(rig.values()[1:, 0], [1.2, 1.3], rtol=1e-6)   # the rows due next


@pytest.mark.parametrize('rate_hz', [10.0, 30.0])
def test_embeddings_faster_than_the_dataset_fps_follow_the_trajectory_at_its_own_speed(rate_hz):
    rig = Rig(make_controller(max_velocity=5.0))
    rig.joints(joint1=1.1, drive_joint=1.1)
    for k in range(int(rate_hz) + 1):
        stamp = 1.0 + k / rate_hz
        rig.observe(stamp, ramp(stamp, speed=1.0))
    times = np.array([now for now, _, _ in rig.sent])
    values = rig.values()[:, 0]
    assert len(values) == int(rate_hz) + 1
    speed = (values[-1] - values[0]) / (times[-1] - times[0])
    assert speed == pytest.approx(1.0, rel=0.05), 'the trajectory is not replayed faster'


def test_the_same_limits_give_the_same_speed_at_10_and_30_hz_observations():
    finals = []
    for rate_hz in (10.0, 30.0):
        rig = Rig(make_controller(max_velocity=1.0))
        rig.joints(joint1=0.0, drive_joint=0.0)
        for k in range(int(rate_hz) + 1):
            rig.observe(1.0 + k / rate_hz, constant(4.0))
        finals.append(rig.values()[-1, 0])
    # One second of commanding at 1 unit/s, plus the first command's one control period.
    np.testing.assert_allclose(finals, [1.1, 1.1], rtol=1e-6)


# --- stopping --------------------------------------------------------------------------------
def test_watchdog_stops_within_timeout_plus_a_control_period_while_inference_stalls():
    rig = Rig(make_controller(max_velocity=10.0))
    rig.joints(joint1=0.7, drive_joint=0.7)
    for k in range(11):                      # 1.0 .. 2.0 s: predictions come back at once
        rig.observe(1.0 + k / 10, ramp(1.0 + k / 10))
    newest = 2.0
    stop_time = None
    for k in range(1, 20):                   # then the policy takes seconds: observations, no predictions
        now = newest + k / 10
        rig.observe(now, None, predict=False)
        rig.tick(now)
        if rig.sent[-1][2]:
            stop_time = now
            break
    assert stop_time is not None and stop_time <= newest + TIMEOUT + PERIOD + 1e-9
    np.testing.assert_allclose(rig.sent[-1][1], [0.7, 0.7]), 'the stop holds the measured position'
    ticks_that_commanded = [now for now, _, stop in rig.sent if newest < now < stop_time and not stop]
    assert ticks_that_commanded, 'the ensembled chunks kept commanding meanwhile'
    assert 'watchdog' in rig.controller.status(stop_time).message


def test_every_action_in_the_past_stops_the_robot():
    rig = Rig(make_controller(max_velocity=10.0))
    rig.joints(joint1=0.0, drive_joint=0.0)
    rig.observe(1.0, constant(0.5, horizon=2))    # rows due 1.1 and 1.2
    rig.tick(1.15)
    rig.tick(1.25)
    assert [stop for _, _, stop in rig.sent] == [False, False, True]
    assert rig.controller.stop_reason == 'every predicted action is in the past'


def test_a_non_finite_action_stops_the_robot_and_is_never_sent():
    rig = commanding_rig()
    chunk = ramp(1.1)
    chunk[:, 1] = np.nan
    rig.observe(1.1, chunk)
    assert rig.sent[-1][2], 'stopped'
    assert 'unsafe action' in rig.controller.stop_reason
    rig.tick(1.3)
    assert rig.sent[-1][2], 'and nothing follows the hold'


def test_disable_holds_once_and_chunks_are_still_predicted():
    rig = commanding_rig()
    rig.disable(1.05)
    assert len(rig.sent) == 2 and rig.sent[-1][2]
    for k in range(1, 10):
        assert rig.observe(1.05 + k / 10, ramp(1.05 + k / 10)).predict is not None   # a dry run
        rig.tick(1.1 + k / 10)
    assert len(rig.sent) == 2, 'no command while disabled'


def test_shutdown_holds_only_when_commanding():
    rig = commanding_rig()
    reaction = rig.controller.shutdown(1.05)
    assert reaction.stop and np.allclose(reaction.command, [0.0, 0.0])
    assert rig.controller.shutdown(1.1).command is None


def test_twist_commands_start_from_rest_and_stop_at_zero():
    twist = ('linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z')
    rig = Rig(make_controller(velocity_commands=True, max_velocity=0.2, horizon_actions=twist))
    rig.observe(1.0, constant(0.5, dim=6))        # no joint states needed
    np.testing.assert_allclose(rig.sent[0][1], [0.2] * 6)
    rig.tick(1.7)
    np.testing.assert_allclose(rig.sent[-1][1], [0.0] * 6)


# --- stamps and clocks -----------------------------------------------------------------------
def test_a_stamp_far_ahead_is_ignored_and_the_next_good_one_commands():
    rig = commanding_rig()
    ahead = rig.observe(3601.1, ramp(3601.1), now=1.1)
    assert ahead.predict is None and 'future_stamp' in rig.keys()
    rig.observe(1.2, ramp(1.2))
    assert not rig.sent[-1][2] and rig.sent[-1][0] == 1.2, 'commanding went on with the next good stamp'
    status = rig.controller.status(1.2)
    assert status.level == 'WARN' and status.values['embeddings_stamped_ahead'] == '1'


def test_a_non_finite_embedding_is_skipped_without_stopping_the_robot():
    config = ControlConfig(action_names=ACTIONS, state_names=(), context_length=2, embedding_dim=2,
                           encoder_checksum=CHECKSUM, step_period=PERIOD, control_period=PERIOD,
                           observation_timeout=TIMEOUT, ensemble_m=0.0, velocity_commands=False, autostart=True)
    controller = PolicyController(config, SafetyFilter(2, lower=[-5.0], upper=[5.0], max_velocity=[1.0],
                                                       max_interval=PERIOD))
    rig = Rig(controller)
    rig.joints(joint1=0.0, drive_joint=0.0)
    rig.observe(1.0, ramp(1.0))
    bad = controller.observation(1.1, [math.nan, 0.0], 1.1, CHECKSUM, 'enc')
    assert bad.predict is None and [note.key for note in bad.notes] == ['bad_embedding']
    assert 'non-finite' in bad.notes[0].text
    rig.observe(1.2, ramp(1.2))   # the next good one: a window of finite embeddings, commanding goes on
    assert [stop for _, _, stop in rig.sent] == [False, False]
    assert controller.commanding


def test_a_clock_jumping_back_stops_and_starts_over_on_the_new_timeline():
    rig = Rig(make_controller(autostart=False))
    rig.enable(100.0)
    rig.joints(now=100.0, joint1=0.0, drive_joint=0.0)
    rig.observe(100.1, ramp(100.1, speed=0.0))
    assert rig.controller.commanding
    rig.observe(5.0, ramp(5.0, speed=0.0))        # the simulator restarted: its clock is at 5 s
    assert 'clock_jump' in rig.keys() and rig.sent[-1][2], 'stopped on the jump'
    rig.observe(5.1, ramp(5.1, speed=0.0))
    assert rig.controller.commanding and not rig.sent[-1][2], 'the new timeline commands again'


def test_a_late_observation_is_reported_on_arrival():
    rig = commanding_rig()
    rig.observe(1.1, ramp(1.1), now=1.8)
    assert 'late' in rig.keys()
    assert rig.sent[-1][2], 'and not acted on: the watchdog stops the robot'


# --- status ----------------------------------------------------------------------------------
def test_status_reports_the_state_with_refusals_as_a_cause_only_while_recent():
    rig = commanding_rig()
    rig.observe(1.05, ramp(1.05), checksum='ffffffffffffffff')
    assert 'wrong_encoder' in rig.keys()
    status = rig.controller.status(1.06)
    assert status.level == 'ERROR'
    assert status.message.startswith('commanding; 1 embeddings from a wrong encoder')
    for k in range(1, 60):
        rig.observe(1.0 + k / 10, ramp(1.0 + k / 10))
    later = 1.05 + RECENT_S + 0.5
    status = rig.controller.status(later)
    assert (status.level, status.message) == ('OK', 'commanding')
    assert status.values['embeddings_refused'] == '1'
    rig.tick(later + 1.0)
    assert rig.controller.status(later + 1.0).message.startswith('stopped: watchdog')
