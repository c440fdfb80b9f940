"""ROS-free part of open-loop evaluation: recorded demonstrations as replay ticks, and command errors.

A demonstration bag holds the robot's observations (camera images, joint states) and the commands
the demonstrator sent on the controllers' topics. Replayed through the encoder and the policy, each
observation gets the policy's commands on the same topics; each is compared with the command the
demonstrator had last sent on that topic at that time (the action in force when the observation
was taken). The errors per joint are the open-loop check of a policy on held-out demonstrations,
before it moves a robot.

Replay time: the bag's receive times, shifted so that demonstrations follow each other on one
clock that never goes back (the nodes run on it through /clock); the header stamps of the replayed
messages are shifted with them.
"""

from __future__ import annotations

import csv
import json
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from dynamo_data.atomic import atomic_open
from dynamo_data.conversion.bag_reader import READ_ERRORS, BagError, BagFile

HEADER_TYPES = ('sensor_msgs/msg/Image', 'sensor_msgs/msg/CompressedImage', 'sensor_msgs/msg/JointState')


@dataclass(frozen=True)
class Tick:
    """Messages recorded at one receive time, to publish after /clock reads `time_ns`."""

    time_ns: int
    messages: tuple[tuple[str, bytes], ...]   # (topic, CDR bytes with the header stamp shifted)


@dataclass(frozen=True)
class Demonstration:
    bag: str
    ticks: list[Tick]
    recorded: dict[str, tuple[np.ndarray, np.ndarray]]   # command topic -> (times ns, positions (N, joints))
    types: dict[str, str]                                # replayed topic -> message type

    @property
    def end_ns(self) -> int:
        return self.ticks[-1].time_ns


def check_topics(path: Path, topics: list[str]) -> None:
    """Raise BagError naming the bag unless it opens and lists every topic (before any node starts)."""
    try:
        with BagFile(path) as bag:
            for topic in topics:
                bag.require(topic, 'replayed or compared')
    except READ_ERRORS as error:
        raise BagError(f'{path}: cannot read: {type(error).__name__}: {error}') from None


def read_demonstration(path: Path, observation_topics: list[str], command_joints: dict[str, list[str]],
                       start_ns: int) -> Demonstration:
    """Read a bag's observations (as ticks from `start_ns` on) and its recorded commands.

    `command_joints`: per command topic, the joints its messages carry, in the order compared
    (trajectory_msgs/JointTrajectory: by joint_names, first point; std_msgs/Float64MultiArray: in
    data order). Raise BagError naming the bag and topic on a bag that cannot be replayed.
    """
    try:
        with BagFile(path) as bag:
            for topic in observation_topics:
                msgtype = bag.require(topic, 'observation')
                if msgtype not in HEADER_TYPES:
                    raise BagError(f'{bag.name}: topic {topic} has type {msgtype}, expected one of {HEADER_TYPES}')
            for topic in command_joints:
                bag.require(topic, 'command')
            store = bag.build_typestore(list(command_joints))
            observations, commands = [], {topic: [] for topic in command_joints}
            for topic, time_ns, data in bag.read([*observation_topics, *command_joints]):
                if topic in commands:
                    message = store.deserialize_cdr(data, bag.topics[topic])
                    commands[topic].append((time_ns, _positions(message, command_joints[topic], bag.name, topic)))
                else:
                    observations.append((time_ns, topic, data))
            types = {topic: bag.topics[topic] for topic in observation_topics}
    except READ_ERRORS as error:
        raise BagError(f'{path}: cannot read: {type(error).__name__}: {error}') from None
    counts = Counter(topic for _, topic, _ in observations) + Counter({t: len(rows) for t, rows in commands.items()})
    for topic in [*observation_topics, *command_joints]:
        if not counts[topic]:
            raise BagError(f'{path}: topic {topic} is present but has 0 messages')
    observations.sort(key=lambda item: item[0])
    shift = start_ns - observations[0][0]
    ticks: dict[int, list[tuple[str, bytes]]] = {}
    for time_ns, topic, data in observations:
        ticks.setdefault(time_ns + shift, []).append((topic, restamped(data, shift)))
    recorded = {}
    for topic, rows in commands.items():
        rows.sort(key=lambda row: row[0])
        recorded[topic] = (np.array([t + shift for t, _ in rows], dtype=np.int64),
                           np.array([p for _, p in rows], dtype=float).reshape(len(rows), len(command_joints[topic])))
    return Demonstration(str(path), [Tick(t, tuple(m)) for t, m in sorted(ticks.items())], recorded, types)


def _positions(message, joints: list[str], bag: str, topic: str) -> list[float]:
    if hasattr(message, 'joint_names'):
        if not message.points:
            raise BagError(f'{bag}: topic {topic}: a JointTrajectory without points')
        by_name = dict(zip(message.joint_names, message.points[0].positions))
        missing = [joint for joint in joints if joint not in by_name]
        if missing:
            raise BagError(f'{bag}: topic {topic}: commands lack joint(s) {missing} the policy commands there')
        return [float(by_name[joint]) for joint in joints]
    if len(message.data) != len(joints):
        raise BagError(f'{bag}: topic {topic}: {len(message.data)} values, the policy commands {len(joints)} there')
    return [float(value) for value in message.data]


