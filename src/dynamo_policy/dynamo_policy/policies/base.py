"""The one interface every policy implements, its metadata and its single-file artifact.

A policy maps a window of observations (frozen-encoder embeddings, optionally joint positions)
to a chunk of future actions in real units (the dataset's units). Everything a deployment needs
to check compatibility and to interpret the chunk travels in `PolicyMetadata`, saved in the same
file as the weights, so the policy node never needs the training dataset or config.

Observation window (`obs_window`), as diffusion_policy's `predict_action(obs_dict)`:
    {"embedding": float32 (T, embedding_dim), "state": float32 (T, len(state_names))}
oldest row first, newest last; "state" only when the policy uses proprioception. T may be
shorter than context_length at start-up: the window is padded by repeating its oldest row, as
in training at episode starts.

Action chunk: float32 (horizon, action_dim); row i is the action the dataset recorded i steps
after the newest observation (row 0 = the action taken at that frame), i.e. it is executed at
observation stamp + (i + 1) * step_period (dynamo_msgs/ActionChunk).
"""

from __future__ import annotations

import abc
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from dynamo_data.atomic import atomic_open
from dynamo_encoder.model import check_setting_types

ARTIFACT_FORMAT_VERSION = 1


class PolicyArtifactError(RuntimeError):
    """A policy file is missing, unreadable or incompatible; the message names the file."""


class PolicyConfigError(ValueError):
    """A policy configuration value is invalid; the message names the field."""


@dataclass
class Normalization:
    """Per-dimension mean/std, the std floored relative to the typical std so no dimension explodes.

    With an absolute floor (1e-6), a dimension that is (nearly) constant in training, such as a
    dead embedding unit or a joint that never moved, turns a small reading at deployment into a
    huge normalised value (0.02 / 1e-6 = 2e4), which no network or distance was trained on. So the
    std of every dimension is floored at RELATIVE_STD_FLOOR times the typical std, the root mean
    square of the stds over dimensions (unlike the median, it stays meaningful when most
    dimensions are dead): a deviation of d reads at most d / (0.01 * typical). When every
    dimension is constant (typical std below MIN_TYPICAL_STD) there is no scale to borrow and the
    values are only centred (std 1).
    """

    mean: np.ndarray
    std: np.ndarray

    RELATIVE_STD_FLOOR = 0.01
    MIN_TYPICAL_STD = 1e-6

    @classmethod
    def fit(cls, values: np.ndarray) -> 'Normalization':
        values = np.asarray(values, np.float64)
        std = values.std(axis=0)
        typical = float(np.sqrt(np.mean(std ** 2))) if std.size else 0.0
        floor = cls.RELATIVE_STD_FLOOR * typical if typical >= cls.MIN_TYPICAL_STD else 1.0
        return cls(mean=values.mean(axis=0).astype(np.float32), std=np.maximum(std, floor).astype(np.float32))

    def normalize(self, values: np.ndarray) -> np.ndarray:
        return ((values - self.mean) / self.std).astype(np.float32)

    def unnormalize(self, values: np.ndarray) -> np.ndarray:
        return (values * self.std + self.mean).astype(np.float32)

    def to_dict(self) -> dict:
        return {'mean': self.mean.tolist(), 'std': self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> 'Normalization':
        return cls(mean=np.asarray(data['mean'], np.float32), std=np.asarray(data['std'], np.float32))


@dataclass
class PolicyMetadata:
    """What a deployment must know about a policy besides its weights."""

    encoder_name: str
    encoder_checksum: str
    camera_names: list[str]
    embedding_dim: int                  # total length of Embedding.data (all cameras)
    action_names: list[str]
    step_period: float                  # seconds between dataset frames (1 / fps)
    state_names: list[str] = field(default_factory=list)   # empty: no proprioception
    action_normalization: Normalization | None = None      # set by fit()
    state_normalization: Normalization | None = None       # set by fit() when state_names

    @property
    def action_dim(self) -> int:
        return len(self.action_names)

    @property
    def uses_state(self) -> bool:
        return bool(self.state_names)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ('action_normalization', 'state_normalization'):
            value = getattr(self, key)
            data[key] = None if value is None else value.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict) -> 'PolicyMetadata':
        data = dict(data)
        for key in ('action_normalization', 'state_normalization'):
            if data.get(key) is not None:
                data[key] = Normalization.from_dict(data[key])
        return cls(**data)


