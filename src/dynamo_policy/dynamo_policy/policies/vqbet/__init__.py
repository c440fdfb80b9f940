"""VQ-BeT (Lee et al., ICML 2024) on frozen embeddings, configured as the official DynaMo code."""

from dynamo_policy.policies.vqbet.configuration_vqbet import VQBeTConfig
from dynamo_policy.policies.vqbet.modeling_vqbet import VQBeTPolicy

__all__ = ['VQBeTConfig', 'VQBeTPolicy']
