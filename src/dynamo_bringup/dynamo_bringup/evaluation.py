"""ROS-free part of closed-loop evaluation: episode outcomes, the success table and its plots."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from dynamo_data.atomic import atomic_open


@dataclass(frozen=True)
class EpisodeOutcome:
    task: str
    seed: int
    success: bool
    steps: int
    duration: float
    reason: str


@dataclass(frozen=True)
class TaskSummary:
    task: str
    episodes: int
    successes: int

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float('nan')

    @property
    def standard_error(self) -> float:
        """Binomial standard error of the success rate."""
        if not self.episodes:
            return float('nan')
        p = self.success_rate
        return math.sqrt(p * (1.0 - p) / self.episodes)


def summarise(outcomes: list[EpisodeOutcome]) -> list[TaskSummary]:
    tasks = sorted({o.task for o in outcomes})
    return [TaskSummary(task, sum(o.task == task for o in outcomes),
                        sum(o.task == task and o.success for o in outcomes)) for task in tasks]


def format_table(summaries: list[TaskSummary]) -> str:
    rows = [f'{"task":<20} {"episodes":>8} {"successes":>9} {"success rate":>14}']
    for s in summaries:
        rows.append(f'{s.task:<20} {s.episodes:>8} {s.successes:>9} '
                    f'{s.success_rate:>8.0%} ± {s.standard_error:.0%}')
    return '\n'.join(rows)


def write_results(output: Path, outcomes: list[EpisodeOutcome], metadata: dict) -> dict[str, Path]:
    """Write episodes.csv, summary.json and success_rate.png in `output`, each atomically."""
    output.mkdir(parents=True, exist_ok=True)
    summaries = summarise(outcomes)
    paths = {'episodes': output / 'episodes.csv', 'summary': output / 'summary.json',
             'plot': output / 'success_rate.png'}
    with atomic_open(paths['episodes'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(EpisodeOutcome.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(o) for o in outcomes)
    summary = {**metadata, 'tasks': [
        {'task': s.task, 'episodes': s.episodes, 'successes': s.successes,
         'success_rate': s.success_rate, 'standard_error': s.standard_error} for s in summaries]}
    with atomic_open(paths['summary'], 'w') as f:
        json.dump(summary, f, indent=2)
    _plot_success(paths['plot'], summaries, title=metadata.get('title', 'closed-loop success rate'))
    return paths


def contact_sheet(frames_per_episode: list[list[np.ndarray]], labels: list[str], path: Path, columns: int = 8) -> None:
    """Draw one row per episode: `columns` frames evenly spaced over the rollout."""
    rows = len(frames_per_episode)
    fig = Figure(figsize=(columns * 1.2, rows * 1.3))
    axes = fig.subplots(rows, columns, squeeze=False)
    for row, (frames, label) in enumerate(zip(frames_per_episode, labels)):
        picks = np.linspace(0, len(frames) - 1, columns).round().astype(int) if frames else []
        for col in range(columns):
            ax = axes[row][col]
            ax.axis('off')
            if len(picks):
                ax.imshow(frames[picks[col]])
        axes[row][0].set_title(label, fontsize=7, loc='left')
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)


def _plot_success(path: Path, summaries: list[TaskSummary], title: str) -> None:
    fig = Figure(figsize=(max(3.0, 1.4 * len(summaries) + 1.5), 3.2))
    ax = fig.subplots()
    x = np.arange(len(summaries))
    ax.bar(x, [s.success_rate for s in summaries], yerr=[s.standard_error for s in summaries], capsize=4,
           color='tab:blue')
    ax.set_xticks(x, [f'{s.task}\n(n={s.episodes})' for s in summaries], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('success rate')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with atomic_open(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
