"""`pretrain`: learn a visual encoder from demonstrations with DynaMo.

  pretrain --dataset DATASET_DIR --output RUN_DIR [--config PRESET_OR_YAML] [--resume] [--set key=value ...]

Examples:
  pretrain --dataset data/fridge --output runs/fridge --config cpu_small
  pretrain --dataset data/fridge --output runs/fridge --set optim.epochs=10 --threads 2
  pretrain --dataset data/fridge --output runs/fridge_noinv --set objective.inverse_model=false
  pretrain --dataset data/fridge --output runs/fridge --resume      # continue after Ctrl-C / a crash
  torchrun --nproc-per-node 4 $(which pretrain) --dataset data/fridge --output runs/fridge   # 4 GPUs

Several processes (torchrun) train data-parallel: optim.batch_size is the global batch of a step,
split over the processes, and optim.lr belongs to that global batch, so the run is the same training
run on any number of processes and --resume may change their number (see pretraining/distributed.py).
Rank 0 alone writes RUN_DIR and prints progress.

Exit status (one line on stderr names the problem): 0 when finished or stopped as asked; 2 on bad
command-line usage or a bad setting (preset, YAML file, --set, a config that does not fit the
dataset or the run being resumed); 1 when the dataset or checkpoint cannot be read or used, the
run directory cannot be written, or training fails (e.g. out of memory); 130 on a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from dynamo_data import DatasetError

from ..artifact import ArtifactError
from .config import ABLATIONS, PRESETS_DIR, ConfigError, apply_overrides, load_config
from .distributed import init_from_environment, leave_group
from .trainer import CHECKPOINT, CheckpointError, load_run_config, pretrain


def build_parser() -> argparse.ArgumentParser:
    presets = ', '.join(sorted(p.stem for p in PRESETS_DIR.glob('*.yaml')))
    parser = argparse.ArgumentParser(
        prog='pretrain', description='Pretrain a visual encoder on a LeRobot v3 dataset with DynaMo.',
        epilog='Ablations of the paper as --set values: '
               + '; '.join(f'{name}: ' + ' '.join(f'{k}={v}' for k, v in s.items()) for name, s in ABLATIONS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--dataset', required=True, help='LeRobot v3 dataset directory')
    parser.add_argument('--output', required=True, help='run directory (checkpoint, curves, encoder.pt)')
    parser.add_argument('--config', default=None,
                        help=f'preset name ({presets}) or YAML file; default: "default", or the '
                             f"checkpoint's config with --resume")
    parser.add_argument('--resume', action='store_true',
                        help=f'continue from RUN_DIR/{CHECKPOINT} if it exists (else start)')
    parser.add_argument('--set', dest='overrides', action='append', default=[], metavar='KEY=VALUE',
                        help='override a config value, e.g. optim.epochs=10 (repeatable; values are YAML)')
    parser.add_argument('--threads', type=int, default=None, metavar='N',
                        help='torch CPU threads (shorthand for --set train.threads=N; may change on --resume)')
    parser.add_argument('--stop-after-steps', type=int, default=None, metavar='N',
                        help='checkpoint and exit after N steps of this invocation (continue with --resume)')
    parser.add_argument('--no-progress', action='store_true', help='no progress bar')
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None and args.threads < 0:
        parser.error(f'--threads must be >= 0 (0 = the default), got {args.threads}')
    if args.stop_after_steps is not None and args.stop_after_steps < 1:
        parser.error(f'--stop-after-steps must be >= 1, got {args.stop_after_steps}')
    try:
        resuming = args.resume and (Path(args.output) / CHECKPOINT).exists()
        if resuming and args.config is None:
            config = load_run_config(args.output)
        else:
            config = load_config(args.config or 'default')
        overrides = list(args.overrides) + ([f'train.threads={args.threads}'] if args.threads is not None else [])
        if overrides:
            config = apply_overrides(config, overrides)
        if config.train.threads > 0:
            torch.set_num_threads(config.train.threads)
        ranks = init_from_environment(config.train.device)
        # Dropout and augmentations draw from the global RNG (a stream per rank); a resumed run
        # restores it from the checkpoint.
        torch.manual_seed(config.train.seed + 1_000_003 * ranks.rank)
        encoder_path = pretrain(args.dataset, args.output, config, resume=args.resume,
                                stop_after_steps=args.stop_after_steps, progress=not args.no_progress)
        leave_group()
    except ConfigError as exc:
        print(f'pretrain: error: {exc}', file=sys.stderr)
        return 2
    except (DatasetError, ArtifactError, CheckpointError) as exc:
        print(f'pretrain: error: {exc}', file=sys.stderr)
        return 1
    except (OSError, RuntimeError) as exc:  # e.g. RUN_DIR not writable, out of memory
        reason = str(exc).partition('\n')[0]
        print(f'pretrain: failed: {type(exc).__name__}: {reason} (a checkpoint in {args.output}, if any, '
              f'continues with --resume)', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        if torch.distributed.is_initialized():   # a failed run: its peers may never reach leave_group
            torch.distributed.destroy_process_group()
    if not ranks.main:
        return 0
    if encoder_path is None:
        print(f'pretrain: stopped early; continue with: pretrain --dataset {args.dataset} '
              f'--output {args.output} --resume')
    else:
        print(f'pretrain: encoder written to {encoder_path}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
