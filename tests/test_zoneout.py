"""Zoneout (issue 21; Krueger et al. 2017): a fresh draw per step and unit, the expectation without a key."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import rnnjax
from tests.helpers import assert_directional_derivatives, perturb


def sigmoid(a):
    return 1 / (1 + np.exp(-a))


def lstm_loop(params, xs, d_h, d_c):
    """The LSTM with zoneout written here: each unit keeps its last value where its d is 1 (or, with d a
    number, mixes in that much of it: the expectation)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    H = p["w_h"].shape[0]
    h, c, ys = np.zeros(H), np.zeros(H), []
    for t, x in enumerate(np.asarray(xs, np.float64)):
        a = x @ p["w_x"] + h @ p["w_h"] + p["b"]
        i, f, g, o = sigmoid(a[:H]), sigmoid(a[H:2 * H]), np.tanh(a[2 * H:3 * H]), sigmoid(a[3 * H:])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        dh, dc = (d_h, d_c) if np.isscalar(d_h) else (d_h[t], d_c[t])
        c = dc * c + (1 - dc) * c_new
        h = dh * h + (1 - dh) * h_new
        ys.append(h)
    return np.stack(ys)


@pytest.mark.parametrize("fast", [True, False])
def test_the_lstm_against_a_loop_with_the_drawn_masks_and_the_expectation_without_a_key(fast):
    cell = rnnjax.zoneout(rnnjax.lstm(6), 0.2, cell_rate=0.5)
    params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (40, 3))
    key = jax.random.key(3)
    noise = cell.step_noise(cell.initial_carry(params), jax.random.fold_in(key, 1), 40)  # what unroll draws
    d_h, d_c = np.asarray(noise.h), np.asarray(noise.c)
    assert d_h.shape == d_c.shape == (40, 6) and set(np.unique(d_h)) == {0.0, 1.0}
    assert abs(d_h.mean() - 0.2) < 0.08 and abs(d_c.mean() - 0.5) < 0.1  # the two rates, 240 draws each
    assert len({tuple(row) for row in d_c}) > 10  # a new draw at every step, not one per sequence
    _, ys = rnnjax.unroll(cell, params, xs, key=key, fast=fast)
    np.testing.assert_allclose(ys, lstm_loop(params, xs, d_h, d_c), atol=1e-5)
    # the step is a scan body over (x_t, d_t): the same unroll by hand
    _, by_hand = lax.scan(functools.partial(cell.step, params), cell.initial_carry(params), (xs, noise))
    np.testing.assert_allclose(by_hand, ys, atol=1e-6)
    # no key: the expectation, d = rate
    _, expected = rnnjax.unroll(cell, params, xs, fast=fast)
    np.testing.assert_allclose(expected, lstm_loop(params, xs, 0.2, 0.5), atol=1e-5)
    other = rnnjax.unroll(cell, params, xs, key=jax.random.key(4), fast=fast)[1]
    assert not np.allclose(other, ys)


def test_each_unit_keeps_its_value_or_takes_the_new_one_at_the_rate():
    """For the tanh RNN, from the outputs alone: every unit at every step equals either its previous value
    or the cell's candidate computed from it, and about a ``rate`` of them keep their value."""
    cell = rnnjax.zoneout(rnnjax.rnn(8), 0.3)
    params = perturb(cell.init(jax.random.key(0), 2), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (200, 2))
    _, ys = rnnjax.unroll(cell, params, xs, key=jax.random.key(5))
    ys = np.asarray(ys, np.float64)
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    prev = np.concatenate([np.zeros((1, 8)), ys[:-1]])
    candidate = np.tanh(np.asarray(xs, np.float64) @ p["w_x"] + prev @ p["w_h"] + p["b"])
    kept, took = np.abs(ys - prev) < 1e-6, np.abs(ys - candidate) < 1e-5
    assert np.all(kept | took)
    assert abs(kept.mean() - 0.3) < 0.05  # 1,600 draws
    assert len({tuple(row) for row in kept}) > 50


