"""Configuration of the kNN policy (the DynaMo paper's kNN baseline, after VINN)."""

from __future__ import annotations

from dataclasses import dataclass

from dynamo_policy.policies.base import PolicyConfig, PolicyConfigError


@dataclass
class KNNConfig(PolicyConfig):
    k: int = 5                 # neighbours that vote
    temperature: float = 1.0   # softmax(-distance / temperature) weights; smaller -> nearer dominates

    def validate(self) -> None:
        super().validate()
        if self.k < 1:
            raise PolicyConfigError(f'k must be >= 1, got {self.k}')
        if not self.temperature > 0:
            raise PolicyConfigError(f'temperature must be > 0, got {self.temperature}')
