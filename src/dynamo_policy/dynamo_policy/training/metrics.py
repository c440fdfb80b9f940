"""Held-out action error of a policy, against the trivial baseline of predicting the mean action."""

from __future__ import annotations

import numpy as np

from dynamo_policy.policies import Episode, Policy
from dynamo_policy.policies.base import make_training_windows


def predict_chunks(policy: Policy, episodes: list[Episode]) -> np.ndarray:
    """Predict the policy's chunk at every frame of the episodes: (N, horizon, action_dim), real units."""
    embeddings, states, _ = make_training_windows(episodes, policy.context_length, policy.horizon)
    chunks = []
    for i in range(len(embeddings)):
        window = {'embedding': embeddings[i]}
        if states is not None and policy.metadata.uses_state:
            window['state'] = states[i]
        chunks.append(policy.predict_action(window))
    return np.stack(chunks)


def action_errors(policy: Policy, held_out: list[Episode], training: list[Episode]) -> dict[str, float]:
    """Return the mean absolute error per action value, over whole chunks and over their first row.

    For the policy, and for always predicting the training mean action.
    """
    _, _, truth = make_training_windows(held_out, policy.context_length, policy.horizon)
    predicted = predict_chunks(policy, held_out)
    mean_action = np.concatenate([episode.actions for episode in training]).mean(axis=0)
    return {
        'policy_chunk_mae': float(np.abs(predicted - truth).mean()),
        'mean_action_chunk_mae': float(np.abs(mean_action - truth).mean()),
        'policy_first_action_mae': float(np.abs(predicted[:, 0] - truth[:, 0]).mean()),
        'mean_action_first_action_mae': float(np.abs(mean_action - truth[:, 0]).mean()),
        'held_out_frames': int(len(truth)),
    }
