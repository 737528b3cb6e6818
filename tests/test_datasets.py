import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnnjax.datasets import adding_task


def test_adding_task_is_deterministic_and_well_formed():
    xs, ys = adding_task(jax.random.key(0), 64, 30)
    xs2, ys2 = adding_task(jax.random.key(0), 64, 30)
    np.testing.assert_array_equal(xs, xs2)
    np.testing.assert_array_equal(ys, ys2)
    assert xs.shape == (64, 30, 2) and ys.shape == (64,)
    markers = np.asarray(xs[..., 1])
    np.testing.assert_array_equal(markers.sum(1), 2)
    np.testing.assert_array_equal(markers[:, :15].sum(1), 1)  # one marker in each half
    np.testing.assert_allclose(ys, (xs[..., 0] * xs[..., 1]).sum(1), rtol=1e-6)
    other, _ = adding_task(jax.random.key(1), 64, 30)
    assert not np.allclose(xs, other)


def test_adding_task_baseline_is_one_sixth():
    _, ys = adding_task(jax.random.key(0), 20000, 10)
    assert abs(float(jnp.mean((ys - 1.0) ** 2)) - 1 / 6) < 0.01


def test_adding_task_rejects_bad_sizes():
    with pytest.raises(ValueError, match="length must be at least 2"):
        adding_task(jax.random.key(0), 4, 1)
    with pytest.raises(ValueError, match="batch must be positive"):
        adding_task(jax.random.key(0), 0, 10)
