"""train_policy: LeRobot v3 dataset + encoder artifact -> policy artifact.

    train_policy --dataset DIR --encoder ENCODER.pt --policy knn|mlp|vqbet|diffusion --output DIR
                 [--config YAML] [--set key=value ...] [--use-state] [--validation-fraction 0.2]

The encoder embeds every frame once (cached by dataset fingerprint + encoder checksum), whole
episodes are held out for validation, the policy is fitted, and OUTPUT gets:
    policy.pt            the policy artifact (policy_node's `policy` parameter)
    training_curve.png   the training curve (MLP: loss per epoch; kNN: held-out loss over k)
    metrics.json         held-out action error vs predicting the mean action, split, history
    config.yaml          the resolved policy configuration and command line
Every file is written atomically (dynamo_data.atomic).

Data-parallel training, for the heads that take long to train (diffusion):
    torchrun --nproc-per-node N $(which train_policy) ...same arguments...
runs one process per rank (gloo on CPU); the global batch (the policy's batch_size, for which its
learning rate is set) is split over the ranks, so N processes train the same run as one. Rank 0
embeds the dataset first (the others read its cache), and alone writes the outputs and shows progress.

Exit status (one line on stderr names the problem): 0 on success; 2 on bad command-line usage or
a bad policy configuration (--config, --set, an option the dataset cannot serve); 1 when the
dataset or encoder cannot be read or used, the output cannot be written, or training fails
(e.g. out of memory); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
import yaml
from matplotlib.figure import Figure
from tqdm import tqdm

from dynamo_data import DatasetError, LeRobotDataset
from dynamo_data.atomic import atomic_open
from dynamo_data.episode_split import split_episodes
from dynamo_encoder.artifact import ArtifactError, EncoderArtifact
from dynamo_encoder.pretraining.distributed import current_ranks, init_from_environment, leave_group
from dynamo_policy.policies import (
    POLICIES,
    Episode,
    PolicyConfigError,
    PolicyMetadata,
    TrainingHistory,
    make_config,
    make_policy,
)
from dynamo_policy.training.embedding_cache import default_cache_dir, episode_embeddings
from dynamo_policy.training.metrics import action_errors

ACTION_KEY = 'action'
STATE_KEY = 'observation.state'


class TrainingError(ValueError):
    """A bad option or configuration of train_policy; the message names the file, option or field."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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
    parser.add_argument('--seed', type=int, default=0,
                        help="seed of the episode split and of torch's RNG (MLP dropout); the MLP's initial "
                             'weights and batch order follow its own configuration field `seed`')
    parser.add_argument('--cache-dir', type=Path, default=None,
                        help=f'embedding cache directory (default {default_cache_dir()})')
    parser.add_argument('--threads', type=int, default=1, help='torch CPU threads (default 1)')
    parser.add_argument('--quiet', action='store_true', help='no progress bars')
    args = parser.parse_args(argv)
    if not 0.0 <= args.validation_fraction < 1.0:
        parser.error(f'--validation-fraction must be in [0, 1), got {args.validation_fraction}')
    if args.threads < 1:
        parser.error(f'--threads must be >= 1, got {args.threads}')
    return args


class _ConfigLoader(yaml.SafeLoader):
    """YAML as PyYAML reads it, but 1e-4 is a number (YAML 1.2), not the string PyYAML's YAML 1.1 makes of it."""


_EXPONENT_FLOAT = re.compile(r'^[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)[eE][-+]?[0-9]+$')
_ConfigLoader.add_implicit_resolver('tag:yaml.org,2002:float', _EXPONENT_FLOAT, list('-+0123456789.'))


def _yaml_value(text: str, where: str):
    try:
        return yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as error:
        raise TrainingError(f'{where}: not valid YAML ({" ".join(str(error).split())})') from None


