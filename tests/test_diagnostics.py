"""Gradient-flow diagnostics against independent computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import diagnostics
from rnnjax.types import Cell
from tests.helpers import CELLS, perturb


def linear_cell(H, scale):
    """h_t = x_t W_x + h_{t-1} W: a linear RNN, whose gradients are known in closed form."""

    def init(key, D):
        kx, kh = jax.random.split(key)
        return {"w_x": jax.random.normal(kx, (D, H)), "w_h": scale * jax.nn.initializers.orthogonal()(kh, (H, H)), "b": jnp.zeros(H)}

    def step(params, h, x):
        h = x @ params["w_x"] + h @ params["w_h"] + params["b"]
        return h, h

    return Cell(init, step, lambda p: jnp.zeros(H), None, H, "linear")


@pytest.mark.parametrize("scale", [0.8, 1.2])
def test_hidden_grad_norms_of_a_linear_rnn_are_powers_of_w_transpose(scale):
    H, T = 4, 30
    cell = linear_cell(H, scale)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (T, 3))
    g = jax.random.normal(jax.random.key(2), (T, H))  # dL/dy_t of the loss sum_t g_t . y_t
    norms = diagnostics.hidden_grad_norms(cell, params, xs, lambda ys, carry: jnp.sum(g * ys))
    # closed form: dL/dh_t = sum_{s >= t} g_s (W^T)^(s - t), computed backwards in float64 NumPy
    W = np.asarray(params["w_h"], np.float64)
    expected, acc = np.zeros(T), np.zeros(H)
    for t in reversed(range(T)):
        acc = np.asarray(g[t], np.float64) + acc @ W.T
        expected[t] = np.linalg.norm(acc)
    np.testing.assert_allclose(norms, expected, rtol=1e-4)
    # only the last step's output counts: the norm is |g_T| |W^T|^(T-t), so it decays or grows by `scale`
    last = diagnostics.hidden_grad_norms(cell, params, xs, lambda ys, c: jnp.sum(g[-1] * ys[-1]))
    np.testing.assert_allclose(last[:-1] / last[1:], scale, rtol=1e-4)


@pytest.mark.parametrize("name", CELLS)
def test_hidden_grad_norms_match_jax_grad_with_respect_to_an_injected_state(name):
    """Independent check for any cell: split the sequence at t and differentiate the tail in h_t."""
    cell = CELLS[name](5)
    params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (9, 3))
    w = jax.random.normal(jax.random.key(3), (9, 5))
    loss = lambda ys, carry: jnp.sum(jnp.tanh(ys) * w) + jnp.sum(diagnostics._hidden(carry) ** 2)  # noqa: E731
    norms = diagnostics.hidden_grad_norms(cell, params, xs, loss)
    for t in [0, 4, 8]:
        carry_t, ys_head = rnnjax.unroll(cell, params, xs[: t + 1], fast=False)

        def tail(h):
            c = diagnostics._with_hidden(carry_t, h)
            last, ys_tail = rnnjax.unroll(cell, params, xs[t + 1 :], c, fast=False) if t < 8 else (c, ys_head[:0])
            ys = jnp.concatenate([ys_head[:-1], h[None], ys_tail])
            return loss(ys, last)

        expected = jnp.linalg.norm(jax.grad(tail)(diagnostics._hidden(carry_t)))
        np.testing.assert_allclose(norms[t], expected, rtol=1e-4)


def test_truncation_cuts_the_gradient_at_chunk_boundaries():
    cell = rnnjax.lstm(4)
    params = cell.init(jax.random.key(0), 2)
    xs = jax.random.normal(jax.random.key(1), (20, 2))
    last_only = lambda ys, c: jnp.sum(ys[-1])  # noqa: E731
    full = diagnostics.hidden_grad_norms(cell, params, xs, last_only)
    cut = diagnostics.hidden_grad_norms(cell, params, xs, last_only, truncate=5)
    np.testing.assert_allclose(cut[15:], full[15:], rtol=1e-5)  # inside the last chunk, nothing changes
    np.testing.assert_array_equal(cut[:15], 0.0)  # before it, the gradient no longer reaches
    assert float(jnp.min(full[:15])) > 0


def test_jacobian_norms_match_jax_jacobian():
    cell = rnnjax.gru(4)
    params = perturb(cell.init(jax.random.key(0), 2), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (6, 2))
    got = diagnostics.jacobian_norms(cell, params, xs, until=4)
    for t in range(5):
        h_t, _ = rnnjax.unroll(cell, params, xs[: t + 1], fast=False)
        J = jax.jacobian(lambda h: rnnjax.unroll(cell, params, xs[t + 1 : 5], h, fast=False)[0] if t < 4 else h)(h_t)
        np.testing.assert_allclose(got["spectral"][t], np.linalg.norm(J, 2), rtol=1e-4)
        np.testing.assert_allclose(got["frobenius"][t], np.linalg.norm(J), rtol=1e-4)


def test_jacobian_of_the_lstm_is_the_h_block_of_the_state_jacobian():
    cell = rnnjax.lstm(3)
    params = perturb(cell.init(jax.random.key(0), 2), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (4, 2))
    got = diagnostics.jacobian_norms(cell, params, xs)
    c1, _ = rnnjax.unroll(cell, params, xs[:2], fast=False)
    J = jax.jacobian(lambda h: rnnjax.unroll(cell, params, xs[2:], c1._replace(h=h), fast=False)[0].h)(c1.h)
    np.testing.assert_allclose(got["spectral"][1], np.linalg.norm(J, 2), rtol=1e-4)


def test_diagnostics_jit_and_vmap_over_a_batch_and_a_sweep():
    scales = jnp.array([0.5, 1.0, 1.5])
    cells = rnnjax.rnn(6)
    params = jax.vmap(lambda s, k: rnnjax.rnn(6, recurrent_scale=s).init(k, 2))(scales, jax.random.split(jax.random.key(0), 3))
    xs = jax.random.normal(jax.random.key(1), (4, 12, 2))
    loss = lambda ys, c: jnp.sum(ys[-1])  # noqa: E731
    f = jax.jit(jax.vmap(jax.vmap(lambda p, x: diagnostics.hidden_grad_norms(cells, p, x, loss), (None, 0)), (0, None)))
    norms = f(params, xs)
    assert norms.shape == (3, 4, 12)
    np.testing.assert_allclose(norms[1, 2], diagnostics.hidden_grad_norms(cells, jax.tree.map(lambda a: a[1], params), xs[2], loss), rtol=1e-5)
    # larger recurrent scale, slower decay of the gradient towards early steps
    ratio = norms[:, :, 0] / norms[:, :, -1]
    assert bool(jnp.all(ratio[0] < ratio[1])) and bool(jnp.all(ratio[1] < ratio[2]))
    spectra = jax.jit(jax.vmap(lambda p: diagnostics.jacobian_norms(cells, p, xs[0])["spectral"]))(params)
    assert spectra.shape == (3, 12)


def test_recurrent_spectrum():
    w = rnnjax.rnn(8, recurrent_scale=1.3).init(jax.random.key(0), 2)["w_h"]
    spec = diagnostics.recurrent_spectrum(w)
    np.testing.assert_allclose(spec["spectral_radius"], [1.3], rtol=1e-4)
    np.testing.assert_allclose(spec["singular_values"], 1.3, rtol=1e-4)
    gates = diagnostics.recurrent_spectrum(rnnjax.lstm(5).init(jax.random.key(0), 2)["w_h"])
    assert gates["singular_values"].shape == (4, 5)
    with pytest.raises(ValueError, match="does not split into"):
        diagnostics.recurrent_spectrum(jnp.ones((4, 6)))


def test_clear_errors_for_empty_sequences_and_bad_time_indices():
    cell = rnnjax.gru(3)
    params = cell.init(jax.random.key(0), 2)
    with pytest.raises(ValueError, match="at least one step, got T = 0"):
        diagnostics.hidden_grad_norms(cell, params, jnp.ones((0, 2)), lambda ys, c: jnp.sum(ys))
    with pytest.raises(ValueError, match="at least one step, got T = 0"):
        diagnostics.jacobian_norms(cell, params, jnp.ones((0, 2)))
    with pytest.raises(IndexError, match=r"until=7 is out of range for a sequence of 5 steps \(0..4\)"):
        diagnostics.jacobian_norms(cell, params, jnp.ones((5, 2)), until=7)
    with pytest.raises(IndexError, match="until=-1 is out of range"):
        diagnostics.jacobian_norms(cell, params, jnp.ones((5, 2)), until=-1)
    with pytest.raises(ValueError, match="chunk length 9 is larger than the sequence"):
        diagnostics.hidden_grad_norms(cell, params, jnp.ones((5, 2)), lambda ys, c: jnp.sum(ys), truncate=9)
