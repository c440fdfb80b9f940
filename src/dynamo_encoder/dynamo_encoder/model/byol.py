"""The BYOL self-supervised objective (Grill et al., 2020), a baseline for DynaMo.

BYOL (Bootstrap Your Own Latent) learns from single images: two random augmentations of an image
go through an online network (encoder, projector, predictor) and a target network (encoder,
projector), and the online prediction for one augmentation regresses the target projection of the
other. The target is an exponential moving average of the online weights and gets no gradient;
with the predictor this asymmetry keeps the embeddings from collapsing without negative pairs.
The DynaMo paper compares against BYOL as a classic self-supervised baseline that ignores the
temporal structure DynaMo exploits; having it in the same trainer, on the same data, encoders and
schedule, makes that comparison direct.

Here every frame of a training window (each time step, each camera) is an independent image.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .augmentations import color_jitter, random_gaussian_blur, random_grayscale, random_resized_crop, random_solarize
from .dynamo import ema_beta, ema_update, embedding_spread
from .encoder import ImageEncoder

BYOL_IMAGE_SIZE = 224      # the image side BYOL's blur sigmas are given for
VALIDATION_SEED = 0        # fixed augmentations in eval mode (see BYOLObjective.augmented_views)


@dataclass
class BYOLConfig:
    min_window: ClassVar[int] = 1            # each frame is an image on its own
    # The paper's MLPs are 4096 wide with a 256-d output on a 2048-d ResNet-50; these encoders give
    # 128-d (resnet_small) or 512-d (resnet18) embeddings, so the heads are narrower.
    projector_hidden_dim: int = 1024
    projector_dim: int = 128
    predictor_hidden_dim: int = 1024
    # Target EMA decay tau: cosine from start to end over training. The paper's 0.996 is for
    # 1000-epoch ImageNet runs; 0.99 (DynaMo's EMA start as well) lets the target keep up in short runs.
    ema_tau_start: float = 0.99
    ema_tau_end: float = 1.0
    # Augmentations (the paper's appendix B). Pairs named "(view 1, view 2)" are the paper's
    # asymmetric probabilities for its two augmentation distributions.
    crop_scale: tuple[float, float] = (0.3, 1.0)  # paper (0.08, 1.0) on 224 px photos; an 8% crop of a
                                                  # 64 px robot frame is 18 px, little scene left to match
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    flip_probability: float = 0.5                 # 0 where left and right differ in meaning for the task
    jitter_probability: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_probability: float = 0.2
    blur_probability: tuple[float, float] = (1.0, 0.1)      # (view 1, view 2)
    blur_sigma: tuple[float, float] = (0.1, 2.0)            # pixels at 224 px; scaled to the frame size
    solarize_probability: tuple[float, float] = (0.0, 0.2)  # (view 1, view 2)

    def __post_init__(self):
        for name in ('crop_scale', 'crop_ratio', 'blur_probability', 'blur_sigma', 'solarize_probability'):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)) or len(value) != 2:
                raise ValueError(f'objective.{name} must be a pair [a, b], got {value!r}')
            setattr(self, name, (float(value[0]), float(value[1])))
        unit_interval = {'flip_probability': [self.flip_probability],
                         'jitter_probability': [self.jitter_probability],
                         'grayscale_probability': [self.grayscale_probability],
                         'blur_probability': self.blur_probability,
                         'solarize_probability': self.solarize_probability,
                         'brightness': [self.brightness], 'contrast': [self.contrast],
                         'saturation': [self.saturation]}
        for name, values in unit_interval.items():
            if not all(0.0 <= v <= 1.0 for v in values):
                raise ValueError(f'objective.{name} must be in [0, 1], got {getattr(self, name)!r}')
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f'objective.hue must be in [0, 0.5], got {self.hue!r}')
        for name, low_bound, high_bound in (('crop_scale', 0.0, 1.0), ('crop_ratio', 0.0, float('inf')),
                                            ('blur_sigma', 0.0, float('inf'))):
            low, high = getattr(self, name)
            if not low_bound < low <= high <= high_bound:
                raise ValueError(f'objective.{name} must be an increasing pair in ({low_bound}, {high_bound}], '
                                 f'got {getattr(self, name)!r}')
        if not 0.0 <= self.ema_tau_start <= self.ema_tau_end <= 1.0:
            raise ValueError(f'objective: need 0 <= ema_tau_start <= ema_tau_end <= 1, got '
                             f'{self.ema_tau_start} and {self.ema_tau_end}')


def augment(images: torch.Tensor, config: BYOLConfig, view: int,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply BYOL's augmentation distribution number `view` (0 or 1) to uint8 (N, H, W, 3) frames.

    Returns float (N, H, W, 3) in 0..255 (ImageEncoder's input; no rounding back to uint8).
    """
    x = images.permute(0, 3, 1, 2).float() / 255.0
    x = random_resized_crop(x, config.crop_scale, config.crop_ratio, config.flip_probability, generator)
    x = color_jitter(x, config.brightness, config.contrast, config.saturation, config.hue,
                     config.jitter_probability, generator)
    x = random_grayscale(x, config.grayscale_probability, generator)
    # The paper's sigmas are for 224 px images; scaling keeps the blur the same fraction of the image.
    sigma_scale = min(x.shape[-2:]) / BYOL_IMAGE_SIZE
    x = random_gaussian_blur(x, (config.blur_sigma[0] * sigma_scale, config.blur_sigma[1] * sigma_scale),
                             config.blur_probability[view], generator)
    x = random_solarize(x, config.solarize_probability[view], generator)
    return (x * 255.0).permute(0, 2, 3, 1)


