"""Diffusion Policy (Chi et al., RSS 2023), U-Net with global conditioning on frozen embeddings."""

from dynamo_policy.policies.diffusion.configuration_diffusion import CPU_SMALL_PRESET, DiffusionConfig
from dynamo_policy.policies.diffusion.modeling_diffusion import DiffusionPolicy

__all__ = ['CPU_SMALL_PRESET', 'DiffusionConfig', 'DiffusionPolicy']