@dataclass
class Episode:
    """One demonstration in embedding space: the unit policies are trained on."""

    embeddings: np.ndarray          # float32 (T, embedding_dim)
    actions: np.ndarray             # float32 (T, action_dim)
    states: np.ndarray | None = None  # float32 (T, state_dim) when proprioception is used

    def __len__(self) -> int:
        return len(self.embeddings)


@dataclass
class TrainingHistory:
    """A training curve: one x axis and named series over it (for the PNG and the log)."""

    x_label: str
    x: list[float] = field(default_factory=list)
    series: dict[str, list[float]] = field(default_factory=dict)


@dataclass
class PolicyConfig:
    """Fields every policy has; subclasses add their own (LeRobot's configuration_<name>.py)."""

    context_length: int = 1   # observations per window, newest last
    horizon: int = 8          # actions per chunk

    def validate(self) -> None:
        if self.context_length < 1:
            raise PolicyConfigError(f'context_length must be >= 1, got {self.context_length}')
        if self.horizon < 1:
            raise PolicyConfigError(f'horizon must be >= 1, got {self.horizon}')

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> 'PolicyConfig':
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise PolicyConfigError(
                f'unknown {cls.__name__} field(s) {unknown}; known: {sorted(known)}')
        try:
            check_setting_types(cls, values)
        except ValueError as error:
            raise PolicyConfigError(str(error)) from None
        config = cls(**values)
        config.validate()
        return config

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def fit_embedding_normalization(network: torch.nn.Module, embeddings: torch.Tensor) -> None:
    """Set a network's `embedding_mean` / `embedding_std` buffers from training embeddings (N, E).

    The heads standardise embeddings inside their network (the statistics travel with the
    weights) by the same rule as Normalization, so no head can blow up a dead embedding unit.
    """
    normalization = Normalization.fit(embeddings.detach().cpu().numpy())
    network.embedding_mean.copy_(torch.from_numpy(normalization.mean))
    network.embedding_std.copy_(torch.from_numpy(normalization.std))


