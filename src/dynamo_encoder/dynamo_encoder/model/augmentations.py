"""Random image augmentations in plain torch, batched: each image of a batch draws its own parameters.

Images are float (N, 3, H, W) in [0, 1]. Randomness comes from `generator`, or from torch's global
RNG when it is None: the trainer seeds that RNG and saves it in its checkpoints, so a run is
deterministic and `--resume` continues the same random stream. Every function draws the same
random numbers whatever its probability, so changing one probability does not reshuffle the rest.

The operations follow torchvision's (RandomResizedCrop, RandomHorizontalFlip, ColorJitter,
RandomGrayscale, GaussianBlur, RandomSolarize), which are not available here.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CROP_ATTEMPTS = 10  # torchvision's tries at a crop that fits before falling back to the whole image
GRAYSCALE_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R 601 luma, as torchvision's rgb_to_grayscale


def uniform(shape, low: float, high: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, device=like.device, generator=generator)


def chosen(count: int, probability: float, like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(count,) bool: which images an operation applied with `probability` applies to."""
    return torch.rand(count, device=like.device, generator=generator) < probability


def per_image(mask: torch.Tensor) -> torch.Tensor:
    return mask.view(-1, 1, 1, 1)


def random_resized_crop(images: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float],
                        flip_probability: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Crop a random box of each image, mirror it with `flip_probability`, resample it to the input size.

    The box has an area fraction in `scale` and an aspect ratio in `ratio`; resampling is bilinear.
    """
    count, _, height, width = images.shape
    area = uniform((count, CROP_ATTEMPTS), scale[0], scale[1], images, generator)
    aspect = torch.exp(uniform((count, CROP_ATTEMPTS), math.log(ratio[0]), math.log(ratio[1]), images, generator))
    # Box sides as fractions of the image sides; the aspect ratio is one of pixels, as in torchvision.
    box_width = torch.sqrt(area * aspect * height / width)
    box_height = torch.sqrt(area / aspect * width / height)
    fits = (box_width <= 1.0) & (box_height <= 1.0)
    first_fit = fits.int().argmax(dim=1, keepdim=True)
    any_fits = fits.any(dim=1)
    box_width = torch.where(any_fits, box_width.gather(1, first_fit).squeeze(1), 1.0)
    box_height = torch.where(any_fits, box_height.gather(1, first_fit).squeeze(1), 1.0)
    # Box centre in grid_sample's [-1, 1] coordinates, anywhere that keeps the box inside the image.
    centre_x = (2.0 * torch.rand(count, device=images.device, generator=generator) - 1.0) * (1.0 - box_width)
    centre_y = (2.0 * torch.rand(count, device=images.device, generator=generator) - 1.0) * (1.0 - box_height)
    mirror = torch.where(chosen(count, flip_probability, images, generator), -1.0, 1.0)
    theta = torch.zeros(count, 2, 3, device=images.device)
    theta[:, 0, 0] = box_width * mirror
    theta[:, 0, 2] = centre_x
    theta[:, 1, 1] = box_height
    theta[:, 1, 2] = centre_y
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode='bilinear', padding_mode='border', align_corners=False)


def grayscale(images: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) -> (N, 1, H, W) luma."""
    weights = torch.tensor(GRAYSCALE_WEIGHTS, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * weights).sum(dim=1, keepdim=True)


