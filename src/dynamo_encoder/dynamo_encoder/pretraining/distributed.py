"""Data-parallel pretraining on several processes, started by `torchrun --nproc-per-node N $(which pretrain)`.

Every process (rank) holds a full copy of the objective, wrapped in DistributedDataParallel: gloo
on CPU, NCCL on CUDA (one GPU per rank, cuda:LOCAL_RANK). optim.batch_size is the global batch of
one step, split over the ranks, and optim.lr applies to that global batch: a run on N processes is
the same training run (same steps, schedule, windows per step) as on one, so --resume works with
any number of processes. The loss of each rank is weighted by its share of the global batch, so the
averaged gradient is that of the mean over the global batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Ranks:
    """This process's place in the run: rank, number of processes, and the local rank (the GPU it uses)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Return True on the process that alone writes outputs and prints progress."""
        return self.rank == 0

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Return the sum of `tensor` over the ranks (the tensor itself for a single process)."""
        if self.world_size == 1:
            return tensor
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    def shard(self, global_batch: torch.Tensor) -> torch.Tensor:
        """Return this rank's part of a step's global batch of window indices (every world_size-th one)."""
        return global_batch[self.rank::self.world_size]


def current_ranks() -> Ranks:
    """Return the ranks of the initialised process group, or a single process when there is none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get('LOCAL_RANK', 0)))


def init_from_environment(device: str) -> Ranks:
    """Join the process group torchrun describes in the environment (WORLD_SIZE > 1); else run as one process.

    The backend follows the device the run trains on: NCCL for CUDA, gloo for the CPU.
    """
    if int(os.environ.get('WORLD_SIZE', '1')) <= 1:
        return Ranks()
    cuda = device.startswith('cuda') or (device == 'auto' and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get('LOCAL_RANK', 0)))
    dist.init_process_group('nccl' if cuda else 'gloo')
    return current_ranks()


def leave_group() -> None:
    """Leave the process group once every rank got here (nothing to do for a single process).

    The barrier comes first because a gloo rank that tears the group down while a peer still holds it
    (rank 0 writing the run's files, say) aborts now and then at exit (SIGABRT, "terminate called
    without an active exception"). Only for a run that went well: after a failure the peers may
    never arrive, so failing runs call destroy_process_group directly.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class _SumOverRanks(torch.autograd.Function):
    """Sum a tensor over the ranks; the gradient of each rank's input is the sum of the ranks' output gradients."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        total = tensor.clone()
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        total = gradient.clone()
        dist.all_reduce(total)
        return total


class SyncBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over every rank, on any device.

    torch's SyncBatchNorm runs on GPUs only; this one all-reduces per-channel sums (differentiably)
    over the process group, so CPU (gloo) runs normalise exactly as one process with the global
    batch. With one process, or in eval mode, it is plain BatchNorm2d; its state_dict is the same.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or current_ranks().world_size == 1:
            return super().forward(x)
        values = x.float()
        count = torch.tensor([values.numel() / values.shape[1]], device=x.device)
        sums = torch.cat([values.sum((0, 2, 3)), values.square().sum((0, 2, 3)), count])
        sums = _SumOverRanks.apply(sums)
        channels = x.shape[1]
        total = sums[-1]
        mean = sums[:channels] / total
        variance = (sums[channels:2 * channels] / total - mean.square()).clamp_min(0.0)
        with torch.no_grad():
            self.num_batches_tracked.add_(1)
            unbiased = variance * (total / (total - 1).clamp_min(1.0))
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(unbiased, self.momentum)
        scale = self.weight * torch.rsqrt(variance + self.eps)
        shift = self.bias - mean * scale
        return (values * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)).to(x.dtype)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm2d in `module` by a SyncBatchNorm2d holding the same parameters and buffers."""
    for name, child in module.named_children():
        if type(child) is nn.BatchNorm2d:
            synced = SyncBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                     child.track_running_stats)
            synced.load_state_dict(child.state_dict())
            synced.to(child.weight.device)
            setattr(module, name, synced)
        else:
            convert_sync_batchnorm(child)
    return module
