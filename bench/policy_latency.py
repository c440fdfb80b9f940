#!/usr/bin/env python3
"""End-to-end latency of policy_node: Embedding published -> robot command received.

    python bench/policy_latency.py [--seconds 60] [--floor-seconds 20] [--rate 30]
                                   [--policy mlp|knn | --policy-path policy.pt]

Starts a real policy_node subprocess over DDS (loopback only, its own ROS_DOMAIN_ID) and publishes
embeddings at --rate for --seconds, and joint states of every action at 50 Hz (the node's first
command waits for a measured position of every commanded joint). The node answers every new
observation with a command and then an ActionChunk (stamped with the observation's stamp): its
subscription hands the observation to the inference thread, whose result comes back to the
executor through a guard condition; its control timer is set slower than the stream, so it adds
commands only after the stream ends. Both topics are
reliable and ordered, so the k-th command belongs to the k-th chunk, whose stamp names the
embedding: each latency is matched exactly. Then, for --floor-seconds, it streams the same way
(same messages, QoS and rate) to bench/transport_relay.py instead: a plain rclpy node in its own
process that, in its subscription callback, publishes a JointTrajectory and an ActionChunk of the
sizes policy_node sends, matched the same way. That is the transport floor, what any two ROS 2
Python processes pay for this exchange whatever the node computes; for small policies (predict in
a fraction of a millisecond) it is nearly all of the end-to-end latency. Prints latency p50/p99,
the floor p50/p99, the node's own time (latency p50 - floor p50), the ratio to the bare
`predict_action` of the same policy timed in this process in the same run (before and after the
streams), the ratio to predict + floor (1.0 for a node that adds nothing to predict_action beyond
the transport), plus embeddings that got no command.
Without --policy-path it fits a policy on random 30 fps embeddings (latency does not depend on
what a policy learned).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--seconds', type=float, default=60.0, help='stream length (default 60)')
    parser.add_argument('--floor-seconds', type=float, default=20.0,
                        help='length of the transport-floor stream to the relay (default 20)')
    parser.add_argument('--rate', type=float, default=30.0, help='embeddings per second (default 30)')
    parser.add_argument('--policy', choices=['knn', 'mlp'], default='mlp', help='policy to fit when no --policy-path')
    parser.add_argument('--policy-path', type=Path, help='benchmark this policy artifact instead')
    return parser.parse_args()


def fit_random_policy(name: str, path: Path) -> None:
    import torch

    from dynamo_policy.policies import Episode, PolicyMetadata, make_policy
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    episodes = [Episode(rng.normal(size=(60, 256)).astype(np.float32), rng.normal(size=(60, 8)).astype(np.float32))
                for _ in range(10)]
    metadata = PolicyMetadata(encoder_name='bench', encoder_checksum='benchbenchbench0', camera_names=['front'],
                              embedding_dim=256, action_names=[f'joint{i}' for i in range(1, 8)] + ['drive_joint'],
                              step_period=1 / 30)
    config = {'horizon': 16, 'context_length': 2, **({'epochs': 3} if name == 'mlp' else {})}
    policy = make_policy(name, config, metadata)
    policy.fit(episodes)
    policy.save(path)


def time_predict(policy, window, calls: int) -> np.ndarray:
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        policy.predict_action(window)
        seconds.append(time.perf_counter() - started)
    return np.asarray(seconds)


def policy_node_command(path: Path) -> list[str]:
    # Limits the random policy's actions never reach: latency does not depend on them.
    return ['policy_node', '--ros-args', '-p', f'policy:={path}', '-p', 'autostart:=true', '-p', 'control_rate:=2.0',
            '-p', 'observation_timeout:=5.0', '-p', "command_topics:=['bench_command']",
            '-p', 'joint_lower_limits:=[-100.0]', '-p', 'joint_upper_limits:=[100.0]', '-p', 'max_velocity:=[1000.0]']


def relay_command(policy, window, work: Path) -> list[str]:
    """transport_relay answering each embedding with the ActionChunk and JointTrajectory policy_node sends."""
    from builtin_interfaces.msg import Duration
    from rclpy.qos import qos_profile_sensor_data
    from rclpy.serialization import serialize_message
    from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

    from dynamo_msgs.msg import ActionChunk

    meta = policy.metadata
    chunk = policy.predict_action(window)
    step_ns = int(round(meta.step_period * 1e9))
    step_period = Duration(sec=step_ns // 10**9, nanosec=step_ns % 10**9)
    action_chunk = ActionChunk(policy_name=policy.name, encoder_checksum=meta.encoder_checksum,
                               action_names=list(meta.action_names), horizon=chunk.shape[0], action_dim=chunk.shape[1],
                               step_period=step_period, data=chunk.astype(np.float32).ravel().tolist())
    # One command topic carrying every action in the policy order, as policy_node_command configures it.
    command = JointTrajectory(joint_names=list(meta.action_names), points=[JointTrajectoryPoint(
        positions=chunk[0].astype(float).tolist(), time_from_start=step_period)])
    (work / 'action_chunk.cdr').write_bytes(serialize_message(action_chunk))
    (work / 'command.cdr').write_bytes(serialize_message(command))
    # Subscribed as policy_node subscribes to embeddings: qos_profile_sensor_data.
    return [sys.executable, str(Path(__file__).with_name('transport_relay.py')),
            '--input', 'dynamo_msgs/msg/Embedding', 'embedding',
            '--reliability', qos_profile_sensor_data.reliability.name.lower(),
            '--depth', str(qos_profile_sensor_data.depth),
            # In policy_node's order: the command, then the chunk.
            '--output', 'trajectory_msgs/msg/JointTrajectory', 'bench_command', str(work / 'command.cdr'),
            '--output', 'dynamo_msgs/msg/ActionChunk', 'action_chunk', str(work / 'action_chunk.cdr')]


def stream(args, command: list[str], name: str, seconds: float, policy, window, log_path: Path):
    """Run `command` (policy_node or the transport relay) and the embedding stream for `seconds`.

    Return the latencies in ms in chunk order, the embeddings published, the commands beyond the chunks
    and the /diagnostics received.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.time import Time
    from sensor_msgs.msg import JointState
    from trajectory_msgs.msg import JointTrajectory

    from dynamo_bringup.processes import NodeProcess
    from dynamo_msgs.msg import ActionChunk, Embedding

    meta = policy.metadata
    rng = np.random.default_rng(1)
    node = NodeProcess(command, name, dict(os.environ), log_path)
    rclpy.init()
    bench = rclpy.create_node('policy_latency_bench')
    executor = SingleThreadedExecutor()
    executor.add_node(bench)
    published: dict[int, float] = {}        # embedding stamp (ns) -> publish time
    chunk_stamps: list[int] = []
    command_times: list[float] = []
    bench.create_subscription(ActionChunk, 'action_chunk', lambda msg: chunk_stamps.append(
        Time.from_msg(msg.header.stamp).nanoseconds), 100)
    bench.create_subscription(JointTrajectory, 'bench_command',
                              lambda _msg: command_times.append(time.perf_counter()), 100)
    diagnostics: list = []   # kept only while streaming: after it, control ticks act on old observations
    streaming = [False]
    bench.create_subscription(DiagnosticArray, '/diagnostics',
                              lambda msg: streaming[0] and diagnostics.append(msg), 10)
    publisher = bench.create_publisher(Embedding, 'embedding', 10)
    # Every commanded joint (the first command starts from their measured positions) and the state.
    joint_names = list(dict.fromkeys([*meta.action_names, *meta.state_names]))
    positions = {name: 0.0 for name in meta.action_names}
    if meta.uses_state:
        positions.update(zip(meta.state_names, window['state'][-1].astype(float).tolist()))
    states = bench.create_publisher(JointState, 'joint_states', 10)
    bench.create_timer(0.02, lambda: states.publish(JointState(
        name=joint_names, position=[positions[name] for name in joint_names])))

    def publish():
        msg = Embedding()
        now = bench.get_clock().now()
        msg.header.stamp = now.to_msg()
        msg.encoder_name, msg.encoder_checksum = meta.encoder_name, meta.encoder_checksum
        msg.camera_names = list(meta.camera_names)
        msg.camera_dims = [meta.embedding_dim // len(meta.camera_names)] * len(meta.camera_names)
        msg.data = rng.normal(size=meta.embedding_dim).astype(np.float32).tolist()
        published[now.nanoseconds] = time.perf_counter()
        publisher.publish(msg)

    try:
        deadline = time.monotonic() + 60
        while (bench.count_subscribers('embedding') == 0 or bench.count_publishers('bench_command') == 0
               or bench.count_publishers('action_chunk') == 0):
            if node.returncode is not None or time.monotonic() > deadline:
                raise SystemExit(f'{name} did not come up; its log:\n{node.output()}')
            executor.spin_once(timeout_sec=0.1)
        settle_end = time.monotonic() + 1.0   # let both sides finish matching every endpoint
        while time.monotonic() < settle_end:
            executor.spin_once(timeout_sec=0.05)
        print(f'streaming {args.rate:g} Hz embeddings of policy {policy.name} to {name} for {seconds:g} s ...',
              flush=True)
        timer = bench.create_timer(1.0 / args.rate, publish)
        streaming[0] = True
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.01)
        timer.cancel()
        streaming[0] = False
        drain_end = time.monotonic() + 1.0
        while time.monotonic() < drain_end:
            executor.spin_once(timeout_sec=0.01)
    finally:
        exit_code = node.stop()
        if exit_code != 0:
            print(f'warning: {name} exited with {exit_code}; log: {log_path}', file=sys.stderr)
        executor.shutdown()
        bench.destroy_node()
        rclpy.try_shutdown()

    if len(command_times) < len(chunk_stamps):
        raise SystemExit(f'{name}: {len(chunk_stamps)} action chunks but only {len(command_times)} commands')
    latencies_ms = np.asarray([command_times[k] - published[stamp] for k, stamp in enumerate(chunk_stamps)]) * 1e3
    if not len(latencies_ms):
        raise SystemExit(f'no command received from {name}')
    return latencies_ms, len(published), len(command_times) - len(chunk_stamps), diagnostics