@pytest.mark.parametrize("base", ["lstm", "gru", "gru_reset_after", "rnn", "exp_rnn", "lstmp"])
def test_gradients_match_finite_differences_in_float64_and_the_paths_agree(base):
    make = {"lstm": lambda: rnnjax.lstm(4), "gru": lambda: rnnjax.gru(4), "gru_reset_after": lambda: rnnjax.gru(4, reset_after=True),
            "rnn": lambda: rnnjax.rnn(4), "exp_rnn": lambda: rnnjax.exp_rnn(4), "lstmp": lambda: rnnjax.lstm(4, proj_size=3)}[base]
    with jax.enable_x64(True):
        cell = rnnjax.zoneout(make(), 0.4)
        params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1))
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        xs = jax.random.normal(jax.random.key(2), (7, 3), jnp.float64)
        mask = jnp.arange(7) < 6  # a padded last step
        key = jax.random.key(5)

        def loss(p, fast, remat=None, reverse=False):
            return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, mask=mask, key=key, fast=fast, remat=remat, reverse=reverse)[1]))

        grads = jax.grad(loss)(params, True)
        for other in (jax.grad(loss)(params, False), jax.grad(loss)(params, False, 3)):
            jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), grads, other)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12),
                     jax.grad(loss)(params, True, None, True), jax.grad(loss)(params, False, None, True))
        assert_directional_derivatives(lambda p: loss(p, True), grads, params)


def test_a_zoned_out_unit_passes_its_gradient_through_unchanged():
    """The identity of a kept unit: with every unit kept at a step (d = 1), ∂h_t/∂h_{t-1} is I."""
    cell = rnnjax.zoneout(rnnjax.rnn(3), 0.5)
    params = perturb(cell.init(jax.random.key(0), 2), jax.random.key(1))
    x, h = jnp.ones(2), jnp.array([0.1, -0.2, 0.3])
    jac = jax.jacobian(lambda h: cell.step(params, h, (x, jnp.ones(3)))[0])(h)
    np.testing.assert_array_equal(jac, np.eye(3))
    fresh = jax.jacobian(lambda h: cell.step(params, h, (x, jnp.zeros(3)))[0])(h)
    np.testing.assert_allclose(fresh, jax.jacobian(lambda h: rnnjax.rnn(3).step(params, h, x)[0])(h))


def test_batches_stacks_and_recurrent_dropout_compose():
    cell = rnnjax.zoneout(rnnjax.gru(5), 0.5)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (4, 6, 3))
    keys = jax.random.split(jax.random.key(2), 4)
    ys = jax.vmap(lambda x, k: rnnjax.unroll(cell, params, x, key=k)[1])(xs, keys)
    one = rnnjax.unroll(cell, params, xs[1], key=keys[1])[1]
    np.testing.assert_allclose(ys[1], one, atol=1e-6)  # each example its own draws
    same_input = jax.vmap(lambda k: rnnjax.unroll(cell, params, xs[0], key=k)[1])(keys)
    assert not np.allclose(same_input[0], same_input[1])
    net = rnnjax.stacked(cell, 2, bidirectional=True)
    net_params = net.init(jax.random.key(3), 3)
    a = net.apply(net_params, xs[0], key=jax.random.key(4))[0]
    np.testing.assert_array_equal(a, net.apply(net_params, xs[0], key=jax.random.key(4))[0])
    assert not np.allclose(a, net.apply(net_params, xs[0])[0])
    # recurrent dropout outside or inside: the same masks, the same outputs
    outer = rnnjax.recurrent_dropout(rnnjax.zoneout(rnnjax.lstm(5), 0.3), 0.4)
    inner = rnnjax.zoneout(rnnjax.recurrent_dropout(rnnjax.lstm(5), 0.4), 0.3)
    p = perturb(outer.init(jax.random.key(5), 3), jax.random.key(6))
    for fast in (True, False):
        got = rnnjax.unroll(outer, p, xs[0], key=jax.random.key(7), fast=fast)[1]
        np.testing.assert_allclose(got, rnnjax.unroll(inner, p, xs[0], key=jax.random.key(7), fast=fast)[1], atol=1e-6)
        assert not np.allclose(got, rnnjax.unroll(rnnjax.zoneout(rnnjax.lstm(5), 0.3), p, xs[0], key=jax.random.key(7), fast=fast)[1])


