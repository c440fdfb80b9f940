"""train_policy: LeRobot v3 dataset + encoder artifact -> policy artifact.

    train_policy --dataset DIR --encoder ENCODER.pt --policy knn|mlp --output DIR
                 [--config YAML] [--set key=value ...] [--use-state] [--validation-fraction 0.2]

The encoder embeds every frame once (cached by dataset fingerprint + encoder checksum), whole
episodes are held out for validation, the policy is fitted, and OUTPUT gets:
    policy.pt            the policy artifact (policy_node's `policy` parameter)
    training_curve.png   the training curve (MLP: loss per epoch; kNN: held-out loss over k)
    metrics.json         held-out action error vs predicting the mean action, split, history
    config.yaml          the resolved policy configuration and command line
Every file is written atomically (temp file + os.replace).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from tqdm import tqdm  # noqa: E402

from dynamo_data import DatasetError, LeRobotDataset  # noqa: E402
from dynamo_encoder.artifact import ArtifactError, EncoderArtifact  # noqa: E402
from dynamo_policy.policies import (  # noqa: E402
    POLICIES,
    Episode,
    PolicyConfigError,
    PolicyMetadata,
    TrainingHistory,
    make_config,
    make_policy,
)
from dynamo_policy.training.embedding_cache import default_cache_dir, episode_embeddings  # noqa: E402
from dynamo_policy.training.metrics import action_errors, split_episodes  # noqa: E402

ACTION_KEY = 'action'
STATE_KEY = 'observation.state'


class TrainingError(RuntimeError):
    """Bad input to train_policy; the message names the file, option or field."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='train_policy', description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', required=True, type=Path, help='LeRobot v3 dataset directory')
    parser.add_argument('--encoder', required=True, type=Path, help='encoder artifact (encoder.pt)')
    parser.add_argument('--policy', required=True, choices=sorted(POLICIES), help='policy to train')
    parser.add_argument('--output', required=True, type=Path, help='output directory')
    parser.add_argument('--config', type=Path, help='YAML mapping of policy configuration fields')
    parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                        help='override one configuration field (YAML value), repeatable')
    parser.add_argument('--use-state', action='store_true',
                        help=f'feed the joint state ({STATE_KEY}) to the policy as proprioception')
    parser.add_argument('--validation-fraction', type=float, default=0.2,
                        help='fraction of whole episodes held out for validation (default 0.2)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the episode split')
    parser.add_argument('--cache-dir', type=Path, default=None,
                        help=f'embedding cache directory (default {default_cache_dir()})')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