def rgb_to_hsv(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(N, 3, H, W) RGB in [0, 1] -> hue, saturation, value, each (N, H, W) in [0, 1]."""
    red, green, blue = images.unbind(dim=1)
    value = images.amax(dim=1)
    chroma = value - images.amin(dim=1)
    grey = chroma == 0
    saturation = chroma / torch.where(value == 0, 1.0, value)
    safe_chroma = torch.where(grey, 1.0, chroma)
    # Hue in sixths of the circle, measured from the largest channel (red first, as torchvision).
    hue = torch.where(value == red, (green - blue) / safe_chroma,
                      torch.where(value == green, 2.0 + (blue - red) / safe_chroma,
                                  4.0 + (red - green) / safe_chroma))
    hue = torch.where(grey, 0.0, hue)
    return torch.remainder(hue / 6.0, 1.0), saturation, value


def hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """Inverse of rgb_to_hsv: (N, H, W) each -> (N, 3, H, W)."""
    sixths = hue * 6.0
    sector = torch.floor(sixths)
    fraction = sixths - sector
    sector = sector.long() % 6
    low = (value * (1.0 - saturation)).clamp(0.0, 1.0)
    falling = (value * (1.0 - saturation * fraction)).clamp(0.0, 1.0)
    rising = (value * (1.0 - saturation * (1.0 - fraction))).clamp(0.0, 1.0)
    # Per channel, its value in each of the six hue sectors.
    sectors = torch.stack([
        torch.stack([value, falling, low, low, rising, value], dim=1),
        torch.stack([rising, value, value, falling, low, low], dim=1),
        torch.stack([low, low, rising, value, value, falling], dim=1),
    ], dim=1)  # (N, 3, 6, H, W)
    index = sector.unsqueeze(1).unsqueeze(1).expand(-1, 3, 1, -1, -1)
    return sectors.gather(2, index).squeeze(2)


def adjust_brightness(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    return (images * factor.view(-1, 1, 1, 1)).clamp(0.0, 1.0)


def adjust_contrast(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    mean = grayscale(images).mean(dim=(1, 2, 3), keepdim=True)
    factor = factor.view(-1, 1, 1, 1)
    return (factor * images + (1.0 - factor) * mean).clamp(0.0, 1.0)


def adjust_saturation(images: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    factor = factor.view(-1, 1, 1, 1)
    return (factor * images + (1.0 - factor) * grayscale(images)).clamp(0.0, 1.0)


def adjust_hue(images: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotate the hue by `shift` (fraction of the colour circle, per image)."""
    hue, saturation, value = rgb_to_hsv(images)
    return hsv_to_rgb(torch.remainder(hue + shift.view(-1, 1, 1), 1.0), saturation, value)


def color_jitter(images: torch.Tensor, brightness: float, contrast: float, saturation: float, hue: float,
                 probability: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Jitter the colours of each image with `probability`, in a random order per image (as ColorJitter).

    Brightness, contrast and saturation are scaled by factors drawn from [1 - s, 1 + s] and the
    hue is rotated by up to +-`hue`.
    """
    count = images.shape[0]
    applied = chosen(count, probability, images, generator)
    adjustments = [
        (adjust_brightness, uniform(count, 1.0 - brightness, 1.0 + brightness, images, generator)),
        (adjust_contrast, uniform(count, 1.0 - contrast, 1.0 + contrast, images, generator)),
        (adjust_saturation, uniform(count, 1.0 - saturation, 1.0 + saturation, images, generator)),
        (adjust_hue, uniform(count, -hue, hue, images, generator)),
    ]
    order = torch.rand(count, len(adjustments), device=images.device, generator=generator).argsort(dim=1)
    # Each slot applies, to each image, the adjustment that image's order puts there; every image
    # goes through each adjustment once (the hue rotation is the costly one).
    for slot in range(len(adjustments)):
        for index, (adjust, factor) in enumerate(adjustments):
            rows = (applied & (order[:, slot] == index)).nonzero().squeeze(1)
            images = images.index_copy(0, rows, adjust(images.index_select(0, rows), factor[rows]))
    return images


def random_grayscale(images: torch.Tensor, probability: float,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    selected = chosen(images.shape[0], probability, images, generator)
    return torch.where(per_image(selected), grayscale(images).expand_as(images), images)


def random_gaussian_blur(images: torch.Tensor, sigma: tuple[float, float], probability: float,
                         generator: torch.Generator | None = None) -> torch.Tensor:
    """Blur each image with `probability` by a Gaussian of standard deviation drawn from `sigma` (pixels).

    Separable and reflect-padded; the kernel reaches 3 sigma of the largest sigma.
    """
    count, channels, height, width = images.shape
    selected = chosen(count, probability, images, generator)
    sigmas = uniform(count, sigma[0], sigma[1], images, generator)
    radius = max(1, min(math.ceil(3.0 * sigma[1]), height - 1, width - 1))
    offsets = torch.arange(-radius, radius + 1, device=images.device, dtype=images.dtype)
    kernels = torch.exp(-0.5 * (offsets / sigmas.unsqueeze(1)).square())
    kernels = (kernels / kernels.sum(dim=1, keepdim=True)).repeat_interleave(channels, dim=0)  # (N*3, k)
    # Every (image, channel) plane is its own group, so each image gets its own kernel in one conv.
    planes = images.reshape(1, count * channels, height, width)
    planes = F.conv2d(F.pad(planes, (radius, radius, 0, 0), mode='reflect'),
                      kernels.view(count * channels, 1, 1, -1), groups=count * channels)
    planes = F.conv2d(F.pad(planes, (0, 0, radius, radius), mode='reflect'),
                      kernels.view(count * channels, 1, -1, 1), groups=count * channels)
    return torch.where(per_image(selected), planes.view_as(images), images)


def random_solarize(images: torch.Tensor, probability: float,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """With `probability`, invert every pixel value at or above one half."""
    selected = chosen(images.shape[0], probability, images, generator)
    return torch.where(per_image(selected) & (images >= 0.5), 1.0 - images, images)
