"""Variational recurrent dropout (issue 21): one mask per sequence, the same at every step; none without a key."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.helpers import assert_directional_derivatives, perturb


def lstm_loop(params, xs, mask):
    """The LSTM with its recurrent input h_{t-1} ⊙ mask, one step at a time, written here."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    H = p["w_h"].shape[0]
    h, c, ys = np.zeros(H), np.zeros(H), []
    for x in np.asarray(xs, np.float64):
        a = x @ p["w_x"] + (h * mask) @ p["w_h"] + p["b"]
        i, f, g, o = (1 / (1 + np.exp(-a[:H])), 1 / (1 + np.exp(-a[H:2 * H])), np.tanh(a[2 * H:3 * H]),
                      1 / (1 + np.exp(-a[3 * H:])))
        c = f * c + i * g
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys)


@pytest.mark.parametrize("fast", [True, False])
def test_one_mask_for_every_step_and_none_without_a_key(fast):
    cell = rnnjax.recurrent_dropout(rnnjax.lstm(6), 0.5)
    params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1))
    xs = jax.random.normal(jax.random.key(2), (9, 3))
    key = jax.random.key(3)
    mask = np.asarray(cell.noise(params, key)["dropout_mask"])
    assert set(np.unique(mask)) <= {0.0, 2.0} and 0 < np.sum(mask == 0) < 6  # Bernoulli(0.5) / 0.5
    _, ys = rnnjax.unroll(cell, params, xs, key=key, fast=fast)
    np.testing.assert_allclose(ys, lstm_loop(params, xs, mask), atol=1e-5)  # the same mask at all 9 steps
    plain = rnnjax.unroll(rnnjax.lstm(6), params, xs, fast=fast)[1]
    np.testing.assert_array_equal(rnnjax.unroll(cell, params, xs, fast=fast)[1], plain)  # no key: no dropout
    assert not np.allclose(ys, plain)
    other = rnnjax.unroll(cell, params, xs, key=jax.random.key(4), fast=fast)[1]
    assert not np.allclose(other, ys)  # another sequence, another mask


@pytest.mark.parametrize("base", ["lstm", "gru", "gru_reset_after", "rnn", "exp_rnn"])
def test_gradients_match_finite_differences_in_float64_and_the_paths_agree(base):
    make = {"lstm": lambda: rnnjax.lstm(4), "gru": lambda: rnnjax.gru(4), "gru_reset_after": lambda: rnnjax.gru(4, reset_after=True),
            "rnn": lambda: rnnjax.rnn(4), "exp_rnn": lambda: rnnjax.exp_rnn(4)}[base]
    with jax.enable_x64(True):
        cell = rnnjax.recurrent_dropout(make(), 0.3)
        params = perturb(cell.init(jax.random.key(0), 3), jax.random.key(1))
        params = jax.tree.map(lambda a: a.astype(jnp.float64), params)
        xs = jax.random.normal(jax.random.key(2), (6, 3), jnp.float64)
        key = jax.random.key(5)

        def loss(p, fast):
            return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, key=key, fast=fast, remat=None if fast else 2)[1]))

        grads = jax.grad(loss)(params, True)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12), grads, jax.grad(loss)(params, False))
        assert_directional_derivatives(lambda p: loss(p, True), grads, params)


def test_stacked_nets_draw_a_mask_per_layer_and_direction_and_errors():
    net = rnnjax.stacked(rnnjax.recurrent_dropout(rnnjax.gru(5), 0.5), 2, bidirectional=True)
    params = net.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (7, 3))
    a, b = net.apply(params, xs, key=jax.random.key(2))[0], net.apply(params, xs, key=jax.random.key(2))[0]
    np.testing.assert_array_equal(a, b)  # the same key, the same masks
    assert not np.allclose(a, net.apply(params, xs)[0])
    with pytest.raises(ValueError, match=r"rate must be in \[0, 1\)"):
        rnnjax.recurrent_dropout(rnnjax.lstm(3), 1.0)
    with pytest.raises(ValueError, match="has no core to wrap"):
        rnnjax.recurrent_dropout(rnnjax.min_gru(3), 0.1)


def test_stacked_dropout_drops_what_the_next_layer_reads_and_not_the_last_outputs():
    cell = rnnjax.lstm(5)
    net = rnnjax.stacked(cell, 2, dropout=0.5)
    params = net.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (6, 3))
    key = jax.random.key(2)
    np.testing.assert_array_equal(net.apply(params, xs)[0], rnnjax.stacked(cell, 2).apply(params, xs)[0])  # no key
    # written out: layer 1's outputs, each zeroed or doubled (a fresh draw per step and unit), read by layer 2
    _, h1 = rnnjax.unroll(cell, params[0], xs)
    keep = jax.random.bernoulli(jax.random.fold_in(key, 2 * 2 + 0), 0.5, h1.shape)
    assert 0 < int(jnp.sum(keep)) < keep.size
    _, expected = rnnjax.unroll(cell, params[1], jnp.where(keep, 2 * h1, 0.0))
    np.testing.assert_allclose(net.apply(params, xs, key=key)[0], expected, atol=1e-6)
    one = rnnjax.stacked(cell, 1, dropout=0.5)  # nothing after the last layer
    np.testing.assert_array_equal(one.apply(params[:1], xs, key=key)[0], one.apply(params[:1], xs)[0])
    with pytest.raises(ValueError, match=r"stacked: dropout must be in \[0, 1\)"):
        rnnjax.stacked(cell, 2, dropout=-0.1)


@pytest.mark.parametrize("wrap", [False, True])
def test_the_models_hand_their_key_to_recurrent_dropout_and_drop_nothing_without_one(wrap):
    from rnnjax.models import language_model, sequence_classifier

    tokens = jnp.array([1, 4, 2, 0, 3, 3, 1])
    cell = rnnjax.recurrent_dropout(rnnjax.gru(6), 0.4) if wrap else rnnjax.gru(6)
    lm, lm_dropout = language_model(5, cell, 2, 4), language_model(5, cell, 2, 4, dropout=0.3)
    clf = sequence_classifier(5, cell, 4, bidirectional=True)  # no dropout rate of its own
    for model, call, drops in ((lm, lambda p, k: lm.apply(p, tokens, key=k)[0], wrap),
                               (lm_dropout, lambda p, k: lm_dropout.apply(p, tokens, key=k)[0], True),
                               (clf, lambda p, k: clf.apply(p, tokens, key=k), wrap)):
        params = model.init(jax.random.key(0))
        plain, noisy = call(params, None), call(params, jax.random.key(1))
        np.testing.assert_array_equal(noisy, call(params, jax.random.key(1)))  # the same key, the same masks
        assert np.allclose(noisy, plain) != drops
    with pytest.raises(ValueError, match=r"language model: dropout must be in \[0, 1\)"):
        language_model(5, rnnjax.gru(3), dropout=1.0)
