"""The paper's claim on our tasks: DynaMo vs random init vs its ablations vs BYOL, in closed loop.

  python bench/claim.py [--preset cpu|gpu|PRESET.yaml] [--work runs/claim_cpu] [--results bench/results] [--jobs 2]

For each robot of the preset: record scripted-expert demonstrations per task (rosbag2 bags) ->
convert them (one dataset per task for the policies, one per robot for pretraining) -> per
encoder variant and seed, pretrain an encoder with the same budget (or take the seeded random
init) -> linear-probe R^2 of the task's object state on its held-out episodes, and the
embeddings' effective rank (collapse) -> train kNN and MLP policies on the frozen embeddings ->
evaluate every policy in closed loop through sim_node, encoder_node and policy_node over DDS
(`evaluate --lockstep`) from held-out initial states.
Every step is the console script a user runs; a finished step is reused, so rerunning resumes.

Writes bench/results/claim_<preset>_<date>/: results.md (the table, the verdicts and each
encoder's pretraining end state), results.csv, success_rate.png, probe_r2.png, preset.yaml (the
exact preset), pretrain_configs/ (the exact pretraining configs), command.txt and machine.txt.

Statistics: a seed's success rate is over its evaluation episodes; the table gives the mean over
seeds +- the standard error across seeds (the seed noise the claim must beat). "DynaMo beats X"
means the difference of means exceeds twice its standard error; this rule is fixed here, before
any result, and applied to every task and policy alike.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import datetime
import json
import math
import os
import platform
import re
import shlex
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import yaml
from tqdm import tqdm

from dynamo_bringup.steps import Step, convert_bags_step, record_demos_step

PRESETS_DIR = Path(__file__).resolve().parent / 'claim_presets'
REFERENCE = 'dynamo'
BASELINES = ('random_init', 'byol')
PHASES = ('record', 'convert', 'pretrain', 'probe', 'train', 'evaluate')


def load_preset(name_or_path: str) -> tuple[Path, dict]:
    path = Path(name_or_path)
    if not path.suffix:
        path = PRESETS_DIR / f'{name_or_path}.yaml'
    if not path.is_file():
        raise SystemExit(f'claim: preset {name_or_path!r} not found ({path}); presets: '
                         f'{sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))}')
    with open(path) as f:
        preset = yaml.safe_load(f)
    for key in ('seeds', 'demos_per_task', 'eval_episodes', 'policies', 'robots', 'pretrain', 'encoders'):
        if key not in preset:
            raise SystemExit(f'claim: {path}: missing key {key!r}')
    for robot, spec in preset['robots'].items():
        missing = [t for t in spec['tasks'] if t not in spec.get('object_state', {})]
        if missing:
            raise SystemExit(f'claim: {path}: robots.{robot}.object_state needs the probed dimensions of {missing}')
    tasks = [t for spec in preset['robots'].values() for t in spec['tasks']]
    for policy, only in preset.get('policy_tasks', {}).items():
        if policy not in preset['policies'] or not set(only) <= set(tasks):
            raise SystemExit(f'claim: {path}: policy_tasks.{policy} must name one of policies and some of {tasks}')
    if REFERENCE not in preset['encoders'] or any(b not in preset['encoders'] for b in BASELINES):
        raise SystemExit(f'claim: {path}: encoders must include {REFERENCE} and {", ".join(BASELINES)}')
    return path, preset


def pretrain_config(preset: dict, variant: str) -> dict:
    """Return the full pretrain YAML of an encoder variant: the shared base with the variant's keys on top."""
    config = json.loads(json.dumps(preset['pretrain']))
    for section, values in (preset['encoders'][variant] or {}).items():
        if section == 'objective':
            config['objective'] = values
        else:
            config.setdefault(section, {}).update(values)
    return config


def policy_settings(preset: dict, policy: str, seed: int) -> list[str]:
    """Return train_policy's --set arguments for one policy: the preset's settings, and the seed where it has one."""
    from dynamo_policy.policies import POLICIES

    settings = dict(preset.get('policy_settings', {}).get(policy) or {})
    if 'seed' in {f.name for f in dataclasses.fields(POLICIES[policy].config_class)}:
        settings['seed'] = seed
    return [argument for key, value in settings.items() for argument in ('--set', f'{key}={json.dumps(value)}')]


def task_policies(preset: dict, task: str) -> list[str]:
    """Return the policies trained on a task: every one of the preset's, unless policy_tasks names its tasks."""
    only = preset.get('policy_tasks', {})
    return [p for p in preset['policies'] if p not in only or task in only[p]]


