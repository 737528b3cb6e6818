"""The cures for long-range memory (issue 19): chrono initialisation of the LSTM and GRU, and the orthogonal
expRNN, against oracles written here (the paper's distribution, a NumPy/SciPy loop, finite differences)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

import rnnjax
from rnnjax import diagnostics
from rnnjax.cells import modrelu, skew


@pytest.mark.parametrize("t_max", [50, 1000])
def test_chrono_lstm_biases_have_the_stated_distribution(t_max):
    """Tallec & Ollivier 2018: b_f ~ log U(1, T_max - 1), b_i = -b_f, the other gates' biases zero."""
    cell = rnnjax.lstm(512, chrono=t_max)
    b = np.stack([np.asarray(cell.init(jax.random.key(k), 2)["b"], np.float64) for k in range(16)])  # 8,192 units
    b_i, b_f, b_g, b_o = (x.ravel() for x in np.split(b, 4, axis=1))
    u = np.exp(b_f)  # should be U(1, T_max - 1)
    assert u.min() >= 1 - 1e-4 and u.max() <= t_max - 1 + 1e-3
    width = t_max - 2
    np.testing.assert_allclose(u.mean(), 1 + width / 2, rtol=0.03)
    np.testing.assert_allclose(u.std(), width / np.sqrt(12), rtol=0.03)
    deciles = np.quantile(u, np.linspace(0.1, 0.9, 9))
    np.testing.assert_allclose(deciles, 1 + width * np.linspace(0.1, 0.9, 9), rtol=0.06)
    np.testing.assert_array_equal(b_i, -b_f)
    assert not b_g.any() and not b_o.any()


def test_chrono_gru_update_bias_and_the_default_init_unchanged():
    t_max = 200
    cell = rnnjax.gru(512, chrono=t_max)
    b = np.stack([np.asarray(cell.init(jax.random.key(k), 2)["b"], np.float64) for k in range(16)])
    b_r, b_z, b_n = (x.ravel() for x in np.split(b, 3, axis=1))
    u = np.exp(-b_z)  # b_z = -log U(1, T_max - 1): z ≈ 1/T, the unit keeps (1 - z) of its state per step
    assert u.min() >= 1 - 1e-4 and u.max() <= t_max - 1 + 1e-3
    np.testing.assert_allclose(u.mean(), 1 + (t_max - 2) / 2, rtol=0.03)
    assert not b_r.any() and not b_n.any()
    # the weights are drawn as without chrono (only the biases change), and the default is untouched
    plain, chrono = rnnjax.lstm(8).init(jax.random.key(1), 3), rnnjax.lstm(8, chrono=100).init(jax.random.key(1), 3)
    np.testing.assert_array_equal(plain["w_h"], chrono["w_h"])
    np.testing.assert_array_equal(plain["b"], jnp.zeros(32).at[8:16].set(1.0))
    with pytest.raises(ValueError, match="T_max must be > 2"):
        rnnjax.lstm(8, chrono=2).init(jax.random.key(0), 3)


