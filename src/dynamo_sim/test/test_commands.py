"""Controller-style command handling of the simulator, without ROS."""
import numpy as np
import pytest

from dynamo_sim.commands import CommandError, JointTargets

ARM = ['a', 'b', 'c']


def test_trajectory_interpolates_from_arrival_and_holds_last_point():
    targets = JointTargets(ARM + ['g'], [0.0, 0.0, 0.0, 0.5])
    targets.set_trajectory(['c', 'a', 'b'], [([3.0, 1.0, 2.0], 1.0), ([0.0, 0.0, 0.0], 2.0)], now=10.0, allowed=ARM)
    np.testing.assert_allclose(targets.targets(10.0), [0, 0, 0, 0.5])
    np.testing.assert_allclose(targets.targets(10.5), [0.5, 1.0, 1.5, 0.5])
    np.testing.assert_allclose(targets.targets(11.0), [1, 2, 3, 0.5])
    np.testing.assert_allclose(targets.targets(99.0), [0, 0, 0, 0.5])
    # a new trajectory starts from where the old one was at its arrival
    targets.set_trajectory(ARM, [([4.0, 4.0, 4.0], 1.0)], now=10.5, allowed=ARM)
    np.testing.assert_allclose(targets.targets(11.0), [2.25, 2.5, 2.75, 0.5])


def test_forward_positions_set_at_once():
    targets = JointTargets(ARM + ['g'], np.zeros(4))
    targets.set_positions([7.0], ['g'])
    np.testing.assert_allclose(targets.targets(0.0), [0, 0, 0, 7])


@pytest.mark.parametrize('names,points,match', [
    (['a', 'x'], [([1, 2], 0.1)], 'unknown joint'),
    (['a', 'a'], [([1, 2], 0.1)], 'repeated'),
    (['a', 'b'], [([1, 2, 3], 0.1)], '3 positions for 2 joints'),
    (['a'], [], 'no points'),
    (['a'], [([np.nan], 0.1)], 'not finite'),
    (['a'], [([1.0], 0.5), ([2.0], 0.1)], 'decreases'),
])
def test_bad_trajectories_are_rejected_and_change_nothing(names, points, match):
    targets = JointTargets(ARM, [1.0, 2.0, 3.0])
    with pytest.raises(CommandError, match=match):
        targets.set_trajectory(names, points, now=0.0, allowed=ARM, what='/arm')
    np.testing.assert_allclose(targets.targets(5.0), [1, 2, 3])


def test_bad_forward_command_is_rejected():
    targets = JointTargets(ARM, np.zeros(3))
    with pytest.raises(CommandError, match='2 values for 3 joints'):
        targets.set_positions([1.0, 2.0], ARM, '/hand')
