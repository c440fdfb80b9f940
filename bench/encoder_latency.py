#!/usr/bin/env python3
"""End-to-end latency of encoder_node: image published -> Embedding received.

    python bench/encoder_latency.py [--seconds 60] [--rate 30] [--checkpoint encoder.pt | --arch A --input-size N]

Starts a real encoder_node subprocess over DDS (loopback only, a ROS_DOMAIN_ID of its own),
publishes camera images (rgb8, --image-size) stamped with the time of publishing at --rate for
--seconds, and takes each Embedding's receive time minus its stamp (the node stamps embeddings
with the image stamp). Prints latency p50/p99, its ratio to the bare forward pass
(`EncoderArtifact.encode` of the same image, same thread count, timed in this process before and
after the stream in the same run), p99/p50, and frames that got no embedding. Writes a PNG of
latency over time and its histogram. Without --checkpoint it benchmarks a randomly initialised
encoder (latency does not depend on what an encoder learned).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GOAL_RATIO = 1.15
GOAL_TAIL = 1.5
WARMUP_S = 2.0
DRAIN_S = 1.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='stream length (default 60)')
    parser.add_argument('--rate', type=float, default=30.0, help='images per second (default 30)')
    parser.add_argument('--checkpoint', type=Path, help='encoder artifact to benchmark (default: random init)')
    parser.add_argument('--arch', default='resnet18', help='architecture of the random-init encoder (default resnet18)')
    parser.add_argument('--input-size', type=int, default=224, help='input size of the random-init encoder (default 224)')
    parser.add_argument('--image-size', default='640x480', help='published image WIDTHxHEIGHT (default 640x480)')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads, node and reference (default 1)')
    parser.add_argument('--qos-reliability', choices=['reliable', 'best_effort'], default='reliable',
                        help='image QoS of publisher and node (default reliable: Fast DDS loses most best-effort '
                             'images larger than its 0.5 MB shared-memory segment, e.g. 640x480 rgb8)')
    parser.add_argument('--device', default='cpu', help="encoder_node's device parameter (default cpu)")
    parser.add_argument('--plot', type=Path, default=Path('runs/bench/encoder_latency.png'),
                        help='where to write the PNG (default runs/bench/encoder_latency.png)')
    args = parser.parse_args()
    try:
        width, height = (int(v) for v in args.image_size.lower().split('x'))
    except ValueError:
        parser.error(f'--image-size must be WIDTHxHEIGHT, got {args.image_size!r}')
    args.image_shape = (height, width, 3)
    return args


def time_forward(encoder, image: np.ndarray, calls: int) -> np.ndarray:
    encoder.encode({name: image for name in encoder.camera_names})   # warm-up
    seconds = []
    for _ in range(calls):
        start = time.perf_counter()
        encoder.encode({name: image for name in encoder.camera_names})
        seconds.append(time.perf_counter() - start)
    return np.array(seconds)


def stream(args, checkpoint: Path, image: np.ndarray, log_path: Path):
    """Run encoder_node and the image stream; (send times, latencies by stamp, last diagnostics)."""
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from dynamo_msgs.msg import Embedding
    from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from dynamo_bringup.processes import NodeProcess

    node_process = NodeProcess(
        ['encoder_node', '--ros-args', '-p', f'checkpoint:={checkpoint}', '-p', f'device:={args.device}',
         '-p', f'threads:={args.threads}', '-p', f'qos_reliability:={args.qos_reliability}'], 'encoder_node', dict(os.environ), log_path)
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
                raise SystemExit(f'encoder_node did not come up; its output:\n{node_process.output()}')
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
        print(f'streaming {args.image_shape[1]}x{args.image_shape[0]} rgb8 at {args.rate:g} Hz for {args.seconds:g} s ...',
              flush=True)
        end = time.monotonic() + args.seconds
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
        return measured, received, diagnostics[-1] if diagnostics else None
    finally:
        bench.destroy_node()
        rclpy.try_shutdown()
        exit_code = node_process.stop()
        if exit_code != 0:
            print(f'warning: encoder_node exited with {exit_code}; log: {log_path}', file=sys.stderr)


def plot(path: Path, sent, latencies_ms, forward_ms, title):
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig, (ax_time, ax_hist) = plt.subplots(1, 2, figsize=(11, 4))
    times = (np.array(sent) - sent[0]) / 1e9
    ax_time.plot(times, latencies_ms, '.', markersize=2, label='publish -> embedding')
    ax_time.axhline(forward_ms, color='k', linestyle='--', label=f'bare forward p50 {forward_ms:.1f} ms')
    ax_time.set_xlabel('time in stream (s)')
    ax_time.set_ylabel('latency (ms)')
    ax_time.legend()
    ax_hist.hist(latencies_ms[np.isfinite(latencies_ms)], bins=60)
    ax_hist.axvline(forward_ms, color='k', linestyle='--')
    ax_hist.set_xlabel('latency (ms)')
    ax_hist.set_ylabel('embeddings')
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f'.{path.name}.tmp.png')
    fig.savefig(tmp, dpi=100)
    os.replace(tmp, path)
    plt.close(fig)


def main():
    args = parse_args()
    from dynamo_bringup.processes import DomainLease
    lease = DomainLease()
    os.environ.update(lease.environment())   # before rclpy: this run's own domain, loopback only
    import torch

    from dynamo_encoder.artifact import EncoderArtifact
    torch.set_num_threads(args.threads)
    image = np.random.default_rng(0).integers(0, 256, args.image_shape, dtype=np.uint8)
    try:
        with tempfile.TemporaryDirectory(prefix='encoder_latency_') as tmp:
            checkpoint = args.checkpoint
            if checkpoint is None:
                checkpoint = Path(tmp) / 'encoder.pt'
                EncoderArtifact.random_init(args.arch, ['front'], (args.input_size, args.input_size), seed=0).save(checkpoint)
            encoder = EncoderArtifact.load(checkpoint)
            if len(encoder.camera_names) != 1:
                raise SystemExit(f'{checkpoint}: this bench streams one camera; the encoder has {encoder.camera_names}')
            forward_before = time_forward(encoder, image, 100)
            sent, received, last_diagnostics = stream(args, checkpoint, image, Path(tmp) / 'encoder_node.log')
            forward_after = time_forward(encoder, image, 100)
    finally:
        lease.release()

    latencies_ms = np.array([(received[s] - s) / 1e6 if s in received else np.nan for s in sent])
    answered = latencies_ms[np.isfinite(latencies_ms)]
    forward_ms = np.concatenate([forward_before, forward_after]) * 1e3
    forward_p50 = float(np.percentile(forward_ms, 50))
    dropped = len(sent) - len(answered)
    print(f'encoder {encoder.name} ({encoder.arch}, input {encoder.input_size[0]}x{encoder.input_size[1]}), '
          f'{args.threads} thread(s), device {args.device}, {args.qos_reliability} depth 1; '
          f'{len(sent)} images published, domain {lease.domain_id}')
    print(f'bare forward pass (EncoderArtifact.encode): p50 {forward_p50:.2f} ms  p99 '
          f'{np.percentile(forward_ms, 99):.2f} ms  (before stream p50 {np.median(forward_before) * 1e3:.2f}, '
          f'after {np.median(forward_after) * 1e3:.2f})')
    if answered.size == 0:
        raise SystemExit('no embedding came back: see the encoder_node output above')
    p50, p99 = np.percentile(answered, [50, 99])
    print(f'end-to-end publish -> embedding:            p50 {p50:.2f} ms  p99 {p99:.2f} ms  max {answered.max():.2f} ms')
    print(f'ratio e2e p50 / forward p50: {p50 / forward_p50:.3f}  (goal <= {GOAL_RATIO})'
          f'{"" if p50 / forward_p50 <= GOAL_RATIO else "  MISSED"}')
    print(f'tail p99 / p50:              {p99 / p50:.3f}  (goal <= {GOAL_TAIL})'
          f'{"" if p99 / p50 <= GOAL_TAIL else "  MISSED"}')
    print(f'frames without an embedding: {dropped} of {len(sent)} ({100 * dropped / len(sent):.1f} %)')
    if last_diagnostics is not None:
        values = {kv.key: kv.value for status in last_diagnostics.status for kv in status.values}
        print('encoder_node diagnostics (last): ' + ', '.join(
            f'{key} {values[key]}' for key in ('input_rate_hz', 'output_rate_hz', 'latency_p50_ms', 'latency_p99_ms',
                                               'processing_p50_ms', 'frames_dropped_stale') if key in values))
        if 'processing_p50_ms' in values:
            print(f'ratio e2e p50 / in-node encode p50 (same load, from diagnostics): '
                  f'{p50 / float(values["processing_p50_ms"]):.3f}')
    plot(args.plot, sent, latencies_ms, forward_p50,
         f'encoder_node {encoder.arch} {encoder.input_size[0]}px, {args.image_shape[1]}x{args.image_shape[0]} '
         f'@ {args.rate:g} Hz: p50 {p50:.1f} ms (x{p50 / forward_p50:.2f} forward), p99 {p99:.1f} ms')
    print(f'plot: {args.plot}')


if __name__ == '__main__':
    main()