def plan(preset: dict, work: Path, threads: int) -> dict[str, list[Step]]:
    """Return the steps, in phases: each phase needs only the outputs of earlier phases."""
    record, convert, pretrain, probe = [], [], [], []
    # Per policy, so that the preset's first policy's steps run first: its table is complete while a
    # slower head still runs.
    train = {policy: [] for policy in preset['policies']}
    evaluate = {policy: [] for policy in preset['policies']}
    seeds = preset['seeds']
    for robot, spec in preset['robots'].items():
        tasks = spec['tasks']
        for task in tasks:
            bags = work / 'bags' / task
            record.append(record_demos_step(f'record {task}', task, preset['demos_per_task'], bags))
            convert.append(convert_bags_step(f'convert {task}', [bags], spec['converter_config'],
                                             work / 'datasets' / task))
        robot_dataset = work / 'datasets' / f'robot_{robot}'
        convert.append(convert_bags_step(f'convert all {robot} tasks', [work / 'bags' / t for t in tasks],
                                         spec['converter_config'], robot_dataset))
        for variant in preset['encoders']:
            for seed in seeds:
                run = work / 'encoders' / robot / variant / f'seed{seed}'
                encoder = run / 'encoder.pt'
                if preset['encoders'][variant] is None:
                    pretrain.append(Step(f'random init {robot} seed {seed}', encoder,
                                         call=_random_init(preset, robot_dataset, encoder, seed)))
                else:
                    config_path = work / 'pretrain_configs' / f'{variant}.yaml'
                    pretrain.append(Step(f'pretrain {variant} {robot} seed {seed}', encoder, [
                        'pretrain', '--dataset', str(robot_dataset), '--output', str(run), '--config', str(config_path),
                        '--set', f'train.seed={seed}', '--threads', str(threads), '--no-progress', '--resume']))
                for task in tasks:
                    dataset = work / 'datasets' / task
                    probe.append(Step(f'probe {variant} seed {seed} on {task}',
                                      work / 'probes' / task / variant / f'seed{seed}' / 'probe.json', [
                                          'probe', '--dataset', str(dataset), '--encoder', str(encoder),
                                          '--output', str(work / 'probes' / task / variant / f'seed{seed}'),
                                          '--threads', str(threads)]))
                    for policy in task_policies(preset, task):
                        policy_dir = work / 'policies' / task / variant / f'seed{seed}' / policy
                        train[policy].append(Step(
                            f'train {policy} {variant} seed {seed} on {task}', policy_dir / 'policy.pt', [
                            'train_policy', '--dataset', str(dataset), '--encoder', str(encoder), '--policy', policy,
                            '--output', str(policy_dir), '--threads', str(threads), '--quiet']
                            + policy_settings(preset, policy, seed)))
                        eval_dir = work / 'evaluations' / task / variant / f'seed{seed}' / policy
                        evaluate[policy].append(Step(
                            f'evaluate {policy} {variant} seed {seed} on {task}', eval_dir / 'summary.json', [
                                'evaluate', '--robot', robot, '--task', task, '--encoder', str(encoder),
                                '--policy', str(policy_dir / 'policy.pt'),
                                '--episodes', str(preset['eval_episodes']), '--output', str(eval_dir),
                                '--lockstep', '--real-time-factor', '0', '--rollout-sheets', '0']))
    return dict(zip(PHASES, [record, convert, pretrain, probe,
                             [step for steps in train.values() for step in steps],
                             [step for steps in evaluate.values() for step in steps]]))


def _random_init(preset: dict, robot_dataset: Path, encoder: Path, seed: int) -> Callable[[], None]:
    def make() -> None:
        from dynamo_data import LeRobotDataset
        from dynamo_encoder.artifact import EncoderArtifact
        settings = preset['pretrain']['encoder']
        cameras = LeRobotDataset(robot_dataset).camera_names
        encoder.parent.mkdir(parents=True, exist_ok=True)
        EncoderArtifact.random_init(settings['arch'], cameras, settings['input_size'], seed).save(encoder)
    return make


def run_phase(steps: list[Step], jobs: int, logs: Path, progress: tqdm) -> None:
    todo = [s for s in steps if not s.done]
    progress.update(len(steps) - len(todo))

    def run(step: Step) -> Step:
        step.run(log=logs / (step.name.replace(' ', '_') + '.log'))
        return step

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for step in pool.map(run, todo):
            progress.set_postfix_str(step.name[:48])
            progress.update()


# --- results ------------------------------------------------------------------------------------

def mean_and_standard_error(values: list[float]) -> tuple[float, float]:
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()), float('nan')
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values)))


