"""ROS-free part of closed-loop evaluation: episode outcomes, the success table and its plots."""

from __future__ import annotations

import csv
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


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
    """episodes.csv, summary.json and success_rate.png in `output`, each written atomically."""
    output.mkdir(parents=True, exist_ok=True)
    summaries = summarise(outcomes)
    paths = {'episodes': output / 'episodes.csv', 'summary': output / 'summary.json',
             'plot': output / 'success_rate.png'}
    with _atomic(paths['episodes'], 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(EpisodeOutcome.__dataclass_fields__))
        writer.writeheader()
        writer.writerows(asdict(o) for o in outcomes)
    summary = {**metadata, 'tasks': [
        {'task': s.task, 'episodes': s.episodes, 'successes': s.successes,
         'success_rate': s.success_rate, 'standard_error': s.standard_error} for s in summaries]}
    with _atomic(paths['summary'], 'w') as f:
        json.dump(summary, f, indent=2)
    _plot_success(paths['plot'], summaries, title=metadata.get('title', 'closed-loop success rate'))
    return paths


def contact_sheet(frames_per_episode: list[list[np.ndarray]], labels: list[str], path: Path, columns: int = 8) -> None:
    """One row per episode: `columns` frames evenly spaced over the rollout."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    rows = len(frames_per_episode)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.2, rows * 1.3), squeeze=False)
    for row, (frames, label) in enumerate(zip(frames_per_episode, labels)):
        picks = np.linspace(0, len(frames) - 1, columns).round().astype(int) if frames else []
        for col in range(columns):
            ax = axes[row][col]
            ax.axis('off')
            if len(picks):
                ax.imshow(frames[picks[col]])
        axes[row][0].set_title(label, fontsize=7, loc='left')
    fig.tight_layout()
    with _atomic(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)


def _plot_success(path: Path, summaries: list[TaskSummary], title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(3.0, 1.4 * len(summaries) + 1.5), 3.2))
    x = np.arange(len(summaries))
    ax.bar(x, [s.success_rate for s in summaries], yerr=[s.standard_error for s in summaries], capsize=4,
           color='tab:blue')
    ax.set_xticks(x, [f'{s.task}\n(n={s.episodes})' for s in summaries], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel('success rate')
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    with _atomic(path, 'wb') as f:
        fig.savefig(f, format='png', dpi=100)
    plt.close(fig)


class _atomic:
    """Open a temporary file beside `path` and move it into place only if the block succeeds."""

    def __init__(self, path: Path, mode: str, **kwargs):
        self.path = Path(path)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f'.{self.path.name}.')
        self.file = os.fdopen(fd, mode, **kwargs)

    def __enter__(self):
        return self.file

    def __exit__(self, exc_type, exc, tb):
        self.file.close()
        if exc_type is None:
            os.replace(self.tmp, self.path)
        else:
            os.unlink(self.tmp)
