"""The LSTM's peephole, layer-norm and projection options (issue 21) against loops written here, on every unroll path."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.helpers import assert_directional_derivatives, perturb


def sigmoid(v):
    return 1 / (1 + np.exp(-v))


def norm(v):
    return (v - v.mean()) / np.sqrt(v.var() + 1e-5)


def reference(params, xs, peepholes, layer_norm):
    """The LSTM of Gers & Schmidhuber 2000 (peepholes), Ba et al. 2016 (LN-LSTM) and Sak et al. 2014
    (LSTMP: ``w_proj``), one step at a time."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    H = p["w_h"].shape[1] // 4
    h, c, ys = np.zeros(p["w_h"].shape[0]), np.zeros(H), []
    for x in np.asarray(xs, np.float64):
        if layer_norm:
            a = p["ln_h"] * norm(h @ p["w_h"]) + p["ln_x"] * norm(x @ p["w_x"]) + p["bias"]
        else:
            a = x @ p["w_x"] + h @ p["w_h"] + p["b"]
        a_i, a_f, a_g, a_o = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
        if peepholes:
            a_i, a_f = a_i + p["peephole"][:H] * c, a_f + p["peephole"][H:2 * H] * c
        c = sigmoid(a_f) * c + sigmoid(a_i) * np.tanh(a_g)
        if peepholes:
            a_o = a_o + p["peephole"][2 * H:] * c
        h = sigmoid(a_o) * np.tanh(p["ln_c"] * norm(c) + p["ln_c_bias"] if layer_norm else c)
        if "w_proj" in p:
            h = h @ p["w_proj"]
        ys.append(h)
    return np.stack(ys), h, c


OPTIONS = [dict(peepholes=True), dict(layer_norm=True), dict(proj_size=3), dict(peepholes=True, layer_norm=True, proj_size=2)]


def setup(options, H=5, D=3, T=9, seed=0):
    cell = rnnjax.lstm(H, **options)
    params = perturb(cell.init(jax.random.key(seed), D), jax.random.key(seed + 1), scale=0.5)
    xs = jax.random.normal(jax.random.key(seed + 2), (T, D))
    return cell, params, xs


@pytest.mark.parametrize("options", OPTIONS, ids=str)
@pytest.mark.parametrize("fast", [True, False])
def test_matches_the_loop_written_here(options, fast):
    with jax.enable_x64(True):
        cell, params, xs = setup(options)
        params, xs = jax.tree.map(lambda a: a.astype(jnp.float64), (params, xs))
        carry, ys = rnnjax.unroll(cell, params, xs, fast=fast)
        ys_ref, h_ref, c_ref = reference(params, xs, options.get("peepholes", False), options.get("layer_norm", False))
        np.testing.assert_allclose(ys, ys_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(carry.h, h_ref, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(carry.c, c_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("options", OPTIONS, ids=str)
def test_gradients_match_finite_differences_in_float64_and_the_paths_agree(options):
    with jax.enable_x64(True):
        cell, params, xs = setup(options, T=6)
        params, xs = jax.tree.map(lambda a: a.astype(jnp.float64), (params, xs))

        def loss(p, fast=True):
            return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, fast=fast)[1]))

        grads = jax.grad(loss)(params)
        plain = jax.grad(loss)(params, False)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), grads, plain)
        # finite differences on the fast path
        assert_directional_derivatives(loss, grads, params)


