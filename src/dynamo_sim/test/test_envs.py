"""The simulated scenes: deterministic stepping and rendering for a seed, seeded initial states, bad input."""
import numpy as np
import pytest

from dynamo_sim.envs import TASKS, SimError, make_env


def _rollout(task, seed, steps=6):
    env = make_env(task, seed, image_size=48)
    rng = np.random.default_rng(123)
    start = env.joint_positions()
    span = env.upper - env.lower
    states, images = [], []
    for _ in range(steps):
        env.step(np.clip(start + 0.03 * span.clip(max=2.0) * rng.uniform(-1, 1, start.shape), env.lower, env.upper))
        states.append(np.concatenate([env.joint_positions(), env.object_state(), [env.time]]))
        images.append(env.render())
    env.close()
    return np.array(states), np.array(images)


@pytest.mark.parametrize('task', ['open_door', 'lift_object'])
def test_same_seed_same_states_and_images(task):
    states_a, images_a = _rollout(task, seed=5)
    states_b, images_b = _rollout(task, seed=5)
    np.testing.assert_array_equal(states_a, states_b)
    np.testing.assert_array_equal(images_a, images_b)
    assert images_a.dtype == np.uint8 and images_a.shape == (6, 48, 48, 3)
    assert images_a.std() > 5, 'rendered images are blank'
    # the commands moved the robot
    assert np.abs(states_a[-1, :7] - states_a[0, :7]).max() > 1e-3


@pytest.mark.parametrize('task', sorted(TASKS))
def test_seed_draws_initial_object_state(task):
    env = make_env(task, seed=0, image_size=32)
    first = env.object_state()
    env.reset(seed=1)
    other = env.object_state()
    env.reset(seed=0)
    np.testing.assert_array_equal(env.object_state(), first)
    assert not np.allclose(first, other)
    assert len(first) == len(env.object_state_names)
    assert env.time == 0.0 and env.steps == 0
    assert not env.success(), f'{task} is solved before anything happened'


def test_step_advances_time_by_the_control_period():
    env = make_env('push_bottle', seed=0, control_rate=10.0)
    env.step(env.joint_positions())
    env.step(env.joint_positions())
    assert env.time == pytest.approx(0.2)
    assert env.joint_names == [f'joint{i}' for i in range(1, 8)] + ['drive_joint']


def test_allegro_joint_order():
    env = make_env('lift_object', seed=0)
    assert env.joint_names[:16] == [f'ah_joint{f}{j}' for f in range(4) for j in range(4)]
    assert env.joint_names[16:] == ['mount_x', 'mount_y', 'mount_z']


def test_bad_input_names_the_problem():
    with pytest.raises(SimError, match="unknown task 'fly'"):
        make_env('fly')
    env = make_env('open_door')
    with pytest.raises(SimError, match='expects 8 targets'):
        env.step(np.zeros(7))
    with pytest.raises(SimError, match='non-finite'):
        env.step(np.full(8, np.nan))
    with pytest.raises(SimError, match='unknown camera'):
        env.render('wrist')
