"""Closed-loop evaluation in the simulator through the real encoder and policy nodes over DDS.

  evaluate --robot xarm --task open_door --encoder RUN/encoder.pt --policy POLICY/policy.pt \
           --episodes 20 --output EVAL_DIR

Starts the robot's node graph (dynamo_bringup.graph: the same nodes, parameters and remappings
`ros2 launch` runs) on a DDS domain of its own with the simulator as the clock, then per episode:
disables the policy, resets the simulator to a held-out seed, enables the policy, and waits for
the simulator's EpisodeResult. Writes episodes.csv, summary.json, success_rate.png and a contact
sheet of the first rollouts.

With --lockstep the simulator steps only once the policy has answered its last observations
(sim_node's lockstep mode), so an episode takes as long as the nodes compute, outcomes do not
depend on machine load, and --real-time-factor 0 drops the pacing; each episode starts after
sim_node's lockstep_timeout (the first step waits for it, the policy being enabled after the reset).

  evaluate --open-loop BAG [BAG ...] --robot xarm --encoder ... --policy ... --output EVAL_DIR

replays recorded demonstrations through the real encoder and policy nodes instead, no simulator,
and compares the policy's commands with the recorded ones (dynamo_bringup.open_loop_replay): the
check of a policy on a real robot's held-out demonstrations before it moves the robot.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from dynamo_bringup.evaluation import EpisodeOutcome, contact_sheet, format_table, summarise, write_results
from dynamo_bringup.graph import BringupArguments, load_robot_config, node_graph
from dynamo_bringup.graph_run import RESEND_AFTER_S, SERVICE_TIMEOUT_S, GraphRun

# Held-out initial states: demonstrations are recorded from seeds below this.
FIRST_EVALUATION_SEED = 100_000


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='evaluate', description=__doc__.split('\n')[0])
    parser.add_argument('--robot', choices=['xarm', 'allegro'], default='xarm')
    parser.add_argument('--task', action='append', help='task to evaluate in closed loop (repeatable)')
    parser.add_argument('--open-loop', nargs='+', type=Path, metavar='BAG',
                        help='instead of the simulator: replay these demonstration bags and compare the commands')
    parser.add_argument('--step-timeout', type=float, default=2.0,
                        help="open loop: seconds to wait for the policy's commands after each camera image")
    parser.add_argument('--encoder', required=True, type=Path, help='encoder artifact (encoder.pt)')
    parser.add_argument('--policy', required=True, type=Path, help='policy artifact (policy.pt)')
    parser.add_argument('--episodes', type=int, default=20, help='episodes per task')
    parser.add_argument('--first-seed', type=int, default=FIRST_EVALUATION_SEED)
    parser.add_argument('--output', required=True, type=Path)
    parser.add_argument('--real-time-factor', type=float, default=1.0,
                        help='simulation speed; the nodes must keep up with it on this machine '
                             '(with --lockstep a minimum pacing, 0 = none)')
    parser.add_argument('--lockstep', action='store_true',
                        help="the simulator waits for the policy's command at every step")
    parser.add_argument('--rollout-sheets', type=int, default=4, help='episodes shown in rollouts.png (0: none)')
    parser.add_argument('--startup-timeout', type=float, default=60.0, help='seconds for the nodes to come up')
    args = parser.parse_args(argv)
    if bool(args.task) == bool(args.open_loop):
        parser.error('give --task (closed loop in the simulator) or --open-loop BAG... (replayed demonstrations)')
    for path in (args.encoder, args.policy):
        if not path.is_file():
            parser.error(f'{path} does not exist')
    for bag in args.open_loop or []:
        if not bag.exists():
            parser.error(f'bag {bag} does not exist')
    if args.episodes < 1:
        parser.error('--episodes must be at least 1')
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.open_loop:
            from dynamo_bringup.open_loop_replay import run_open_loop
            return run_open_loop(args)
        return _closed_loop(args)
    except OSError as error:   # e.g. OUTPUT not writable, the disk full
        reason = str(error).partition('\n')[0]
        print(f'evaluate: failed: {type(error).__name__}: {reason}', file=sys.stderr, flush=True)
        return 1
    except KeyboardInterrupt:   # the graph's nodes are stopped by then
        print('evaluate: interrupted', file=sys.stderr, flush=True)
        return 130


def _closed_loop(args) -> int:
    specs = node_graph(args.robot, BringupArguments(
        sim=True, encoder=str(args.encoder.resolve()), policy=str(args.policy.resolve()), autostart=False,
        task=args.task[0], seed=args.first_seed, real_time_factor=args.real_time_factor, lockstep=args.lockstep))
    try:
        with GraphRun(specs, args.output / 'logs', 'dynamo_evaluator') as graph:
            outcomes, sheets, seconds_per_episode = _evaluate(args, graph)
    except (RuntimeError, TimeoutError) as error:   # the graph failed; a bug keeps its traceback
        print(f'evaluate: error: {error}\nevaluate: the node logs are in {args.output / "logs"}',
              file=sys.stderr, flush=True)
        return 1
    paths = write_results(args.output, outcomes, {
        'robot': args.robot, 'encoder': str(args.encoder), 'policy': str(args.policy),
        'real_time_factor': args.real_time_factor, 'lockstep': args.lockstep,
        'seconds_per_episode': seconds_per_episode,
        'title': f'{args.robot}: closed-loop success through encoder_node + policy_node'})
    if sheets:
        contact_sheet([frames for frames, _ in sheets], [label for _, label in sheets], args.output / 'rollouts.png')
        paths['rollouts'] = args.output / 'rollouts.png'
    print(f'{"lockstep" if args.lockstep else "free-running"} simulation, real_time_factor '
          f'{args.real_time_factor:g}: {seconds_per_episode:.2f} s per episode')
    print(format_table(summarise(outcomes)))
    for name, path in paths.items():
        print(f'{name}: {path}')
    return 0


def _evaluate(args, graph: GraphRun):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from std_srvs.srv import SetBool

    from dynamo_data.image_codec import decode_image
    from dynamo_msgs.msg import EpisodeResult
    from dynamo_msgs.srv import ResetEpisode
    from dynamo_util.service_client import ServiceClient

    node, executor = graph.node, graph.executor
    results: list = []
    frames: list[np.ndarray] = []
    recording = [False]
    node.create_subscription(EpisodeResult, '/sim/episode_result', results.append, 10)
    camera_topic = load_robot_config(args.robot)['encoder_node'].get('camera_topics', ['/camera/color/image_raw'])[0]

    def keep_frame(msg):
        if recording[0]:
            frames.append(decode_image(msg.encoding, msg.height, msg.width, msg.step, msg.is_bigendian, msg.data))

    node.create_subscription(Image, camera_topic, keep_frame, qos_profile_sensor_data)

    reset = ServiceClient(node, executor, ResetEpisode, '/sim/reset_episode', while_waiting=graph.check_alive,
                          resend_after_s=RESEND_AFTER_S)
    enable = ServiceClient(node, executor, SetBool, '/policy_node/enable', while_waiting=graph.check_alive,
                           resend_after_s=RESEND_AFTER_S)
    for client in (reset, enable):
        client.wait_until_available(args.startup_timeout)

    episode_timeout = _episode_timeout(args, load_robot_config(args.robot)['sim_node'])
    outcomes, sheets = [], []
    total = len(args.task) * args.episodes
    started = time.monotonic()
    with tqdm(total=total, desc='evaluating', unit='episode') as progress:
        for task in args.task:
            for i in range(args.episodes):
                seed = args.first_seed + i
                enable.call(SetBool.Request(data=False), SERVICE_TIMEOUT_S)
                answer = reset.call(ResetEpisode.Request(task=task, seed=seed), SERVICE_TIMEOUT_S)
                if not answer.success:
                    raise RuntimeError(f'simulator refused task {task!r}: {answer.message}')
                results.clear()
                frames.clear()
                recording[0] = len(sheets) < args.rollout_sheets
                enable.call(SetBool.Request(data=True), SERVICE_TIMEOUT_S)
                end = time.monotonic() + episode_timeout
                while not any(r.task == task and r.seed == seed and r.reason != 'reset' for r in results):
                    graph.check_alive()
                    if time.monotonic() > end:
                        raise RuntimeError(f'no EpisodeResult for {task} seed {seed} in {episode_timeout:.0f} s')
                    executor.spin_once(timeout_sec=0.05)
                result = next(r for r in results if r.task == task and r.seed == seed and r.reason != 'reset')
                outcomes.append(EpisodeOutcome(task, seed, bool(result.success), int(result.steps),
                                               float(result.duration), result.reason))
                if recording[0]:
                    label = f'{task} seed {seed}: {"success" if result.success else result.reason}'
                    sheets.append((list(frames), label))
                progress.set_postfix(success=f'{np.mean([o.success for o in outcomes]):.0%}')
                progress.update()
    seconds_per_episode = (time.monotonic() - started) / total
    enable.call(SetBool.Request(data=False), SERVICE_TIMEOUT_S)
    return outcomes, sheets, seconds_per_episode


def _episode_timeout(args, sim_config: dict) -> float:
    """Real seconds after which a missing EpisodeResult means the graph is stuck."""
    steps, rate = sim_config.get('max_episode_steps', 200), sim_config.get('rate', 10.0)
    if not args.lockstep:
        return 3.0 * steps / rate / max(args.real_time_factor, 0.05) + 30.0
    from dynamo_sim.sim_node import LOCKSTEP_TIMEOUT_S
    # A lockstep step comes at the latest lockstep_timeout after the last one, unless the pacing of
    # real_time_factor holds it longer; the episode's first step always waits the timeout out.
    pacing = 1.0 / (rate * args.real_time_factor) if args.real_time_factor else 0.0
    return (steps + 1) * max(sim_config.get('lockstep_timeout', LOCKSTEP_TIMEOUT_S), pacing) + 30.0


if __name__ == '__main__':
    sys.exit(main())
