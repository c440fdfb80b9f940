#!/usr/bin/env python3
"""End-to-end latency of encoder_node: image published -> Embedding received.

    python bench/encoder_latency.py [--seconds 60] [--floor-seconds 20] [--rate 30]
                                    [--checkpoint encoder.pt | --arch A --input-size N]
                                    [--fastdds-profile XML | --no-fastdds-profile]

Starts a real encoder_node subprocess over DDS (loopback only, a ROS_DOMAIN_ID of its own),
publishes camera images (rgb8, --image-size) stamped with the time of publishing at --rate for
--seconds, and takes each Embedding's receive time minus its stamp (the node stamps embeddings
with the image stamp). Then, for --floor-seconds, streams the same images the same way (same QoS,
rate and warm-up) to bench/transport_relay.py instead: a plain rclpy node in its own process
that, in its subscription callback, publishes an Embedding of the encoder's size with the image
stamp. That is the transport floor, what any two ROS 2 Python processes pay for this exchange
whatever the node computes; with a small encoder it is most of the end-to-end latency.
Prints latency p50/p99, the floor p50/p99, the node's own time (latency p50 - floor p50), the
ratio to the bare forward pass (`EncoderArtifact.encode` of the same image, same thread count,
timed in this process before and after the streams in the same run), the ratio to forward + floor
(1.0 for a node that adds nothing to the forward pass beyond the transport), p99/p50, and frames
that got no embedding, and how long encoder_node took to exit after SIGINT.
Writes a PNG of both latencies over time and their histograms. Without --checkpoint it benchmarks a
randomly initialised encoder (latency does not depend on what an encoder learned).

Every process of the run (this one, encoder_node, the relay) gets the Fast DDS profile
src/dynamo_bringup/config/fastdds_profile.xml through FASTDDS_DEFAULT_PROFILES_FILE, which sizes
the shared-memory transport for camera images; --no-fastdds-profile measures Fast DDS's defaults
instead (then best-effort 640x480 images are mostly lost: use --qos-reliability reliable).

Goals: e2e p50 <= 1.10 x (forward p50 + floor p50) and p99 <= 1.5 x p50. When frames come faster
than the forward pass, a frame waits in the node until the worker is free (up to one frame period,
half of it on average): the node never encodes a frame while a newer one waits, so that wait is
what any node pays for encoding the newest frame, and the diagnostics line shows it (the node's
stamp -> publish latency minus its encode time).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from dynamo_data.atomic import atomic_open

GOAL_RATIO = 1.10   # e2e p50 / (forward p50 + floor p50)
GOAL_TAIL = 1.5
FASTDDS_PROFILE = Path(__file__).resolve().parents[1] / 'src/dynamo_bringup/config/fastdds_profile.xml'
WARMUP_S = 2.0
DRAIN_S = 1.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='stream length (default 60)')
    parser.add_argument('--floor-seconds', type=float, default=20.0,
                        help='length of the transport-floor stream to the relay (default 20)')
    parser.add_argument('--rate', type=float, default=30.0, help='images per second (default 30)')
    parser.add_argument('--checkpoint', type=Path, help='encoder artifact to benchmark (default: random init)')
    parser.add_argument('--arch', default='resnet18', help='architecture of the random-init encoder (default resnet18)')
    parser.add_argument('--input-size', type=int, default=224,
                        help='input size of the random-init encoder (default 224)')
    parser.add_argument('--image-size', default='640x480', help='published image WIDTHxHEIGHT (default 640x480)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads, node and reference (default 1)')
    parser.add_argument('--qos-reliability', choices=['reliable', 'best_effort'], default='best_effort',
                        help="image QoS of publisher and node (default best_effort, encoder_node's default; without "
                             'the Fast DDS profile use reliable: Fast DDS then loses most best-effort images larger '
                             'than its 0.5 MB shared-memory segment, e.g. 640x480 rgb8)')
    profile = parser.add_mutually_exclusive_group()
    profile.add_argument('--fastdds-profile', type=Path, default=FASTDDS_PROFILE,
                         help='Fast DDS XML profile for every process (default: the one in '
                              'src/dynamo_bringup/config/)')
    profile.add_argument('--no-fastdds-profile', dest='fastdds_profile', action='store_const', const=None,
                         help="measure with Fast DDS's default transports")
    parser.add_argument('--device', default='cpu', help="encoder_node's device parameter (default cpu)")
    parser.add_argument('--plot', type=Path, default=Path('runs/bench/encoder_latency.png'),
                        help='where to write the PNG (default runs/bench/encoder_latency.png)')
    args = parser.parse_args()
    try:
        width, height = (int(v) for v in args.image_size.lower().split('x'))
    except ValueError:
        parser.error(f'--image-size must be WIDTHxHEIGHT, got {args.image_size!r}')
    args.image_shape = (height, width, 3)
    if args.fastdds_profile is not None and not args.fastdds_profile.is_file():
        parser.error(f'--fastdds-profile {args.fastdds_profile}: no such file')
    return args


def use_fastdds_profile(profile: Path | None) -> None:
    """Name `profile` (None: none) to Fast DDS in this process's environment, which the node processes inherit.

    FASTDDS_DEFAULT_PROFILES_FILE is Fast DDS 3's name (ROS 2 Kilted on). Fast DDS 2 (Humble, Jazzy)
    reads FASTRTPS_DEFAULT_PROFILES_FILE, which Kilted's rmw still honours with a deprecation
    warning per process: so that one is only ever removed here.
    """
    os.environ.pop('FASTRTPS_DEFAULT_PROFILES_FILE', None)
    if profile is None:
        os.environ.pop('FASTDDS_DEFAULT_PROFILES_FILE', None)
    else:
        os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile.resolve())


def time_forward(encoder, image: np.ndarray, calls: int) -> np.ndarray:
    encoder.encode({name: image for name in encoder.camera_names})   # warm-up
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        encoder.encode({name: image for name in encoder.camera_names})
        seconds.append(time.perf_counter() - start)
    return np.array(seconds)


def encoder_node_command(args, checkpoint: Path) -> list[str]:
    return ['encoder_node', '--ros-args', '-p', f'checkpoint:={checkpoint}', '-p', f'device:={args.device}',
            '-p', f'threads:={args.threads}', '-p', f'qos_reliability:={args.qos_reliability}']


def relay_command(args, encoder, template_path: Path) -> list[str]:
    """transport_relay answering each image with an Embedding of this encoder's size, as encoder_node does."""
    from rclpy.serialization import serialize_message

    from dynamo_msgs.msg import Embedding

    embedding = Embedding(encoder_name=encoder.name, encoder_checksum=encoder.checksum,
                          camera_names=list(encoder.camera_names),
                          camera_dims=[int(encoder.embedding_dim)] * len(encoder.camera_names),
                          data=[0.0] * (len(encoder.camera_names) * encoder.embedding_dim))
    embedding.header.frame_id = 'camera_color_optical_frame'
    template_path.write_bytes(serialize_message(embedding))
    # Subscribed as encoder_node subscribes: its qos_reliability, keep last 1 (its default qos_depth).
    return [sys.executable, str(Path(__file__).with_name('transport_relay.py')),
            '--input', 'sensor_msgs/msg/Image', '/camera/color/image_raw',
            '--reliability', args.qos_reliability, '--depth', '1',
            '--output', 'dynamo_msgs/msg/Embedding', 'embedding', str(template_path)]


