"""evaluate --open-loop: replay demonstration bags through the real encoder and policy nodes, no simulator.

  evaluate --open-loop BAG [BAG ...] --robot xarm --encoder RUN/encoder.pt --policy POLICY/policy.pt \
           --output EVAL_DIR

Starts the robot's real-robot node graph (encoder_node and policy_node with the parameters
`ros2 launch ... sim:=false` gives them) on sim time, on a DDS domain of its own. Per bag: enables
the policy, then replays the bag's camera images and joint states tick by tick, /clock first (the
bag's time, so the policy's watchdog judges the replayed stamps); after each camera image it waits
for the policy's command on every command topic (or --step-timeout), so the replay runs as fast as
the nodes answer and each command is matched with the tick it answers; then disables the policy.
Compares the commands with the recorded ones (dynamo_bringup.open_loop) and writes open_loop.csv,
open_loop.json and open_loop.png.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
import time
from pathlib import Path

from dynamo_bringup.graph import BringupArguments, NodeSpec, node_graph
from dynamo_bringup.graph_run import RESEND_AFTER_S, SERVICE_TIMEOUT_S, GraphRun
from dynamo_bringup.open_loop import (
    EpisodeErrors,
    check_topics,
    compare_commands,
    format_error_table,
    read_demonstration,
    write_open_loop_results,
)
from dynamo_data.conversion.bag_reader import BagError

JOINT_STATES = '/joint_states'
REPLAY_START_NS = 1_000_000_000     # the first demonstration's first tick
EPISODE_GAP_NS = 1_000_000_000      # replay time between demonstrations; the policy is enabled in it
COMMAND_TYPES = ('joint_trajectory', 'float64_multi_array')


def open_loop_graph(robot: str, encoder: Path, policy: Path) -> list[NodeSpec]:
    """Return the real robot's encoder_node and policy_node, on the replay's sim time, the policy disabled."""
    specs = node_graph(robot, BringupArguments(sim=False, encoder=str(encoder.resolve()),
                                               policy=str(policy.resolve()), autostart=False))
    return [dataclasses.replace(spec, parameters={**spec.parameters, 'use_sim_time': True}) for spec in specs]


def run_open_loop(args) -> int:
    """Run the open-loop evaluation of `args` (evaluate's parsed arguments); return the exit code."""
    encoder_spec, policy_spec = open_loop_graph(args.robot, args.encoder, args.policy)
    if policy_spec.parameters['command_type'] not in COMMAND_TYPES:
        print(f'evaluate: error: --open-loop compares positions: policy_node command_type '
              f'{policy_spec.parameters["command_type"]!r} is not one of {COMMAND_TYPES}', file=sys.stderr)
        return 2
    topics = [encoder_spec.parameters['camera_topics'][0], JOINT_STATES, *policy_spec.parameters['command_topics']]
    try:
        for bag in args.open_loop:
            check_topics(bag, topics)
    except BagError as error:
        print(f'evaluate: error: {error}', file=sys.stderr)
        return 1
    try:
        with GraphRun([encoder_spec, policy_spec], args.output / 'logs', 'dynamo_open_loop') as graph:
            episodes = _replay(args, graph, encoder_spec, policy_spec)
    except BagError as error:
        print(f'evaluate: error: {error}', file=sys.stderr, flush=True)
        return 1
    except (RuntimeError, TimeoutError) as error:   # the graph failed; a bug keeps its traceback
        print(f'evaluate: error: {error}\nevaluate: the node logs are in {args.output / "logs"}',
              file=sys.stderr, flush=True)
        return 1
    paths = write_open_loop_results(args.output, episodes, {
        'robot': args.robot, 'encoder': str(args.encoder), 'policy': str(args.policy),
        'bags': [str(bag) for bag in args.open_loop],
        'title': f'{args.robot}: open loop through encoder_node + policy_node'})
    print(format_error_table(episodes))
    for name, path in paths.items():
        print(f'{name}: {path}')
    return 0


def _message_class(type_name: str):
    package, kind, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.{kind}'), name)


def _replay(args, graph: GraphRun, encoder_spec: NodeSpec, policy_spec: NodeSpec) -> list[EpisodeErrors]:
    from builtin_interfaces.msg import Time
    from rosgraph_msgs.msg import Clock
    from std_msgs.msg import Float64MultiArray
    from std_srvs.srv import SetBool
    from trajectory_msgs.msg import JointTrajectory

    from dynamo_util.service_client import ServiceClient

    node, executor = graph.node, graph.executor
    camera_topic = encoder_spec.parameters['camera_topics'][0]
    parameters = policy_spec.parameters
    command_joints = {topic: joints.split(',')
                      for topic, joints in zip(parameters['command_topics'], parameters['command_joints'], strict=True)}
    clock_pub = node.create_publisher(Clock, '/clock', 10)
    publishers: dict = {}
    answered: set[str] = set()
    commands: list[tuple[int, str, list[float]]] = []
    replay = {'time_ns': 0, 'collecting': False}

    def on_command(topic: str, msg) -> None:
        if not replay['collecting']:
            return
        if isinstance(msg, JointTrajectory):
            by_name = dict(zip(msg.joint_names, msg.points[0].positions)) if msg.points else {}
            positions = [by_name.get(joint, float('nan')) for joint in command_joints[topic]]
        else:
            positions = list(msg.data)
        commands.append((replay['time_ns'], topic, positions))
        answered.add(topic)

    command_class = {'joint_trajectory': JointTrajectory,
                     'float64_multi_array': Float64MultiArray}[parameters['command_type']]
    for topic in command_joints:
        node.create_subscription(command_class, topic, lambda msg, t=topic: on_command(t, msg), 10)

    def spin_until(condition, timeout_s: float, what: str | None) -> bool:
        deadline = time.monotonic() + timeout_s
        while not condition():
            graph.check_alive()
            if time.monotonic() > deadline:
                if what is None:
                    return False
                raise TimeoutError(f'{what} not within {timeout_s:g} s')
            executor.spin_once(timeout_sec=0.01)
        return True

    def publish_clock(time_ns: int) -> None:
        clock_pub.publish(Clock(clock=Time(sec=time_ns // 1_000_000_000, nanosec=time_ns % 1_000_000_000)))

    enable = ServiceClient(node, executor, SetBool, '/policy_node/enable', while_waiting=graph.check_alive,
                           resend_after_s=RESEND_AFTER_S)
    enable.wait_until_available(args.startup_timeout)
    episodes, start_ns = [], REPLAY_START_NS
    for bag in args.open_loop:
        demonstration = read_demonstration(bag, [camera_topic, JOINT_STATES], command_joints, start_ns)
        for topic, type_name in demonstration.types.items():
            if topic not in publishers:
                publishers[topic] = node.create_publisher(_message_class(type_name), topic, 10)
        # the encoder subscribes once it has loaded (activated); the policy once it has
        spin_until(lambda: all(pub.get_subscription_count() for pub in publishers.values())
                   and all(node.count_publishers(topic) for topic in command_joints), args.startup_timeout,
                   f'the subscriptions of encoder_node ({camera_topic}) and policy_node ({JOINT_STATES}) and its '
                   'command publishers')
        publish_clock(demonstration.ticks[0].time_ns - EPISODE_GAP_NS // 2)
        enable.call(SetBool.Request(data=True), SERVICE_TIMEOUT_S)
        commands.clear()
        replay['collecting'] = True
        for tick in demonstration.ticks:
            replay['time_ns'] = tick.time_ns
            answered.clear()
            publish_clock(tick.time_ns)
            for topic, data in tick.messages:
                publishers[topic].publish(data)
            if any(topic == camera_topic for topic, _ in tick.messages):   # a new observation: the policy answers
                spin_until(lambda: answered >= command_joints.keys(), args.step_timeout, None)
        replay['collecting'] = False
        enable.call(SetBool.Request(data=False), SERVICE_TIMEOUT_S)
        if not commands:
            raise RuntimeError(f'policy_node sent no command during {bag}; see its log')
        episodes.append(compare_commands(demonstration, command_joints, list(commands)))
        start_ns = demonstration.end_ns + EPISODE_GAP_NS
    return episodes
