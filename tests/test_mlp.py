"""The feed-forward baseline: shapes, and training by the chain rule on a task it can fit."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax


def test_mlp_shapes_and_linear_output_layer():
    f = rnnjax.mlp([8, 8, 2], activation="relu")
    params = f.init(jax.random.key(0), 3)
    assert [p["w"].shape for p in params] == [(3, 8), (8, 8), (8, 2)]
    x = jax.random.normal(jax.random.key(1), (5, 3))
    assert f.apply(params, x).shape == (5, 2)
    # the last layer is linear: scaling its weights scales the output (biases are zero)
    scaled = params[:-1] + ({"w": 3 * params[-1]["w"], "b": params[-1]["b"]},)
    np.testing.assert_allclose(f.apply(scaled, x), 3 * f.apply(params, x), rtol=1e-5)


def test_mlp_learns_xor_with_gradient_descent():
    f = rnnjax.mlp([16, 1], activation="tanh")
    x = jnp.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = jnp.array([0.0, 1.0, 1.0, 0.0])
    params = f.init(jax.random.key(0), 2)
    opt = optax.adam(0.05)
    state = opt.init(params)

    def loss(p):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(f.apply(p, x)[:, 0], y))

    @jax.jit
    def step(p, s):
        l, g = jax.value_and_grad(loss)(p)
        u, s = opt.update(g, s)
        return optax.apply_updates(p, u), s, l

    first = float(loss(params))
    for _ in range(300):
        params, state, _ = step(params, state)
    assert first > 0.6 and float(loss(params)) < 0.05
    np.testing.assert_array_equal(np.asarray(f.apply(params, x)[:, 0] > 0), np.asarray(y > 0.5))


def test_demo_lstm_beats_the_adding_baseline():
    """The adding demo in its quick mode: the held-out loss must fall well below 1/6."""
    from experiments.demo import QUICK, Config, run

    history = run(Config(**QUICK))
    assert history[0][1] > 0.3  # starts above the baseline
    assert history[-1][1] < 0.05  # ends below 0.3 x baseline (measured: about 0.015)
