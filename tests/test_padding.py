"""Padding with masks and length-bucketed batches."""

import numpy as np
import pytest

from rnnjax.datasets.padding import length_batches, pad


def test_pad_puts_padding_at_the_end_and_rounds_the_length():
    ids, mask = pad([np.array([5, 6, 7]), np.array([1]), np.arange(1, 10)], multiple=4)
    assert ids.shape == mask.shape == (3, 12) and ids.dtype == np.int32
    np.testing.assert_array_equal(mask.sum(1), [3, 1, 9])
    np.testing.assert_array_equal(ids[0, :4], [5, 6, 7, 0])
    assert np.all(ids[~mask] == 0)
    assert pad([np.array([1, 2])], multiple=1)[0].shape == (1, 2)
    with pytest.raises(ValueError, match="no sequences"):
        pad([])
    with pytest.raises(ValueError, match="sequence 1 is not a 1-D array of integer ids"):
        pad([np.array([1]), np.array([0.5])])
    with pytest.raises(ValueError, match="multiple must be >= 1"):
        pad([np.array([1])], multiple=0)


def test_length_batches_cover_every_example_once_and_group_lengths():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 60, size=1003)
    for seed in (None, 7):
        batches = length_batches(lengths, 32, seed=seed, pool=10)
        flat = np.concatenate(batches)
        np.testing.assert_array_equal(np.sort(flat), np.arange(lengths.size))
        assert max(b.size for b in batches) == 32
        # within a batch the lengths are close: far less spread than random batches would have
        spread = np.mean([np.ptp(lengths[b]) for b in batches if b.size > 1])
        assert spread < 10, spread
    np.testing.assert_array_equal(np.concatenate(length_batches(lengths, 32)), np.argsort(lengths, kind="stable"))
    same = [np.array_equal(a, b) for a, b in zip(length_batches(lengths, 32, seed=1), length_batches(lengths, 32, seed=1))]
    assert all(same)
    other = length_batches(lengths, 32, seed=2)
    assert not all(np.array_equal(a, b) for a, b in zip(length_batches(lengths, 32, seed=1), other))
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        length_batches(lengths, 0)
