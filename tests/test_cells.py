"""Cells: the published equations, initialisations, and the sweep-friendly init scale."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from tests.helpers import perturb

sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731


def _np(tree):
    return jax.tree.map(np.asarray, tree)


def test_lstm_step_is_the_standard_lstm():
    cell = rnnjax.lstm(3)
    p = _np(perturb(cell.init(jax.random.key(0), 2), jax.random.key(1)))
    x, h, c = np.array([0.3, -1.2]), np.array([0.1, -0.4, 0.9]), np.array([1.5, -0.2, 0.3])
    a = x @ p["w_x"] + h @ p["w_h"] + p["b"]
    i, f, g, o = sigmoid(a[0:3]), sigmoid(a[3:6]), np.tanh(a[6:9]), sigmoid(a[9:12])
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    carry, y = cell.step(p, rnnjax.LSTMCarry(h, c), x)
    np.testing.assert_allclose(carry.c, c_new, rtol=1e-5)
    np.testing.assert_allclose(carry.h, h_new, rtol=1e-5)
    np.testing.assert_allclose(y, h_new, rtol=1e-5)


@pytest.mark.parametrize("reset_after", [False, True])
def test_gru_step_is_cho_et_al(reset_after):
    cell = rnnjax.gru(3, reset_after=reset_after)
    p = _np(perturb(cell.init(jax.random.key(0), 2), jax.random.key(1)))
    x, h = np.array([0.3, -1.2]), np.array([0.1, -0.4, 0.9])
    a = x @ p["w_x"] + p["b"]
    r = sigmoid(a[0:3] + h @ p["w_h"][:, 0:3])
    z = sigmoid(a[3:6] + h @ p["w_h"][:, 3:6])
    if reset_after:
        n = np.tanh(a[6:9] + r * (h @ p["w_h"][:, 6:9] + p["b_hn"]))
    else:
        n = np.tanh(a[6:9] + (r * h) @ p["w_hn"])
    expected = (1 - z) * h + z * n
    h_new, y = cell.step(p, h, x)
    np.testing.assert_allclose(h_new, expected, rtol=1e-5)
    np.testing.assert_allclose(y, expected, rtol=1e-5)


@pytest.mark.parametrize("activation,g", [("tanh", np.tanh), ("relu", lambda a: np.maximum(a, 0))])
def test_elman_step(activation, g):
    cell = rnnjax.rnn(3, activation=activation)
    p = _np(perturb(cell.init(jax.random.key(0), 2), jax.random.key(1)))
    x, h = np.array([0.3, -1.2]), np.array([0.1, -0.4, 0.9])
    h_new, y = cell.step(p, h, x)
    np.testing.assert_allclose(h_new, g(x @ p["w_x"] + h @ p["w_h"] + p["b"]), rtol=1e-5, atol=1e-7)


def test_tanh_range_is_open_minus_one_to_one():
    cell = rnnjax.rnn(4)
    p = cell.init(jax.random.key(0), 2)
    _, ys = rnnjax.unroll(cell, p, 50.0 * jax.random.normal(jax.random.key(1), (20, 2)))
    assert float(jnp.min(ys)) >= -1.0 and float(jnp.max(ys)) <= 1.0 and float(jnp.min(ys)) < 0.0


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.3])
def test_orthogonal_recurrent_init_has_all_singular_values_equal_to_scale(scale):
    p = rnnjax.rnn(16, init="orthogonal", recurrent_scale=scale).init(jax.random.key(0), 3)
    np.testing.assert_allclose(np.linalg.svd(p["w_h"], compute_uv=False), scale, rtol=1e-5)


def test_identity_init_is_the_irnn():
    cell = rnnjax.rnn(5, activation="relu", init="identity")
    p = cell.init(jax.random.key(0), 3)
    np.testing.assert_array_equal(p["w_h"], np.eye(5))
    np.testing.assert_array_equal(p["b"], 0.0)
    # with zero input, a positive state is carried unchanged: the IRNN's memory
    h = jnp.arange(1.0, 6.0)
    h_new, _ = cell.step(p, h, jnp.zeros(3))
    np.testing.assert_allclose(h_new, h)


def test_uniform_and_glorot_inits_stay_in_their_bounds():
    p = rnnjax.rnn(64, init="uniform", input_init="uniform").init(jax.random.key(0), 10)
    assert float(jnp.max(jnp.abs(p["w_h"]))) <= 1 / 8 and float(jnp.max(jnp.abs(p["w_h"]))) > 0.1
    assert float(jnp.max(jnp.abs(p["w_x"]))) <= 1 / 8
    q = rnnjax.rnn(64).init(jax.random.key(0), 10)
    bound = np.sqrt(6 / (10 + 64))
    assert float(jnp.max(jnp.abs(q["w_x"]))) <= bound and float(jnp.max(jnp.abs(q["w_x"]))) > 0.8 * bound


def test_lstm_forget_gate_bias_and_orthogonal_blocks():
    p = rnnjax.lstm(6, forget_bias=2.5).init(jax.random.key(0), 3)
    np.testing.assert_array_equal(p["b"][6:12], 2.5)
    np.testing.assert_array_equal(np.delete(np.asarray(p["b"]), np.s_[6:12]), 0.0)
    for k in range(4):
        block = np.asarray(p["w_h"][:, 6 * k : 6 * (k + 1)])
        np.testing.assert_allclose(block @ block.T, np.eye(6), atol=1e-5)


def test_init_is_a_pure_function_of_the_key():
    cell = rnnjax.gru(4)
    a, b, c = (cell.init(k, 3) for k in [jax.random.key(1), jax.random.key(1), jax.random.key(2)])
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.allclose(a["w_x"], c["w_x"])


def test_recurrent_scale_is_an_array_a_sweep_can_vmap_over():
    scales = jnp.array([0.9, 1.0, 1.1])
    init = jax.jit(jax.vmap(lambda s, k: rnnjax.rnn(8, recurrent_scale=s).init(k, 2)))
    params = init(scales, jax.random.split(jax.random.key(0), 3))
    for i, s in enumerate([0.9, 1.0, 1.1]):
        np.testing.assert_allclose(np.linalg.svd(params["w_h"][i], compute_uv=False), s, rtol=1e-5)


def test_cell_is_a_namedtuple_of_pure_functions_with_named_carries():
    cell = rnnjax.lstm(3)
    assert cell._fields[:3] == ("init", "step", "initial_carry")
    carry = cell.initial_carry(cell.init(jax.random.key(0), 2))
    assert isinstance(carry, rnnjax.LSTMCarry) and carry.h.shape == carry.c.shape == (3,)