def mlp(input_dim: int, hidden_dim: int, output_dim: int) -> nn.Sequential:
    """BYOL's projector and predictor: Linear, BatchNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
                         nn.Linear(hidden_dim, output_dim))


class BYOLObjective(nn.Module):
    """Pretraining objective: forward(frames) -> (loss, {'loss', 'spread'}).

    frames: uint8 (B, T, V, H, W, 3); all B*T*V frames are images. The loss is 2 - 2 cos between
    the online prediction of one augmentation and the target projection of the other, both ways,
    averaged (the paper sums the two directions: twice this loss, which changes Adam's steps only
    through gradient clipping).
    Interface shared with the other objectives (see dynamo_encoder.model.build_objective).
    """

    name = 'byol'

    def __init__(self, encoder: ImageEncoder, config: BYOLConfig, window: int):
        super().__init__()
        self.config = config
        self.window = window
        self.encoder = encoder
        self.projector = mlp(encoder.embedding_dim, config.projector_hidden_dim, config.projector_dim)
        self.predictor = mlp(config.projector_dim, config.predictor_hidden_dim, config.projector_dim)
        self.target_encoder = copy.deepcopy(encoder).requires_grad_(False)
        self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)

    def augmented_views(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the two augmentations of uint8 (N, H, W, 3) images.

        Training draws from torch's global RNG; eval mode uses a fixed seed, so validation losses
        are comparable across epochs and validating does not change the training run's random stream.
        """
        generator = None
        if not self.training:
            generator = torch.Generator(device=images.device).manual_seed(VALIDATION_SEED)
        # In float32 even under bf16 autocast: these are input pixels, not activations.
        with torch.autocast(images.device.type, enabled=False):
            return augment(images, self.config, 0, generator), augment(images, self.config, 1, generator)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if frames.dim() != 6:
            raise ValueError(f'expected frames of shape (B, T, V, H, W, 3), got {tuple(frames.shape)}')
        images = frames.reshape(-1, *frames.shape[3:])
        count = images.shape[0]
        # Both augmentations in one batch: one pass per network, BatchNorm statistics over both.
        views = torch.cat(self.augmented_views(images))
        embeddings = self.encoder(views)
        predictions = self.predictor(self.projector(embeddings))
        with torch.no_grad():
            targets = self.target_projector(self.target_encoder(views))
        # Each augmentation's prediction regresses the other augmentation's target.
        targets = torch.cat([targets[count:], targets[:count]])
        cosine = F.cosine_similarity(predictions.float(), targets.float(), dim=-1)
        loss = (2.0 - 2.0 * cosine).mean()
        return loss, {'loss': loss, 'spread': embedding_spread(embeddings.detach())}

    @torch.no_grad()
    def after_optimizer_step(self, progress: float) -> None:
        """Move the target encoder and projector towards the online ones by 1 - tau(progress)."""
        tau = ema_beta(progress, self.config.ema_tau_start, self.config.ema_tau_end)
        ema_update(self.target_encoder, self.encoder, tau)
        ema_update(self.target_projector, self.projector, tau)
