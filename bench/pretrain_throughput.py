"""Pretraining throughput: frames/s of full training steps vs a bare forward+backward, in one run.

  python bench/pretrain_throughput.py [--quick] [--sizes 96 224] [--precisions fp32 bf16] [--threads N]

"full" = Pretrainer.advance(), exactly what `pretrain` does per step: gather the batch from the
memory-mapped uint8 frame cache, preprocess inside the encoder, DynaMo loss, backward, gradient clipping,
AdamW, LR schedule, target update, history row. "bare" = forward + backward of the same objective
module on one fixed batch already on the device. full/bare close to 1 means the trainer and loader
add little. Frames/s counts every frame of every window (batch x window x cameras).
Defaults follow issue 3: ResNet18, batch 32, window 5, 96x96 and 224x224, fp32 and bf16.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dynamo_data import DatasetWriter
from dynamo_encoder.pretraining.config import apply_overrides, load_config
from dynamo_encoder.pretraining.trainer import Pretrainer


def write_dataset(root: Path, size: int, episodes: int, length: int) -> Path:
    rng = np.random.default_rng(0)
    writer = DatasetWriter(root, fps=10, robot_type='bench', cameras={'front': (size, size, 3)},
                           arrays={'observation.state': ['q'], 'action': ['a']}, video=False)
    for _ in range(episodes):
        writer.add_episode(frames={'front': rng.integers(0, 256, (length, size, size, 3), dtype=np.uint8)},
                           arrays={'observation.state': np.zeros((length, 1), np.float32),
                                   'action': np.zeros((length, 1), np.float32)}, task='bench')
    writer.finalize()
    return root


def synchronise(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, steps: int, device: torch.device) -> float:
    synchronise(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    synchronise(device)
    return (time.perf_counter() - start) / steps


def measure(dataset: Path, run_dir: Path, arch: str, size: int, precision: str, batch: int, window: int,
            warmup: int, steps: int, cache_dir: str | None = None) -> dict:
    """Return frames/s of full trainer steps and of bare forward+backward passes, and bare/full time."""
    config = apply_overrides(load_config('default'), {
        'encoder.arch': arch, 'encoder.input_size': [size, size], 'optim.batch_size': batch,
        'data.window': window, 'data.val_fraction': 0.0, 'train.precision': precision,
        'data.cache_dir': cache_dir or str(run_dir / 'frame_cache'),
        'optim.epochs': 1000})  # long schedule: the bench never reaches an epoch's end logic
    trainer = Pretrainer(config, dataset, run_dir, progress=False)
    device = trainer.device
    frames_per_step = batch * window * len(trainer.camera_names)

    for _ in range(warmup):
        trainer.advance()
    full = timed(trainer.advance, steps, device)

    fixed = trainer.train_set.batch(torch.arange(batch) % len(trainer.train_set)).to(device)
    objective = trainer.objective.train()

    def bare():
        # A fresh autocast context per call, as the trainer does.
        with (torch.autocast(device.type, dtype=torch.bfloat16) if precision == 'bf16' else contextlib.nullcontext()):
            loss, _ = objective(fixed)
        objective.zero_grad(set_to_none=True)
        loss.backward()

    for _ in range(warmup):
        bare()
    bare_time = timed(bare, steps, device)
    return {'size': size, 'precision': precision, 'full_fps': frames_per_step / full,
            'bare_fps': frames_per_step / bare_time, 'ratio': bare_time / full, 'device': str(device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='1 warm-up + 2 timed steps per case')
    parser.add_argument('--arch', default='resnet18')
    parser.add_argument('--sizes', type=int, nargs='+', default=[96, 224])
    parser.add_argument('--precisions', nargs='+', default=['fp32', 'bf16'], choices=['fp32', 'bf16'])
    parser.add_argument('--batch', type=int, default=32)
    parser.add_argument('--window', type=int, default=5)
    parser.add_argument('--steps', type=int, default=10, help='timed steps per case (after warm-up)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = default)')
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    warmup, steps = (1, 2) if args.quick else (3, args.steps)
    device_name = torch.cuda.get_device_name() if torch.cuda.is_available() else platform.processor() or 'cpu'
    print(f'pretrain throughput: {args.arch}, batch {args.batch}, window {args.window}, torch {torch.__version__}, '
          f'{device_name}, {torch.get_num_threads()} CPU threads, {steps} timed steps per case')
    print(f'{"size":>5} {"precision":>9} {"full frames/s":>14} {"bare frames/s":>14} {"full/bare":>9}')
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            # Enough windows for warm-up + timed steps without wrapping an epoch.
            length = 40
            episodes = max(2, -(-(warmup + steps) * args.batch // (length - args.window + 1)) + 1)
            dataset = write_dataset(Path(tmp) / f'data{size}', size, episodes, length)
            for precision in args.precisions:
                r = measure(dataset, Path(tmp) / f'run{size}{precision}', args.arch, size, precision,
                            args.batch, args.window, warmup, steps)
                print(f'{size:>5} {precision:>9} {r["full_fps"]:>14.1f} {r["bare_fps"]:>14.1f} {r["ratio"]:>9.2f}',
                      flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
