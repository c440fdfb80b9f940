"""Embeddings of every dataset frame, computed once per (dataset, encoder) and cached on disk.

Policies train for many epochs on frozen-encoder embeddings, so the encoder runs once over the
dataset; the cache key is the dataset's content fingerprint plus the encoder checksum, so a new
encoder or a changed dataset never reuses stale embeddings.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

ENCODE_BATCH_SIZE = 64


def default_cache_dir() -> Path:
    return Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'dynamo_policy' / 'embeddings'


def dataset_fingerprint(root: str | Path) -> str:
    """First 16 hex of SHA-256 over the dataset's metadata files (info, stats incl. image
    statistics, episode table): any change of content, episodes or features changes it.
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


def episode_embeddings(dataset, encoder, cache_dir: str | Path | None = None,
                       show_progress: bool = True) -> list[np.ndarray]:
    """float32 (T, len(encoder cameras) * embedding_dim) per episode, from the cache when present."""
    missing = [camera for camera in encoder.camera_names if camera not in dataset.camera_names]
    if missing:
        raise ValueError(f'encoder {encoder.name!r} needs cameras {encoder.camera_names}; dataset '
                         f'{dataset.root} has {dataset.camera_names} (missing {missing})')
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
    embeddings = []
    with tqdm(total=int(dataset.episode_lengths.sum()), desc='encoding frames', unit='frame',
              disable=not show_progress) as progress:
        for episode in range(dataset.num_episodes):
            frames = {camera: dataset.frames(episode, camera) for camera in encoder.camera_names}
            rows = []
            for start in range(0, len(frames[encoder.camera_names[0]]), ENCODE_BATCH_SIZE):
                batch = {camera: f[start:start + ENCODE_BATCH_SIZE] for camera, f in frames.items()}
                rows.append(encoder.encode_batch(batch))
                progress.update(len(rows[-1]))
            embeddings.append(np.concatenate(rows).astype(np.float32))
    cache_dir.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=cache_path.name + '.', suffix='.tmp.npz', dir=cache_dir)
    os.close(handle)
    try:
        np.savez(temp, **{f'episode_{i}': e for i, e in enumerate(embeddings)})
        os.replace(temp, cache_path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return embeddings
