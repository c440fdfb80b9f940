"""A tiny synthetic LeRobot dataset for the pretraining tests: a square pushed around by a hidden action.

Each episode: a per-episode background colour and a static distractor square, plus the moving
object square whose velocity is the action (held for a few steps, then resampled). The object
position is `observation.environment_state` (privileged state for the linear probe), the action
is `action`, and `observation.state` is the action of the previous step (the "robot" state).
Written with DatasetWriter and read back through LeRobotDataset like every real dataset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dynamo_data import DatasetWriter

OBJECT_SIZE = 0.2      # side of the object square, fraction of the image
DISTRACTOR_SIZE = 0.25
SPEED = 0.07           # position change per step at |action| = 1, fraction of the image


def render_episode(rng: np.random.Generator, length: int, size: int, distractors: bool):
    """-> frames uint8 (T, size, size, 3), positions float32 (T, 2), actions float32 (T, 2)."""
    background = rng.uniform(0, 110, size=3) if distractors else np.array([40.0, 40.0, 40.0])
    distractor_colour = rng.uniform(0, 255, size=3)
    distractor = rng.uniform(0, 1 - DISTRACTOR_SIZE, size=2)
    low, high = 0.0, 1.0 - OBJECT_SIZE
    position = rng.uniform(low, high, size=2)
    frames = np.empty((length, size, size, 3), np.uint8)
    positions = np.empty((length, 2), np.float32)
    actions = np.empty((length, 2), np.float32)
    action = rng.uniform(-1, 1, size=2)
    for t in range(length):
        if t % 4 == 0:
            action = rng.uniform(-1, 1, size=2)
        image = np.empty((size, size, 3), np.float32)
        image[:] = background
        dx, dy = (distractor * size).astype(int)
        ds = int(DISTRACTOR_SIZE * size)
        if distractors:
            image[dy:dy + ds, dx:dx + ds] = distractor_colour
        ox, oy = np.round(position * size).astype(int)
        os_ = int(OBJECT_SIZE * size)
        image[oy:oy + os_, ox:ox + os_] = (240, 240, 60)
        frames[t] = image.astype(np.uint8)
        positions[t] = position
        actions[t] = action
        position = position + SPEED * action
        # Bounce off the walls, so the motion stays a function of (position, action).
        for axis in range(2):
            if position[axis] < low:
                position[axis] = 2 * low - position[axis]
                action[axis] = -action[axis]
            elif position[axis] > high:
                position[axis] = 2 * high - position[axis]
                action[axis] = -action[axis]
    return frames, positions, actions


def write_square_dataset(root: Path, episodes: int = 12, length: int = 30, size: int = 48, seed: int = 0,
                         cameras: tuple[str, ...] = ('front',), lengths: list[int] | None = None,
                         distractors: bool = False) -> Path:
    """Write the dataset to `root`; `lengths` (per episode) overrides `length`."""
    rng = np.random.default_rng(seed)
    writer = DatasetWriter(root, fps=10, robot_type='synthetic_square', cameras={c: (size, size, 3) for c in cameras},
                           arrays={'observation.state': ['vx_prev', 'vy_prev'], 'action': ['vx', 'vy'],
                                   'observation.environment_state': ['object_x', 'object_y']}, video=False)
    for episode in range(episodes):
        n = lengths[episode] if lengths is not None else length
        frames, positions, actions = render_episode(rng, n, size, distractors)
        previous = np.concatenate([np.zeros((1, 2), np.float32), actions[:-1]])
        writer.add_episode(frames={c: frames for c in cameras},
                           arrays={'observation.state': previous, 'action': actions,
                                   'observation.environment_state': positions},
                           task='push the square')
    writer.finalize()
    return Path(root)
