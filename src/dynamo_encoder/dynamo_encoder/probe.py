"""Representation checks of a frozen encoder on a dataset.

(a) Linear probe: ridge regression (closed form) from frozen embeddings to
    `observation.environment_state` (privileged object state, when the dataset has it),
    `observation.state` and `action`, fitted on some episodes and scored (R^2) on held-out ones.
(b) Nearest neighbours like Fig. 2 of the DynaMo paper: for a few query frames, the k frames of
    OTHER episodes closest in embedding space (cosine), as a PNG grid.
(c) Collapse: the effective rank (RankMe) and the spread of the embeddings of every frame.

  probe --dataset DIR --encoder RUN_DIR/encoder.pt --output DIR [--random-baseline]

Exit status (one line on stderr names the problem): 0 on success; 2 on bad command-line usage;
1 when the dataset or encoder cannot be read or used, the output cannot be written, or the probe
fails (e.g. out of memory); 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from dynamo_data import DatasetError, LeRobotDataset
from dynamo_data.atomic import atomic_open
from dynamo_data.episode_split import split_episodes

from .artifact import ArtifactError, EncoderArtifact
from .model.dynamo import embedding_spread

PROBE_KEYS = ('observation.environment_state', 'observation.state', 'action')
RIDGE_ALPHAS = tuple(10.0 ** p for p in range(-2, 6))  # on features scaled to unit mean variance


def _ridge_solutions(x: np.ndarray, y: np.ndarray, alphas) -> list[tuple[np.ndarray, np.ndarray]]:
    """Ridge (weights, intercept) for each alpha from one eigendecomposition of X^T X (centred X).

    eigh of the Gram matrix, not an SVD of X: LAPACK's SVD can fail to converge on the exactly
    rank-deficient features of a randomly initialised network.
    """
    x_mean, y_mean = x.mean(0), y.mean(0)
    xc = x - x_mean
    eigenvalues, eigenvectors = np.linalg.eigh(xc.T @ xc)
    projected = eigenvectors.T @ (xc.T @ (y - y_mean))
    solutions = []
    for alpha in alphas:
        w = eigenvectors @ (projected / (np.clip(eigenvalues, 0.0, None) + alpha)[:, None])
        solutions.append((w, y_mean - x_mean @ w))
    return solutions


def r2_per_dimension(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination of each output dimension; NaN where the held-out target does not vary."""
    variance = ((y_true - y_true.mean(0)) ** 2).sum(0)
    varying = variance > 1e-12 * max(float(variance.max()), 1e-30)
    residual = ((y_true - y_pred) ** 2).sum(0)
    return np.where(varying, 1.0 - residual / np.where(varying, variance, 1.0), np.nan)