def stream(args, command: list[str], name: str, seconds: float, image: np.ndarray, log_path: Path):
    """Run `command` (encoder_node or the transport relay) and the image stream for `seconds`.

    Return the stamps of the measured images, the receive time by embedding stamp, the last /diagnostics
    and the seconds the process took to exit after SIGINT.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dynamo_bringup.processes import NodeProcess
    from dynamo_msgs.msg import Embedding

    node_process = NodeProcess(command, name, dict(os.environ), log_path)
    rclpy.init()
    bench = rclpy.create_node('encoder_latency_bench')
    try:
        received: dict[int, int] = {}   # stamp ns -> receive time ns
        diagnostics = []
        bench.create_subscription(
            Embedding, 'embedding', lambda msg: received.setdefault(
                msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, time.time_ns()), 10)
        bench.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 10)
        reliability = {'reliable': ReliabilityPolicy.RELIABLE, 'best_effort': ReliabilityPolicy.BEST_EFFORT}
        publisher = bench.create_publisher(Image, '/camera/color/image_raw', QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=1, reliability=reliability[args.qos_reliability]))
        msg = Image(height=image.shape[0], width=image.shape[1], encoding='rgb8', step=image.shape[1] * 3,
                    data=image.tobytes())
        msg.header.frame_id = 'camera_color_optical_frame'

        deadline = time.monotonic() + 120
        while not (bench.count_subscribers('/camera/color/image_raw') and bench.count_publishers('embedding')):
            if node_process.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f'{name} did not come up; its output:\n{node_process.output()}')
            rclpy.spin_once(bench, timeout_sec=0.1)

        sent: list[int] = []

        def publish():
            msg.header.stamp = bench.get_clock().now().to_msg()
            publisher.publish(msg)
            sent.append(msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec)

        bench.create_timer(1.0 / args.rate, publish)
        warmup_end = time.monotonic() + WARMUP_S
        while time.monotonic() < warmup_end:
            rclpy.spin_once(bench, timeout_sec=0.01)
        first_measured = len(sent)
        print(f'streaming {args.image_shape[1]}x{args.image_shape[0]} rgb8 at {args.rate:g} Hz to {name} '
              f'for {seconds:g} s ...', flush=True)
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            rclpy.spin_once(bench, timeout_sec=0.01)
        measured = sent[first_measured:]
        bench.destroy_node()   # stops the publishing timer; a fresh node drains the last embeddings
        bench = rclpy.create_node('encoder_latency_bench_drain')
        bench.create_subscription(
            Embedding, 'embedding', lambda msg: received.setdefault(
                msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec, time.time_ns()), 10)
        drain_end = time.monotonic() + DRAIN_S
        while time.monotonic() < drain_end:
            rclpy.spin_once(bench, timeout_sec=0.01)
    finally:
        bench.destroy_node()
        rclpy.try_shutdown()
        signalled = time.monotonic()
        exit_code = node_process.stop()
        exit_s = time.monotonic() - signalled
        if exit_code != 0:
            print(f'warning: {name} exited with {exit_code}; log: {log_path}', file=sys.stderr)
    return measured, received, diagnostics[-1] if diagnostics else None, exit_s


def plot(path: Path, sent, latencies_ms, floor_sent, floor_ms, forward_ms, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_time, ax_hist) = plt.subplots(1, 2, figsize=(11, 4))
    for stream_sent, stream_ms, label in ((sent, latencies_ms, 'publish -> embedding'),
                                          (floor_sent, floor_ms, 'transport floor (relay)')):
        times = (np.array(stream_sent) - stream_sent[0]) / 1e9
        ax_time.plot(times, stream_ms, '.', markersize=2, label=label)
    ax_time.axhline(forward_ms, color='k', linestyle='--', label=f'bare forward p50 {forward_ms:.1f} ms')
    ax_time.set_xlabel('time in stream (s)')
    ax_time.set_ylabel('latency (ms)')
    ax_time.legend()
    answered = [values[np.isfinite(values)] for values in (latencies_ms, floor_ms)]
    bins = np.histogram_bin_edges(np.concatenate(answered), bins=60)
    ax_hist.hist(answered[0], bins=bins, label='publish -> embedding')
    ax_hist.hist(answered[1], bins=bins, alpha=0.6, label='transport floor (relay)')
    ax_hist.axvline(forward_ms, color='k', linestyle='--')
    ax_hist.set_xlabel('latency (ms)')
    ax_hist.set_ylabel('embeddings')
    ax_hist.legend()
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_open(path, 'wb') as file:
        fig.savefig(file, format='png', dpi=100)
    plt.close(fig)


def latencies_ms(sent, received) -> np.ndarray:
    """Receive time minus stamp per published image, NaN where no embedding came back."""
    return np.array([(received[s] - s) / 1e6 if s in received else np.nan for s in sent])


def main():
    args = parse_args()
    from dynamo_bringup.processes import DomainLease
    lease = DomainLease()
    # Before rclpy, and inherited by the node processes: this run's own domain, loopback only, the profile.
    os.environ.update(lease.environment())
    use_fastdds_profile(args.fastdds_profile)
    import torch

    from dynamo_encoder.artifact import EncoderArtifact
    torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).integers(0, 256, args.image_shape, dtype=np.uint8)
    try:
        with tempfile.TemporaryDirectory(prefix='encoder_latency_') as tmp:
            checkpoint = args.checkpoint
            if checkpoint is None:
                checkpoint = Path(tmp) / 'encoder.pt'
                input_size = (args.input_size, args.input_size)
                EncoderArtifact.random_init(args.arch, ['front'], input_size, seed=0).save(checkpoint)
            encoder = EncoderArtifact.load(checkpoint)
            if len(encoder.camera_names) != 1:
                raise SystemExit(f'{checkpoint}: this bench streams one camera; the encoder has {encoder.camera_names}')
            forward_before = time_forward(encoder, image, 100)
            sent, received, last_diagnostics, exit_s = stream(
                args, encoder_node_command(args, checkpoint), 'encoder_node', args.seconds, image,
                Path(tmp) / 'encoder_node.log')
            floor_sent, floor_received, _, _ = stream(
                args, relay_command(args, encoder, Path(tmp) / 'embedding.cdr'), 'transport_relay',
                args.floor_seconds, image, Path(tmp) / 'transport_relay.log')
            forward_after = time_forward(encoder, image, 100)
    finally:
        lease.release()

    e2e_ms = latencies_ms(sent, received)
    answered = e2e_ms[np.isfinite(e2e_ms)]
    floor_ms = latencies_ms(floor_sent, floor_received)
    floor_answered = floor_ms[np.isfinite(floor_ms)]
    forward_ms = np.concatenate([forward_before, forward_after]) * 1e3
    forward_p50 = float(np.percentile(forward_ms, 50))
    dropped = len(sent) - len(answered)
    print(f'encoder {encoder.name} ({encoder.arch}, input {encoder.input_size[0]}x{encoder.input_size[1]}), '
          f'{args.threads} thread(s), device {args.device}, {args.qos_reliability} depth 1; '
          f'{len(sent)} images published, domain {lease.domain_id}; Fast DDS profile: '
          f'{args.fastdds_profile or "none (defaults)"}')
    print(f'bare forward pass (EncoderArtifact.encode): p50 {forward_p50:.2f} ms  p99 '
          f'{np.percentile(forward_ms, 99):.2f} ms  (before streams p50 {np.median(forward_before) * 1e3:.2f}, '
          f'after {np.median(forward_after) * 1e3:.2f})')
    if answered.size == 0:
        raise SystemExit('no embedding came back: see the encoder_node output above')
    if floor_answered.size == 0:
        raise SystemExit('no embedding came back from transport_relay: see its output above')
    p50, p99 = np.percentile(answered, [50, 99])
    floor_p50, floor_p99 = np.percentile(floor_answered, [50, 99])
    print(f'end-to-end publish -> embedding:            p50 {p50:.2f} ms  p99 {p99:.2f} ms  '
          f'max {answered.max():.2f} ms')
    print(f'transport floor publish -> relayed embedding: p50 {floor_p50:.2f} ms  p99 {floor_p99:.2f} ms  '
          f'max {floor_answered.max():.2f} ms  (bench/transport_relay.py, same images, QoS and rate, '
          f'{len(floor_sent)} images)')
    print(f"encoder_node's own time (e2e p50 - floor p50): {p50 - floor_p50:.2f} ms = forward p50 "
          f'{forward_p50:.2f} ms + {p50 - floor_p50 - forward_p50:.2f} ms beyond it')
    print(f'ratio e2e p50 / forward p50: {p50 / forward_p50:.3f}')
    ratio = p50 / (forward_p50 + floor_p50)
    print(f'ratio e2e p50 / (forward p50 + floor p50): {ratio:.3f}  (goal <= {GOAL_RATIO}'
          f'{"" if ratio <= GOAL_RATIO else ", MISSED"}; 1.0: the node adds nothing to the forward pass beyond the '
          'transport any two ROS 2 Python processes pay)')
    print(f'tail p99 / p50:              {p99 / p50:.3f}  (goal <= {GOAL_TAIL})'
          f'{"" if p99 / p50 <= GOAL_TAIL else "  MISSED"}; transport floor {floor_p99 / floor_p50:.3f}')
    print(f'frames without an embedding: {dropped} of {len(sent)} ({100 * dropped / len(sent):.1f} %); '
          f'transport floor {len(floor_sent) - len(floor_answered)} of {len(floor_sent)}')
    if last_diagnostics is not None:
        values = {kv.key: kv.value for status in last_diagnostics.status for kv in status.values}
        print('encoder_node diagnostics (last): ' + ', '.join(
            f'{key} {values[key]}' for key in ('input_rate_hz', 'output_rate_hz', 'latency_p50_ms', 'latency_p99_ms',
                                               'processing_p50_ms', 'frames_dropped_stale') if key in values))
        if 'processing_p50_ms' in values:
            node_p50, encode_p50 = float(values['latency_p50_ms']), float(values['processing_p50_ms'])
            print(f'ratio e2e p50 / in-node encode p50 (same load, from diagnostics): {p50 / encode_p50:.3f}; '
                  f'in the node, stamp -> publish p50 {node_p50:.2f} ms = encode {encode_p50:.2f} ms + '
                  f'{node_p50 - encode_p50:.2f} ms transport in, decoding and waiting for the worker (at most one '
                  f'frame period, {1e3 / args.rate:.1f} ms, when frames come faster than it encodes)')
    print(f'encoder_node exited {exit_s:.2f} s after SIGINT (goal <= 2 s{"" if exit_s <= 2.0 else ", MISSED"})')
    plot(args.plot, sent, e2e_ms, floor_sent, floor_ms, forward_p50,
         f'encoder_node {encoder.arch} {encoder.input_size[0]}px, {args.image_shape[1]}x{args.image_shape[0]} '
         f'@ {args.rate:g} Hz: p50 {p50:.1f} ms (x{p50 / forward_p50:.2f} forward), p99 {p99:.1f} ms; '
         f'floor p50 {floor_p50:.1f} ms')
    print(f'plot: {args.plot}')


if __name__ == '__main__':
    main()
