"""Which whole episodes of a dataset are held out: the one train/held-out split every tool uses.

Frames of one episode are strongly correlated, so validation and probe scores are only honest on
episodes the model never saw; pretraining, policy training and the linear probe all split here.
"""

from __future__ import annotations

import numpy as np


def split_episodes(num_episodes: int, held_out_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Split episodes 0..num_episodes-1 into sorted (training, held-out) index lists.

    round(held_out_fraction * num_episodes) episodes are held out, picked by a permutation seeded
    by `seed`, so the same arguments always give the same split. With a fraction above 0 and at
    least 2 episodes, at least one episode and never all of them are held out; a fraction of 0 or
    a single episode holds none out.
    """
    if not 0.0 <= held_out_fraction < 1.0:
        raise ValueError(f'held-out fraction must be in [0, 1), got {held_out_fraction}')
    if num_episodes < 0:
        raise ValueError(f'number of episodes must be >= 0, got {num_episodes}')
    order = np.random.default_rng(seed).permutation(num_episodes)
    num_held_out = 0
    if held_out_fraction > 0 and num_episodes >= 2:
        num_held_out = min(max(int(round(held_out_fraction * num_episodes)), 1), num_episodes - 1)
    return sorted(int(e) for e in order[num_held_out:]), sorted(int(e) for e in order[:num_held_out])