def test_masks_reverse_stacked_and_remat():
    cell, params, xs = setup(OPTIONS[-1], T=12)  # every option at once
    mask = jnp.arange(12) < 8
    for reverse in (False, True):
        carry, ys = rnnjax.unroll(cell, params, xs, mask=mask, reverse=reverse)
        carry_8, ys_8 = rnnjax.unroll(cell, params, xs[:8], reverse=reverse)
        np.testing.assert_allclose(ys[:8], ys_8, atol=1e-6)
        np.testing.assert_array_equal(ys[8:], 0.0)
        np.testing.assert_allclose(carry.c, carry_8.c, atol=1e-6)
        remat = rnnjax.unroll(cell, params, xs, mask=mask, reverse=reverse, remat=4)[1]
        np.testing.assert_allclose(remat, ys, atol=1e-6)
    net = rnnjax.stacked(cell, 2, bidirectional=True)
    net_params = net.init(jax.random.key(3), 3)
    out, _ = net.apply(net_params, xs, mask=mask)
    assert out.shape == (12, 2 * cell.hidden_size) and np.all(np.isfinite(out))
    # The gradients in float64: in float32 the two paths' sums round differently (by up to 1e-5 of a leaf's
    # largest entry here, depending on the machine's kernels), which would hide a real difference that small.
    with jax.enable_x64(True):
        net_params, xs = jax.tree.map(lambda a: a.astype(jnp.float64), (net_params, xs))
        fast_grads = jax.grad(lambda p: jnp.sum(net.apply(p, xs, mask=mask)[0] ** 2))(net_params)
        plain = rnnjax.stacked(cell, 2, bidirectional=True, fast=False)
        plain_grads = jax.grad(lambda p: jnp.sum(plain.apply(p, xs, mask=mask)[0] ** 2))(net_params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), fast_grads, plain_grads)


def test_peepholes_start_as_the_plain_lstm_and_layer_norm_params_are_named():
    xs = jax.random.normal(jax.random.key(0), (5, 3))
    plain, peep = rnnjax.lstm(4), rnnjax.lstm(4, peepholes=True)
    p_plain, p_peep = plain.init(jax.random.key(1), 3), peep.init(jax.random.key(1), 3)
    assert np.all(p_peep["peephole"] == 0) and p_peep["peephole"].shape == (12,)
    np.testing.assert_array_equal(rnnjax.unroll(peep, p_peep, xs)[1], rnnjax.unroll(plain, p_plain, xs)[1])
    ln = rnnjax.lstm(4, layer_norm=True, forget_bias=2.0).init(jax.random.key(1), 3)
    assert "b" not in ln and np.all(ln["bias"][4:8] == 2.0) and np.all(ln["ln_x"] == 1) and np.all(ln["ln_c_bias"] == 0)
    assert rnnjax.lstm(4, peepholes=True, layer_norm=True).name == "lstm(4, peepholes, layer_norm)"


def gru_reference(params, xs, reset_after):
    """The layer-normalised GRU of rnnjax.gru's docstring, one step at a time."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    H = p["ln_hn"].shape[0]
    h, ys = np.zeros(H), []
    for x in np.asarray(xs, np.float64):
        xw, hw = x @ p["w_x"], h @ p["w_h"]
        a_rz = p["ln_x"][:2 * H] * norm(xw[:2 * H]) + p["ln_h"] * norm(hw[:2 * H]) + p["bias"][:2 * H]
        r, z = sigmoid(a_rz[:H]), sigmoid(a_rz[H:])
        a_n = p["ln_x"][2 * H:] * norm(xw[2 * H:]) + p["bias"][2 * H:]
        if reset_after:
            n = np.tanh(a_n + r * (p["ln_hn"] * norm(hw[2 * H:]) + p["b_hn"]))
        else:
            n = np.tanh(a_n + p["ln_hn"] * norm((r * h) @ p["w_hn"]))
        h = (1 - z) * h + z * n
        ys.append(h)
    return np.stack(ys)


@pytest.mark.parametrize("reset_after", [False, True])
def test_layer_norm_gru_matches_the_loop_and_finite_differences(reset_after):
    with jax.enable_x64(True):
        cell = rnnjax.gru(4, reset_after=reset_after, layer_norm=True)
        params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1), scale=0.5)
        xs = jax.random.normal(jax.random.key(2), (7, 3))
        params, xs = jax.tree.map(lambda a: a.astype(jnp.float64), (params, xs))
        expected = gru_reference(params, xs, reset_after)
        for fast in (True, False):
            np.testing.assert_allclose(rnnjax.unroll(cell, params, xs, fast=fast)[1], expected, rtol=1e-12, atol=1e-12)

        def loss(p, fast=True):
            return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, fast=fast)[1]))

        grads = jax.grad(loss)(params)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), grads, jax.grad(loss)(params, False))
        # finite differences on the fast path
        assert_directional_derivatives(loss, grads, params)
    assert "b" not in params and params["ln_h"].shape == (8,)
