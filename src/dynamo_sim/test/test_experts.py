"""Every scripted expert solves its task in at least 90% of 20 seeded episodes, played as record_demos plays them."""
import pytest

from dynamo_sim.envs import TASKS, make_env
from dynamo_sim.recording import expert_rollout


@pytest.mark.parametrize('task', sorted(TASKS))
def test_expert_success_rate(task):
    env = make_env(task, seed=0)
    results, lengths = [], []
    for seed in range(20):
        for _ in expert_rollout(env, seed):
            pass
        results.append(env.success())
        lengths.append(env.steps)
    failed = [seed for seed, ok in enumerate(results) if not ok]
    assert sum(results) >= 18, f'{task}: expert failed on seeds {failed}'
    assert 30 <= min(lengths) and max(lengths) <= env.max_episode_steps, lengths
    assert len(set(lengths)) > 3, 'demonstrations should vary in timing'
