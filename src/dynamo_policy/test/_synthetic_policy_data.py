"""Tiny synthetic data for dynamo_policy's tests: LeRobot datasets and in-memory episodes (imported by tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynamo_policy.policies import Episode, PolicyMetadata

XARM_ACTIONS = [f'joint{i}' for i in range(1, 8)] + ['drive_joint']
ALLEGRO_ACTIONS = [f'ah_joint{finger}{joint}' for finger in range(4) for joint in range(4)]
TWIST_ACTIONS = ['linear.x', 'linear.y', 'linear.z', 'angular.x', 'angular.y', 'angular.z']
IMAGE_SIZE = 32
FPS = 10


def synthetic_episode(rng: np.random.Generator, length: int, action_dim: int):
    """Render a bright square circling on a dark image, with actions that follow it.

    Every action is a smooth function of the square's phase, so the image determines the action
    (learnable through any reasonable encoder).
    """
    phase = rng.uniform(0, 2 * np.pi) + np.linspace(0, 1.5 * np.pi, length)
    frames = np.full((length, IMAGE_SIZE, IMAGE_SIZE, 3), 20, np.uint8)
    centre = IMAGE_SIZE / 2 + (IMAGE_SIZE / 3) * np.stack([np.cos(phase), np.sin(phase)], axis=1)
    for t, (x, y) in enumerate(centre.astype(int)):
        frames[t, max(y - 4, 0):y + 4, max(x - 4, 0):x + 4] = (230, 200, 40)
    offsets = np.arange(action_dim) * 0.7
    actions = (0.5 * np.sin(phase[:, None] + offsets[None, :]) + 0.1 * np.arange(action_dim)).astype(np.float32)
    states = np.concatenate([actions[:1], actions[:-1]]).astype(np.float32)  # the state lags the command
    return frames, actions, states


def write_synthetic_dataset(root: Path, action_names: list[str], episodes: int = 6, length: int = 30,
                            seed: int = 0) -> Path:
    from dynamo_data import DatasetWriter
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, fps=FPS, robot_type='synthetic', cameras={'front': (IMAGE_SIZE, IMAGE_SIZE, 3)},
                           arrays={'observation.state': action_names, 'action': action_names}, video=False)
    for _ in range(episodes):
        frames, actions, states = synthetic_episode(rng, length, len(action_names))
        writer.add_episode(frames={'front': frames}, arrays={'observation.state': states, 'action': actions},
                           task='follow the square')
    writer.finalize()
    return root


def policy_metadata(embedding_dim=12, action_names=('a', 'b', 'c'), state_names=()):
    return PolicyMetadata(encoder_name='resnet_small', encoder_checksum='0123456789abcdef',
                          camera_names=['front'], embedding_dim=embedding_dim,
                          action_names=list(action_names), step_period=0.1, state_names=list(state_names))


def phase_episodes(count, length=40, embedding_dim=12, seed=0):
    """Build episodes whose actions are a smooth nonlinear function of a hidden phase.

    Embeddings are a fixed random projection of the phase plus noise so
    held-out episodes are predictable, but not linearly.
    """
    rng = np.random.default_rng(seed)
    projection = np.random.default_rng(99).normal(size=(4, embedding_dim))
    episodes = []
    for _ in range(count):
        phase = rng.uniform(0, 2 * np.pi) + np.linspace(0, np.pi, length)
        features = np.stack([np.cos(phase), np.sin(phase), np.cos(2 * phase), np.sin(2 * phase)], axis=1)
        embeddings = features @ projection + 0.05 * rng.normal(size=(length, embedding_dim))
        actions = np.stack([np.sin(phase) ** 2, np.cos(3 * phase), 2.0 + 0.5 * np.sin(phase)], axis=1)
        states = np.concatenate([actions[:1], actions[:-1]])
        episodes.append(Episode(embeddings.astype(np.float32), actions.astype(np.float32), states.astype(np.float32)))
    return episodes


def bimodal_episodes(count=16, length=12, embedding_dim=6, seed=0):
    """Every episode sees exactly the same observations; half act +1 throughout, half -1."""
    rng = np.random.default_rng(seed)
    embeddings = rng.normal(size=embedding_dim) + 0.3 * np.sin(np.arange(length)[:, None] / 3.0
                                                                 + np.arange(embedding_dim)[None, :])
    episodes = []
    for i in range(count):
        actions = (1.0 if i % 2 == 0 else -1.0) + 0.02 * rng.normal(size=(length, 1))
        episodes.append(Episode(embeddings.astype(np.float32), actions.astype(np.float32)))
    return episodes


def first_actions(policy, episodes, calls):
    """First action of `calls` predictions on the (shared) observation windows, cycling through time."""
    length = len(episodes[0])
    return np.array([policy.predict_action({'embedding': episodes[0].embeddings[: 1 + k % length]})[0, 0]
                     for k in range(calls)])
