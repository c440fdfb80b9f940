"""The pretraining loop: windows from the frame cache -> objective -> AdamW, with checkpoints.

On several processes (torchrun; see distributed.py) every rank trains on its share of each global
batch and rank 0 alone writes the files below and shows progress.

Files in RUN_DIR:
  config.yaml        the resolved config of the run
  checkpoint.pt      model + optimiser + scheduler + config + step + torch RNG state + history
                     (written atomically every `train.checkpoint_every` steps, at each epoch end,
                     after the step running at Ctrl-C, and at the end; `--resume` continues from it
                     bit-for-bit on CPU)
  metrics.csv        per-step loss components and lr, per-epoch validation loss
  loss_curves.png    the same as a plot
  encoder.pt         the encoder artifact (dynamo_encoder.artifact), written at the end
"""

from __future__ import annotations

import contextlib
import csv
import math
import os
import signal
import threading
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure
from tqdm import tqdm

from dynamo_data import DatasetError, LeRobotDataset
from dynamo_data.atomic import atomic_open
from dynamo_data.episode_split import split_episodes

from ..artifact import EncoderArtifact
from ..model import build_encoder, build_objective
from .config import MEMORY_FORMATS, ConfigError, PretrainConfig, config_from_dict, save_config
from .data import check_arrays_finite, load_windows, open_frame_cache, resolve_cameras
from .distributed import convert_sync_batchnorm, current_ranks

CHECKPOINT = 'checkpoint.pt'
CHECKPOINT_KEYS = ('step', 'config', 'camera_names', 'objective', 'optimizer', 'scheduler', 'torch_rng', 'cuda_rng',
                   'history', 'val_history')
ENCODER = 'encoder.pt'
VALIDATION_WINDOWS = 512   # cap per validation pass; a fixed subset so values are comparable across epochs
PLOT_EVERY_S = 60.0        # redraw loss_curves.png at most this often during training (and at the end)
# Settings that may differ when resuming: they change speed, not the training run.
RESUMABLE_DIFFERENCES = {'train.threads', 'train.device', 'train.checkpoint_every', 'data.cache_dir'}


def flatten_settings(values: dict, prefix: str = '') -> dict:
    """Return nested settings as {'section.key': value}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f'{prefix}{key}.'))
        else:
            flat[f'{prefix}{key}'] = value
    return flat


class CheckpointError(Exception):
    """A run's checkpoint cannot be read; the message names the file."""


def lr_factor(step: int, total_steps: int, warmup_steps: int, min_fraction: float) -> float:
    """Linear warm-up to 1, then cosine decay to `min_fraction` at `total_steps`."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(total_steps - warmup_steps, 1)
    return min_fraction + (1.0 - min_fraction) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def resolve_device(name: str) -> torch.device:
    """Return the device named by train.device; on CUDA with several processes, each rank's own GPU."""
    if name == 'auto':
        name = 'cuda' if torch.cuda.is_available() else 'cpu'
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise ConfigError(f'train.device {name!r}: CUDA is not available on this machine')
    ranks = current_ranks()
    if device.type == 'cuda' and ranks.world_size > 1:
        return torch.device('cuda', ranks.local_rank)
    return device


def has_fast_bf16(device: torch.device) -> bool:
    """Return whether bf16 autocast is expected to train faster than fp32 on `device` (train.precision auto).

    CUDA: GPUs with native bf16 (Ampere and later). CPU: only with AMX tiles. AVX512-BF16 alone is
    not enough: on an AMD EPYC with it, bf16 autocast trained 16x slower than fp32.
    """
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    return device.type == 'cpu' and torch.cpu._is_amx_tile_supported()


