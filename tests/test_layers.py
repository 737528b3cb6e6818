"""Stacked and bidirectional nets: equal to composing unrolls by hand, masks, carries, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.helpers import assert_trees_close, perturb


@pytest.mark.parametrize("fast", [True, False])
def test_stack_equals_manual_composition(fast):
    cells = [rnnjax.lstm(5), rnnjax.gru(4), rnnjax.rnn(3, activation="relu")]
    net = rnnjax.stacked(cells, bidirectional=True, fast=fast)
    params = perturb(net.init(jax.random.key(0), 2), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (6, 2))
    ys, carry = net.apply(params, xs)
    assert ys.shape == (6, net.output_size) == (6, 6)

    h = xs
    for cell, p, c in zip(cells, params, carry):
        cf, yf = rnnjax.unroll(cell, p["fwd"], h, fast=False)
        cb, yb = rnnjax.unroll(cell, p["bwd"], h[::-1], fast=False)
        h = jnp.concatenate([yf, yb[::-1]], axis=-1)
        assert_trees_close(c, {"fwd": cf, "bwd": cb}, atol=1e-6)
    assert_trees_close(ys, h, atol=1e-6)


def test_single_cell_repeated_and_initial_carry_used():
    net = rnnjax.stacked(rnnjax.gru(4), num_layers=2)
    params = net.init(jax.random.key(0), 3)
    assert len(params) == 2 and params[1]["w_x"].shape == (4, 12)
    xs = jax.random.normal(jax.random.key(2), (5, 3))
    carry0 = tuple(jnp.full((4,), 0.5) for _ in range(2))
    ys_zero, _ = net.apply(params, xs)
    ys_half, _ = net.apply(params, xs, carry=carry0)
    assert not np.allclose(ys_zero, ys_half)
    _, ys_ref = rnnjax.unroll(rnnjax.gru(4), params[0], xs, carry0[0])
    _, ys_ref = rnnjax.unroll(rnnjax.gru(4), params[1], ys_ref, carry0[1])
    assert_trees_close(ys_half, ys_ref, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_masked_batch_under_vmap_and_jit(bidirectional):
    net = rnnjax.stacked(rnnjax.lstm(4), num_layers=2, bidirectional=bidirectional)
    params = net.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (3, 7, 3))
    lengths = jnp.array([7, 2, 5])
    masks = jnp.arange(7)[None] < lengths[:, None]
    ys, carry = jax.jit(jax.vmap(net.apply, in_axes=(None, 0, 0)))(params, xs, masks)
    for i, n in enumerate(lengths.tolist()):
        ys_i, carry_i = net.apply(params, xs[i, :n])
        assert_trees_close(ys[i, :n], ys_i, atol=1e-5)
        assert_trees_close(jax.tree.map(lambda a: a[i], carry), carry_i, atol=1e-5)
        np.testing.assert_array_equal(ys[i, n:], 0.0)