def test_errors():
    with pytest.raises(ValueError, match=r"zoneout: rate must be in \[0, 1\)"):
        rnnjax.zoneout(rnnjax.lstm(3), 1.0)
    with pytest.raises(ValueError, match=r"zoneout: cell_rate must be in \[0, 1\)"):
        rnnjax.zoneout(rnnjax.lstm(3), 0.1, cell_rate=-0.5)
    with pytest.raises(ValueError, match="cell_rate is the rate of an LSTM's memory cell c; gru"):
        rnnjax.zoneout(rnnjax.gru(3), 0.1, cell_rate=0.5)
    with pytest.raises(ValueError, match="has no core to wrap"):
        rnnjax.zoneout(rnnjax.min_gru(3), 0.1)
    with pytest.raises(ValueError, match="already draws per-step noise"):
        rnnjax.zoneout(rnnjax.zoneout(rnnjax.lstm(3), 0.1), 0.1)


def test_the_experiments_wrap_their_cell_and_the_models_hand_it_their_key():
    from experiments import _common
    from rnnjax.models import language_model, sequence_classifier

    cell = _common.make_cell("lstm", 6, zoneout=0.05, zoneout_cell=0.5)
    assert cell.name == "zoneout(lstm(6), 0.05, cell_rate=0.5)"
    assert _common.make_cell("gru", 6, zoneout=0.1).name == "zoneout(gru(6), 0.1)"
    assert _common.make_cell("gru", 6).step_noise is None
    with pytest.raises(ValueError, match="cell_rate is the rate of an LSTM's memory cell c"):
        _common.make_cell("gru", 6, zoneout_cell=0.5)
    tokens = jnp.array([1, 4, 2, 0, 3, 3, 1])
    lm, clf = language_model(5, cell, 2, 4), sequence_classifier(5, cell, 4, bidirectional=True)
    for model, call in ((lm, lambda p, k: lm.apply(p, tokens, key=k)[0]), (clf, lambda p, k: clf.apply(p, tokens, key=k))):
        params = model.init(jax.random.key(0))
        plain, noisy = call(params, None), call(params, jax.random.key(1))
        np.testing.assert_array_equal(noisy, call(params, jax.random.key(1)))
        assert not np.allclose(noisy, plain)


def test_the_diagnostics_see_the_expectation_one_step_jacobian_rate_i_plus_the_rest():
    """At evaluation a zoneout RNN's step Jacobian is ``rate · I + (1 − rate) · J`` with ``J`` the plain
    RNN's, written here from the tanh derivative; the gradient-flow diagnostics read the same."""
    from rnnjax import diagnostics

    plain, rate = rnnjax.rnn(4), 0.3
    cell = rnnjax.zoneout(plain, rate)
    params = perturb(cell.init(jax.random.key(0), 2), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (2, 2))
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    h0 = np.zeros(4)
    h1 = rate * h0 + (1 - rate) * np.tanh(np.asarray(xs[0], np.float64) @ p["w_x"] + h0 @ p["w_h"] + p["b"])
    a1 = np.asarray(xs[1], np.float64) @ p["w_x"] + h1 @ p["w_h"] + p["b"]
    J = rate * np.eye(4) + (1 - rate) * (p["w_h"] * (1 - np.tanh(a1) ** 2)[None, :]).T  # ∂h_2/∂h_1
    got = diagnostics.jacobian_norms(cell, params, xs, until=1)
    np.testing.assert_allclose(got["spectral"][0], np.linalg.norm(J, 2), rtol=1e-4)
    np.testing.assert_allclose(got["frobenius"][0], np.linalg.norm(J), rtol=1e-4)
    assert not np.isclose(got["frobenius"][0], diagnostics.jacobian_norms(plain, params, xs, until=1)["frobenius"][0])