def _reference_exp_rnn(params, xs):
    """The expRNN written directly, in float64 NumPy with SciPy's expm."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    upper = np.triu(p["a"], 1)
    w = scipy.linalg.expm(upper - upper.T)
    h, out = np.zeros(p["b"].shape), []
    for x in np.asarray(xs, np.float64):
        z = x @ p["w_x"] + p["b"] + h @ w
        h = np.sign(z) * np.maximum(np.abs(z) + p["b_mod"], 0.0)
        out.append(h)
    return np.stack(out)


def test_exp_rnn_matches_a_reference_written_here_on_every_path():
    cell = rnnjax.exp_rnn(6)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (40, 3))
    expected = _reference_exp_rnn(params, xs)
    for kwargs in ({}, {"fast": False}, {"remat": 7}):
        _, ys = rnnjax.unroll(cell, params, xs, **kwargs)
        np.testing.assert_allclose(ys, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())
    h = cell.initial_carry(params)
    for x in xs:  # the public step computes W itself: the same numbers, step by step
        h, _ = cell.step(params, h, x)
    np.testing.assert_allclose(h, expected[-1], rtol=2e-4, atol=2e-4 * np.abs(expected).max())


@pytest.mark.parametrize("fast", [True, False])
def test_exp_rnn_gradients_match_finite_differences_in_float64(fast):
    with jax.enable_x64(True):
        cell = rnnjax.exp_rnn(4)
        params = cell.init(jax.random.key(2), 2)
        params["b_mod"] = params["b_mod"] + 0.3  # away from modReLU's kink at 0 for every unit and step
        xs = jax.random.normal(jax.random.key(3), (12, 2))
        assert params["a"].dtype == xs.dtype == jnp.float64

        def loss(p):
            return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, fast=fast)[1]))

        grads = jax.grad(loss)(params)
        rng = np.random.default_rng(0)
        for name in ("a", "w_x", "b", "b_mod"):
            direction = rng.standard_normal(params[name].shape)
            eps = 1e-6
            plus = dict(params, **{name: params[name] + eps * direction})
            minus = dict(params, **{name: params[name] - eps * direction})
            numeric = (loss(plus) - loss(minus)) / (2 * eps)
            np.testing.assert_allclose(jnp.sum(grads[name] * direction), numeric, rtol=1e-6, atol=1e-8)


def test_exp_rnn_recurrent_matrix_stays_orthogonal_through_training():
    cell = rnnjax.exp_rnn(16)
    readout = rnnjax.mlp([1], activation="identity")
    k1, k2 = jax.random.split(jax.random.key(0))
    params = {"cell": cell.init(k1, 2), "readout": readout.init(k2, 16)}
    xs, targets = rnnjax.datasets.adding_task(jax.random.key(1), 32, 30)

    def loss_fn(p, batch, key):
        del key
        x, y = batch
        ys = jax.vmap(lambda s: rnnjax.unroll(cell, p["cell"], s)[1][-1])(x)
        return jnp.mean((readout.apply(p["readout"], ys)[..., 0] - y) ** 2)

    opt = optax.adam(1e-2)
    step = rnnjax.make_train_step(loss_fn, opt)
    state = rnnjax.init_state(params, opt, jax.random.key(2))
    for _ in range(20):
        state, _ = step(state, (xs, targets))
    a = state.params["cell"]["a"]
    assert not np.allclose(a, params["cell"]["a"])  # training moved it
    w = jax.scipy.linalg.expm(skew(a))
    np.testing.assert_allclose(w.T @ w, np.eye(16), atol=1e-5)


def test_exp_rnn_gradient_norm_stays_flat_over_200_steps_where_the_tanh_rnn_shrinks():
    xs = jax.random.normal(jax.random.key(0), (200, 2)) * 0.1

    def ratio(cell):
        params = cell.init(jax.random.key(1), 2)
        norms = diagnostics.hidden_grad_norms(cell, params, xs, lambda ys, carry: jnp.sum(ys[-1]))
        return float(norms[0] / norms[-1])

    assert 0.5 < ratio(rnnjax.exp_rnn(32)) <= 1.0 + 1e-4  # ‖∂L/∂h_1‖ ≈ ‖∂L/∂h_T‖
    assert ratio(rnnjax.rnn(32)) < 0.05  # the tanh RNN's shrinks step by step (0.012 measured)


def test_modrelu_and_bad_activation():
    z = jnp.array([-2.0, -0.05, 0.0, 0.05, 2.0])
    np.testing.assert_allclose(modrelu(z, jnp.full(5, -0.1)), [-1.9, 0.0, 0.0, 0.0, 1.9], atol=1e-7)
    with pytest.raises(ValueError, match="unknown activation 'relu'"):
        rnnjax.exp_rnn(4, activation="relu")


@pytest.mark.parametrize("init", ["henaff", "cayley"])
def test_exp_rnn_inits_are_rotations_by_the_stated_angles(init):
    """henaff: block angles s ~ U(-π, π); cayley: s = -tan(u/2), u ~ U(0, π/2), so s in (-1, 0) with mean
    -(2/π) ln 2 ≈ -0.441 (the integral of tan(u/2) over (0, π/2) is -2 ln cos(π/4) = ln 2)."""
    a = np.stack([np.asarray(rnnjax.exp_rnn(512, init=init).init(jax.random.key(k), 2)["a"], np.float64) for k in range(8)])
    rows = np.arange(256) * 2
    s = a[:, rows, rows + 1].ravel()  # 2,048 angles
    off = a.copy()
    off[:, rows, rows + 1] = 0
    assert not off.any()  # nothing but the blocks
    if init == "henaff":
        assert -np.pi <= s.min() and s.max() <= np.pi
        np.testing.assert_allclose(np.quantile(s, [0.25, 0.5, 0.75]), [-np.pi / 2, 0, np.pi / 2], atol=0.2)
    else:
        assert -1 <= s.min() and s.max() <= 0
        np.testing.assert_allclose(s.mean(), -2 / np.pi * np.log(2), atol=0.02)
        u = 2 * np.arctan(-s)  # back to the uniform draw
        np.testing.assert_allclose(np.quantile(u, [0.25, 0.5, 0.75]), np.pi / 2 * np.array([0.25, 0.5, 0.75]), atol=0.05)
    w = scipy.linalg.expm(a[0] - a[0].T)
    np.testing.assert_allclose(w.T @ w, np.eye(512), atol=1e-10)
    with pytest.raises(ValueError, match="unknown init 'haar'"):
        rnnjax.exp_rnn(4, init="haar")


def _reference_indrnn(params, xs):
    """h_t = relu(x_t W_x + u ⊙ h_{t-1} + b), a NumPy loop in float64 (Li et al. 2018, eq. 2)."""
    w_x, u, b = (np.asarray(params[k], np.float64) for k in ("w_x", "u", "b"))
    h, out = np.zeros(u.shape), []
    for x in np.asarray(xs, np.float64):
        h = np.maximum(x @ w_x + u * h + b, 0.0)
        out.append(h)
    return np.stack(out)


def test_indrnn_matches_a_reference_written_here_on_every_path():
    cell = rnnjax.indrnn(6, recurrent_init=(0.5, 1.2))
    params = cell.init(jax.random.key(0), 3)
    params["b"] = params["b"] + 0.2  # most units active, so the recurrence matters
    xs = jax.random.normal(jax.random.key(1), (40, 3))
    expected = _reference_indrnn(params, xs)
    assert (expected[-1] > 0).sum() >= 2
    for kwargs in ({}, {"fast": False}, {"remat": 7}):
        _, ys = rnnjax.unroll(cell, params, xs, **kwargs)
        np.testing.assert_allclose(ys, expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())


@pytest.mark.parametrize("fast", [True, False])
def test_indrnn_gradients_match_finite_differences_in_float64(fast):
    with jax.enable_x64(True):
        cell = rnnjax.indrnn(5, activation="tanh", recurrent_init=(-1.0, 1.0))  # smooth, so differences apply
        params = cell.init(jax.random.key(2), 2)
        xs = jax.random.normal(jax.random.key(3), (12, 2))
        assert params["u"].dtype == jnp.float64

        def loss(p):
            return jnp.sum(jnp.sin(rnnjax.unroll(cell, p, xs, fast=fast)[1]))

        grads = jax.grad(loss)(params)
        rng = np.random.default_rng(0)
        for name in ("u", "w_x", "b"):
            direction = rng.standard_normal(params[name].shape)
            eps = 1e-6
            numeric = (loss(dict(params, **{name: params[name] + eps * direction}))
                       - loss(dict(params, **{name: params[name] - eps * direction}))) / (2 * eps)
            np.testing.assert_allclose(jnp.sum(grads[name] * direction), numeric, rtol=1e-6, atol=1e-8)


def test_indrnn_init_and_bad_arguments():
    u = np.concatenate([np.asarray(rnnjax.indrnn(512, recurrent_init=(0.25, 1.0)).init(jax.random.key(k), 2)["u"])
                        for k in range(8)])
    assert 0.25 <= u.min() and u.max() <= 1.0
    np.testing.assert_allclose(np.quantile(u, [0.25, 0.5, 0.75]), 0.25 + 0.75 * np.array([0.25, 0.5, 0.75]), atol=0.03)
    w_x = np.asarray(rnnjax.indrnn(512, input_scale=1e-3).init(jax.random.key(0), 8)["w_x"])  # the paper's N(0, 0.001²)
    np.testing.assert_allclose(w_x.std(), 1e-3, rtol=0.05)
    assert abs(w_x.mean()) < 1e-4
    with pytest.raises(ValueError, match="input_scale must be positive"):
        rnnjax.indrnn(4, input_scale=0.0)
    with pytest.raises(ValueError, match="low <= high"):
        rnnjax.indrnn(4, recurrent_init=(1.0, 0.5))
    with pytest.raises(ValueError, match="a pair"):
        rnnjax.indrnn(4, recurrent_init=0.5)
    with pytest.raises(ValueError, match="activation"):
        rnnjax.indrnn(4, activation="sigmoid")


def test_indrnn_gradient_reaches_step_one_unchanged_with_unit_recurrence():
    """u = 1 and every unit active: ∂h_T/∂h_1 = I, so ‖∂L/∂h_1‖ = ‖∂L/∂h_T‖ over 500 steps, where the tanh
    RNN's shrinks (the property the bound |u| ≤ γ^{1/T} protects)."""
    cell = rnnjax.indrnn(8)
    params = dict(cell.init(jax.random.key(0), 2), u=jnp.ones(8), b=jnp.full(8, 1.0))
    xs = 0.01 * jax.random.normal(jax.random.key(1), (500, 2))
    norms = diagnostics.hidden_grad_norms(cell, params, xs, lambda ys, carry: jnp.sum(ys[-1]))
    np.testing.assert_allclose(norms[0], norms[-1], rtol=1e-5)


