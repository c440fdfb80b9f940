"""Configuration of the kNN policy (the DynaMo paper's kNN baseline, after VINN)."""

from __future__ import annotations

from dataclasses import dataclass

from dynamo_policy.policies.base import PolicyConfig, PolicyConfigError


@dataclass
class KNNConfig(PolicyConfig):
    k: int = 5                 # neighbours that vote
    temperature: float = 1.0   # softmax(-distance / temperature) weights; smaller -> nearer dominates
    # The distance compares raw embeddings with z-scored joint state (when the policy uses state):
    # squared distance = |embedding difference|^2 + state_weight^2 * |z-scored state difference|^2.
    # The two are in unrelated units, so their balance is a choice: 1.0 (the default) is the plain
    # concatenation kNN used before this field existed; 0 lets only the embeddings choose neighbours.
    state_weight: float = 1.0

    def validate(self) -> None:
        super().validate()
        if self.k < 1:
            raise PolicyConfigError(f'k must be >= 1, got {self.k}')
        if not self.temperature > 0:
            raise PolicyConfigError(f'temperature must be > 0, got {self.temperature}')
        if not self.state_weight >= 0:
            raise PolicyConfigError(f'state_weight must be >= 0, got {self.state_weight}')
