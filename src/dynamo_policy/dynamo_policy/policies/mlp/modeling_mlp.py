"""MLP policy: flattened observation window -> normalised action chunk, trained with MSE.

Embeddings are standardised with statistics of the training set (kept in the weights), joint
state and actions with the metadata's normalisation. When validation episodes are given, the
weights of the epoch with the lowest validation loss are kept (small demonstration sets overfit).
The initial weights and the batch order depend on the configuration's `seed` only; dropout draws
from torch's global RNG, which the entry point seeds (train_policy: --seed).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from dynamo_encoder.model.encoder import seeded_initialisation
from dynamo_policy.policies.base import Policy, TrainingHistory, fit_embedding_normalization
from dynamo_policy.policies.mlp.configuration_mlp import MLPConfig


class MLPNetwork(nn.Module):
    def __init__(self, embedding_size: int, state_size: int, output_size: int, config: MLPConfig):
        super().__init__()
        self.register_buffer('embedding_mean', torch.zeros(embedding_size))
        self.register_buffer('embedding_std', torch.ones(embedding_size))
        widths = [embedding_size + state_size, *(int(hidden) for hidden in config.hidden_dims)]
        layers = []
        with seeded_initialisation(config.seed):
            for width, hidden in zip(widths, widths[1:]):
                layers += [nn.Linear(width, hidden), nn.GELU(), nn.Dropout(config.dropout)]
            layers.append(nn.Linear(widths[-1], output_size))
        self.layers = nn.Sequential(*layers)

    def forward(self, embeddings: torch.Tensor, states: torch.Tensor | None) -> torch.Tensor:
        inputs = (embeddings.flatten(1) - self.embedding_mean) / self.embedding_std
        if states is not None:
            inputs = torch.cat([inputs, states.flatten(1)], dim=1)
        return self.layers(inputs)


class MLPPolicy(Policy):
    name = 'mlp'
    config_class = MLPConfig
    config: MLPConfig

    def __init__(self, config: MLPConfig, metadata):
        super().__init__(config, metadata)
        state_size = config.context_length * len(metadata.state_names)
        self.network = MLPNetwork(config.context_length * metadata.embedding_dim, state_size,
                                  config.horizon * metadata.action_dim, config)
        self.network.eval()

    @torch.no_grad()
    def _predict_normalized(self, embeddings, states):
        out = self.network(torch.from_numpy(np.ascontiguousarray(embeddings)),
                           None if states is None else torch.from_numpy(np.ascontiguousarray(states)))
        return out.view(len(embeddings), self.config.horizon, self.metadata.action_dim).numpy()

    def _loss(self, embeddings, states, chunks) -> torch.Tensor:
        predicted = self.network(embeddings, states)
        return nn.functional.mse_loss(predicted, chunks.flatten(1))

    def _fit_normalized(self, train, validation, progress) -> TrainingHistory:
        generator = torch.Generator().manual_seed(self.config.seed)
        embeddings, states, chunks = (None if a is None else torch.from_numpy(a) for a in train)
        flat = embeddings.flatten(1)
        fit_embedding_normalization(self.network, flat)
        if validation is not None:
            validation = tuple(None if a is None else torch.from_numpy(a) for a in validation)
        optimizer = torch.optim.AdamW(self.network.parameters(), lr=self.config.learning_rate,
                                      weight_decay=self.config.weight_decay)
        history = TrainingHistory(x_label='epoch')
        best_loss, best_state = float('inf'), None
        for epoch in range(1, self.config.epochs + 1):
            self.network.train()
            order = torch.randperm(len(embeddings), generator=generator)
            total = 0.0
            for start in range(0, len(order), self.config.batch_size):
                batch = order[start:start + self.config.batch_size]
                loss = self._loss(embeddings[batch], None if states is None else states[batch], chunks[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(batch)
            self.network.eval()
            history.x.append(epoch)
            history.series.setdefault('train MSE (normalised)', []).append(total / len(order))
            if validation is not None:
                with torch.no_grad():
                    val_loss = float(self._loss(*validation))
                history.series.setdefault('validation MSE (normalised)', []).append(val_loss)
                if val_loss < best_loss:
                    best_loss, best_state = val_loss, copy.deepcopy(self.network.state_dict())
            if progress:
                progress(epoch, self.config.epochs)
        if best_state is not None:
            self.network.load_state_dict(best_state)
        return history

    def state_dict(self):
        return self.network.state_dict()

    def load_state_dict(self, state):
        self.network.load_state_dict(state)
        self.network.eval()
