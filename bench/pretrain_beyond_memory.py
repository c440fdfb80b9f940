"""Pretraining on a dataset larger than the memory the process may use: it runs, and the loader stays cheap.

  python bench/pretrain_beyond_memory.py [--dataset-gb 2.5] [--limit-gb 1.25] [--size 96] [--arch resnet_small]

Writes a dataset whose decoded frames take --dataset-gb, then, in a child process whose private
memory is capped at --limit-gb, builds the frame cache and measures full training steps against a
bare forward+backward (bench/pretrain_throughput.py's measure(): full/bare <= 1.1 means the frame
cache, gathering and bookkeeping cost under 10% of a step).

The cap is RLIMIT_DATA (`prlimit --data`), which since Linux 4.7 counts a process's private
writable memory (heap, anonymous mappings: tensors, activations, the decoder's buffers) but not
shared or read-only file mappings such as the memory-mapped frame cache, whose pages the kernel
keeps in or drops from the page cache as memory allows. RLIMIT_AS would count the mapping itself
(so no file larger than the limit could even be mapped) and RLIMIT_RSS is ignored by Linux.
A cgroup memory limit would also bound the page cache; this machine's spare memory holds the whole
file in the page cache either way, so the bench shows the process's own memory need, not disk speed.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

LENGTH = 500   # frames per episode


def write_dataset(root: Path, size: int, gigabytes: float) -> int:
    """Write shifted-noise episodes until their decoded frames take `gigabytes`; return the frame count."""
    from tqdm import tqdm

    from dynamo_data import DatasetWriter

    frames_wanted = int(gigabytes * 2**30 / (size * size * 3))
    episodes = max(2, -(-frames_wanted // LENGTH))
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root, fps=10, robot_type='bench', cameras={'front': (size, size, 3)},
                           arrays={'observation.state': ['q'], 'action': ['a']}, video=False)
    for _ in tqdm(range(episodes), desc='writing dataset', unit='episode'):
        base = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        frames = np.stack([np.roll(base, step, axis=1) for step in range(LENGTH)])
        writer.add_episode(frames={'front': frames}, arrays={'observation.state': np.zeros((LENGTH, 1), np.float32),
                                                           'action': np.zeros((LENGTH, 1), np.float32)}, task='bench')
    writer.finalize()
    return episodes * LENGTH


def memory_status() -> dict[str, float]:
    """Return this process's resident memory in GiB: peak (VmHWM), anonymous and file-backed now."""
    fields = {}
    for line in Path('/proc/self/status').read_text().splitlines():
        key, _, value = line.partition(':')
        if key in ('VmHWM', 'RssAnon', 'RssFile'):
            fields[key] = int(value.split()[0]) / 2**20
    return fields


def child(dataset: str, cache_dir: str, arch: str, size: int, batch: int, window: int, steps: int) -> int:
    """Build the frame cache and time full vs bare steps under the memory cap set by the parent."""
    import torch

    sys.path.insert(0, str(Path(__file__).parent))
    from pretrain_throughput import measure

    torch.set_num_threads(2)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run:
        result = measure(Path(dataset), Path(run), arch, size, 'fp32', batch, window, warmup=2, steps=steps,
                         cache_dir=cache_dir)
    elapsed = time.perf_counter() - start
    cache = max(Path(cache_dir).glob('*.npy'), key=lambda p: p.stat().st_size)
    memory = memory_status()
    print(f'frame cache {cache.stat().st_size / 2**30:.2f} GiB, private memory cap '
          f'{resource.getrlimit(resource.RLIMIT_DATA)[0] / 2**30:.2f} GiB')
    print(f'full {result["full_fps"]:.1f} frames/s, bare {result["bare_fps"]:.1f} frames/s, '
          f'full/bare {1 / result["ratio"]:.3f} (cache build + timing took {elapsed:.0f} s)')
    print(f'resident memory: peak {memory["VmHWM"]:.2f} GiB, anonymous {memory["RssAnon"]:.2f} GiB, '
          f'file-backed {memory["RssFile"]:.2f} GiB')
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset-gb', type=float, default=2.5, help='decoded size of the dataset (GiB)')
    # 1.25 GiB: the process's own memory (model, activations, the decoder's buffers) peaked at 0.7 GiB
    # here, and a 1.0 GiB cap failed one run of two in the backward pass.
    parser.add_argument('--limit-gb', type=float, default=1.25, help='RLIMIT_DATA of the training process (GiB)')
    parser.add_argument('--size', type=int, default=96, help='frame size = encoder input size (px)')
    parser.add_argument('--arch', default='resnet_small')
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--window', type=int, default=5)
    parser.add_argument('--steps', type=int, default=10)
    parser.add_argument('--child', nargs=2, metavar=('DATASET', 'CACHE_DIR'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(*args.child, args.arch, args.size, args.batch, args.window, args.steps)
    if args.dataset_gb < 2 * args.limit_gb:
        parser.error('--dataset-gb should be at least twice --limit-gb to show anything')
    with tempfile.TemporaryDirectory() as tmp:
        frames = write_dataset(Path(tmp) / 'dataset', args.size, args.dataset_gb)
        print(f'dataset: {frames} frames of {args.size}x{args.size}, '
              f'{frames * args.size * args.size * 3 / 2**30:.2f} GiB decoded; '
              f'training process capped at {args.limit_gb:.2f} GiB of private memory (RLIMIT_DATA)', flush=True)
        limit = int(args.limit_gb * 2**30)

        def cap():
            resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))

        command = [sys.executable, __file__, '--child', str(Path(tmp) / 'dataset'), str(Path(tmp) / 'cache'),
                   '--arch', args.arch, '--size', str(args.size), '--batch', str(args.batch),
                   '--window', str(args.window), '--steps', str(args.steps)]
        return subprocess.run(command, preexec_fn=cap).returncode


if __name__ == '__main__':
    sys.exit(main())
