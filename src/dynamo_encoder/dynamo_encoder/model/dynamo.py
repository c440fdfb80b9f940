"""The DynaMo self-supervised objective (Cui et al., 2024).

Over a window of T frames per camera view, one shared encoder gives embeddings o_1..o_T. A causal
inverse-dynamics transformer turns o_1..o_t into a low-dimensional latent transition z_t (the
bottleneck); a causal forward-dynamics transformer takes [o_t, z_{t+1}] and predicts o_{t+1}. The
loss is 1 - cos(prediction, target) with the target under stop-gradient (SimSiam style) or from an
EMA copy of the encoder, plus 0.04 x the mean squared off-diagonal covariance of the embeddings.

Unlike the official code's EMA configuration, the inverse model always runs on the online
embeddings with gradients, so the forward loss trains the encoder through both dynamics models.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .dynamics import CausalTransformer
from .encoder import ImageEncoder

TARGETS = ('stop_gradient', 'ema', 'none')


@dataclass
class TransformerConfig:
    layers: int = 6
    heads: int = 6
    width: int = 120
    dropout: float = 0.0


@dataclass
class DynaMoConfig:
    min_window: ClassVar[int] = 2        # a transition needs two frames
    latent_dim: int = 16                 # size of z_t, the bottleneck (paper: 8 to 64)
    inverse: TransformerConfig = field(default_factory=TransformerConfig)
    forward: TransformerConfig = field(default_factory=lambda: TransformerConfig(dropout=0.1))
    target: str = 'stop_gradient'        # 'stop_gradient' (default), 'ema', or 'none' (ablation: no stop-gradient)
    ema_beta_start: float = 0.99         # EMA target: beta follows a cosine from start to end over training
    ema_beta_end: float = 1.0
    covariance_weight: float = 0.04      # 0 = ablation "no covariance regularisation"
    forward_model: bool = True           # False = ablation: next embedding decoded from z_{t+1} alone
    inverse_model: bool = True           # False = ablation: forward model sees the embeddings only
    bottleneck: bool = True              # False = ablation: z_t as wide as the embedding

    def __post_init__(self):
        if isinstance(self.inverse, dict):
            self.inverse = TransformerConfig(**self.inverse)
        if isinstance(self.forward, dict):
            self.forward = TransformerConfig(**self.forward)
        if self.target not in TARGETS:
            raise ValueError(f'objective.target must be one of {TARGETS}, got {self.target!r}')
        if not (self.forward_model or self.inverse_model):
            raise ValueError('objective: at least one of forward_model and inverse_model must be enabled')


def off_diagonal_covariance(embeddings: torch.Tensor) -> torch.Tensor:
    """Mean of the squared off-diagonal entries of the covariance of (N, E) embeddings."""
    x = embeddings.float()
    x = x - x.mean(dim=0, keepdim=True)
    cov = x.T @ x / max(x.shape[0] - 1, 1)
    dim = cov.shape[0]
    off_diagonal = cov.masked_select(~torch.eye(dim, dtype=torch.bool, device=cov.device))
    return off_diagonal.square().mean()


def embedding_spread(embeddings: torch.Tensor) -> torch.Tensor:
    """Measure collapse (a monitor, not trained on): the spread of the L2-normalised (N, E) embeddings.

    The per-dimension std, averaged and scaled by sqrt(E): about 1 for embeddings spread evenly
    over the sphere, 0 when every frame maps to the same direction (collapse).
    """
    x = F.normalize(embeddings.reshape(-1, embeddings.shape[-1]).float(), dim=-1)
    return x.std(dim=0).mean() * math.sqrt(x.shape[-1])


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, beta: float) -> None:
    """Move the target towards the online module: target <- beta * target + (1 - beta) * online.

    That is for the parameters; buffers (BatchNorm running statistics, which are not trained) are
    copied from the online module.
    """
    for target_param, online_param in zip(target.parameters(), online.parameters()):
        target_param.lerp_(online_param, 1.0 - beta)
    for target_buffer, online_buffer in zip(target.buffers(), online.buffers()):
        target_buffer.copy_(online_buffer)


def ema_beta(progress: float, start: float, end: float) -> float:
    """Cosine schedule of the EMA decay: `start` at progress 0, `end` at progress 1."""
    progress = min(max(progress, 0.0), 1.0)
    return end - (end - start) * (math.cos(math.pi * progress) + 1.0) / 2.0


@dataclass
class DynaMoOutputs:
    """Intermediate tensors of one objective evaluation (views folded into the batch: (B*V, T, ...))."""

    embeddings: torch.Tensor          # online encoder output, (B*V, T, E)
    targets: torch.Tensor             # what predictions are compared to, (B*V, T, E)
    latents: torch.Tensor | None      # z_1..z_T, (B*V, T, L); None without inverse model
    predictions: torch.Tensor         # predicted o_2..o_T, (B*V, T-1, E)
    loss: torch.Tensor
    components: dict[str, torch.Tensor]  # dynamics, covariance (if weighted), loss, spread (monitor only)


class DynaMoObjective(nn.Module):
    """Pretraining objective: forward(frames) -> (loss, {component: value}).

    frames: uint8 (B, T, V, H, W, 3) windows of T consecutive frames from V cameras.
    Objectives share this interface (see dynamo_encoder.model.build_objective): `encoder` is the
    module exported at the end, `after_optimizer_step(progress)` updates any target network.
    """

    name = 'dynamo'

    def __init__(self, encoder: ImageEncoder, config: DynaMoConfig, window: int):
        super().__init__()
        if window < 2:
            raise ValueError(f'DynaMo needs a window of at least 2 frames, got {window}')
        self.config = config
        self.window = window
        self.encoder = encoder
        embedding_dim = encoder.embedding_dim
        self.latent_dim = config.latent_dim if config.bottleneck else embedding_dim
        self.inverse_model = None
        if config.inverse_model:
            inv = config.inverse
            self.inverse_model = CausalTransformer(embedding_dim, self.latent_dim, inv.layers, inv.heads,
                                                   inv.width, inv.dropout, window)
        self.forward_model = None
        self.latent_decoder = None
        if config.forward_model:
            fwd = config.forward
            forward_input = embedding_dim + (self.latent_dim if config.inverse_model else 0)
            self.forward_model = CausalTransformer(forward_input, embedding_dim, fwd.layers, fwd.heads,
                                                   fwd.width, fwd.dropout, window)
        else:
            # Ablation "no forward model": o_{t+1} must be read from z_{t+1} alone.
            self.latent_decoder = nn.Linear(self.latent_dim, embedding_dim)
        self.target_encoder = None
        if config.target == 'ema':
            self.target_encoder = copy.deepcopy(encoder)
            self.target_encoder.requires_grad_(False)

    def encode_windows(self, encoder: nn.Module, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, V, H, W, 3) uint8 -> (B*V, T, E): each view is its own sequence."""
        batch, steps, views = frames.shape[:3]
        flat = encoder(frames.reshape(batch * steps * views, *frames.shape[3:]))
        return flat.view(batch, steps, views, -1).permute(0, 2, 1, 3).reshape(batch * views, steps, -1)

    def compute(self, frames: torch.Tensor) -> DynaMoOutputs:
        if frames.dim() != 6:
            raise ValueError(f'expected frames of shape (B, T, V, H, W, 3), got {tuple(frames.shape)}')
        embeddings = self.encode_windows(self.encoder, frames)
        if self.config.target == 'stop_gradient':
            targets = embeddings.detach()
        elif self.config.target == 'ema':
            with torch.no_grad():
                targets = self.encode_windows(self.target_encoder, frames)
        else:
            targets = embeddings

        latents = self.inverse_model(embeddings) if self.inverse_model is not None else None
        if self.forward_model is None:
            predictions = self.latent_decoder(latents[:, 1:])
        elif latents is None:
            predictions = self.forward_model(embeddings[:, :-1])
        else:
            predictions = self.forward_model(torch.cat([embeddings[:, :-1], latents[:, 1:]], dim=-1))

        cosine = F.cosine_similarity(predictions.float(), targets[:, 1:].float(), dim=-1)  # (B*V, T-1)
        # The mean over every transition of every view: each view has B * (T-1) of them, so each
        # camera weighs the same.
        dynamics = (1.0 - cosine).mean()
        components = {'dynamics': dynamics}
        loss = dynamics
        if self.config.covariance_weight > 0:
            covariance = off_diagonal_covariance(embeddings.reshape(-1, embeddings.shape[-1]))
            components['covariance'] = covariance
            loss = loss + self.config.covariance_weight * covariance
        components['loss'] = loss
        components['spread'] = embedding_spread(embeddings.detach())
        return DynaMoOutputs(embeddings, targets, latents, predictions, loss, components)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        outputs = self.compute(frames)
        return outputs.loss, outputs.components

    @torch.no_grad()
    def after_optimizer_step(self, progress: float) -> None:
        """Move the EMA target towards the online encoder (no-op for the other targets)."""
        if self.target_encoder is None:
            return
        ema_update(self.target_encoder, self.encoder,
                   ema_beta(progress, self.config.ema_beta_start, self.config.ema_beta_end))
