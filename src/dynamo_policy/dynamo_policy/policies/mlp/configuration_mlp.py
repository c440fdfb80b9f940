"""Configuration of the MLP policy: an MLP on a window of embeddings predicting an action chunk."""

from __future__ import annotations

from dataclasses import dataclass, field

from dynamo_policy.policies.base import PolicyConfig, PolicyConfigError


@dataclass
class MLPConfig(PolicyConfig):
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    dropout: float = 0.1
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 100
    batch_size: int = 256
    seed: int = 0

    def validate(self) -> None:
        super().validate()
        if not self.hidden_dims or any(not isinstance(d, int) or isinstance(d, bool) or d < 1
                                       for d in self.hidden_dims):
            raise PolicyConfigError(f'hidden_dims must be a non-empty list of positive ints, got {self.hidden_dims}')
        if not 0.0 <= self.dropout < 1.0:
            raise PolicyConfigError(f'dropout must be in [0, 1), got {self.dropout}')
        if not self.learning_rate > 0:
            raise PolicyConfigError(f'learning_rate must be > 0, got {self.learning_rate}')
        if self.weight_decay < 0:
            raise PolicyConfigError(f'weight_decay must be >= 0, got {self.weight_decay}')
        if self.epochs < 1:
            raise PolicyConfigError(f'epochs must be >= 1, got {self.epochs}')
        if self.batch_size < 1:
            raise PolicyConfigError(f'batch_size must be >= 1, got {self.batch_size}')