def test_bound_by_name_projects_the_named_parameters_after_each_step():
    params = {"cell": {"u": jnp.array([0.5, 1.0, -1.0]), "w_x": jnp.array([0.5, 1.0, -1.0])}}
    grads = {"cell": {"u": jnp.array([-1.0, -1.0, 1.0]), "w_x": jnp.array([-1.0, -1.0, 1.0])}}
    opt = rnnjax.make_optimizer("sgd", 0.5, clip=None, param_bounds={"u": (-1.1, 1.1)})
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["cell"]["u"], [1.0, 1.1, -1.1], rtol=1e-6)  # 1.5 and -1.5 projected
    np.testing.assert_allclose(new["cell"]["w_x"], [1.0, 1.5, -1.5], rtol=1e-6)  # not named: a plain step
    with pytest.raises(ValueError, match="low must be <= high"):
        rnnjax.make_optimizer("sgd", 0.1, param_bounds={"u": (1.0, -1.0)})
    with pytest.raises(ValueError, match="needs the params"):
        opt.update(grads, opt.init(params))


def test_the_experiments_bound_indrnn_by_the_task_length():
    """|u| ≤ 2^{1/T} with T the task's length (Li et al. 2018), u drawn from [(1/2)^{1/T}, 1]."""
    from experiments import _common, adding

    cfg = adding.Config(cell="indrnn", hidden=4, length=100, clip="none", learning_rate=10.0)
    cell = _common.make_cell("indrnn", 4, t_max=100)
    u0 = cell.init(jax.random.key(0), 2)["u"]
    assert 0.5 ** (1 / 100) <= u0.min() and u0.max() <= 1.0
    params = {"cell": {"u": u0}}
    opt = _common.make_optimizer(cfg, t_max=100)
    updates, _ = opt.update({"cell": {"u": -jnp.ones(4)}}, opt.init(params), params)  # a huge step up
    np.testing.assert_allclose(optax.apply_updates(params, updates)["cell"]["u"], 2 ** (1 / 100), rtol=1e-6)
    assert _common.PARAM_BOUNDS["indrnn"](None) is None  # a task without a length: unbounded


def test_copy_task_t_max_sets_the_chrono_range():
    """``--t_max`` sets the chrono cells' T_max (Tallec & Ollivier use 3T/2 for copy); 0 means the sequence length."""
    from experiments import copy_memory

    def forget_biases(t_max):
        cfg = copy_memory.Config(cell="chrono_lstm", hidden=256, length=10, t_max=t_max)
        state = copy_memory.build(cfg)[0]
        return np.asarray(state.params["cell"]["b"][256:512])

    default, wide = np.exp(forget_biases(0)), np.exp(forget_biases(1000))
    assert 1 - 1e-4 <= default.min() and default.max() <= 10 + 2 * copy_memory.N_COPY - 1 + 1e-3
    assert wide.max() > 500  # 256 draws from U(1, 999): below 500 with chance 2^-256
    with pytest.raises(ValueError, match="t_max must be at least 0"):
        copy_memory.Config(t_max=-1)
