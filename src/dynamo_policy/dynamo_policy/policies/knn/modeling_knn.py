"""kNN policy: the action chunks of the k nearest training observations, distance-weighted.

As the DynaMo paper's kNN baseline (VINN, Pari et al. 2021): the query is the observation window
(embeddings, plus normalised joint state times `state_weight` when proprioception is used)
flattened; the k nearest training windows by Euclidean distance vote with weights
softmax(-distance / temperature), and the prediction is the weighted mean of their recorded
action chunks. The keys are stored weighted, so an artifact's memory matches its config.
"""

from __future__ import annotations

import numpy as np
import torch

from dynamo_policy.policies.base import Policy, TrainingHistory
from dynamo_policy.policies.knn.configuration_knn import KNNConfig


def _flatten_query(embeddings: np.ndarray, states: np.ndarray | None, state_weight: float) -> np.ndarray:
    query = embeddings.reshape(len(embeddings), -1)
    if states is not None:
        query = np.concatenate([query, state_weight * states.reshape(len(states), -1)], axis=1)
    return query.astype(np.float32)


class KNNPolicy(Policy):
    name = 'knn'
    config_class = KNNConfig
    config: KNNConfig

    def __init__(self, config: KNNConfig, metadata):
        super().__init__(config, metadata)
        self._keys = np.zeros((0, 0), np.float32)                 # training queries (N, D)
        self._key_norms = np.zeros((0,), np.float32)
        self._chunks = np.zeros((0, config.horizon, metadata.action_dim), np.float32)  # normalised

    def _neighbour_vote(self, queries: np.ndarray, k: int) -> np.ndarray:
        # |q - x|^2 = |q|^2 - 2 q.x + |x|^2, clipped at 0 against rounding.
        squared = (np.sum(queries ** 2, axis=1, keepdims=True) - 2.0 * queries @ self._keys.T
                   + self._key_norms[None, :])
        distances = np.sqrt(np.maximum(squared, 0.0))
        k = min(k, len(self._keys))
        nearest = np.argpartition(distances, k - 1, axis=1)[:, :k]
        nearest_distances = np.take_along_axis(distances, nearest, axis=1)
        logits = -(nearest_distances - nearest_distances.min(axis=1, keepdims=True)) / self.config.temperature
        weights = np.exp(logits)
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum('bk,bkha->bha', weights, self._chunks[nearest]).astype(np.float32)

    def _predict_normalized(self, embeddings, states):
        if len(self._keys) == 0:
            raise RuntimeError('kNN policy has no training data')
        return self._neighbour_vote(_flatten_query(embeddings, states, self.config.state_weight), self.config.k)

    def _fit_normalized(self, train, validation, progress) -> TrainingHistory:
        embeddings, states, chunks = train
        self._keys = _flatten_query(embeddings, states, self.config.state_weight)
        self._key_norms = np.sum(self._keys ** 2, axis=1)
        self._chunks = chunks
        history = TrainingHistory(x_label='k (neighbours)')
        if validation is not None:
            # kNN has no epochs; its curve is the held-out loss over k, which shows whether the
            # configured k is sensible.
            queries = _flatten_query(validation[0], validation[1], self.config.state_weight)
            candidates = list(range(1, min(max(2 * self.config.k, 10), len(self._keys)) + 1))
            for step, k in enumerate(candidates):
                loss = float(np.mean((self._neighbour_vote(queries, k) - validation[2]) ** 2))
                history.x.append(k)
                history.series.setdefault('validation MSE (normalised)', []).append(loss)
                if progress:
                    progress(step + 1, len(candidates))
        elif progress:
            progress(1, 1)
        return history

    def state_dict(self):
        return {'keys': torch.from_numpy(self._keys), 'chunks': torch.from_numpy(self._chunks)}

    def load_state_dict(self, state):
        self._keys = state['keys'].numpy().astype(np.float32)
        self._key_norms = np.sum(self._keys ** 2, axis=1)
        self._chunks = state['chunks'].numpy().astype(np.float32)
