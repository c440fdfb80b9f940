"""The policy node's control logic, ROS-free: events with explicit times in, commands and notes out.

policy_node translates ROS into these events and sends what they return; every rule lives here
and is tested with a fake clock:
  joint_state(names, positions)          the measured joint positions (by name)
  observation(stamp, embedding, now, ...) an embedding arrived: refused, ignored, or a window to predict
  prediction(request, chunk, now)        the policy's chunk for that window (from the inference worker)
  tick(now)                              the control timer
  enable(now) / disable(now) / shutdown(now)
  goal_response / goal_result / goal_feedback   answers to FollowJointTrajectory goals
Each returns a Reaction: a command to send now (always finite and within the SafetyFilter's
limits), or a trajectory goal and goals to cancel (follow_joint_trajectory), a window to predict,
and notes to log.

Rules:
- Commands are sent only while enabled. Observations taken before the last enable are ignored:
  e.g. the last frame of a simulated episode reset while the policy was disabled would mix two
  episodes. Predictions still in flight from before an enable (or a clock jump) are dropped.
- The first command after enabling (or after a stop) is rate-limited from the robot's measured
  position of every commanded joint, measured since the enable; until one is known nothing is sent
  (position commands; a twist starts from rest). A non-finite measured position counts as unknown.
- A new prediction commands at once; between predictions the control timer commands the ensembled
  chunk rows, once the newest prediction arrived more than a control period ago (until then the
  next one is due and commands on arrival; on sim time a tick and the next observation share one
  stamp, and commanding on both would step a lockstep simulator twice).
- The robot is stopped (the measured position held, else the last command; a twist of zero) by the
  watchdog (the newest predicted observation older than observation_timeout, by its stamp), when
  every predicted action is in the past, on an unsafe (non-finite) action, on disable, on
  shutdown, and when this node's clock jumps back.
- Embeddings stamped further ahead of this node's clock than observation_timeout are ignored
  (counted): one bad stamp must not make every later good one look out of order. Embeddings with
  non-finite values are skipped (logged): they never enter the context window.
- A hold never leaves [lower, upper]: a measured position outside them is held at the limit.
- Trajectory goals (config.goal_actions, command_type follow_joint_trajectory): each new prediction
  is one goal, every row of the newest chunk due after now ensembled as above, each point passed
  through the SafetyFilter at its due time (= the point's time), starting from the previous
  goal's trajectory at now (after a stop, from the measured position at rest now). A goal is sent
  only while every controller's action server is available; the timer sends nothing (the goal
  runs until the next one preempts it) and only the watchdog acts on it. Stopping the robot
  cancels the running goals (the controller then holds its position). A failed goal (see
  dynamo_policy.trajectory_goals) disables the policy: it stays stopped until the next enable.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from dynamo_policy.ensembling import ChunkEnsembler
from dynamo_policy.observation_window import ObservationWindow
from dynamo_policy.safety import CommandState, SafetyFilter, UnsafeActionError
from dynamo_policy.trajectory_goals import GoalTracker, TrajectoryGoal
from dynamo_policy.watchdog import Watchdog, hold_position

STAMP_TOLERANCE_S = 1e-6       # times from nanosecond stamps that are equal may differ by float rounding
CLOCK_JUMP_TOLERANCE_S = 1e-3  # a clock going back less than this is jitter, not a jump
RECENT_S = 5.0                 # refusals this recent make /diagnostics report them
LEVELS = ('OK', 'WARN', 'ERROR')


@dataclass(frozen=True)
class ControlConfig:
    action_names: tuple[str, ...]
    state_names: tuple[str, ...]
    context_length: int
    embedding_dim: int
    encoder_checksum: str      # embeddings of any other encoder are refused
    step_period: float         # s between a chunk's rows (the dataset's 1 / fps)
    control_period: float      # s between timer commands
    observation_timeout: float
    ensemble_m: float
    velocity_commands: bool    # twist commands: the stop is zero, no measured start position needed
    autostart: bool = False
    goal_actions: tuple[str, ...] = ()   # per command target its FollowJointTrajectory action: goals, not commands


@dataclass(frozen=True)
class Note:
    level: str                 # 'info', 'warning' or 'error'
    key: str                   # the kind of note: the node throttles repeats of one kind
    text: str
    throttled: bool = True


@dataclass(frozen=True)
class PredictionRequest:
    stamp: float
    window: dict[str, np.ndarray]
    epoch: int                 # enable and clock jumps start a new epoch (and reset the policy)


@dataclass
class Reaction:
    command: np.ndarray | None = None          # send now
    duration: float = 0.0                      # s the robot gets to reach it (JointTrajectory time_from_start)
    predict: PredictionRequest | None = None   # observation(): the window to predict from
    goal: TrajectoryGoal | None = None         # send to every target (preempting its previous goal)
    cancel: list[tuple[int, int]] = field(default_factory=list)   # (goal id, target index) to cancel now
    used: bool = False                         # prediction(): the chunk was taken
    stop: bool = False                         # the command stops the robot (a hold or a zero twist)
    notes: list[Note] = field(default_factory=list)

    def note(self, level: str, key: str, text: str, throttled: bool = True) -> None:
        self.notes.append(Note(level, key, text, throttled))


@dataclass(frozen=True)
class Status:
    level: str                 # one of LEVELS
    message: str               # the current state, then the causes of a raised level
    values: dict[str, str]


class RecentEvents:
    """Counts events in total and within the last `window_s` seconds."""

    def __init__(self, window_s: float):
        self.window_s = window_s
        self.total = 0
        self._times: deque[float] = deque()

    def add(self, now: float) -> None:
        self.total += 1
        self._times.append(now)

    def recent(self, now: float) -> int:
        while self._times and self._times[0] < now - self.window_s:
            self._times.popleft()
        return len(self._times)

    def forget_times(self) -> None:
        """Drop the times (kept: the total), e.g. after the clock jumped back."""
        self._times.clear()


class PolicyController:
    def __init__(self, config: ControlConfig, safety: SafetyFilter):
        self.config = config
        self.safety = safety
        self.window = ObservationWindow(config.context_length, config.embedding_dim, list(config.state_names))
        self.ensembler = ChunkEnsembler(config.step_period, config.ensemble_m)
        self.watchdog = Watchdog(config.observation_timeout)
        self.enabled = bool(config.autostart)
        self.enabled_at: float | None = None   # this node's time at the last enable
        self.epoch = 0
        self.commanding = False
        self.stop_reason: str | None = None    # why the robot was last stopped (None while commanding)
        self.last: CommandState | None = None  # the last command sent (finite)
        self.measured: dict[str, float] = {}   # finite joint positions measured since the enable
        self.newest_prediction: float | None = None   # stamp of the newest observation with a chunk
        self._prediction_arrived: float | None = None  # this node's time it arrived
        self._last_now: float | None = None
        self.wrong_encoder = RecentEvents(RECENT_S)
        self.future_stamps = RecentEvents(RECENT_S)
        self.goals = GoalTracker(config.goal_actions) if config.goal_actions else None
        self.fault: str | None = None   # why a failed goal disabled the policy (until the next enable)
        # the last goal's trajectory: the state it started from (at its sending) and its points
        self._trajectory: tuple[CommandState, list[CommandState]] | None = None
        self._wanted_joints = set(config.action_names) | set(config.state_names)

    # --- events ----------------------------------------------------------------------------
    def joint_state(self, names, positions) -> Reaction:
        reaction = Reaction()
        non_finite = []
        for name, position in zip(names, positions):
            if math.isfinite(position):
                self.measured[name] = float(position)
            elif name in self._wanted_joints:
                self.measured.pop(name, None)
                non_finite.append(name)
        if non_finite:
            reaction.note('error', 'non_finite_joint', f'joint_states carries non-finite positions of {non_finite}: '
                          'they count as unknown')
        missing = self.window.update_joint_state(names, positions)
        if missing:
            reaction.note('warning', 'missing_state', f'joint_states lacks finite positions of {missing} needed by '
                          'the policy')
        return reaction

    def observation(self, stamp: float, embedding, now: float, encoder_checksum: str,
                    encoder_name: str = '') -> Reaction:
        reaction = self._follow_clock(now)
        if encoder_checksum != self.config.encoder_checksum:
            self.wrong_encoder.add(now)
            reaction.note('error', 'wrong_encoder', f'refusing embedding from encoder {encoder_name!r} checksum '
                          f'{encoder_checksum!r}: the policy was trained on encoder checksum '
                          f'{self.config.encoder_checksum!r} ({self.wrong_encoder.total} refused)')
            return reaction
        if self.enabled and self.enabled_at is not None and stamp <= self.enabled_at:
            return reaction   # taken before enabling: see the module docstring
        ahead = stamp - now
        if ahead > self.watchdog.timeout:
            self.future_stamps.add(now)
            reaction.note('warning', 'future_stamp', f"ignoring embedding stamped {ahead:.3f} s ahead of this node's "
                          f'clock (more than observation_timeout {self.watchdog.timeout} s): the clocks disagree')
            return reaction
        embedding = np.asarray(embedding, np.float32)
        if not np.all(np.isfinite(embedding)):
            # Skipped, not predicted from: its non-finite actions would stop the robot, and it would
            # stay in the context window for context_length observations.
            reaction.note('warning', 'bad_embedding', 'skipping embedding with non-finite values')
            return reaction
        try:
            self.window.add_embedding(stamp, embedding)
        except ValueError as error:
            reaction.note('warning', 'bad_embedding', f'skipping embedding: {error}')
            return reaction
        if not self.window.ready():
            reaction.note('warning', 'waiting_state', f'waiting for joint_states of {list(self.config.state_names)}')
            return reaction
        if self.enabled and now - stamp > self.watchdog.timeout:
            # Said on arrival: otherwise a pipeline that is always too slow never commands and
            # never logs a watchdog transition either.
            reaction.note('warning', 'late', f'embedding is {now - stamp:.3f} s old on arrival (observation_timeout '
                          f'{self.watchdog.timeout} s): not commanding; the camera/encoder pipeline is too slow '
                          'or the clocks disagree')
        reaction.predict = PredictionRequest(stamp, self.window.window(), self.epoch)
        return reaction

    def prediction(self, request: PredictionRequest, chunk: np.ndarray, now: float,
                   unavailable: tuple[str, ...] = ()) -> Reaction:
        """Take a predicted chunk; `unavailable`: the goal actions without a server now (trajectory goals)."""
        reaction = self._follow_clock(now)
        if request.epoch != self.epoch:
            return reaction   # predicted for an earlier episode or timeline
        self.ensembler.add(request.stamp, chunk)
        reaction.used = True
        if self.newest_prediction is None or request.stamp > self.newest_prediction:
            self.newest_prediction = request.stamp
        self._prediction_arrived = now
        if self.goals is None:
            self._step(now, reaction)
        else:
            self._send_goal(now, reaction, unavailable)
        return reaction

    def tick(self, now: float) -> Reaction:
        reaction = self._follow_clock(now)
        if self.goals is not None:
            overdue = self.goals.overdue(now)
            if overdue:
                self._fail(overdue, now, reaction)
            elif self.enabled:
                self._watchdog_stop(now, reaction)
            return reaction
        arrived = self._prediction_arrived
        if (arrived is not None and 0.0 <= now - arrived <= self.config.control_period + STAMP_TOLERANCE_S
                and not self.watchdog.expired(now, self.newest_prediction)):
            return reaction   # the next observation is due and commands on arrival
        self._step(now, reaction)
        return reaction

    def enable(self, now: float) -> Reaction:
        reaction = self._follow_clock(now)
        if self.enabled:
            return reaction
        self.enabled, self.enabled_at, self.fault = True, now, None
        self.epoch += 1
        self.window.reset()   # act only on observations taken after enabling
        self.ensembler.reset()
        self.measured.clear()  # the first command starts from where the robot is now
        self.newest_prediction = self._prediction_arrived = None
        self.commanding, self.stop_reason, self.last = False, None, None
        reaction.note('info', 'enabled', 'enabled: commands follow the policy', throttled=False)
        return reaction

    def disable(self, now: float) -> Reaction:
        reaction = self._follow_clock(now)
        if not self.enabled:
            return reaction
        self.enabled = False
        reaction.note('info', 'disabled', 'disabled: no commands until enabled', throttled=False)
        self._stop('disabled through ~/enable', now, reaction)
        return reaction

    def shutdown(self, now: float) -> Reaction:
        reaction = Reaction()
        self._stop('shutting down', now, reaction)
        self.enabled = False   # what still arrives while the node waits for its stop to be taken commands nothing
        return reaction

    def goal_response(self, goal_id: int, target: int, accepted: bool, now: float) -> Reaction:
        """Take a controller's acceptance or rejection of a goal."""
        reaction = Reaction()
        cancel, failure = self.goals.response(goal_id, target, accepted)
        if cancel:
            reaction.cancel.append((goal_id, target))
        if failure:
            self._fail(failure, now, reaction)
        return reaction

    def goal_result(self, goal_id: int, target: int, status: int, error_code: int, error_string: str,
                    now: float) -> Reaction:
        """Take the end of a goal on a controller (action_msgs GoalStatus `status`, the result's fields)."""
        reaction = Reaction()
        failure = self.goals.result(goal_id, target, status, error_code, error_string)
        if failure:
            self._fail(failure, now, reaction)
        return reaction

    def goal_feedback(self, goal_id: int, target: int, position_errors) -> None:
        self.goals.feedback(goal_id, target, position_errors)

    # --- state -----------------------------------------------------------------------------
    def missing_joints(self) -> list[str]:
        """Return the commanded joints without a measured position since the enable (none for a twist)."""
        if self.config.velocity_commands:
            return []
        return [name for name in self.config.action_names if name not in self.measured]

    def status(self, now: float) -> Status:
        """Return the current state for /diagnostics; recent refusals raise its level, counts are values."""
        if not self.enabled and self.fault:
            level, state = 'ERROR', f'stopped by a failed trajectory goal: {self.fault}; call ~/enable to resume'
        elif not self.enabled:
            level, state = 'OK', 'disabled'
        elif self.commanding:
            level, state = 'OK', 'commanding'
        elif self.stop_reason:
            level, state = 'WARN', f'stopped: {self.stop_reason}'
        elif self.missing_joints():
            level, state = 'WARN', f'enabled, waiting for joint_states of {self.missing_joints()}'
        else:
            level, state = 'WARN', 'enabled, waiting for observations'
        causes = []
        wrong_encoder, future = self.wrong_encoder.recent(now), self.future_stamps.recent(now)
        if wrong_encoder:
            level = 'ERROR'
            causes.append(f'{wrong_encoder} embeddings from a wrong encoder refused in the last {RECENT_S:g} s')
        if future:
            level = max(level, 'WARN', key=LEVELS.index)
            causes.append(f"{future} embeddings stamped ahead of this node's clock ignored in the last {RECENT_S:g} s")
        values = {'enabled': str(self.enabled), 'commanding': str(self.commanding),
                  'embeddings_refused': str(self.wrong_encoder.total),
                  'embeddings_stamped_ahead': str(self.future_stamps.total)}
        if self.goals is not None:
            values.update({f'tracking_error_max {action}': f'{error:.4f}'
                           for action, error in self.goals.tracking_error.items()})
        return Status(level, '; '.join([state, *causes]), values)

    # --- internals -------------------------------------------------------------------------
    def _follow_clock(self, now: float) -> Reaction:
        """Notice this node's clock going back (a simulator restarted, a clock stepped) and start over."""
        reaction = Reaction()
        if self._last_now is not None and now < self._last_now - CLOCK_JUMP_TOLERANCE_S:
            jump = self._last_now - now
            reaction.note('warning', 'clock_jump', f"this node's clock went back {jump:.3f} s (a simulator restarted "
                          'or the clock was stepped): dropped the observations and predictions before it',
                          throttled=False)
            self.epoch += 1
            self.window.reset()
            self.ensembler.reset()
            self.newest_prediction = self._prediction_arrived = None
            self.wrong_encoder.forget_times()
            self.future_stamps.forget_times()
            if self.enabled_at is not None:
                self.enabled_at = now
            self._stop(f'the clock went back {jump:.3f} s', now, reaction)
        self._last_now = now
        return reaction

    def _watchdog_stop(self, now: float, reaction: Reaction) -> bool:
        """Stop the robot if the newest observation is too old; return whether it is."""
        if not self.watchdog.expired(now, self.newest_prediction):
            return False
        if self.commanding:
            self._stop(f'watchdog: newest observation is {now - self.newest_prediction:.3f} s old by this '
                       f"node's clock (observation_timeout {self.watchdog.timeout} s)", now, reaction)
        return True

    def _step(self, now: float, reaction: Reaction) -> None:
        if not self.enabled or self._watchdog_stop(now, reaction):
            return
        ensembled = self.ensembler.action_at(now)
        if ensembled is None:
            self._stop('every predicted action is in the past', now, reaction)
            return
        previous = self.last if self.commanding else self._start_pose()
        if previous is None:
            reaction.note('warning', 'waiting_joint_states', f'enabled, not commanding: no measured position of '
                          f'{self.missing_joints()} since enabling (joint_states); the first command is '
                          'rate-limited from it')
            return
        try:
            command = self.safety.apply(ensembled.action, previous, now)
        except UnsafeActionError as error:
            self._stop(f'policy produced an unsafe action: {error}', now, reaction)
            return
        reaction.command = command.value
        reaction.duration = max(ensembled.due_time - now, self.config.control_period)
        if not self.commanding:
            reaction.note('info', 'commanding', 'commanding the robot', throttled=False)
        self.commanding, self.stop_reason, self.last = True, None, command

    def _send_goal(self, now: float, reaction: Reaction, unavailable: tuple[str, ...]) -> None:
        if not self.enabled or self._watchdog_stop(now, reaction):
            return
        planned = self.ensembler.actions_after(now)
        if not planned:
            self._stop('every predicted action is in the past', now, reaction)
            return
        if unavailable:
            reaction.note('warning', 'waiting_controllers', f'enabled, not commanding: no action server of '
                          f'{list(unavailable)} (is its controller running?)')
            return
        if self.commanding:
            previous = self._trajectory_at(now)
        else:
            measured = self._measured_action()
            if measured is None:
                reaction.note('warning', 'waiting_joint_states', f'enabled, not commanding: no measured position '
                              f'of {self.missing_joints()} since enabling (joint_states); the first goal starts '
                              'from it')
                return
            previous = CommandState(measured, now, np.zeros_like(measured))   # at rest now
        points, state = [], previous
        try:
            for planned_action in planned:
                state = self.safety.apply(planned_action.action, state, planned_action.due_time)
                points.append(state)
        except UnsafeActionError as error:
            self._stop(f'policy produced an unsafe action: {error}', now, reaction)
            return
        reaction.goal = TrajectoryGoal(self.goals.sent(now), tuple(point.time - now for point in points),
                                       np.stack([point.value for point in points]))
        self._trajectory = (previous, points)
        if not self.commanding:
            reaction.note('info', 'commanding', 'commanding the robot', throttled=False)
        self.commanding, self.stop_reason, self.last = True, None, points[-1]

    def _trajectory_at(self, now: float) -> CommandState:
        """Return where the last goal's trajectory is at `now`, and its rate (at rest after its last point)."""
        start, points = self._trajectory
        times = np.array([start.time] + [point.time for point in points])
        values = np.stack([start.value] + [point.value for point in points])
        segment = int(np.searchsorted(times, now, side='right'))
        if segment >= len(times):
            return CommandState(values[-1], now, np.zeros_like(values[-1]))
        segment = max(segment, 1)
        rate = (values[segment] - values[segment - 1]) / (times[segment] - times[segment - 1])
        return CommandState(values[segment - 1] + rate * (now - times[segment - 1]), now, rate)

    def _fail(self, reason: str, now: float, reaction: Reaction) -> None:
        """Stop the robot after a failed trajectory goal and disable the policy until the next enable."""
        reaction.note('error', 'goal_failed', f'stopping the policy: {reason}; call ~/enable to resume',
                      throttled=False)
        self._stop(reason, now, reaction)
        # The first failure is the cause; the goals it stops (e.g. of another controller) may fail after it.
        self.enabled, self.fault = False, self.fault or reason

    def _start_pose(self) -> CommandState | None:
        if self.config.velocity_commands:
            return CommandState.at_rest(np.zeros(len(self.config.action_names)))
        measured = self._measured_action()
        return None if measured is None else CommandState.at_rest(measured)

    def _measured_action(self) -> np.ndarray | None:
        if self.missing_joints():
            return None
        return np.asarray([self.measured[name] for name in self.config.action_names], np.float64)

    def _stop(self, reason: str, now: float, reaction: Reaction) -> None:
        """Stop the robot: hold where it is (a zero twist), if this node was commanding it."""
        self.ensembler.reset()
        self.stop_reason = reason
        if not self.commanding:
            if self.enabled:
                reaction.note('warning', 'not_commanding', f'not commanding: {reason}')
            return
        self.commanding = False
        if self.goals is not None:
            reaction.cancel, reaction.stop = self.goals.cancel_all(), True
            reaction.note('warning', 'stopped', f'stopped the robot: {reason}', throttled=False)
            return
        if self.config.velocity_commands:
            hold = np.zeros(len(self.config.action_names))
        else:
            # Commanding implies a last (finite) command: the fallback when a joint is unmeasured.
            # A measured position outside the limits is held at the nearest limit.
            hold = self.safety.clamp(hold_position(self.last.value, self._measured_action()))
        self.last = CommandState(hold, now, np.zeros_like(hold))
        reaction.command, reaction.duration, reaction.stop = hold, self.config.control_period, True
        reaction.note('warning', 'stopped', f'stopped the robot: {reason}', throttled=False)