def r2_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Coefficient of determination, averaged over the output dimensions that vary."""
    per_dimension = r2_per_dimension(y_true, y_pred)
    if np.isnan(per_dimension).all():
        raise ValueError('R^2 is undefined: the held-out targets do not vary')
    return float(np.nanmean(per_dimension))


def fit_ridge_probe(train_x: list[np.ndarray], train_y: list[np.ndarray], alphas=RIDGE_ALPHAS):
    """Fit a ridge probe on per-episode (x, y) lists, alpha picked by leave-episodes-out CV; return predict(x).

    Features are centred and divided by ONE global scale (not per feature), so near-constant
    features (e.g. dead ReLU units at random init) are not blown up into noise.
    """
    x_all = np.concatenate(train_x).astype(np.float64)
    mean = x_all.mean(0)
    scale = float(np.sqrt(((x_all - mean) ** 2).mean())) + 1e-12
    xs = [(x - mean) / scale for x in train_x]
    folds = min(5, len(xs))
    if folds >= 2:
        scores = np.zeros(len(alphas))
        for fold in range(folds):
            fit_idx = [i for i in range(len(xs)) if i % folds != fold]
            val_idx = [i for i in range(len(xs)) if i % folds == fold]
            x_fit, y_fit = np.concatenate([xs[i] for i in fit_idx]), np.concatenate([train_y[i] for i in fit_idx])
            x_val, y_val = np.concatenate([xs[i] for i in val_idx]), np.concatenate([train_y[i] for i in val_idx])
            for a, (w, b) in enumerate(_ridge_solutions(x_fit, y_fit, alphas)):
                scores[a] += ((x_val @ w + b - y_val) ** 2).sum()
        alpha = alphas[int(np.argmin(scores))]
    else:
        alpha = 1.0
    w, b = _ridge_solutions(np.concatenate(xs), np.concatenate(train_y).astype(np.float64), [alpha])[0]
    return lambda x: ((np.asarray(x, np.float64) - mean) / scale) @ w + b


def linear_probe_r2(artifact: EncoderArtifact, dataset: LeRobotDataset, keys=None, test_fraction: float = 0.3,
                    seed: int = 0, embeddings: list[np.ndarray] | None = None
                    ) -> tuple[dict[str, float], dict[str, dict[str, float | None]]]:
    """Score a ridge probe from frozen embeddings to each array feature by its R^2 on held-out episodes.

    Returns (R^2 averaged over the feature's varying dimensions, R^2 of each named dimension, None
    where the held-out target does not vary). The average mixes what the camera shows with what it
    cannot (a symmetric bottle's yaw), so a task's own object dimensions are read per dimension.

    keys: array features to probe (default: those of PROBE_KEYS the dataset has).
    test_fraction: episodes held out (dynamo_data.episode_split), in (0, 1).
    embeddings: precomputed `artifact.encode_dataset(dataset)` to avoid encoding twice.
    """
    keys = [k for k in PROBE_KEYS if k in dataset.array_keys] if keys is None else list(keys)
    for key in keys:
        if key not in dataset.array_keys:
            raise DatasetError(f'{dataset.root}: no array feature {key!r} to probe (have {dataset.array_keys})')
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f'test fraction must be in (0, 1), got {test_fraction}')
    if dataset.num_episodes < 2:
        raise DatasetError(f'{dataset.root}: a linear probe on held-out episodes needs at least 2 episodes, '
                           f'the dataset has {dataset.num_episodes}')
    if embeddings is None:
        embeddings = artifact.encode_dataset(dataset)
    train, test = split_episodes(dataset.num_episodes, test_fraction, seed)
    average, per_dimension = {}, {}
    for key in keys:
        targets = [dataset.array(e, key).astype(np.float64) for e in range(dataset.num_episodes)]
        predict = fit_ridge_probe([embeddings[e] for e in train], [targets[e] for e in train])
        test_x = np.concatenate([embeddings[e] for e in test])
        test_y = np.concatenate([targets[e] for e in test])
        prediction = predict(test_x)
        try:
            average[key] = r2_score(test_y, prediction)
        except ValueError:
            raise DatasetError(f'{dataset.root}: {key!r} does not vary on the held-out episodes {test}; '
                               f'choose another --seed or a larger --test-fraction') from None
        names = dataset.features[key].get('names') or [str(i) for i in range(test_y.shape[1])]
        per_dimension[key] = {name: None if np.isnan(r2) else float(r2)
                              for name, r2 in zip(names, r2_per_dimension(test_y, prediction))}
    return average, per_dimension


def effective_rank(embeddings: np.ndarray) -> float:
    """Measure the effective rank of (N, D) embeddings: RankMe (Garrido et al., 2023).

    The exp of the entropy of the normalised singular values of the centred embeddings: D when
    every direction is used equally, 1 for a collapse onto a line; a pretrained encoder whose rank
    falls far below a random init's has collapsed dimensionally.
    """
    singular = np.linalg.svd(embeddings - embeddings.mean(0), compute_uv=False)
    p = singular / max(singular.sum(), 1e-30) + 1e-12
    return float(np.exp(-(p * np.log(p)).sum()))


def embedding_statistics(embeddings: list[np.ndarray]) -> dict[str, float]:
    """Compute the collapse monitors over every frame: effective rank, and the spread pretraining logs."""
    x = np.concatenate(embeddings).astype(np.float64)
    return {'dim': int(x.shape[1]), 'effective_rank': effective_rank(x),
            'spread': float(embedding_spread(torch.from_numpy(x)))}


def nearest_neighbours(embeddings: list[np.ndarray], num_queries: int, k: int, seed: int):
    """Find the k nearest frames of other episodes: [(query (episode, frame), [(episode, frame, cosine)])]."""
    normalised = [e / (np.linalg.norm(e, axis=1, keepdims=True) + 1e-8) for e in embeddings]
    owner = np.concatenate([np.full(len(e), i) for i, e in enumerate(normalised)])
    frame = np.concatenate([np.arange(len(e)) for e in normalised])
    bank = np.concatenate(normalised)
    rng = np.random.default_rng(seed)
    episodes = rng.choice(len(embeddings), size=min(num_queries, len(embeddings)), replace=False)
    results = []
    for episode in episodes:
        query_frame = int(rng.integers(len(embeddings[episode])))
        similarity = bank @ normalised[episode][query_frame]
        similarity[owner == episode] = -np.inf
        best = [i for i in np.argsort(-similarity)[:k] if np.isfinite(similarity[i])]
        results.append(((int(episode), query_frame),
                        [(int(owner[i]), int(frame[i]), float(similarity[i])) for i in best]))
    return results


def plot_nearest_neighbours(dataset: LeRobotDataset, camera: str, neighbours, path: Path, title: str) -> None:
    columns = 1 + max(len(n) for _, n in neighbours)
    fig = Figure(figsize=(1.8 * columns, 1.9 * len(neighbours)))
    axes = fig.subplots(len(neighbours), columns, squeeze=False)
    for row, ((episode, index), found) in enumerate(neighbours):
        panels = [(episode, index, None)] + found
        for col, ax in enumerate(axes[row]):
            ax.axis('off')
            if col >= len(panels):
                continue
            ep, fr, sim = panels[col]
            ax.imshow(dataset.frames(ep, camera)[fr])
            label = f'query ep{ep} f{fr}' if sim is None else f'ep{ep} f{fr} cos {sim:.2f}'
            ax.set_title(label, fontsize=7, color='C3' if sim is None else 'black')
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_open(path, 'wb') as file:
        fig.savefig(file, format='png', dpi=100)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog='probe', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', required=True, help='LeRobot v3 dataset directory')
    parser.add_argument('--encoder', required=True, help='encoder artifact (RUN_DIR/encoder.pt)')
    parser.add_argument('--output', required=True, help='directory for probe.json and nearest_neighbours.png')
    parser.add_argument('--test-fraction', type=float, default=0.3, help='fraction of episodes held out')
    parser.add_argument('--seed', type=int, default=0, help='episode split and query choice')
    parser.add_argument('--queries', type=int, default=5, help='query frames in the neighbour grid')
    parser.add_argument('--neighbours', type=int, default=5, help='neighbours shown per query')
    parser.add_argument('--random-baseline', action='store_true',
                        help='also probe the same architecture at random init (seeded by --seed)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = default)')
    args = parser.parse_args(argv)
    if not 0.0 < args.test_fraction < 1.0:
        parser.error(f'--test-fraction must be in (0, 1), got {args.test_fraction}')
    for option, value in (('--queries', args.queries), ('--neighbours', args.neighbours)):
        if value < 1:
            parser.error(f'{option} must be >= 1, got {value}')
    if args.threads < 0:
        parser.error(f'--threads must be >= 0 (0 = the default), got {args.threads}')
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    output = Path(args.output)
    try:
        dataset = LeRobotDataset(args.dataset)
        encoders = {'encoder': EncoderArtifact.load(args.encoder)}
        if args.random_baseline:
            enc = encoders['encoder']
            encoders['random_init'] = EncoderArtifact.random_init(enc.arch, enc.camera_names, enc.input_size, args.seed)
        output.mkdir(parents=True, exist_ok=True)
        report = {'dataset': str(args.dataset), 'test_fraction': args.test_fraction, 'seed': args.seed}
        for label, artifact in encoders.items():
            embeddings = artifact.encode_dataset(dataset)
            r2, r2_per_dim = linear_probe_r2(artifact, dataset, test_fraction=args.test_fraction, seed=args.seed,
                                             embeddings=embeddings)
            statistics = embedding_statistics(embeddings)
            report[label] = {'name': artifact.name, 'checksum': artifact.checksum, 'r2': r2,
                             'r2_per_dimension': r2_per_dim, 'embeddings': statistics}
            for key, value in r2.items():
                print(f'{label:12s} {artifact.name:28s} R^2 {key:32s} {value:7.3f}')
            print(f'{label:12s} {artifact.name:28s} effective rank {statistics["effective_rank"]:.1f} '
                  f'of {statistics["dim"]}, spread {statistics["spread"]:.2f}')
            suffix = '' if label == 'encoder' else f'_{label}'
            plot_nearest_neighbours(dataset, artifact.camera_names[0],
                                    nearest_neighbours(embeddings, args.queries, args.neighbours, args.seed),
                                    output / f'nearest_neighbours{suffix}.png',
                                    f'{artifact.name} ({artifact.checksum}): nearest frames of other episodes')
        with atomic_open(output / 'probe.json') as file:
            json.dump(report, file, indent=2)
    except (ArtifactError, DatasetError) as exc:
        print(f'probe: error: {exc}', file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:  # e.g. OUTPUT not writable, out of memory
        reason = str(exc).partition('\n')[0]
        print(f'probe: failed: {type(exc).__name__}: {reason}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print('probe: interrupted; probe.json not written', file=sys.stderr)
        return 130
    print(f'probe: results in {output / "probe.json"}, neighbour grid in {output / "nearest_neighbours.png"}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
