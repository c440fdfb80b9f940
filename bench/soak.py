#!/usr/bin/env python3
"""Soak: encoder_node and policy_node fed good and hostile messages at camera rate for minutes.

    python bench/soak.py [--minutes 10] [--rate 30] [--bad-every 3 | --good-only] [--image-size 640x480]
                         [--arch resnet18 --input-size 224] [--fastdds-profile XML | --no-fastdds-profile]
                         [--logs DIR] [--domain-id ID]

Starts a real encoder_node (two cameras: front raw rgb8, wrist jpeg) and a real policy_node (an MLP
fitted on random embeddings, as bench/policy_latency.py fits it, with xArm7 joint limits) over DDS,
on loopback and a ROS_DOMAIN_ID of their own, with the Fast DDS profile of
src/dynamo_bringup/config/ unless --no-fastdds-profile. Every tick of --rate it publishes a good
camera pair, a good embedding and a good joint state; every --bad-every ticks also one hostile
message, cycling through the classes:
  encoder_node: a frame stamped an hour ahead, a frame stamped 5 s back (older than frames
                already used), a negative stamp, PNG and JPEG decompression bombs (15000x15000,
                60000x60000 declared in a few hundred bytes), a GIF in a "jpeg" message, a PNG in a
                "jpeg" message, an unsupported format, a raw image with an unknown encoding, a
                truncated raw image
  policy_node:  an embedding of another encoder (checksum), stamped an hour ahead, stamped 5 s
                back, with a negative stamp, with NaN values, of the wrong size; a joint state with
                NaN positions, one missing joints, one with more names than positions
Bounded: it stops after --minutes (and so after minutes x 60 x rate ticks), then stops both nodes
with SIGINT. Prints per node: alive at the end, outputs for good inputs (embeddings whose stamp is
a good camera pair's, action chunks whose stamp is a good embedding's, commands), commands outside
the joint limits or non-finite (must be 0), resident memory growth per minute (least squares over
the run after the first 20 %), latency p50/p99 in the first vs the last minute (the first vs the
second half for runs under two minutes), thread count at start and end, the node's own counters
from /diagnostics, and how it exited after SIGINT.
Latencies: encoder, camera stamp (= publish time) -> embedding received; policy, embedding stamp
(= publish time) -> its action chunk received. Numbers measured on a loaded machine are noisy.

Evidence, in --logs beside the node logs: resources.csv (per node, every second: RSS and its anonymous,
file-backed and shared-memory parts from /proc/PID/status, and the thread count), latency.csv (per
node and minute of the soak, by input publish time: outputs, latency p50/p99) and rss.png (RSS over
time per node, with the least-squares line the summary's growth comes from). RSS counts the pages of
every peer's Fast DDS shared-memory segment a node has read (RssShmem): they are touched step by step
for minutes, up to the segment size per peer (16 MiB with the profile), and are no leak; a leak
shows in RssAnon.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from PIL import Image as PILImage
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CompressedImage, Image, JointState
from trajectory_msgs.msg import JointTrajectory

from dynamo_bringup.processes import DomainLease, NodeProcess
from dynamo_msgs.msg import ActionChunk, Embedding

REPO = Path(__file__).resolve().parents[1]
FASTDDS_PROFILE = REPO / 'src/dynamo_bringup/config/fastdds_profile.xml'
sys.path.insert(0, str(REPO / 'src/dynamo_data/test'))   # _image_bombs: the codec tests' decompression bombs
# xArm7 joint limits and gripper range (src/dynamo_bringup/config/xarm_kitchen.yaml), in the policy's action order.
LOWER = [-6.2832, -2.059, -6.2832, -0.19198, -6.2832, -1.69297, -6.2832, 0.0]
UPPER = [6.2832, 2.0944, 6.2832, 3.927, 6.2832, 3.14159, 6.2832, 0.85]
MAX_VELOCITY = 1.5
HOUR_NS = 3600 * 10**9
FRONT, WRIST = '/soak/front/image_raw', '/soak/wrist/image_raw/compressed'
ENCODER_EMBEDDING = '/soak/encoder/embedding'
COMMAND = 'soak_command'


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--minutes', type=float, default=10.0, help='soak length in minutes (default 10)')
    parser.add_argument('--rate', type=float, default=30.0, help='good inputs per second (default 30)')
    hostile = parser.add_mutually_exclusive_group()
    hostile.add_argument('--bad-every', type=int, default=3, help='one hostile message every N ticks (default 3)')
    hostile.add_argument('--good-only', action='store_true',
                         help='no hostile messages: only the good inputs, to compare with a hostile soak')
    parser.add_argument('--image-size', default='640x480', help='camera images WIDTHxHEIGHT (default 640x480)')
    parser.add_argument('--arch', default='resnet18',
                        help='encoder architecture, randomly initialised (default resnet18)')
    parser.add_argument('--input-size', type=int, default=224, help='encoder input size (default 224)')
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument('--fastdds-profile', type=Path, default=FASTDDS_PROFILE,
                         help='Fast DDS XML profile for every process (default: the one in src/dynamo_bringup/config/)')
    profile.add_argument('--no-fastdds-profile', dest='fastdds_profile', action='store_const', const=None,
                         help="use Fast DDS's default transports")
    parser.add_argument('--logs', type=Path, default=Path('runs/bench/soak'),
                        help='where the node logs, resources.csv, latency.csv and rss.png go '
                             '(default runs/bench/soak)')
    parser.add_argument('--domain-id', type=int, default=None,
                        help='ROS_DOMAIN_ID for this run (default: a free one leased from 1-101)')
    args = parser.parse_args()
    try:
        width, height = (int(v) for v in args.image_size.lower().split('x'))
    except ValueError:
        parser.error(f'--image-size must be WIDTHxHEIGHT, got {args.image_size!r}')
    if args.minutes <= 0 or args.rate <= 0 or args.bad_every < 1:
        parser.error('--minutes and --rate must be > 0, --bad-every >= 1')
    if args.domain_id is not None and not 0 <= args.domain_id <= 232:
        parser.error(f'--domain-id must be in 0-232, got {args.domain_id}')
    if args.fastdds_profile is not None and not args.fastdds_profile.is_file():
        parser.error(f'--fastdds-profile {args.fastdds_profile}: no such file')
    args.image_shape = (height, width, 3)
    return args


RESOURCE_COLUMNS = ('seconds', 'rss_mb', 'threads', 'rss_anon_mb', 'rss_file_mb', 'rss_shmem_mb')


def proc_status(pid: int) -> tuple[float, int, float, float, float] | None:
    """Resident memory (MB), threads, and the RSS's anonymous, file-backed and shared parts (MB); None once gone.

    Read from /proc/PID/status (VmRSS, Threads, RssAnon, RssFile, RssShmem).
    """
    try:
        fields = dict(line.split(':', 1) for line in Path(f'/proc/{pid}/status').read_text().splitlines())
    except (FileNotFoundError, ProcessLookupError):
        return None

    def mb(key):
        return int(fields[key].split()[0]) / 1024

    return mb('VmRSS'), int(fields['Threads']), mb('RssAnon'), mb('RssFile'), mb('RssShmem')


RSS, RSS_ANON = RESOURCE_COLUMNS.index('rss_mb'), RESOURCE_COLUMNS.index('rss_anon_mb')


def rss_fit(samples: list[tuple], column: int = RSS) -> tuple[float, float]:
    """Least-squares slope (MB/min) and intercept (MB) of a memory column over time after the first 20 % of the run.

    The first 20 % is start-up allocations; `column` is RSS or RSS_ANON. Both are NaN for fewer
    than 3 samples.
    """
    kept = samples[len(samples) // 5:]
    if len(kept) < 3:
        return float('nan'), float('nan')
    times, rss = np.array([s[0] for s in kept]), np.array([s[column] for s in kept])
    slope, intercept = np.polyfit(times / 60.0, rss, 1)
    return float(slope), float(intercept)


def percentiles(values) -> str:
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return 'none'
    p50, p99 = np.percentile(values, [50, 99])
    return f'p50 {p50:.1f} ms, p99 {p99:.1f} ms ({values.size})'


class Feed:
    """The soak's messages: good ones every tick, one hostile one of the next class every --bad-every ticks."""

    def __init__(self, args, node, policy, clock):
        self.bad_every = None if args.good_only else args.bad_every
        self.clock, self.meta = clock, policy.metadata
        rng = np.random.default_rng(0)
        height, width, _ = args.image_shape
        pixels = rng.integers(0, 256, args.image_shape, dtype=np.uint8)
        jpeg = io.BytesIO()
        PILImage.fromarray(pixels).save(jpeg, format='JPEG', quality=90)
        self.front = Image(height=height, width=width, encoding='rgb8', step=width * 3, data=pixels.tobytes())
        self.wrist = CompressedImage(format='rgb8; jpeg compressed bgr8', data=jpeg.getvalue())
        self.embedding = Embedding(encoder_name=self.meta.encoder_name, encoder_checksum=self.meta.encoder_checksum,
                                   camera_names=list(self.meta.camera_names),
                                   camera_dims=[self.meta.embedding_dim // len(self.meta.camera_names)]
                                   * len(self.meta.camera_names))
        self.embedding_values = rng.normal(size=(64, self.meta.embedding_dim)).astype(np.float32)
        self.joint_state = JointState(name=list(self.meta.action_names),
                                      position=[(lo + hi) / 2 for lo, hi in zip(LOWER, UPPER)])
        # The encoder's subscriptions are best-effort depth 1 (its defaults), the policy's sensor-data QoS.
        camera_qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
        self.front_pub = node.create_publisher(Image, FRONT, camera_qos)
        self.wrist_pub = node.create_publisher(CompressedImage, WRIST, camera_qos)
        self.embedding_pub = node.create_publisher(Embedding, 'embedding', qos_profile_sensor_data)
        self.joint_pub = node.create_publisher(JointState, 'joint_states', qos_profile_sensor_data)
        self.camera_sent: dict[int, float] = {}      # good camera pair stamp (ns) -> publish time (perf_counter)
        self.embedding_sent: dict[int, float] = {}   # good embedding stamp (ns) -> publish time
        self.bad_sent: dict[str, int] = defaultdict(int)
        self.ticks = 0
        self.hostile = [self._future_frame, self._stale_frame, self._negative_stamp_frame, self._png_bomb,
                        self._jpeg_bomb, self._gif_as_jpeg, self._png_as_jpeg, self._unsupported_format,
                        self._unknown_encoding, self._truncated_frame,
                        self._other_encoder, self._future_embedding, self._stale_embedding,
                        self._negative_stamp_embedding, self._nan_embedding,
                        self._wrong_size_embedding, self._nan_joint_state, self._missing_joints,
                        self._names_without_positions]

    def now_ns(self) -> int:
        return self.clock.now().nanoseconds

    @staticmethod
    def _stamp(msg, stamp_ns: int):
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
        return msg

    def tick(self) -> None:
        stamp_ns = self.now_ns()
        sent = time.perf_counter()
        self.front_pub.publish(self._stamp(self.front, stamp_ns))
        self.wrist_pub.publish(self._stamp(self.wrist, stamp_ns))
        self.camera_sent[stamp_ns] = sent
        self.embedding.data = self.embedding_values[self.ticks % len(self.embedding_values)].tolist()
        self.embedding_pub.publish(self._stamp(self.embedding, stamp_ns))
        self.embedding_sent[stamp_ns] = sent
        self.joint_pub.publish(self.joint_state)
        if self.bad_every is not None and self.ticks % self.bad_every == self.bad_every - 1:
            hostile = self.hostile[(self.ticks // self.bad_every) % len(self.hostile)]
            self.bad_sent[hostile.__name__.lstrip('_')] += 1
            hostile(stamp_ns)
        self.ticks += 1

    # -- hostile camera frames -----------------------------------------------------------------
    def _raw(self, stamp_ns, **fields):
        msg = Image(height=self.front.height, width=self.front.width, encoding='rgb8', step=self.front.step,
                         data=self.front.data)
        for key, value in fields.items():
            setattr(msg, key, value)
        self.front_pub.publish(self._stamp(msg, stamp_ns))

    def _compressed(self, stamp_ns, fmt, data):
        self.wrist_pub.publish(self._stamp(CompressedImage(format=fmt, data=data), stamp_ns))

    def _future_frame(self, stamp_ns):
        self._raw(stamp_ns + HOUR_NS)

    def _stale_frame(self, stamp_ns):
        self._raw(stamp_ns - 5 * 10**9)

    def _negative_stamp_frame(self, stamp_ns):
        msg = Image(height=self.front.height, width=self.front.width, encoding='rgb8', step=self.front.step,
                         data=self.front.data)
        msg.header.stamp.sec = -5
        self.front_pub.publish(msg)

    def _png_bomb(self, stamp_ns):
        from _image_bombs import png_declaring
        self._compressed(stamp_ns, 'png', png_declaring(15000, 15000))

    def _jpeg_bomb(self, stamp_ns):
        from _image_bombs import jpeg_declaring
        self._compressed(stamp_ns, 'jpeg', jpeg_declaring(60000, 60000))

    def _gif_as_jpeg(self, stamp_ns):
        from _image_bombs import gif_declaring
        self._compressed(stamp_ns, 'jpeg', gif_declaring(65535, 65535))

    def _png_as_jpeg(self, stamp_ns):
        from _image_bombs import png_declaring
        self._compressed(stamp_ns, 'jpeg', png_declaring(64, 64))

    def _unsupported_format(self, stamp_ns):
        self._compressed(stamp_ns, 'tiff', bytes(self.wrist.data))

    def _unknown_encoding(self, stamp_ns):
        self._raw(stamp_ns, encoding='yuv_weird')

    def _truncated_frame(self, stamp_ns):
        self._raw(stamp_ns, data=bytes(self.front.data[:1000]))

    # -- hostile policy inputs -----------------------------------------------------------------
    def _embedding_copy(self, **fields):
        msg = Embedding(encoder_name=self.embedding.encoder_name, encoder_checksum=self.embedding.encoder_checksum,
                        camera_names=list(self.embedding.camera_names),
                        camera_dims=list(self.embedding.camera_dims), data=list(self.embedding.data))
        for key, value in fields.items():
            setattr(msg, key, value)
        return msg

    def _bad_embedding(self, stamp_ns, **fields):
        self.embedding_pub.publish(self._stamp(self._embedding_copy(**fields), stamp_ns))

    def _other_encoder(self, stamp_ns):
        self._bad_embedding(stamp_ns, encoder_checksum='0123456789abcdef')

    def _future_embedding(self, stamp_ns):
        self._bad_embedding(stamp_ns + HOUR_NS)

    def _stale_embedding(self, stamp_ns):
        self._bad_embedding(stamp_ns - 5 * 10**9)

    def _negative_stamp_embedding(self, stamp_ns):
        msg = self._embedding_copy()
        msg.header.stamp.sec = -5   # rclpy's Time.from_msg raises on it: it once ended policy_node
        self.embedding_pub.publish(msg)

    def _nan_embedding(self, stamp_ns):
        self._bad_embedding(stamp_ns, data=[math.nan] * self.meta.embedding_dim)

    def _wrong_size_embedding(self, stamp_ns):
        self._bad_embedding(stamp_ns, data=[0.5] * (self.meta.embedding_dim - 7))

    def _nan_joint_state(self, stamp_ns):
        self.joint_pub.publish(JointState(name=list(self.meta.action_names),
                                               position=[math.nan] * len(self.meta.action_names)))

    def _missing_joints(self, stamp_ns):
        self.joint_pub.publish(JointState(name=list(self.meta.action_names[:3]),
                                               position=list(self.joint_state.position[:3])))

    def _names_without_positions(self, stamp_ns):
        self.joint_pub.publish(JointState(name=list(self.meta.action_names), position=[0.1, 0.2]))


def node_values(diagnostics, prefix: str) -> tuple[dict[str, str], str]:
    """Key values and message of the newest /diagnostics status whose name starts with `prefix`."""
    for array in reversed(diagnostics):
        for status in array.status:
            if status.name.startswith(prefix):
                return {kv.key: kv.value for kv in status.values}, status.message
    return {}, 'no /diagnostics received'


def run(args, work: Path) -> None:
    from policy_latency import fit_random_policy  # bench/, this script's directory

    from dynamo_encoder.artifact import EncoderArtifact
    from dynamo_policy.policies import load_policy

    encoder_path, policy_path = work / 'encoder.pt', work / 'policy.pt'
    EncoderArtifact.random_init(args.arch, ['front', 'wrist'], (args.input_size, args.input_size), seed=0) \
        .save(encoder_path)
    fit_random_policy('mlp', policy_path)
    policy = load_policy(policy_path)
    args.logs.mkdir(parents=True, exist_ok=True)
    nodes = {
        'encoder_node': NodeProcess(
            ['encoder_node', '--ros-args', '-p', f'checkpoint:={encoder_path}', '-p', 'device:=cpu',
             '-p', 'threads:=1', '-p', f'camera_topics:=[{FRONT},{WRIST}]', '-p', 'camera_transports:=[raw,compressed]',
             '-r', f'embedding:={ENCODER_EMBEDDING}'], 'encoder_node', dict(os.environ),
            args.logs / 'encoder_node.log'),
        'policy_node': NodeProcess(
            ['policy_node', '--ros-args', '-p', f'policy:={policy_path}', '-p', 'autostart:=true',
             '-p', f"command_topics:=['{COMMAND}']", '-p', f'joint_lower_limits:={LOWER}',
             '-p', f'joint_upper_limits:={UPPER}', '-p', f'max_velocity:=[{MAX_VELOCITY}]'], 'policy_node',
            dict(os.environ), args.logs / 'policy_node.log'),
    }
    rclpy.init()
    bench = rclpy.create_node('soak_bench')
    executor = SingleThreadedExecutor()
    executor.add_node(bench)
    embeddings: list[tuple[int, float]] = []   # (stamp ns, receive perf_counter)
    chunks: list[tuple[int, float]] = []
    commands: list[np.ndarray] = []
    diagnostics: list = []

    def stamp_of(msg) -> int:
        return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec

    bench.create_subscription(Embedding, ENCODER_EMBEDDING,
                              lambda msg: embeddings.append((stamp_of(msg), time.perf_counter())), 100)
    bench.create_subscription(ActionChunk, 'action_chunk',
                              lambda msg: chunks.append((stamp_of(msg), time.perf_counter())), 100)
    bench.create_subscription(JointTrajectory, COMMAND, lambda msg: commands.append(
        np.array([p.positions for p in msg.points], dtype=float).reshape(-1)), 100)
    bench.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 100)
    feed = Feed(args, bench, policy, bench.get_clock())
    resources = {name: [] for name in nodes}   # RESOURCE_COLUMNS: (seconds into the soak, RSS MB, threads, ...)
    exits = {}
    try:
        deadline = time.monotonic() + 180
        while not (bench.count_subscribers(FRONT) and bench.count_subscribers(WRIST)
                   and bench.count_subscribers('embedding') and bench.count_publishers(ENCODER_EMBEDDING)
                   and bench.count_publishers(COMMAND)):
            for name, node in nodes.items():
                if node.returncode is not None:
                    raise SystemExit(f'{name} exited ({node.returncode}) while starting; its log:\n{node.output()}')
            if time.monotonic() > deadline:
                raise SystemExit('the nodes did not come up within 180 s; logs in ' + str(args.logs))
            executor.spin_once(timeout_sec=0.1)
        seconds = args.minutes * 60.0
        hostile = ('no hostile messages' if args.good_only
                   else f'one hostile message every {args.bad_every} ticks ({len(feed.hostile)} classes)')
        print(f'soaking encoder_node ({args.arch} {args.input_size} px, {args.image_shape[1]}x{args.image_shape[0]} '
              f'front rgb8 + wrist jpeg) and policy_node ({policy.name}) for {seconds:g} s: {args.rate:g} Hz good '
              f'inputs, {hostile}; Fast DDS profile: {args.fastdds_profile or "none"}', flush=True)
        bench.create_timer(1.0 / args.rate, feed.tick)
        soak_start = time.perf_counter()
        start = time.monotonic()
        next_sample = start
        max_ticks = int(seconds * args.rate)
        while time.monotonic() - start < seconds and feed.ticks < max_ticks:
            executor.spin_once(timeout_sec=0.005)
            if time.monotonic() >= next_sample:
                next_sample += 1.0
                for name, node in nodes.items():
                    status = proc_status(node.popen.pid) if node.returncode is None else None
                    if status is not None:
                        resources[name].append((time.monotonic() - start, *status))
        alive = {name: node.returncode is None for name, node in nodes.items()}
        drain_end = time.monotonic() + 2.0    # outputs still in flight; no new inputs
        for timer in list(bench.timers):
            timer.cancel()
        while time.monotonic() < drain_end:
            executor.spin_once(timeout_sec=0.01)
    finally:
        for name, node in nodes.items():
            signalled = time.monotonic()
            code = node.stop()
            exits[name] = (code, time.monotonic() - signalled, node.log_path.read_text(errors='replace'))
        executor.shutdown()
        bench.destroy_node()
        rclpy.try_shutdown()

    report(args, feed, nodes, alive, resources, exits, embeddings, chunks, commands, diagnostics, soak_start)
    outputs = {'encoder_node': (embeddings, feed.camera_sent), 'policy_node': (chunks, feed.embedding_sent)}
    try:
        write_evidence(args, resources, outputs, soak_start)
    except OSError as exc:
        raise SystemExit(f'cannot write the soak evidence to {args.logs}: {exc}') from None


def report(args, feed, nodes, alive, resources, exits, embeddings, chunks, commands, diagnostics, soak_start):
    minutes = args.minutes
    window_s = 60.0 if minutes >= 2 else minutes * 30.0

    def drift(received, sent):
        """Latencies (ms) of outputs for inputs published in the first and in the last window."""
        first, last = [], []
        for stamp, receive_time in received:
            if stamp in sent:
                t = sent[stamp] - soak_start
                latency = (receive_time - sent[stamp]) * 1e3
                if t < window_s:
                    first.append(latency)
                if t >= minutes * 60.0 - window_s:
                    last.append(latency)
        return first, last

    print(f'\n{feed.ticks} ticks in {minutes:g} min: {len(feed.camera_sent)} good camera pairs, '
          f'{len(feed.embedding_sent)} good embeddings and joint states; hostile messages sent: '
          + ', '.join(f'{name} {count}' for name, count in feed.bad_sent.items()))
    outputs = {
        'encoder_node': ('embeddings', embeddings, feed.camera_sent),
        'policy_node': ('action chunks', chunks, feed.embedding_sent),
    }
    for name in nodes:
        what, received, sent = outputs[name]
        good = sum(stamp in sent for stamp, _ in received)
        code, exit_s, log = exits[name]
        samples = resources[name]
        values, message = node_values(diagnostics, name)
        print(f'\n{name}: alive at the end: {"yes" if alive[name] else "NO"}; exit code {code} '
              f'{exit_s:.2f} s after SIGINT; tracebacks in its log: {log.count("Traceback")}')
        print(f'  {what}: {len(received)}, for good inputs {good}, for anything else {len(received) - good} '
              f'({len(received) / (minutes * 60):.1f} Hz)')
        first, last = drift(received, sent)
        label = 'minute' if window_s == 60.0 else f'{window_s:g} s'
        print(f'  latency first {label}: {percentiles(first)}; last {label}: {percentiles(last)}')
        if samples:
            print(f'  RSS {samples[0][1]:.0f} -> {samples[-1][1]:.0f} MB, growth {rss_fit(samples)[0]:+.2f} '
                  f'MB/min (least squares after the first 20 %), of which anonymous (a leak shows here) '
                  f'{rss_fit(samples, RSS_ANON)[0]:+.2f} MB/min; threads {samples[0][2]} -> {samples[-1][2]} '
                  f'(max {max(s[2] for s in samples)})')
        counters = [key for key in ('frames_received', 'outputs_published', 'frames_dropped_stale', 'frames_malformed',
                                    'frames_future_stamped', 'frames_oversized', 'clock_jumps_back', 'encode_failures',
                                    'latency_p50_ms', 'processing_p50_ms', 'embedding_rate_hz', 'command_rate_hz',
                                    'observations_skipped_by_inference') if key in values]
        print(f'  /diagnostics (last): "{message}"; ' + ', '.join(f'{key} {values[key]}' for key in counters))
    commands_array = np.array([c for c in commands if c.size == len(LOWER)]) if commands else np.zeros((0, 8))
    malformed = sum(c.size != len(LOWER) for c in commands)
    non_finite = int((~np.isfinite(commands_array)).any(axis=1).sum()) if commands_array.size else 0
    finite = commands_array[np.isfinite(commands_array).all(axis=1)] if commands_array.size else commands_array
    outside = int(((finite < np.array(LOWER) - 1e-9) | (finite > np.array(UPPER) + 1e-9)).any(axis=1).sum()) \
        if finite.size else 0
    print(f'  commands: {len(commands)}; outside the joint limits: {outside}, non-finite: {non_finite}, '
          f'of another size: {malformed} (all must be 0)')


def minute_latencies(received, sent, soak_start: float) -> dict[int, list[float]]:
    """Latencies (ms) of outputs for good inputs, by the minute of the soak their input was published in."""
    minutes: dict[int, list[float]] = defaultdict(list)
    for stamp, receive_time in received:
        if stamp in sent:
            minutes[int((sent[stamp] - soak_start) // 60)].append((receive_time - sent[stamp]) * 1e3)
    return minutes


def write_evidence(args, resources, outputs, soak_start: float) -> None:
    """resources.csv, latency.csv and rss.png in --logs (see the module docstring), each written atomically."""
    from matplotlib.figure import Figure

    from dynamo_data.atomic import atomic_open

    with atomic_open(args.logs / 'resources.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(('node', *RESOURCE_COLUMNS))
        for name, samples in resources.items():
            for sample in samples:
                writer.writerow((name, f'{sample[0]:.2f}', *(f'{v:.2f}' if isinstance(v, float) else v
                                                            for v in sample[1:])))
    with atomic_open(args.logs / 'latency.csv', 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(('node', 'minute', 'outputs', 'latency_p50_ms', 'latency_p99_ms'))
        for name, (received, sent) in outputs.items():
            for minute, values in sorted(minute_latencies(received, sent, soak_start).items()):
                p50, p99 = np.percentile(values, [50, 99])
                writer.writerow((name, minute, len(values), f'{p50:.2f}', f'{p99:.2f}'))
    fig = Figure(figsize=(10, 4.5))
    ax = fig.add_subplot()
    for name, samples in resources.items():
        if not samples:
            continue
        times = np.array([s[0] for s in samples]) / 60.0
        line, = ax.plot(times, [s[RSS] for s in samples], label=f'{name} RSS')
        ax.plot(times, [s[RSS_ANON] for s in samples], color=line.get_color(), linestyle=':', label=f'{name} anonymous')
        slope, intercept = rss_fit(samples)
        if math.isfinite(slope):
            fitted = times[len(samples) // 5:]
            ax.plot(fitted, intercept + slope * fitted, color=line.get_color(), linestyle='--', linewidth=1,
                    label=f'{name} fit after 20 %: {slope:+.2f} MB/min')
    ax.set_xlabel('minutes into the soak')
    ax.set_ylabel('resident memory (MB)')
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
    hostile = 'good inputs only' if args.good_only else f'one hostile message every {args.bad_every} ticks'
    ax.set_title(f'soak: {args.rate:g} Hz, {hostile}, {args.minutes:g} min')
    fig.tight_layout()
    with atomic_open(args.logs / 'rss.png', 'wb') as file:
        fig.savefig(file, format='png', dpi=100)


def main() -> None:
    args = parse_args()
    lease = DomainLease() if args.domain_id is None else None
    # Before rclpy.init, and inherited by the node processes: this run's own domain, loopback only, the profile.
    os.environ.update(lease.environment() if lease is not None
                      else {'ROS_DOMAIN_ID': str(args.domain_id), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    os.environ.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)   # Fast DDS 2's name; Kilted warns about it
    if args.fastdds_profile is None:
        os.environ.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    else:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(args.fastdds_profile.resolve())
    import torch
    torch.set_num_threads(1)
    try:
        with tempfile.TemporaryDirectory(prefix='soak_') as work:
            run(args, Path(work))
    finally:
        if lease is not None:
            lease.release()


if __name__ == '__main__':
    main()
