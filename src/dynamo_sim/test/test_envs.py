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


# allegro_hand_ros2 (v4), allegro_hand_hardwares/v4/hardware/readme.md "Joint Name Definitions":
# ah_joint0x thumb, 1x index, 2x middle, 3x ring; limits (rad) of its URDF
# allegro_hand_hardwares/v4/description/urdf/allegro_hand_description_right.xacro.
DRIVER_FINGERS = {'0': 'thumb', '1': 'index', '2': 'middle', '3': 'ring'}
DRIVER_THUMB_LIMITS = [(0.263, 1.396), (-0.105, 1.163), (-0.189, 1.644), (-0.162, 1.719)]
DRIVER_FINGER_LIMITS = [(-0.47, 0.47), (-0.196, 1.61), (-0.174, 1.709), (-0.227, 1.618)]
LINKS = ('base', 'proximal', 'medial', 'distal')


def test_allegro_joints_move_the_fingers_the_driver_names_them_after():
    env = make_env('lift_object', seed=0)
    m = env.model
    for i, name in enumerate(env.joint_names[:16]):
        finger, link = DRIVER_FINGERS[name[-2]], int(name[-1])
        assert m.body(m.joint(name).bodyid[0]).name == f'{finger}_{LINKS[link]}', name
        published = (DRIVER_THUMB_LIMITS if finger == 'thumb' else DRIVER_FINGER_LIMITS)[link]
        np.testing.assert_allclose(m.joint(name).range, published, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(m.actuator(name).ctrlrange, published, atol=1e-4, err_msg=name)
        np.testing.assert_allclose((env.lower[i], env.upper[i]), published, atol=1e-4, err_msg=name)
    # a right hand seen from the back (palm down, fingers along +x): index on +y, ring on -y, the
    # thumb on the index side
    y = {finger: m.body(f'{finger}_base').pos[1] for finger in DRIVER_FINGERS.values()}
    assert y['ring'] < y['middle'] < y['index'] and y['thumb'] > 0


def test_allegro_home_holds_the_thumb_in_its_range():
    env = make_env('lift_object', seed=0)
    home = dict(zip(env.joint_names, env.home_targets()))
    assert home['ah_joint00'] == pytest.approx(0.4)  # thumb base, swung under the palm
    assert all(home[f'ah_joint{f}0'] == 0.0 for f in '123')


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