class Pretrainer:
    """Owns data, objective, optimiser and schedule of one run; `run()` trains to the end.

    The initial weights depend on train.seed only. Randomness during training (dropout, BYOL's
    augmentations) draws from torch's global RNG, which the caller seeds (the `pretrain` command
    seeds it with train.seed) and which checkpoints save and restore, so resuming is exact.
    """

    def __init__(self, config: PretrainConfig, dataset_dir: str | os.PathLike, output_dir: str | os.PathLike,
                 *, progress: bool = True):
        self.config = config.validate()
        self.output_dir = Path(output_dir)
        self.ranks = current_ranks()
        self.progress = progress and self.ranks.main
        self.device = resolve_device(config.train.device)
        precision = config.train.precision
        if precision == 'auto':
            precision = 'bf16' if has_fast_bf16(self.device) else 'fp32'
        self.autocast_dtype = torch.bfloat16 if precision == 'bf16' else None

        dataset = LeRobotDataset(dataset_dir)
        self.camera_names = resolve_cameras(dataset, config.data.cameras)
        # The objective reads frames only, but the policies trained on this dataset read its arrays:
        # a NaN is refused here, before the slow decode, rather than after hours of pretraining.
        check_arrays_finite(dataset, list(range(dataset.num_episodes)), dataset.array_keys)
        train_episodes, val_episodes = split_episodes(dataset.num_episodes, config.data.val_fraction,
                                                      config.data.split_seed)
        size = tuple(config.encoder.input_size)
        cache = open_frame_cache(dataset, self.camera_names, size, config.data.cache_dir, self.progress)
        self.train_set = load_windows(cache, dataset, train_episodes, config.data.window)
        self.val_set = load_windows(cache, dataset, val_episodes, config.data.window)
        if len(self.train_set) == 0:
            raise DatasetError(f'{dataset.root}: no training windows')
        if len(self.train_set) < self.ranks.world_size:
            raise DatasetError(f'{dataset.root}: {len(self.train_set)} training windows, fewer than the '
                               f'{self.ranks.world_size} processes')

        encoder = build_encoder(config.encoder.arch, size, seed=config.train.seed)
        self.objective = build_objective(config.objective, encoder, config.data.window,
                                         seed=config.train.seed).to(self.device)
        # The encoder makes its input the layout of its convolution weights (ImageEncoder.preprocess).
        memory_format = config.train.memory_format
        if memory_format == 'auto':
            memory_format = 'channels_last' if self.device.type == 'cuda' else 'contiguous'
        self.objective.to(memory_format=MEMORY_FORMATS[memory_format])
        # The model as each step runs it: DistributedDataParallel over several processes, the objective
        # itself on one; compiled when asked.
        self.model = self.objective
        if self.ranks.world_size > 1:
            if config.train.sync_batchnorm:
                convert_sync_batchnorm(self.objective)
            self.model = torch.nn.parallel.DistributedDataParallel(
                self.objective, device_ids=[self.device.index] if self.device.type == 'cuda' else None)
        if config.train.compile:
            self.model = torch.compile(self.model)
        trainable = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=config.optim.lr, betas=tuple(config.optim.betas),
                                           weight_decay=config.optim.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_set) / config.optim.batch_size)
        self.total_steps = self.steps_per_epoch * config.optim.epochs
        warmup = int(round(config.optim.warmup_fraction * self.total_steps))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: lr_factor(step, self.total_steps, warmup, config.optim.min_lr_fraction))
        self.step = 0
        self._order: tuple[int, torch.Tensor | None] = (-1, None)   # (epoch, its window order)
        self.history: list[dict] = []       # per step: step, epoch, lr, loss components
        self.val_history: list[dict] = []   # per epoch: step, epoch, val_loss
        self._last_plot = time.monotonic()
        self.interrupted = False            # set by the first Ctrl-C during run()

    # -- one step -------------------------------------------------------------------------------
    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def train_step(self, frames: torch.Tensor, share: float = 1.0) -> dict[str, float]:
        """Run one optimisation step on uint8 (B, T, V, H, W, 3) frames; return the loss components.

        `share` is this rank's fraction of the global batch: each rank's loss counts by its share in
        the gradient, which DistributedDataParallel averages, and in the reported components.
        """
        self.objective.train()
        with self._autocast():
            loss, components = self.model(frames.to(self.device, non_blocking=True))
        self.optimizer.zero_grad(set_to_none=True)
        (loss * (share * self.ranks.world_size)).backward()
        torch.nn.utils.clip_grad_norm_(self.objective.parameters(), self.config.optim.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self.objective.after_optimizer_step(self.step / self.total_steps)
        values = torch.stack([v.detach().float() for v in components.values()])
        if self.ranks.world_size > 1:
            values = self.ranks.sum(values * share)
        return dict(zip(components, values.tolist()))

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Return the shuffled window order of an epoch: a function of (seed, epoch), so resuming mid-epoch is exact."""
        if self._order[0] != epoch:   # drawn once per epoch: a permutation of millions of windows is not free
            generator = torch.Generator().manual_seed(self.config.train.seed * 1_000_003 + epoch)
            self._order = (epoch, torch.randperm(len(self.train_set), generator=generator))
        return self._order[1]

    def global_batch(self, step: int) -> torch.Tensor:
        """Return the window indices of a step's global batch (all ranks together): a function of (seed, step)."""
        epoch, position = divmod(step, self.steps_per_epoch)
        batch_size = self.config.optim.batch_size
        order = self.epoch_order(epoch)
        indices = order[position * batch_size:(position + 1) * batch_size]
        if len(indices) < self.ranks.world_size:
            # An epoch's short last batch gives every rank a window, topped up from the epoch's start.
            indices = torch.cat([indices, order[:self.ranks.world_size - len(indices)]])
        return indices

    def advance(self) -> dict:
        """Run the next step: this rank's share of its batch from the cache, one train_step, one history row."""
        epoch = self.step // self.steps_per_epoch
        indices = self.global_batch(self.step)
        mine = self.ranks.shard(indices)
        components = self.train_step(self.train_set.batch(mine), share=len(mine) / len(indices))
        row = {'step': self.step, 'epoch': epoch, 'lr': self.scheduler.get_last_lr()[0], **components}
        self.history.append(row)
        return row

    @torch.no_grad()
    def validate(self) -> float | None:
        """Return the mean loss over a fixed subset of validation windows (rank 0 only; None on the others)."""
        if len(self.val_set) == 0 or not self.ranks.main:
            return None
        self.objective.eval()
        generator = torch.Generator().manual_seed(12345)
        indices = torch.randperm(len(self.val_set), generator=generator)[:VALIDATION_WINDOWS]
        total, count = 0.0, 0
        for start in range(0, len(indices), self.config.optim.batch_size):
            chunk = indices[start:start + self.config.optim.batch_size]
            with self._autocast():
                loss, _ = self.objective(self.val_set.batch(chunk))
            total += float(loss) * len(chunk)
            count += len(chunk)
        return total / count

    # -- the loop -------------------------------------------------------------------------------
    def run(self, stop_after_steps: int | None = None) -> bool:
        """Train until the end (or until `stop_after_steps` steps of this call); True when finished.

        The first Ctrl-C finishes the current step, writes a checkpoint and returns False (so
        `--resume` continues bit-exactly); a second Ctrl-C interrupts at once.
        """
        if self.ranks.main:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            save_config(self.config, self.output_dir / 'config.yaml')
        stop_at = self.total_steps if stop_after_steps is None else min(self.total_steps, self.step + stop_after_steps)
        self.interrupted = False
        with _first_sigint_sets_flag(self):
            bar = tqdm(total=self.total_steps, initial=self.step, desc='pretrain', unit='step',
                       disable=not self.progress, dynamic_ncols=True)
            try:
                while self.step < stop_at and not self.interrupted:
                    epoch = self.step // self.steps_per_epoch
                    components = self.advance()
                    if self.ranks.world_size > 1:
                        # Every rank stops after the same step, or the others would wait for it forever.
                        flag = torch.tensor([float(self.interrupted)], device=self.device)
                        torch.distributed.all_reduce(flag, torch.distributed.ReduceOp.MAX)
                        self.interrupted = bool(flag.item())
                    bar.update(1)
                    bar.set_postfix({k: f'{v:.2e}' if k == 'lr' else f'{v:.4f}'
                                    for k, v in components.items() if k not in ('step', 'epoch')})
                    epoch_done = self.step % self.steps_per_epoch == 0
                    if epoch_done:
                        val_loss = self.validate()
                        if val_loss is not None:
                            self.val_history.append({'step': self.step, 'epoch': epoch, 'val_loss': val_loss})
                            bar.write(f'epoch {epoch + 1}/{self.config.optim.epochs}: '
                                      f'train loss {components["loss"]:.4f}, val loss {val_loss:.4f}')
                    if (epoch_done or self.step % self.config.train.checkpoint_every == 0 or self.step == stop_at
                            or self.interrupted):
                        self.save_checkpoint()
                    if epoch_done and time.monotonic() - self._last_plot >= PLOT_EVERY_S:
                        self.write_metrics()
            finally:
                bar.close()
        if self.interrupted:
            self.write_metrics()
            if self.ranks.main:
                print(f'pretrain: interrupted; checkpoint at step {self.step} in {self.output_dir / CHECKPOINT}')
        if self.step < self.total_steps:
            return False
        self.write_metrics()
        if self.ranks.main:
            self.export_encoder().save(self.output_dir / ENCODER)
        return True

    # -- outputs --------------------------------------------------------------------------------
    def export_encoder(self) -> EncoderArtifact:
        encoder = build_encoder(self.config.encoder.arch, tuple(self.config.encoder.input_size))
        encoder.load_state_dict(self.objective.encoder.state_dict())
        return EncoderArtifact(encoder, self.camera_names, name=f'{self.objective.name}-{self.config.encoder.arch}',
                               training_config=self.config.to_dict())

    def save_checkpoint(self) -> None:
        """Write RUN_DIR/checkpoint.pt (rank 0 only: the replicas are identical)."""
        if not self.ranks.main:
            return
        state = {
            'step': self.step,
            'config': self.config.to_dict(),
            'camera_names': self.camera_names,
            'objective': self.objective.state_dict(),
            'optimizer': self.optimizer.state_dict(),
            'scheduler': self.scheduler.state_dict(),
            'torch_rng': torch.get_rng_state(),
            'cuda_rng': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            'history': self.history,
            'val_history': self.val_history,
        }
        with atomic_open(self.output_dir / CHECKPOINT, 'wb') as file:
            torch.save(state, file)

    def load_checkpoint(self, path: Path) -> None:
        state = read_checkpoint(path)
        ours, theirs = flatten_settings(self.config.to_dict()), flatten_settings(state['config'])
        differing = sorted(k for k in set(ours) | set(theirs)
                           if ours.get(k) != theirs.get(k) and k not in RESUMABLE_DIFFERENCES)
        if differing:
            details = ', '.join(f'{k} (checkpoint {theirs.get(k)!r}, now {ours.get(k)!r})' for k in differing)
            raise ConfigError(f'{path}: cannot resume with a different config; differing: {details}')
        if state['camera_names'] != self.camera_names:
            raise ConfigError(f'{path}: checkpoint cameras {state["camera_names"]} != dataset cameras '
                              f'{self.camera_names}')
        self.objective.load_state_dict(state['objective'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        torch.set_rng_state(state['torch_rng'])
        if state['cuda_rng'] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda_rng'])
        self.step = int(state['step'])
        if self.ranks.world_size > 1:
            # The checkpoint holds rank 0's stream; each rank continues on its own (exact resume is one process's).
            torch.manual_seed(self.config.train.seed + 1_000_003 * self.ranks.rank + self.step)
        self.history = list(state['history'])
        self.val_history = list(state['val_history'])

    def write_metrics(self) -> None:
        """Write metrics.csv and loss_curves.png (both atomic; rank 0 only)."""
        if not self.history or not self.ranks.main:
            return
        keys = list(self.history[-1].keys())
        val_by_step = {v['step']: v['val_loss'] for v in self.val_history}
        with atomic_open(self.output_dir / 'metrics.csv', 'w', newline='') as handle:
            writer = csv.DictWriter(handle, fieldnames=keys + ['val_loss'])
            writer.writeheader()
            for row in self.history:
                writer.writerow({**row, 'val_loss': val_by_step.get(row['step'], '')})
        plot_loss_curves(self.history, self.val_history, self.output_dir / 'loss_curves.png')
        self._last_plot = time.monotonic()


@contextlib.contextmanager
def _first_sigint_sets_flag(trainer: Pretrainer):
    """While training: the first SIGINT sets trainer.interrupted, a second one raises KeyboardInterrupt."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if trainer.interrupted:
            raise KeyboardInterrupt
        trainer.interrupted = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def plot_loss_curves(history: list[dict], val_history: list[dict], path: Path) -> None:
    components = [k for k in history[0] if k not in ('step', 'epoch', 'lr')]
    steps = [row['step'] for row in history]
    fig = Figure(figsize=(4.5 * len(components), 3.5))
    axes = fig.subplots(1, len(components), squeeze=False)
    window = max(1, len(history) // 50)
    for ax, key in zip(axes[0], components):
        values = torch.tensor([row[key] for row in history], dtype=torch.float64)
        ax.plot(steps, values.numpy(), alpha=0.3, color='C0', label='train (per step)')
        if window > 1:
            smooth = torch.nn.functional.avg_pool1d(values.view(1, 1, -1), window, 1).view(-1)
            ax.plot(steps[window - 1:], smooth.numpy(), color='C0', label=f'train (mean of {window})')
        if key == 'loss' and val_history:
            ax.plot([v['step'] for v in val_history], [v['val_loss'] for v in val_history], 'o-',
                    color='C1', label='validation')
        ax.set_title(key)
        ax.set_xlabel('step')
        if bool((values > 0).all()):
            ax.set_yscale('log')  # losses fall by orders of magnitude; the late progress matters
        ax.legend(fontsize=7)
    fig.tight_layout()
    with atomic_open(path, 'wb') as file:
        fig.savefig(file, format='png', dpi=100)


def pretrain(dataset_dir: str | os.PathLike, output_dir: str | os.PathLike, config: PretrainConfig, *,
             resume: bool = False, stop_after_steps: int | None = None, progress: bool = True) -> Path | None:
    """Train (or resume) a run; return RUN_DIR/encoder.pt when finished, None when stopped early."""
    output_dir = Path(output_dir)
    checkpoint = output_dir / CHECKPOINT
    if checkpoint.exists() and not resume:
        raise ConfigError(f'{output_dir}: a run already exists there ({CHECKPOINT}); pass --resume to continue '
                          f'it or choose another --output')
    trainer = Pretrainer(config, dataset_dir, output_dir, progress=progress)
    if resume and checkpoint.exists():
        trainer.load_checkpoint(checkpoint)
    finished = trainer.run(stop_after_steps=stop_after_steps)
    return output_dir / ENCODER if finished else None


def read_checkpoint(path: Path) -> dict:
    """Read a run's checkpoint; CheckpointError naming the file when it is not a readable pretraining checkpoint."""
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure means the checkpoint is unusable
        reason = str(exc).partition('\n')[0]
        raise CheckpointError(f'{path}: unreadable checkpoint ({type(exc).__name__}: {reason}); '
                              f'remove it to start the run afresh') from None
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(f'{path}: not a pretraining checkpoint (missing {missing}); '
                              f'remove it to start the run afresh')
    return state


def load_run_config(output_dir: str | os.PathLike) -> PretrainConfig:
    """Return the config stored in a run's checkpoint."""
    path = Path(output_dir) / CHECKPOINT
    return config_from_dict(read_checkpoint(path)['config'], where=str(path))