def resolve_config_values(config_path: Path | None, overrides: list[str]) -> dict:
    values = {}
    if config_path is not None:
        if not config_path.is_file():
            raise TrainingError(f'--config {config_path}: file does not exist')
        loaded = _yaml_value(config_path.read_text(), f'--config {config_path}') or {}
        if not isinstance(loaded, dict):
            raise TrainingError(f'--config {config_path}: expected a YAML mapping of configuration fields')
        values.update(loaded)
    for override in overrides:
        key, sep, text = override.partition('=')
        if not sep or not key.strip():
            raise TrainingError(f'--set {override!r}: expected KEY=VALUE')
        values[key.strip()] = _yaml_value(text, f'--set {override!r}')
    return values


def plot_history(history: TrainingHistory, title: str, path: Path) -> None:
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.subplots()
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
    with atomic_open(path, 'wb') as file:
        figure.savefig(file, format='png')


def train(args: argparse.Namespace) -> dict:
    config = make_config(args.policy, resolve_config_values(args.config, args.set))
    dataset = LeRobotDataset(args.dataset)
    encoder = EncoderArtifact.load(args.encoder)
    if ACTION_KEY not in dataset.array_keys:
        raise DatasetError(f'{args.dataset}: no {ACTION_KEY!r} feature to train on (have {dataset.array_keys})')
    if args.use_state and STATE_KEY not in dataset.array_keys:
        raise TrainingError(f'--use-state: {args.dataset} has no {STATE_KEY!r} feature (have {dataset.array_keys})')
    ranks = current_ranks()
    if ranks.world_size > 1 and not POLICIES[args.policy].data_parallel:
        raise TrainingError(f'--policy {args.policy} trains in one process; data-parallel training (torchrun) is '
                            f'for {sorted(name for name, cls in POLICIES.items() if cls.data_parallel)}')
    if not ranks.main:   # rank 0 embeds the dataset into the cache first; the other ranks then read it
        torch.distributed.barrier()
    embeddings = episode_embeddings(dataset, encoder, args.cache_dir, show_progress=not args.quiet and ranks.main)
    if ranks.main and ranks.world_size > 1:
        torch.distributed.barrier()
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
    with tqdm(desc=f'training {args.policy}', disable=args.quiet or not ranks.main) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()
        history = policy.fit(training, held_out or None, progress=progress)
    if not ranks.main:
        return {}
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
    with atomic_open(args.output / 'metrics.json') as file:
        json.dump(metrics, file, indent=2)
    resolved = {'policy': args.policy, 'config': config.to_dict(), 'use_state': args.use_state,
                'validation_fraction': args.validation_fraction, 'seed': args.seed,
                'command_line': sys.argv}
    with atomic_open(args.output / 'config.yaml') as file:
        yaml.safe_dump(resolved, file, sort_keys=False)
    return metrics


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        ranks = init_from_environment('cpu')
        metrics = train(args)
        leave_group()
    except (TrainingError, PolicyConfigError) as error:
        print(f'train_policy: error: {error}', file=sys.stderr)
        return 2
    except (DatasetError, ArtifactError) as error:
        print(f'train_policy: error: {error}', file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as error:  # e.g. OUTPUT not writable, out of memory
        reason = str(error).partition('\n')[0]
        print(f'train_policy: failed: {type(error).__name__}: {reason}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('train_policy: interrupted', file=sys.stderr)
        return 130
    finally:
        if torch.distributed.is_initialized():   # a failed run: its peers may never reach leave_group
            torch.distributed.destroy_process_group()
    if not ranks.main:
        return 0
    print(f'wrote {args.output / "policy.pt"}, training_curve.png, metrics.json, config.yaml')
    if 'policy_chunk_mae' in metrics:
        print(f'held-out episodes {metrics["held_out_episodes"]}: action chunk MAE '
              f'{metrics["policy_chunk_mae"]:.4f} (predicting the mean: {metrics["mean_action_chunk_mae"]:.4f}); '
              f'first action MAE {metrics["policy_first_action_mae"]:.4f} '
              f'(mean: {metrics["mean_action_first_action_mae"]:.4f})')
    else:
        print('no held-out episodes: no validation error (use --validation-fraction > 0 with >= 2 episodes)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