def resolve_config_values(config_path: Path | None, overrides: list[str]) -> dict:
    values = {}
    if config_path is not None:
        if not config_path.is_file():
            raise TrainingError(f'--config {config_path}: file does not exist')
        loaded = yaml.safe_load(config_path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise TrainingError(f'--config {config_path}: expected a YAML mapping of configuration fields')
        values.update(loaded)
    for override in overrides:
        key, sep, text = override.partition('=')
        if not sep or not key.strip():
            raise TrainingError(f'--set {override!r}: expected KEY=VALUE')
        values[key.strip()] = yaml.safe_load(text)
    return values


def _write_atomically(path: Path, write) -> None:
    handle, temp = tempfile.mkstemp(prefix=f'.{path.name}.', suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def plot_history(history: TrainingHistory, title: str, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(6, 4), dpi=100)
    for label, values in history.series.items():
        axes.plot(history.x[:len(values)], values, marker='.' if len(values) < 30 else None, label=label)
    if any(v > 0 for values in history.series.values() for v in values):
        axes.set_yscale('log')
    axes.set_xlabel(history.x_label)
    axes.set_ylabel('loss')
    axes.set_title(title)
    if history.series:
        axes.legend()
    else:
        axes.text(0.5, 0.5, 'no curve (no held-out episodes)', ha='center', va='center', transform=axes.transAxes)
    figure.tight_layout()
    _write_atomically(path, lambda temp: figure.savefig(temp, format='png'))
    plt.close(figure)


def train(args: argparse.Namespace) -> dict:
    torch.set_num_threads(max(1, args.threads))
    config = make_config(args.policy, resolve_config_values(args.config, args.set))
    dataset = LeRobotDataset(args.dataset)
    encoder = EncoderArtifact.load(args.encoder)
    if ACTION_KEY not in dataset.array_keys:
        raise TrainingError(f'{args.dataset}: no {ACTION_KEY!r} feature (have {dataset.array_keys})')
    if args.use_state and STATE_KEY not in dataset.array_keys:
        raise TrainingError(f'--use-state: {args.dataset} has no {STATE_KEY!r} feature (have {dataset.array_keys})')
    embeddings = episode_embeddings(dataset, encoder, args.cache_dir, show_progress=not args.quiet)
    episodes = [Episode(embeddings[i], dataset.array(i, ACTION_KEY),
                        dataset.array(i, STATE_KEY) if args.use_state else None)
                for i in range(dataset.num_episodes)]
    train_ids, held_out_ids = split_episodes(len(episodes), args.validation_fraction, args.seed)
    training = [episodes[i] for i in train_ids]
    held_out = [episodes[i] for i in held_out_ids]

    metadata = PolicyMetadata(
        encoder_name=encoder.name, encoder_checksum=encoder.checksum, camera_names=list(encoder.camera_names),
        embedding_dim=int(encoder.output_dim), action_names=dataset.feature_names(ACTION_KEY),
        step_period=1.0 / float(dataset.fps),
        state_names=dataset.feature_names(STATE_KEY) if args.use_state else [])
    policy = make_policy(args.policy, config, metadata)
    with tqdm(desc=f'training {args.policy}', disable=args.quiet) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()
        history = policy.fit(training, held_out or None, progress=progress)

    errors = action_errors(policy, held_out, training) if held_out else {}
    args.output.mkdir(parents=True, exist_ok=True)
    policy.save(args.output / 'policy.pt')
    plot_history(history, f'{args.policy} on {encoder.name} embeddings ({args.dataset.name})',
                 args.output / 'training_curve.png')
    metrics = {
        'policy': args.policy, 'dataset': str(args.dataset), 'encoder': str(args.encoder),
        'encoder_checksum': encoder.checksum, 'training_episodes': train_ids, 'held_out_episodes': held_out_ids,
        **errors, 'history': {'x_label': history.x_label, 'x': history.x, 'series': history.series},
    }
    _write_atomically(args.output / 'metrics.json',
                      lambda temp: Path(temp).write_text(json.dumps(metrics, indent=2)))
    resolved = {'policy': args.policy, 'config': config.to_dict(), 'use_state': args.use_state,
                'validation_fraction': args.validation_fraction, 'seed': args.seed,
                'command_line': sys.argv}
    _write_atomically(args.output / 'config.yaml',
                      lambda temp: Path(temp).write_text(yaml.safe_dump(resolved, sort_keys=False)))
    return metrics


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        metrics = train(args)
    except (TrainingError, DatasetError, ArtifactError, PolicyConfigError) as error:
        print(f'train_policy: error: {error}', file=sys.stderr)
        sys.exit(2)
    print(f'wrote {args.output / "policy.pt"}, training_curve.png, metrics.json, config.yaml')
    if 'policy_chunk_mae' in metrics:
        print(f'held-out episodes {metrics["held_out_episodes"]}: action chunk MAE '
              f'{metrics["policy_chunk_mae"]:.4f} (predicting the mean: {metrics["mean_action_chunk_mae"]:.4f}); '
              f'first action MAE {metrics["policy_first_action_mae"]:.4f} '
              f'(mean: {metrics["mean_action_first_action_mae"]:.4f})')
    else:
        print('no held-out episodes: no validation error (use --validation-fraction > 0 with >= 2 episodes)')


if __name__ == '__main__':
    main()
