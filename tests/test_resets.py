"""Resets inside a stream (issue 21): a reset at step t equals unrolling the pieces on their own."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.helpers import perturb

CELLS = {"lstm": lambda: rnnjax.lstm(4), "gru": lambda: rnnjax.gru(4, reset_after=True), "rnn": lambda: rnnjax.rnn(4),
         "exp_rnn": lambda: rnnjax.exp_rnn(4), "min_gru": lambda: rnnjax.min_gru(4)}


def pieces(xs, starts):
    bounds = [0, *starts, xs.shape[0]]
    return [xs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


PATHS = {"fast": (True, None), "plain": (False, None), "remat": (True, 3)}
CASES = [("lstm", path, reverse) for path in PATHS for reverse in (False, True)] + [
    (name, "fast", False) for name in ("gru", "rnn", "exp_rnn", "min_gru")] + [("gru", "plain", True), ("min_gru", "remat", True)]


@pytest.mark.parametrize("name,path,reverse", CASES)
def test_a_reset_equals_separate_unrolls_with_the_same_gradients(name, path, reverse):
    fast, remat = PATHS[path]
    cell = CELLS[name]()
    params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (11, 3))
    starts = [4, 7]
    # going forward a piece starts at a reset; going down (reverse) the carry is reset on entering the
    # last step of each piece, i.e. the step before each start
    resets = jnp.zeros(11, bool).at[jnp.array([s - 1 for s in starts] if reverse else starts)].set(True)

    def split(p):
        outs = [rnnjax.unroll(cell, p, piece, reverse=reverse, fast=False) for piece in pieces(xs, starts)]
        return jnp.concatenate([ys for _, ys in outs]), outs[0 if reverse else -1][0]

    def whole(p):
        carry, ys = rnnjax.unroll(cell, p, xs, reverse=reverse, fast=fast, remat=remat, resets=resets)
        return ys, carry

    (ys, carry), (ys_ref, carry_ref) = whole(params), split(params)
    np.testing.assert_allclose(ys, ys_ref, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-6), carry, carry_ref)
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)[0])) + sum(jnp.sum(c ** 2) for c in jax.tree.leaves(f(p)[1]))  # noqa: E731
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),  # float32 sums in other orders
                 jax.grad(loss(whole))(params), jax.grad(loss(split))(params))


def test_stacked_bidirectional_net_reads_no_piece_across_a_boundary():
    net = rnnjax.stacked(rnnjax.lstm(3), 2, bidirectional=True)
    params = net.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (9, 2))
    ys, _ = net.apply(params, xs, resets=jnp.zeros(9, bool).at[5].set(True))
    expected = jnp.concatenate([net.apply(params, piece)[0] for piece in pieces(xs, [5])])
    np.testing.assert_allclose(ys, expected, atol=1e-6)


def test_reset_errors():
    cell = rnnjax.lstm(3)
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match=r"resets must be \[T\] = \(5,\), got shape \(4,\)"):
        rnnjax.unroll(cell, params, jnp.ones((5, 2)), resets=jnp.zeros(4, bool))
    lin = rnnjax.min_gru(3)
    with pytest.raises(ValueError, match="resets run on the sequential unroll"):
        rnnjax.unroll(lin, lin.init(jax.random.key(0), 2), jnp.ones((5, 2)), resets=jnp.zeros(5, bool), parallel=True)
