"""The end-to-end demo on the simulated xArm kitchen, from nothing to a closed-loop success rate.

  demo [--output runs/demo] [--task open_door] [--demos 24] [--eval-episodes 10]

record demonstrations as rosbag2 bags -> convert them to a LeRobot dataset -> pretrain a DynaMo
encoder (CPU preset) -> train a policy (MLP by default) on its frozen embeddings -> evaluate it closed-loop in
the simulator through encoder_node and policy_node over DDS -> print a results table and the
plots. Every step is the console script a user would run, and a step whose output is complete
is reused on the next run; --fresh starts over.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import time
from pathlib import Path

from dynamo_bringup.steps import Step, StepFailed, convert_bags_step, record_demos_step
from dynamo_policy.policies import POLICIES
from dynamo_policy.policies.diffusion.configuration_diffusion import CPU_SMALL_PRESET

# train_policy --set values per policy that keep the demo CPU-feasible. Diffusion Policy's defaults
# are the reference's GPU sizes (a 256-512-1024 U-Net, 5000 epochs): the demo trains the documented
# CPU preset for a bounded number of epochs instead.
DEMO_POLICY_SETTINGS = {'diffusion': {**CPU_SMALL_PRESET, 'epochs': 300}}


def _set_arguments(policy: str) -> list[str]:
    """Return train_policy's --set options for the demo's settings of `policy` (JSON is YAML)."""
    return [argument for key, value in DEMO_POLICY_SETTINGS.get(policy, {}).items()
            for argument in ('--set', f'{key}={json.dumps(value)}')]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='demo', description=__doc__.split('\n')[0])
    parser.add_argument('--output', type=Path, default=Path('runs/demo'))
    parser.add_argument('--task', default='open_door', help='xArm kitchen task')
    parser.add_argument('--demos', type=int, default=24, help='demonstration episodes to record')
    parser.add_argument('--eval-episodes', type=int, default=10, help='closed-loop evaluation episodes')
    parser.add_argument('--policy', choices=sorted(POLICIES), default='mlp',
                        help='policy head to train; diffusion trains its CPU preset '
                             f'({", ".join(f"{k}={v}" for k, v in DEMO_POLICY_SETTINGS["diffusion"].items())}) '
                             'so that the demo stays CPU-feasible')
    parser.add_argument('--pretrain-config', default='cpu_small', help='pretraining preset or YAML')
    parser.add_argument('--fresh', action='store_true', help='delete earlier results and start over')
    return parser.parse_args(argv)


def demo_steps(args: argparse.Namespace) -> list[Step]:
    out = args.output
    bags, dataset, pretrain = out / 'bags', out / 'dataset', out / 'pretrain'
    policy, evaluation = out / f'policy_{args.policy}', out / 'evaluation'
    return [
        record_demos_step('record demonstrations', args.task, args.demos, bags),
        convert_bags_step('convert bags', [bags], 'xarm_kitchen_sim.yaml', dataset),
        # --resume continues a pretraining that was interrupted, and starts one otherwise
        Step('pretrain DynaMo encoder', pretrain / 'encoder.pt', [
            'pretrain', '--dataset', str(dataset), '--output', str(pretrain), '--config', args.pretrain_config,
            '--resume']),
        Step(f'train {args.policy} policy', policy / 'policy.pt', [
            'train_policy', '--dataset', str(dataset), '--encoder', str(pretrain / 'encoder.pt'),
            '--policy', args.policy, *_set_arguments(args.policy), '--output', str(policy)]),
        Step('evaluate closed loop', evaluation / 'summary.json', [
            'evaluate', '--robot', 'xarm', '--task', args.task, '--encoder', str(pretrain / 'encoder.pt'),
            '--policy', str(policy / 'policy.pt'), '--episodes', str(args.eval_episodes),
            # lockstep: the success rate must not depend on how loaded this machine is
            '--lockstep', '--output', str(evaluation)]),
    ]


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.fresh and args.output.exists():
        shutil.rmtree(args.output)
    args.output.mkdir(parents=True, exist_ok=True)
    steps = demo_steps(args)
    timings = {}
    for number, step in enumerate(steps, 1):
        banner = f'[{number}/{len(steps)}] {step.name}'
        if step.done:
            print(f'{banner}: done earlier ({step.marker}), reused', flush=True)
            continue
        start = time.monotonic()
        try:
            step.run(announce=lambda command: print(f'{banner}: {" ".join(command)}', flush=True))
        except StepFailed as failure:
            print(f'demo: {failure}; fix the cause and rerun `make demo` to continue from this step', file=sys.stderr)
            # A step stopped by the Ctrl-C that reached its process group is an interruption; any other
            # failure of a step is the demo's runtime failure (a step's usage error is not the user's).
            return 130 if failure.returncode in (130, -signal.SIGINT) else 1
        except KeyboardInterrupt:   # the step's command got the Ctrl-C too and has stopped
            print(f'demo: interrupted during "{step.name}"; rerun `make demo` to continue from this step',
                  file=sys.stderr)
            return 130
        timings[step.name] = time.monotonic() - start
    _print_results(args, steps, timings)
    return 0


def _print_results(args, steps: list[Step], timings: dict[str, float]) -> None:
    summary = json.loads(steps[-1].marker.read_text())
    print('\n=== dynamo-ros demo: simulated xArm kitchen ===')
    print(f'{"task":<16} {"policy":<6} {"episodes":>8} {"success rate":>14}')
    for task in summary['tasks']:
        print(f'{task["task"]:<16} {args.policy:<6} {task["episodes"]:>8} '
              f'{task["success_rate"]:>8.0%} ± {task["standard_error"]:.0%}')
    if timings:
        print('\nstep times: ' + ', '.join(f'{name} {seconds:.0f} s' for name, seconds in timings.items()))
    print('\nplots:')
    for png in sorted(args.output.rglob('*.png')):
        print(f'  {png}')


if __name__ == '__main__':
    sys.exit(main())
