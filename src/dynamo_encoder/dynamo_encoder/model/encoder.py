"""Image encoders: uint8 camera frames in, one global embedding per frame out.

Preprocessing (layout, resize, normalisation) lives inside the module so that training and
deployment run the same code and the artifact needs no separate preprocessing recipe.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

# ImageNet statistics: the usual choice for ResNets, also when trained from scratch as here.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResNetSpec:
    """Stage widths and blocks per stage of a basic-block ResNet."""

    widths: tuple[int, ...]
    blocks: tuple[int, ...]
    stem_width: int
    stem_kernel: int      # stem convolution kernel size
    stem_stride: int      # stride of the stem convolution
    stem_pool: bool       # 3x3/2 max-pool after the stem (ImageNet ResNets have it)


ARCHITECTURES: dict[str, ResNetSpec] = {
    # torchvision's resnet18 layout: 512-d global-pooled output.
    'resnet18': ResNetSpec(widths=(64, 128, 256, 512), blocks=(2, 2, 2, 2), stem_width=64,
                           stem_kernel=7, stem_stride=2, stem_pool=True),
    # Narrow 4-stage ResNet for CPU training on small (64-96 px) images: 128-d output, ~0.3 M params,
    # same /4 stem downsampling as resnet18 (a stride-1 stem was ~3x slower for no gain in the probes).
    'resnet_small': ResNetSpec(widths=(16, 32, 64, 128), blocks=(1, 1, 1, 1), stem_width=16,
                               stem_kernel=3, stem_stride=2, stem_pool=True),
}


def resize_uint8_batch(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize float (B,3,H,W) images to `size` (bilinear, antialiased when shrinking)."""
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    shrinking = images.shape[-2] > size[0] or images.shape[-1] > size[1]
    return F.interpolate(images, size=size, mode='bilinear', align_corners=False, antialias=shrinking)


def to_channels_first(images: torch.Tensor) -> torch.Tensor:
    """(H,W,3) / (B,H,W,3) / (B,3,H,W) -> (B,3,H,W); a trailing dimension of 3 means channels-last."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() != 4:
        raise ValueError(f'expected images of shape (H,W,3), (B,H,W,3) or (B,3,H,W), got {tuple(images.shape)}')
    if images.shape[-1] == 3:
        return images.permute(0, 3, 1, 2)
    if images.shape[1] == 3:
        return images
    raise ValueError(f'expected 3 colour channels, got images of shape {tuple(images.shape)}')


class BasicBlock(nn.Module):
    def __init__(self, in_width: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_width, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = None
        if stride != 1 or in_width != width:
            self.downsample = nn.Sequential(nn.Conv2d(in_width, width, 1, stride, bias=False),
                                            nn.BatchNorm2d(width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class ImageEncoder(nn.Module):
    """ResNet image encoder with preprocessing inside.

    forward(images) takes uint8 (or float 0..255) frames of any size, channels-last (B,H,W,3) or
    channels-first (B,3,H,W), resizes them to `input_size`, normalises with `mean`/`std` and
    returns (B, embedding_dim) float embeddings (global average pool of the last stage).
    """

    def __init__(self, arch: str, input_size: tuple[int, int],
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f'unknown encoder arch {arch!r}; known: {sorted(ARCHITECTURES)}')
        spec = ARCHITECTURES[arch]
        self.arch = arch
        self.input_size = (int(input_size[0]), int(input_size[1]))
        self.mean_values = tuple(float(m) for m in mean)
        self.std_values = tuple(float(s) for s in std)
        self.embedding_dim = spec.widths[-1]
        # Buffers (not parameters) so they travel with state_dict but are never trained.
        self.register_buffer('mean', torch.tensor(self.mean_values).view(1, 3, 1, 1) * 255.0, persistent=False)
        self.register_buffer('std', torch.tensor(self.std_values).view(1, 3, 1, 1) * 255.0, persistent=False)

        stem = [nn.Conv2d(3, spec.stem_width, spec.stem_kernel, spec.stem_stride, spec.stem_kernel // 2, bias=False),
                nn.BatchNorm2d(spec.stem_width), nn.ReLU(inplace=True)]
        if spec.stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        stages = []
        in_width = spec.stem_width
        for index, (width, blocks) in enumerate(zip(spec.widths, spec.blocks)):
            layers = []
            for block in range(blocks):
                stride = 2 if (index > 0 and block == 0) else 1
                layers.append(BasicBlock(in_width, width, stride))
                in_width = width
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self._init_weights()

    def _init_weights(self) -> None:
        # torchvision's default ResNet initialisation, which the paper's random init and starting
        # point are: no zero-init of the residual branches' last BatchNorm (zero_init_residual=False).
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def conv_memory_format(self) -> torch.memory_format:
        """Return the layout of the convolution weights (module.to(memory_format=...) sets it)."""
        weight = self.stem[0].weight
        return torch.channels_last if weight.is_contiguous(memory_format=torch.channels_last) \
            else torch.contiguous_format

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float 0..255 images (any layout above, any size) -> normalised (B,3,H,W) float.

        In the layout of the convolution weights: the convolutions then run in that layout
        whatever the images' layout (a (B,H,W,3) batch is channels-last as it comes).
        """
        x = to_channels_first(images).float()
        x = resize_uint8_batch(x, self.input_size)
        return ((x - self.mean) / self.std).contiguous(memory_format=self.conv_memory_format())

    def embed_normalised(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised (B,3,H,W) float images (the output of `preprocess`) -> (B, embedding_dim)."""
        x = self.stages(self.stem(x))
        return torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.embed_normalised(self.preprocess(images))


@contextmanager
def seeded_initialisation(seed: int | None) -> Iterator[None]:
    """Draw the initial weights of modules built in the block from torch's CPU RNG seeded by `seed`.

    The CPU RNG is restored afterwards and no other generator (CUDA) is touched, so a seeded build
    leaves the caller's random stream as it was. With seed None the block draws from the RNG as is.
    """
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def build_encoder(arch: str, input_size: tuple[int, int] | list[int], seed: int | None = None) -> ImageEncoder:
    """Build a freshly initialised encoder; with `seed`, its weights depend on the seed only.

    So a run's starting point can be rebuilt as a baseline (see seeded_initialisation).
    """
    with seeded_initialisation(seed):
        return ImageEncoder(arch, tuple(input_size))