def main() -> None:
    args = parse_args()
    from dynamo_bringup.processes import DomainLease
    lease = DomainLease()
    os.environ.update(lease.environment())   # before rclpy: this run's own domain, loopback only
    import torch

    from dynamo_policy.policies import load_policy

    torch.set_num_threads(1)
    work = tempfile.TemporaryDirectory(prefix='policy_latency_')
    path = args.policy_path or Path(work.name) / 'policy.pt'
    if args.policy_path is None:
        fit_random_policy(args.policy, path)
    policy = load_policy(path)
    meta = policy.metadata
    rng = np.random.default_rng(1)
    window = {'embedding': rng.normal(size=(policy.context_length, meta.embedding_dim)).astype(np.float32)}
    if meta.uses_state:
        window['state'] = rng.normal(size=(policy.context_length, len(meta.state_names))).astype(np.float32)
    predict_before = time_predict(policy, window, 300)
    try:
        latencies_ms, published, extra_commands, diagnostics = stream(
            args, policy_node_command(path), 'policy_node', args.seconds, policy, window,
            Path(work.name) / 'policy_node.log')
        floor_ms, floor_published, _, _ = stream(
            args, relay_command(policy, window, Path(work.name)), 'transport_relay', args.floor_seconds, policy,
            window, Path(work.name) / 'transport_relay.log')
    finally:
        lease.release()
    predict_after = time_predict(policy, window, 300)

    predict_ms = np.concatenate([predict_before, predict_after]) * 1e3
    p50, p99 = np.percentile(latencies_ms, [50, 99])
    floor_p50, floor_p99 = np.percentile(floor_ms, [50, 99])
    b50, b99 = np.percentile(predict_ms, [50, 99])
    print(f'policy {policy.name} (context {policy.context_length}, horizon {policy.horizon}, '
          f'embedding {meta.embedding_dim}, actions {meta.action_dim})')
    print(f'embeddings published: {published}, with a command: {len(latencies_ms)}, '
          f'without (dropped by best-effort QoS or in flight): {published - len(latencies_ms)}; '
          f'control-timer commands after the stream: {extra_commands}')
    print(f'end-to-end latency (publish -> command received): p50 {p50:.2f} ms, p99 {p99:.2f} ms, '
          f'p99/p50 {p99 / p50:.2f}')
    print(f'transport floor (publish -> relayed command received; bench/transport_relay.py, same messages, QoS and '
          f'rate): p50 {floor_p50:.2f} ms, p99 {floor_p99:.2f} ms, p99/p50 {floor_p99 / floor_p50:.2f}; '
          f'{len(floor_ms)} of {floor_published} embeddings answered')
    print(f'bare predict_action: p50 {b50:.3f} ms, p99 {b99:.3f} ms')
    print(f'ratio end-to-end p50 / bare predict p50: {p50 / b50:.2f}; overhead p50 {p50 - b50:.2f} ms')
    print(f"policy_node's own time (end-to-end p50 - floor p50): {p50 - floor_p50:.2f} ms = predict p50 {b50:.3f} ms "
          f'+ {p50 - floor_p50 - b50:.2f} ms beyond it')
    print(f'ratio end-to-end p50 / (predict p50 + floor p50): {p50 / (b50 + floor_p50):.2f}  (1.0: the node adds '
          'nothing to predict_action beyond the transport any two ROS 2 Python processes pay)')
    node_values = {kv.key: kv.value for d in diagnostics[-1:] for s in d.status for kv in s.values}
    if node_values:
        print('policy_node /diagnostics (a 5 s window of the stream): observation stamp -> command published '
              f'p50 {node_values["observation_to_command_latency_p50_ms"]} ms, '
              f'p99 {node_values["observation_to_command_latency_p99_ms"]} ms; predict_action in the node '
              f'p50 {node_values["predict_latency_p50_ms"]} ms, p99 {node_values["predict_latency_p99_ms"]} ms')
    work.cleanup()


if __name__ == '__main__':
    main()