def collect(preset: dict, work: Path) -> list[dict]:
    """One row per task x encoder x policy: per-seed success rates and probe R^2, with mean +- SE."""
    rows = []
    for robot, spec in preset['robots'].items():
        for task in spec['tasks']:
            for variant in preset['encoders']:
                reports = [json.loads((work / 'probes' / task / variant / f'seed{s}' / 'probe.json').read_text())
                           ['encoder'] for s in preset['seeds']]
                probed = [[r['r2_per_dimension']['observation.environment_state'][name]
                           for name in spec['object_state'][task]]
                          for r in reports]   # None: the dimension did not vary in the held-out episodes
                probes = [float(np.nanmean([np.nan if v is None else v for v in values])) for values in probed]
                ranks = [r['embeddings']['effective_rank'] for r in reports]
                for policy in task_policies(preset, task):
                    rates, steps, late_steps = [], 0, 0
                    for seed in preset['seeds']:
                        evaluation = work / 'evaluations' / task / variant / f'seed{seed}' / policy
                        summary = json.loads((evaluation / 'summary.json').read_text())
                        (entry,) = [t for t in summary['tasks'] if t['task'] == task]
                        rates.append(entry['success_rate'])
                        episode_steps, episode_late = late_lockstep_steps(evaluation / 'logs' / 'sim_node.log',
                                                                          entry['episodes'])
                        steps, late_steps = steps + episode_steps, late_steps + episode_late
                    success, success_se = mean_and_standard_error(rates)
                    r2, r2_se = mean_and_standard_error(probes)
                    rank, rank_se = mean_and_standard_error(ranks)
                    rows.append({'robot': robot, 'task': task, 'encoder': variant, 'policy': policy,
                                 'seeds': len(rates), 'episodes_per_seed': preset['eval_episodes'],
                                 'success_mean': success, 'success_se': success_se,
                                 'success_per_seed': rates, 'probe_r2_mean': r2, 'probe_r2_se': r2_se,
                                 'effective_rank_mean': rank, 'effective_rank_se': rank_se,
                                 'late_step_fraction': late_steps / max(steps, 1)})
    return rows