def restamped(data: bytes, shift_ns: int) -> bytes:
    """Return CDR bytes of a message that starts with a std_msgs/Header, its stamp moved by `shift_ns`."""
    endian = '<' if data[1] == 1 else '>'
    sec, nanosec = struct.unpack_from(endian + 'iI', data, 4)
    stamp = sec * 1_000_000_000 + nanosec + shift_ns
    out = bytearray(data)
    struct.pack_into(endian + 'iI', out, 4, stamp // 1_000_000_000, stamp % 1_000_000_000)
    return bytes(out)


@dataclass(frozen=True)
class EpisodeErrors:
    bag: str
    joints: list[str]
    times_ns: np.ndarray     # (N,) replay time of each compared command
    commanded: np.ndarray    # (N, joints); NaN where that command's topic did not carry the joint
    recorded: np.ndarray     # (N, joints) the demonstrator's command in force at the same time

    @property
    def compared(self) -> int:
        return int(np.isfinite(self.commanded - self.recorded).any(axis=1).sum())

    def mean_absolute_error(self) -> np.ndarray:
        """Return the mean absolute error per joint (NaN for a joint never compared)."""
        errors = np.abs(self.commanded - self.recorded)
        counts = np.isfinite(errors).sum(axis=0)
        return np.where(counts > 0, np.nansum(errors, axis=0) / np.maximum(counts, 1), np.nan)

    def summary(self) -> dict:
        errors = np.abs(self.commanded - self.recorded)
        finite = errors[np.isfinite(errors)]
        return {'bag': self.bag, 'commands': self.compared,
                'mae': float(finite.mean()) if finite.size else float('nan'),
                'rmse': float(np.sqrt((finite ** 2).mean())) if finite.size else float('nan'),
                'max_abs_error': float(finite.max()) if finite.size else float('nan'),
                **{f'mae.{joint}': float(value) for joint, value in zip(self.joints, self.mean_absolute_error())}}


def compare_commands(demonstration: Demonstration, command_joints: dict[str, list[str]],
                     commands: list[tuple[int, str, list[float]]]) -> EpisodeErrors:
    """Compare each (replay time, topic, positions) command with the recorded one in force on that topic then."""
    joints = [joint for topic_joints in command_joints.values() for joint in topic_joints]
    rows_commanded, rows_recorded, times = [], [], []
    for time_ns, topic, positions in commands:
        recorded_times, recorded = demonstration.recorded[topic]
        index = int(np.searchsorted(recorded_times, time_ns, side='right')) - 1
        if index < 0:
            continue   # the demonstrator had not commanded this topic yet
        commanded_row, recorded_row = np.full(len(joints), np.nan), np.full(len(joints), np.nan)
        columns = [joints.index(joint) for joint in command_joints[topic]]
        commanded_row[columns], recorded_row[columns] = positions, recorded[index]
        rows_commanded.append(commanded_row)
        rows_recorded.append(recorded_row)
        times.append(time_ns)
    shape = (len(times), len(joints))
    return EpisodeErrors(demonstration.bag, joints, np.array(times, dtype=np.int64),
                         np.array(rows_commanded).reshape(shape), np.array(rows_recorded).reshape(shape))


def format_error_table(episodes: list[EpisodeErrors]) -> str:
    rows = [f'{"demonstration":<40} {"commands":>8} {"MAE":>8} {"RMSE":>8} {"max":>8}']
    for summary in (episode.summary() for episode in episodes):
        rows.append(f'{Path(summary["bag"]).name[-40:]:<40} {summary["commands"]:>8} {summary["mae"]:>8.4f} '
                    f'{summary["rmse"]:>8.4f} {summary["max_abs_error"]:>8.4f}')
    return '\n'.join(rows)


def write_open_loop_results(output: Path, episodes: list[EpisodeErrors], metadata: dict) -> dict[str, Path]:
    """Write open_loop.csv (one row per demonstration), open_loop.json and open_loop.png, each atomically."""
    output.mkdir(parents=True, exist_ok=True)
    paths = {'episodes': output / 'open_loop.csv', 'summary': output / 'open_loop.json',
             'plot': output / 'open_loop.png'}
    summaries = [episode.summary() for episode in episodes]
    with atomic_open(paths['episodes'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(summaries[0]))
        writer.writeheader()
        writer.writerows(summaries)
    all_errors = np.concatenate([np.abs(e.commanded - e.recorded).ravel() for e in episodes])
    finite = all_errors[np.isfinite(all_errors)]
    with atomic_open(paths['summary'], 'w') as f:
        json.dump({**metadata, 'joints': episodes[0].joints,
                   'mae': float(finite.mean()) if finite.size else None, 'episodes': summaries}, f, indent=2)
    _plot(paths['plot'], episodes, metadata.get('title', 'open loop: policy commands vs recorded'))
    return paths


def _plot(path: Path, episodes: list[EpisodeErrors], title: str) -> None:
    """One panel per joint: the recorded command (line) and the policy's (dots) over each demonstration."""
    joints = episodes[0].joints
    columns = min(4, len(joints))
    rows = -(-len(joints) // columns)
    fig = Figure(figsize=(3.2 * columns, 2.4 * rows + 0.4))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    colors = [f'C{i % 10}' for i in range(len(episodes))]
    for k, joint in enumerate(joints):
        ax = axes[k]
        for episode, color in zip(episodes, colors):
            t = (episode.times_ns - episode.times_ns[0]) * 1e-9 if len(episode.times_ns) else episode.times_ns
            ax.plot(t, episode.recorded[:, k], '-', color=color, linewidth=1)
            ax.plot(t, episode.commanded[:, k], '.', color=color, markersize=3)
        ax.set_title(joint, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes[len(joints):]:
        ax.axis('off')
    fig.suptitle(f'{title}\nline: recorded command, dots: policy command; one colour per demonstration', fontsize=8)
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
