import pytest

from dynamo_data.episode_split import split_episodes


def test_split_holds_out_whole_episodes_deterministically_under_the_seed():
    train, held_out = split_episodes(20, 0.1, seed=3)
    assert sorted(train + held_out) == list(range(20)) and len(held_out) == 2
    assert train == sorted(train) and held_out == sorted(held_out)
    assert (train, held_out) == split_episodes(20, 0.1, seed=3)
    # The seed picks which episodes: across seeds the held-out ones differ.
    assert len({tuple(split_episodes(20, 0.1, seed=s)[1]) for s in range(10)}) > 1


def test_held_out_count_is_the_rounded_fraction():
    assert len(split_episodes(10, 0.25, seed=0)[1]) == 2      # round(2.5) == 2
    assert len(split_episodes(10, 0.3, seed=0)[1]) == 3
    assert len(split_episodes(7, 0.5, seed=0)[1]) == 4        # round(3.5) == 4


def test_tiny_datasets_hold_out_at_least_one_episode_but_never_all():
    assert split_episodes(10, 0.01, seed=0)[1] != []          # round(0.1) == 0, still one held out
    for seed in range(5):
        train, held_out = split_episodes(2, 0.9, seed=seed)
        assert len(train) == 1 and len(held_out) == 1
    assert len(split_episodes(3, 0.9, seed=0)[0]) == 1        # round(2.7) == 3 would leave no training


def test_no_held_out_episodes_at_fraction_zero_or_with_one_episode():
    assert split_episodes(5, 0.0, seed=0) == ([0, 1, 2, 3, 4], [])
    assert split_episodes(1, 0.1, seed=0) == ([0], [])
    assert split_episodes(1, 0.9, seed=0) == ([0], [])
    assert split_episodes(0, 0.2, seed=0) == ([], [])


@pytest.mark.parametrize('fraction', [-0.1, 1.0, 1.5])
def test_a_fraction_outside_0_to_1_is_refused(fraction):
    with pytest.raises(ValueError, match=r'held-out fraction must be in \[0, 1\)'):
        split_episodes(10, fraction, seed=0)