def pretraining_end_state(preset: dict, work: Path) -> list[dict]:
    """Return the end state of pretraining per robot and pretrained encoder variant, averaged over seeds.

    From each seed's metrics.csv: the optimiser steps, the embedding spread at the start and over
    the last 10 % of the steps (collapse drives it to 0), DynaMo's covariance term there (what the
    regulariser still has to push) and the last val loss.
    """
    rows = []
    for robot in preset['robots']:
        for variant, spec in preset['encoders'].items():
            if spec is None:
                continue
            seeds = []
            for seed in preset['seeds']:
                with open(work / 'encoders' / robot / variant / f'seed{seed}' / 'metrics.csv') as f:
                    metrics = list(csv.DictReader(f))
                tail = metrics[-max(len(metrics) // 10, 1):]
                val = [float(m['val_loss']) for m in metrics if m.get('val_loss')]
                seeds.append({'steps': len(metrics), 'spread_start': float(metrics[0]['spread']),
                              'spread_end': _column_mean(tail, 'spread'),
                              'covariance_end': _column_mean(tail, 'covariance'),
                              'val_loss_end': val[-1] if val else float('nan')})
            rows.append({'robot': robot, 'encoder': variant,
                         **{key: float(np.mean([s[key] for s in seeds])) for key in seeds[0]}})
    return rows


def _column_mean(metrics: list[dict], column: str) -> float:
    """Return the mean of a metrics.csv column over `metrics`; NaN when the objective does not log it."""
    return float(np.mean([float(m[column]) for m in metrics])) if column in metrics[0] else float('nan')


def late_lockstep_steps(sim_log: Path, episodes: int) -> tuple[int, int]:
    """Count the steps and the late steps of the last `episodes` episodes of a lockstep evaluation.

    Return (steps, steps the simulator took on lockstep_timeout without the policy's command), not
    counting each episode's first step (which waits by design: the policy is enabled after the
    reset). Late steps mean the nodes fell behind, e.g. on a loaded machine: the policy then acted
    one step late.
    """
    ends = re.findall(r'episode (?:success|timeout): .* after (\d+) steps \((\d+) waited out lockstep_timeout\)',
                      sim_log.read_text())[-episodes:]
    return sum(int(n) for n, _ in ends), sum(max(int(k) - 1, 0) for _, k in ends)


def verdicts(rows: list[dict]) -> list[str]:
    """Judge, per task and policy, whether DynaMo beats each baseline by more than 2 standard errors."""
    lines = []
    by_key = {(r['task'], r['policy'], r['encoder']): r for r in rows}
    for task, policy in dict.fromkeys((r['task'], r['policy']) for r in rows):
        ours = by_key[(task, policy, REFERENCE)]
        parts = []
        for baseline in BASELINES:
            other = by_key[(task, policy, baseline)]
            difference = ours['success_mean'] - other['success_mean']
            se = math.sqrt(ours['success_se'] ** 2 + other['success_se'] ** 2)
            if difference > 2 * se:
                word = 'beats'
            elif difference < -2 * se:
                word = 'is beaten by'
            else:
                word = 'does not beat (within seed noise)'
            parts.append(f'{word} {baseline} ({difference:+.0%} ± {se:.0%})')
        lines.append(f'- {task}, {policy}: DynaMo ' + '; '.join(parts))
    return lines


def write_results(rows: list[dict], preset_path: Path, preset: dict, work: Path, out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / 'results.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, 'success_per_seed': ' '.join(f'{r:.2f}' for r in row['success_per_seed'])})
    lines = [f'# DynaMo vs random init vs ablations vs BYOL, closed loop ({preset_path.stem} preset)', '',
             f'{datetime.date.today().isoformat()} on {_machine()["summary"]}. Command: `{command}`', '',
             f'Success rate: mean over {len(preset["seeds"])} seeds ± standard error across seeds; '
             f'{preset["eval_episodes"]} closed-loop episodes per seed from held-out initial states, through '
             'sim_node + encoder_node + policy_node over DDS (lockstep). Probe: linear-probe R² of the object '
             'state the task moves (' + '; '.join(f'{t}: {", ".join(names)}' for spec in preset['robots'].values()
                                                  for t, names in spec['object_state'].items()) + ') on held-out '
             'demonstration episodes. Rank: effective '
             'rank (RankMe) of the embeddings of every frame of the task, a collapse check (a random init '
             'is the reference; complete collapse is 1).', '',
             "Late steps: steps the lockstep simulator took without the policy's command because the nodes "
             'fell behind (a loaded machine); the policy then acted one step late.', '',
             '| task | policy | encoder | success rate | per seed | probe R² | rank | late steps |',
             '|---|---|---|---|---|---|---|---|']
    for r in rows:
        lines.append(f'| {r["task"]} | {r["policy"]} | {r["encoder"]} '
                     f'| {r["success_mean"]:.0%} ± {r["success_se"]:.0%} '
                     f'| {" ".join(f"{x:.2f}" for x in r["success_per_seed"])} '
                     f'| {r["probe_r2_mean"]:.2f} ± {r["probe_r2_se"]:.2f} '
                     f'| {r["effective_rank_mean"]:.1f} ± {r["effective_rank_se"]:.1f} '
                     f'| {r["late_step_fraction"]:.1%} |')
    lines += ['', '## Verdicts (difference of means ± its standard error; "beats" = more than 2 SE)', '',
              *verdicts(rows), '',
              "## Pretraining end state (mean over seeds, from each run's metrics.csv)", '',
              'Spread: per-dimension std of the L2-normalised embeddings x sqrt(dim), over the last 10% of the '
              'steps (about 1 when spread over the sphere, 0 at collapse); comparable within an objective '
              '(a DynaMo batch holds windows of consecutive, similar frames, a BYOL batch independent ones). '
              "Covariance: DynaMo's off-diagonal covariance term there. Val loss: each objective's own loss.", '',
              '| robot | encoder | steps | spread start → end | covariance term | val loss |',
              '|---|---|---|---|---|---|']
    for r in pretraining_end_state(preset, work):
        covariance = '–' if math.isnan(r['covariance_end']) else f'{r["covariance_end"]:.4f}'
        lines.append(f'| {r["robot"]} | {r["encoder"]} | {r["steps"]:.0f} '
                     f'| {r["spread_start"]:.2f} → {r["spread_end"]:.2f} | {covariance} | {r["val_loss_end"]:.4f} |')
    lines.append('')
    (out / 'results.md').write_text('\n'.join(lines))
    _plot(rows, preset, out)
    shutil.copyfile(preset_path, out / 'preset.yaml')
    shutil.copytree(work / 'pretrain_configs', out / 'pretrain_configs', dirs_exist_ok=True)
    (out / 'command.txt').write_text(command + '\n')
    (out / 'machine.txt').write_text(yaml.safe_dump(_machine(), sort_keys=False))


def _plot(rows: list[dict], preset: dict, out: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    encoders = list(preset['encoders'])
    groups = list(dict.fromkeys((r['task'], r['policy']) for r in rows))
    by_key = {(r['task'], r['policy'], r['encoder']): r for r in rows}
    fig, ax = plt.subplots(figsize=(1.6 * len(groups) + 2, 3.6))
    width = 0.8 / len(encoders)
    x = np.arange(len(groups))
    for i, encoder in enumerate(encoders):
        values = [by_key[(t, p, encoder)] for t, p in groups]
        ax.bar(x + (i - (len(encoders) - 1) / 2) * width, [v['success_mean'] for v in values], width,
               yerr=[v['success_se'] for v in values], capsize=2, label=encoder)
    ax.set_xticks(x, [f'{t}\n{p}' for t, p in groups], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(f'success rate (mean ± SE, {len(preset["seeds"])} seeds)')
    ax.legend(fontsize=7, ncol=len(encoders), loc='upper center', bbox_to_anchor=(0.5, 1.15))
    fig.tight_layout()
    fig.savefig(out / 'success_rate.png', dpi=110)
    plt.close(fig)

    tasks = list(dict.fromkeys(r['task'] for r in rows))
    fig, ax = plt.subplots(figsize=(1.6 * len(tasks) + 2, 3.2))
    x = np.arange(len(tasks))
    for i, encoder in enumerate(encoders):
        values = [next(r for r in rows if r['task'] == t and r['encoder'] == encoder) for t in tasks]   # any policy
        ax.bar(x + (i - (len(encoders) - 1) / 2) * width, [v['probe_r2_mean'] for v in values], width,
               yerr=[v['probe_r2_se'] for v in values], capsize=2, label=encoder)
    ax.set_xticks(x, tasks, fontsize=8)
    ax.set_ylabel("linear-probe R² of the task's object state")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / 'probe_r2.png', dpi=110)
    plt.close(fig)


def _machine() -> dict:
    import torch
    info = {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
            'cpu_cores': os.cpu_count(), 'python': platform.python_version(), 'torch': str(torch.__version__),
            'cuda': torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}
    info['summary'] = f'{info["cpu_cores"]} CPU cores' + (f', {info["cuda"]}' if info['cuda'] else ', no GPU')
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--preset', default='cpu', help='cpu (reduced, 2 CPU cores), gpu (full), or a YAML path')
    parser.add_argument('--work', type=Path, help='where datasets, encoders, policies and evaluations go '
                        '(default runs/claim_<preset>); rerun with the same --work to resume')
    parser.add_argument('--results', type=Path, default=Path(__file__).resolve().parent / 'results')
    parser.add_argument('--jobs', type=int, default=2, help='steps run at once within a phase')
    parser.add_argument('--threads', type=int, default=1, help='torch threads per step')
    parser.add_argument('--policies', nargs='+', metavar='POLICY',
                        help="only these of the preset's policies (the table has their rows; "
                             'rerun without it to add the others)')
    parser.add_argument('--until', choices=PHASES, default=PHASES[-1],
                        help='stop after this phase (the table needs every phase)')
    args = parser.parse_args(argv)
    preset_path, preset = load_preset(args.preset)
    if args.policies:
        unknown = sorted(set(args.policies) - set(preset['policies']))
        if unknown:
            parser.error(f'--policies {" ".join(unknown)}: not among the preset\'s policies {preset["policies"]}')
        preset['policies'] = [p for p in preset['policies'] if p in args.policies]
    work = args.work or Path('runs') / f'claim_{preset_path.stem}'
    logs = work / 'logs'
    logs.mkdir(parents=True, exist_ok=True)
    (work / 'pretrain_configs').mkdir(exist_ok=True)
    for variant in preset['encoders']:
        if preset['encoders'][variant] is not None:
            (work / 'pretrain_configs' / f'{variant}.yaml').write_text(
                yaml.safe_dump(pretrain_config(preset, variant), sort_keys=False))
    phases = plan(preset, work, args.threads)
    start = time.monotonic()
    phases = {name: steps for name, steps in phases.items() if PHASES.index(name) <= PHASES.index(args.until)}
    with tqdm(total=sum(map(len, phases.values())), desc='claim', unit='step') as progress:
        for steps in phases.values():
            run_phase(steps, args.jobs, logs, progress)
    if args.until != PHASES[-1]:
        return 0
    rows = collect(preset, work)
    out = args.results / f'claim_{preset_path.stem}_{datetime.date.today().isoformat()}'
    command = 'python bench/claim.py ' + shlex.join(argv if argv is not None else sys.argv[1:])
    write_results(rows, preset_path, preset, work, out, command)
    print((out / 'results.md').read_text())
    print(f'claim: {time.monotonic() - start:.0f} s; results in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
