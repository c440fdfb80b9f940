"""Tiny synthetic LeRobot datasets for dynamo_policy's tests (imported by conftest and tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

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