def make_training_windows(episodes: list[Episode], context_length: int, horizon: int,
                          ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Every frame of every episode as (embedding window, state window, action chunk).

    Windows are padded at an episode's start by repeating its first frame, chunks at its end by
    repeating its last action (the robot holds still after the demonstration ends), so every
    frame is a training sample and deployment start-up looks like training start-up.
    Returns embeddings (N, context, E), states (N, context, S) or None, chunks (N, horizon, A).
    """
    embedding_windows, state_windows, chunks = [], [], []
    for episode in episodes:
        length = len(episode)
        frame = np.arange(length)
        past = np.clip(frame[:, None] + np.arange(-context_length + 1, 1)[None, :], 0, length - 1)
        future = np.clip(frame[:, None] + np.arange(horizon)[None, :], 0, length - 1)
        embedding_windows.append(episode.embeddings[past])
        if episode.states is not None:
            state_windows.append(episode.states[past])
        chunks.append(episode.actions[future])
    states = np.concatenate(state_windows).astype(np.float32) if state_windows else None
    return (np.concatenate(embedding_windows).astype(np.float32), states,
            np.concatenate(chunks).astype(np.float32))


def pad_window(rows: np.ndarray, context_length: int) -> np.ndarray:
    """Return the newest `context_length` rows, padded at the front by repeating the oldest row."""
    rows = np.asarray(rows, np.float32)
    if rows.ndim != 2 or len(rows) == 0:
        raise ValueError(f'an observation window must be a non-empty 2-D array, got shape {rows.shape}')
    rows = rows[-context_length:]
    if len(rows) < context_length:
        rows = np.concatenate([np.repeat(rows[:1], context_length - len(rows), axis=0), rows])
    return rows


class Policy(abc.ABC):
    """Base of all policies: fit on episodes, predict chunks, save/load one artifact file."""

    name: str = ''                       # registry name, e.g. "knn"
    config_class: type[PolicyConfig] = PolicyConfig
    data_parallel: bool = False          # fit() trains on every rank of a torchrun process group

    def __init__(self, config: PolicyConfig, metadata: PolicyMetadata):
        config.validate()
        self.config = config
        self.metadata = metadata

    # --- interface -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget any per-episode state (none for stateless policies)."""

    def predict_action(self, obs_window: dict[str, np.ndarray]) -> np.ndarray:
        """Predict the action chunk, float32 (horizon, action_dim) in real units, for the newest observation."""
        if self.metadata.action_normalization is None:
            raise RuntimeError(f'{self.name} policy is not trained (fit() or load() first)')
        embeddings = pad_window(obs_window['embedding'], self.config.context_length)
        if embeddings.shape[1] != self.metadata.embedding_dim:
            raise ValueError(f'embedding has {embeddings.shape[1]} values, the policy expects '
                             f'{self.metadata.embedding_dim}')
        states = None
        if self.metadata.uses_state:
            if obs_window.get('state') is None:
                raise ValueError(f'the policy needs the joint state of {self.metadata.state_names}')
            states = self.metadata.state_normalization.normalize(
                pad_window(obs_window['state'], self.config.context_length))
        chunk = self._predict_normalized(embeddings[None], None if states is None else states[None])[0]
        return self.metadata.action_normalization.unnormalize(chunk)

    def fit(self, episodes: list[Episode], validation: list[Episode] | None = None,
            progress: Callable[[int, int], None] | None = None) -> TrainingHistory:
        """Fit normalisation and weights on training episodes; a curve over `validation`."""
        if not episodes:
            raise ValueError('no training episodes')
        actions = np.concatenate([episode.actions for episode in episodes])
        self.metadata.action_normalization = Normalization.fit(actions)
        if self.metadata.uses_state:
            if any(episode.states is None for episode in episodes):
                raise ValueError(f'the policy uses state {self.metadata.state_names}, an episode has none')
            self.metadata.state_normalization = Normalization.fit(
                np.concatenate([episode.states for episode in episodes]))
        train = self._normalized_windows(episodes)
        valid = self._normalized_windows(validation) if validation else None
        return self._fit_normalized(train, valid, progress)

    def _normalized_windows(self, episodes: list[Episode]):
        embeddings, states, chunks = make_training_windows(
            episodes, self.config.context_length, self.config.horizon)
        if not self.metadata.uses_state:
            states = None
        elif states is not None:
            states = self.metadata.state_normalization.normalize(states)
        return embeddings, states, self.metadata.action_normalization.normalize(chunks)

    @abc.abstractmethod
    def _predict_normalized(self, embeddings: np.ndarray, states: np.ndarray | None) -> np.ndarray:
        """(B, context, E), (B, context, S) normalised or None -> normalised chunks (B, horizon, A)."""

    @abc.abstractmethod
    def _fit_normalized(self, train, validation, progress) -> TrainingHistory:
        """Fit on normalised (embeddings, states, chunks) windows."""

    @abc.abstractmethod
    def state_dict(self) -> dict[str, torch.Tensor]:
        """Return the learned tensors (kNN: its memory; MLP: its weights)."""

    @abc.abstractmethod
    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        ...

    # --- artifact --------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write one file (torch.save of plain types) atomically (dynamo_data.atomic)."""
        if self.metadata.action_normalization is None:
            raise RuntimeError('refusing to save an untrained policy')
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            'format_version': ARTIFACT_FORMAT_VERSION,
            'policy_name': self.name,
            'config': self.config.to_dict(),
            'metadata': self.metadata.to_dict(),
            'state_dict': {key: value.detach().cpu() for key, value in self.state_dict().items()},
        }
        with atomic_open(path, 'wb') as file:
            torch.save(payload, file)

    @property
    def horizon(self) -> int:
        return self.config.horizon

    @property
    def context_length(self) -> int:
        return self.config.context_length
