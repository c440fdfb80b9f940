"""Pretraining throughput: frames/s of our trainer in its baseline form and with each speed lever, in one run.

  python bench/pretrain_throughput.py [--quick] [--size 64] [--batch 16] [--window 5] [--threads N]
                                      [--forms baseline channels_last compiled bf16] [--device auto]
  torchrun --nproc-per-node N bench/pretrain_throughput.py --device cuda ...   (data-parallel: one row)

Every form is Pretrainer.advance(), exactly what `pretrain` does per step (batch from the memory-mapped
uint8 frame cache, preprocessing inside the encoder, DynaMo loss, backward, gradient clipping, AdamW,
LR schedule, history row), with these settings:

  baseline       train.memory_format=contiguous, fp32, not compiled: the official DynaMo trainer's
                 computation (a side-by-side run at 64x64, batch 16, window 5, 2 threads: official
                 61-65 frames/s, this form 61-67)
  channels_last  convolutions channels-last (train.memory_format auto picks it on CUDA; same loss within
                 1e-4, test_pretrain_speed)
  compiled       channels_last + train.compile
  bf16           channels_last + bf16 autocast; by default only where the hardware has fast bf16
                 (trainer.has_fast_bf16): on an AMD EPYC with AVX512-BF16 it was 16x slower than fp32

The forms' trainers are built first, then their timed steps alternate (one step of each in turn),
so a machine whose load changes during the run slows every form alike: compare the ratios. Frames/s
counts every frame of every window of the global batch (batch x window x cameras) per second; the
median step time is used. Defaults follow the side-by-side run above (resnet18, 64x64, batch 16, window 5).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from dynamo_data import DatasetWriter
from dynamo_encoder.pretraining.config import apply_overrides, load_config
from dynamo_encoder.pretraining.distributed import init_from_environment, leave_group
from dynamo_encoder.pretraining.trainer import Pretrainer, has_fast_bf16, resolve_device

FORMS = {
    'baseline': {'train.memory_format': 'contiguous', 'train.precision': 'fp32', 'train.compile': False},
    'channels_last': {'train.memory_format': 'channels_last', 'train.precision': 'fp32', 'train.compile': False},
    'compiled': {'train.memory_format': 'channels_last', 'train.precision': 'fp32', 'train.compile': True},
    'bf16': {'train.memory_format': 'channels_last', 'train.precision': 'bf16', 'train.compile': False},
}


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


def timed_step(trainer: Pretrainer) -> float:
    if trainer.device.type == 'cuda':
        torch.cuda.synchronize(trainer.device)
    start = time.perf_counter()
    trainer.advance()
    if trainer.device.type == 'cuda':
        torch.cuda.synchronize(trainer.device)
    return time.perf_counter() - start


def bare_step_time(trainer: Pretrainer, steps: int, warmup: int) -> float:
    """Return the median time of a bare forward + backward of the trainer's objective on one fixed batch.

    Against a full step (Pretrainer.advance) this is what the loader, the optimiser and the bookkeeping
    add: full/bare <= 1.1 is the goal (issue 16), also for a frame cache larger than memory
    (bench/pretrain_beyond_memory.py).
    """
    device = trainer.device
    fixed = trainer.train_set.batch(torch.arange(trainer.config.optim.batch_size) % len(trainer.train_set))
    fixed = fixed.to(device)
    objective = trainer.objective.train()

    def bare() -> float:
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        loss, _ = objective(fixed)
        objective.zero_grad(set_to_none=True)
        loss.backward()
        if device.type == 'cuda':
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    for _ in range(warmup):
        bare()
    return statistics.median(bare() for _ in range(steps))


def measure(dataset: Path, run_dir: Path, arch: str, size: int, precision: str, batch: int, window: int,
            warmup: int, steps: int, cache_dir: str | None = None) -> dict:
    """Return frames/s of full baseline-form trainer steps and of bare forward+backward passes, and bare/full."""
    config = apply_overrides(load_config('default'), {
        'encoder.arch': arch, 'encoder.input_size': [size, size], 'optim.batch_size': batch,
        'data.window': window, 'data.val_fraction': 0.0, **FORMS['baseline'], 'train.precision': precision,
        'data.cache_dir': cache_dir or str(run_dir / 'frame_cache'),
        'optim.epochs': 1000})  # long schedule: the bench never reaches an epoch's end logic
    trainer = Pretrainer(config, dataset, run_dir, progress=False)
    for _ in range(warmup):
        trainer.advance()
    full = statistics.median(timed_step(trainer) for _ in range(steps))
    bare = bare_step_time(trainer, steps, warmup)
    frames_per_step = batch * window * len(trainer.camera_names)
    return {'size': size, 'precision': precision, 'full_fps': frames_per_step / full,
            'bare_fps': frames_per_step / bare, 'ratio': bare / full, 'device': str(trainer.device)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='2 warm-up + 3 timed steps per form')
    parser.add_argument('--arch', default='resnet18')
    parser.add_argument('--size', type=int, default=64, help='frame and encoder input size (square)')
    parser.add_argument('--batch', type=int, default=16, help='global batch (windows per step)')
    parser.add_argument('--window', type=int, default=5)
    parser.add_argument('--steps', type=int, default=10, help='timed steps per form (after warm-up)')
    parser.add_argument('--warmup', type=int, default=3, help='untimed steps per form first (compiling included)')
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0 = default)')
    parser.add_argument('--device', default='auto', help='auto | cpu | cuda')
    parser.add_argument('--forms', nargs='+', choices=sorted(FORMS), default=None,
                        help='forms to measure (default: all; bf16 only where the hardware has fast bf16)')
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    ranks = init_from_environment(args.device)
    device = resolve_device(args.device)
    forms = args.forms or [f for f in FORMS if f != 'bf16' or has_fast_bf16(device)]
    warmup, steps = (2, 3) if args.quick else (args.warmup, args.steps)
    say = print if ranks.main else (lambda *a, **k: None)
    device_name = torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or 'cpu'
    say(f'pretrain throughput: {args.arch}, {args.size}x{args.size}, batch {args.batch}, window {args.window}, '
        f'torch {torch.__version__}, {device_name}, {ranks.world_size} process(es), {torch.get_num_threads()} CPU '
        f'threads, median of {steps} alternating steps per form')
    if 'bf16' not in forms and args.forms is None:
        say(f'  bf16: not measured: no fast bf16 on {device.type} here (--forms ... bf16 measures it anyway)')
    with tempfile.TemporaryDirectory() as tmp:
        if ranks.world_size > 1:   # every rank reads rank 0's dataset and cache
            shared = [tmp]
            torch.distributed.broadcast_object_list(shared, src=0)
            tmp = shared[0]
        # Enough windows for warm-up + timed steps without reaching an epoch's end.
        length = 40
        episodes = max(2, -(-(warmup + steps + 1) * args.batch // (length - args.window + 1)) + 1)
        dataset = Path(tmp) / 'data'
        if ranks.main:
            write_dataset(dataset, args.size, episodes, length)
        if ranks.world_size > 1:
            torch.distributed.barrier()
        trainers = {}
        for form in forms:
            config = apply_overrides(load_config('default'), {
                'encoder.arch': args.arch, 'encoder.input_size': [args.size, args.size],
                'optim.batch_size': args.batch, 'data.window': args.window, 'data.val_fraction': 0.0,
                'data.cache_dir': str(Path(tmp) / 'frame_cache'), 'train.device': args.device,
                'optim.epochs': 1000, **FORMS[form]})   # long schedule: the bench never reaches an epoch's end
            trainers[form] = Pretrainer(config, dataset, Path(tmp) / form, progress=False)
            started = time.perf_counter()
            for _ in range(warmup):
                trainers[form].advance()
            say(f'  {form}: built, {warmup} warm-up steps in {time.perf_counter() - started:.1f} s', flush=True)
        times = {form: [] for form in forms}
        for _ in range(steps):
            for form, trainer in trainers.items():
                times[form].append(timed_step(trainer))
        bare = bare_step_time(trainers[forms[0]], steps, warmup)
        if ranks.world_size > 1:   # rank 0 removes the directory when it leaves this block
            torch.distributed.barrier()
    frames_per_step = args.batch * args.window * len(trainers[forms[0]].camera_names)
    fps = {form: frames_per_step / statistics.median(t) for form, t in times.items()}
    say(f'{"form":<14} {"frames/s":>10} {"vs baseline":>12}')
    for form, value in fps.items():
        ratio = f'{value / fps["baseline"]:.2f}x' if 'baseline' in fps else '-'
        say(f'{form:<14} {value:>10.1f} {ratio:>12}', flush=True)
    say(f'loader + optimiser + bookkeeping ({forms[0]}): full/bare = {statistics.median(times[forms[0]]) / bare:.2f} '
        '(goal <= 1.1)')
    leave_group()
    return 0


if __name__ == '__main__':
    sys.exit(main())
