"""Embeddings of every dataset frame, computed once per (dataset, encoder) and cached on disk.

Policies train for many epochs on frozen-encoder embeddings, so the encoder runs once over the
dataset; the cache key is the dataset's content fingerprint plus the encoder checksum, so a new
encoder or a changed dataset never reuses stale embeddings.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from dynamo_data import LeRobotDataset
from dynamo_data.atomic import atomic_open
from dynamo_encoder.artifact import EncoderArtifact


def default_cache_dir() -> Path:
    return Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'dynamo_policy' / 'embeddings'


def dataset_fingerprint(root: str | Path) -> str:
    """Return the first 16 hex of SHA-256 over the dataset's metadata files.

    Those are info, stats (incl. image statistics) and the episode table: any change of content,
    episodes or features changes it.
    """
    root = Path(root)
    digest = hashlib.sha256()
    meta = root / 'meta'
    files = [meta / 'info.json', meta / 'stats.json', *sorted((meta / 'episodes').rglob('*.parquet'))]
    for path in files:
        if path.is_file():
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def episode_embeddings(dataset: LeRobotDataset, encoder: EncoderArtifact, cache_dir: str | Path | None = None,
                       show_progress: bool = True) -> list[np.ndarray]:
    """Return encoder.encode_dataset(dataset), from the cache when present: float32 (T, output_dim) per episode."""
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cache_path = cache_dir / f'{dataset_fingerprint(dataset.root)}-{encoder.checksum}.npz'
    if cache_path.is_file():
        with np.load(cache_path) as cached:
            embeddings = [cached[f'episode_{i}'] for i in range(dataset.num_episodes)
                          if f'episode_{i}' in cached]
        if len(embeddings) == dataset.num_episodes and all(
                len(e) == n for e, n in zip(embeddings, dataset.episode_lengths)):
            print(f'embeddings from cache {cache_path}')
            return embeddings
    embeddings = encoder.encode_dataset(dataset, progress=show_progress)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_open(cache_path, 'wb') as file:
        np.savez(file, **{f'episode_{i}': e for i, e in enumerate(embeddings)})
    return embeddings
