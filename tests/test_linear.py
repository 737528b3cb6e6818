"""The linear recurrent cells (minGRU, minLSTM, LRU): the parallel unroll against the sequential one, the
cells' equations, and their use with the rest of the library."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import diagnostics, linear

CELLS = {
    "min_gru": lambda h: rnnjax.min_gru(h),
    "min_gru_vanilla": lambda h: rnnjax.min_gru(h, log_space=False),
    "min_lstm": lambda h: rnnjax.min_lstm(h),
    "min_lstm_vanilla": lambda h: rnnjax.min_lstm(h, log_space=False),
    "lru": lambda h: rnnjax.lru(h, state_size=h + 3),
}


def f64(tree):
    return jax.tree.map(lambda a: a.astype(jnp.float64), tree)


def _setup(name, T, dtype, H=8, D=3, seed=0):
    cell = CELLS[name](H)
    params = jax.tree.map(lambda a: a.astype(dtype), cell.init(jax.random.key(seed), D))
    xs = jax.random.normal(jax.random.key(seed + 1), (T, D), dtype)
    return cell, params, xs


def _loss(cell, xs, mask, reverse, parallel):
    def loss(params, carry):
        c, ys = rnnjax.unroll(cell, params, xs, carry, mask=mask, reverse=reverse, parallel=parallel)
        return jnp.sum(jnp.sin(ys)) + jnp.sum(c**2), (c, ys)

    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True))


def _rel(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30))


def _compare(name, T, dtype, mask=None, reverse=False):
    """Worst relative error (to the largest entry) of the parallel against the sequential unroll: outputs,
    final carry, gradients with respect to the params and to the initial carry."""
    cell, params, xs = _setup(name, T, dtype)
    carry = 0.5 * jax.random.normal(jax.random.key(7), cell.initial_carry(params).shape, dtype)
    (_, (c1, y1)), g1 = _loss(cell, xs, mask, reverse, True)(params, carry)
    (_, (c2, y2)), g2 = _loss(cell, xs, mask, reverse, False)(params, carry)
    assert y1.dtype == y2.dtype == dtype and y1.shape == (T, 8)
    pairs = [(y1, y2), (c1, c2)] + list(zip(jax.tree.leaves(g1), jax.tree.leaves(g2)))
    assert all(bool(jnp.all(jnp.isfinite(a))) for a, _ in pairs)
    return max(_rel(a, b) for a, b in pairs)


@pytest.fixture(scope="module")
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("T,masked", [(1, False), (300, False), (300, True)])
def test_parallel_equals_sequential_float64(x64, name, reverse, masked, T):
    mask = None
    if masked:  # padding at both ends and a hole in the middle
        mask = jnp.ones(T, bool).at[T // 2].set(False).at[: T // 5].set(False).at[T - T // 4 :].set(False)
    assert _compare(name, T, jnp.float64, mask, reverse) < 1e-12


@pytest.mark.parametrize("name", CELLS)
def test_parallel_equals_sequential_at_ten_thousand_steps(x64, name):
    # float64: tight. float32: the two unrolls round differently (a tree of products against a chain), and
    # the difference stays at the level of float32 rounding of the state, not growing with T.
    assert _compare(name, 10_000, jnp.float64) < 1e-10
    assert _compare(name, 10_000, jnp.float32) < 2e-4


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("log_space", [False, True])
def test_linear_scan_equals_the_loop(x64, reverse, log_space):
    T, N = 50, 4
    k1, k2, k3, k4 = jax.random.split(jax.random.key(0), 4)
    a = jax.random.uniform(k1, (T, N), jnp.float64, 0.5, 1.0)
    b = jax.random.normal(k2, (T, N), jnp.float64)
    if not log_space:  # complex coefficients, as in the LRU
        a = a * jnp.exp(1j * jax.random.uniform(k3, (T, N), jnp.float64, 0, 6.0))
        b = b + 1j * jax.random.normal(k4, (T, N), jnp.float64)
    else:
        b = jnp.abs(b)
    h0 = jnp.linspace(-1.0, 1.0, N)
    h, expected = h0, []
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        h = a[t] * h + b[t]
        expected.append(h)
    expected = jnp.stack(expected[::-1] if reverse else expected)
    args = (jnp.log(a), jnp.log(b)) if log_space else (a, b)
    np.testing.assert_allclose(linear.linear_scan(*args, h0, reverse=reverse, log_space=log_space), expected, rtol=1e-12)


def test_linear_scan_depth_is_logarithmic():
    # the parallel unroll has no loop of T iterations: its program has no while loop at all
    cell, params, xs = _setup("min_gru", 4096, jnp.float32)
    text = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x, parallel=True)[1]).lower(params, xs).as_text()
    assert "while" not in text
    seq = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x, parallel=False)[1]).lower(params, xs).as_text()
    assert "while" in seq


def test_min_gru_step_is_the_papers_equation():
    cell, params, xs = _setup("min_gru", 1, jnp.float32)
    h = jnp.linspace(-1.0, 1.0, 8)
    k = xs[0] @ params["w_x"] + params["b"]
    z, k_h = jax.nn.sigmoid(k[:8]), k[8:]
    g = jnp.where(k_h >= 0, k_h + 0.5, jax.nn.sigmoid(k_h))
    new, y = cell.step(params, h, xs[0])
    np.testing.assert_allclose(new, (1 - z) * h + z * g, rtol=1e-6)
    np.testing.assert_array_equal(new, y)


def test_min_lstm_step_is_the_papers_equation():
    cell = rnnjax.min_lstm(8, log_space=False)
    params = cell.init(jax.random.key(0), 3)
    x, h = jnp.array([0.3, -1.0, 2.0]), jnp.linspace(-1.0, 1.0, 8)
    k = x @ params["w_x"] + params["b"]
    f, i, cand = jax.nn.sigmoid(k[:8]), jax.nn.sigmoid(k[8:16]), k[16:]
    new, _ = cell.step(params, h, x)
    np.testing.assert_allclose(new, f / (f + i) * h + i / (f + i) * cand, rtol=1e-6)


def test_log_space_coefficients_are_the_logs_of_the_step_coefficients(x64):
    x = jnp.linspace(-40.0, 40.0, 401)
    np.testing.assert_allclose(linear._log_positive(x), jnp.log(linear._positive(x)), rtol=1e-12, atol=1e-300)
    assert bool(jnp.all(linear._positive(x) > 0))
    # g is continuous at 0 (both pieces give 1/2) and increasing
    assert float(linear._positive(jnp.array(0.0))) == 0.5 and bool(jnp.all(jnp.diff(linear._positive(x)) > 0))


def test_lru_init_lies_on_the_ring():
    cell = rnnjax.lru(16, state_size=64, r_min=0.5, r_max=0.8, max_phase=1.0)
    p = cell.init(jax.random.key(3), 5)
    modulus = jnp.exp(-jnp.exp(p["nu_log"]))
    phase = jnp.exp(p["theta_log"])
    assert bool(jnp.all((modulus >= 0.5 - 1e-6) & (modulus <= 0.8 + 1e-6)))
    assert bool(jnp.all((phase > 0) & (phase <= 1.0 + 1e-6)))
    np.testing.assert_allclose(jnp.exp(p["gamma_log"]), jnp.sqrt(1 - modulus**2), rtol=1e-5)
    assert p["w_x"].shape == (5, 128) and p["w_out"].shape == (128, 16) and p["w_skip"].shape == (5, 16)
    assert cell.initial_carry(p).shape == (128,)


def test_lru_state_is_stable_for_any_parameters():
    # |λ| = exp(-exp(ν)) < 1 whatever ν is: a long run from a large state decays instead of blowing up
    cell = rnnjax.lru(4, activation="identity")
    p = cell.init(jax.random.key(0), 2)
    p = {**p, "nu_log": jnp.full_like(p["nu_log"], -6.0)}  # |λ| = 0.9975
    carry, _ = rnnjax.unroll(cell, p, jnp.zeros((5000, 2)), 100.0 * jnp.ones(8))
    assert float(jnp.max(jnp.abs(carry))) < 100.0 * 0.9976**5000 * 1.5 + 1e-3


def test_streaming_steps_equal_the_parallel_unroll():
    # sampling feeds one step at a time; it must continue exactly where the parallel unroll left off
    cell, params, xs = _setup("lru", 12, jnp.float32)
    carry, ys = rnnjax.unroll(cell, params, xs[:8], parallel=True)
    outs = []
    for x in xs[8:]:
        carry, y = cell.step(params, carry, x)
        outs.append(y)
    whole_carry, whole = rnnjax.unroll(cell, params, xs, parallel=True)
    np.testing.assert_allclose(jnp.concatenate([ys, jnp.stack(outs)]), whole, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry, whole_carry, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["min_lstm", "lru"])
def test_works_with_stacking_truncation_remat_and_vmap(x64, name):
    cell, params, xs = _setup(name, 20, jnp.float64)
    net = rnnjax.stacked(cell, num_layers=2, bidirectional=True, parallel=True)
    net_params = f64(net.init(jax.random.key(2), 3))
    fast = jax.vmap(lambda x: net.apply(net_params, x)[0])(jnp.stack([xs, 2 * xs]))
    slow = jax.vmap(lambda x: rnnjax.stacked(cell, 2, bidirectional=True, parallel=False).apply(net_params, x)[0])(jnp.stack([xs, 2 * xs]))
    assert fast.shape == (2, 20, 16)
    np.testing.assert_allclose(fast, slow, rtol=1e-11, atol=1e-13)
    # truncated BPTT: same values; remat: same gradients
    np.testing.assert_allclose(rnnjax.truncated_unroll(cell, params, xs, 6)[1], rnnjax.unroll(cell, params, xs, parallel=True)[1], rtol=1e-12)
    g = jax.grad(lambda p, r: jnp.sum(rnnjax.unroll(cell, p, xs, remat=r)[1] ** 2), allow_int=True)
    for a, b in zip(jax.tree.leaves(g(params, None)), jax.tree.leaves(g(params, 6))):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm", "lru"])
def test_gradient_flow_diagnostics_run_on_linear_cells(name):
    cell, params, xs = _setup(name, 30, jnp.float32)
    norms = diagnostics.hidden_grad_norms(cell, params, xs, lambda ys, c: jnp.sum(ys[-1] ** 2))
    assert norms.shape == (30,) and bool(jnp.all(jnp.isfinite(norms))) and float(norms[-1]) > 0
    jac = diagnostics.jacobian_norms(cell, params, xs)
    # the recurrence is diagonal with |a| < 1: ‖∂h_s/∂h_t‖ never grows going back in time
    assert bool(jnp.all(jnp.diff(jac["spectral"]) >= -1e-6))


def test_a_min_gru_learns_the_adding_problem():
    from rnnjax.datasets import adding_task

    cell = rnnjax.min_gru(32)
    readout = rnnjax.mlp([1], activation="identity")
    params = {"cell": cell.init(jax.random.key(0), 2), "out": readout.init(jax.random.key(1), 32)}

    def loss_fn(p, batch, key):
        xs, ys = batch
        pred = jax.vmap(lambda x: readout.apply(p["out"], rnnjax.unroll(cell, p["cell"], x, parallel=True)[1][-1])[0])(xs)
        return jnp.mean((pred - ys) ** 2)

    opt = rnnjax.make_optimizer("adam", 1e-2)
    step = jax.jit(rnnjax.make_train_step(loss_fn, opt))
    state = rnnjax.init_state(params, opt, jax.random.key(2))
    losses = []
    for i in range(300):
        state, metrics = step(state, adding_task(jax.random.key(i), 64, 30))
        losses.append(float(metrics["loss"]))
    # predicting the mean (1.0) scores 1/6 ≈ 0.167; measured: 0.29 over the first 10 steps, 0.019 over the last 20
    assert np.mean(losses[:10]) > 0.12 and np.mean(losses[-20:]) < 0.05


@pytest.mark.parametrize("make,message", [
    (lambda: rnnjax.min_gru(0), "hidden_size must be positive"),
    (lambda: rnnjax.min_lstm(2.5), "must be an integer"),
    (lambda: rnnjax.lru(4, state_size=0), "state_size must be positive"),
    (lambda: rnnjax.lru(4, r_min=0.9, r_max=0.5), "r_min < r_max"),
    (lambda: rnnjax.lru(4, r_max=1.5), "r_max <= 1"),
    (lambda: rnnjax.lru(4, max_phase=0.0), "max_phase must be positive"),
    (lambda: rnnjax.lru(4, activation="tanh"), "unknown activation"),
])
def test_bad_arguments_are_refused(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


def test_parallel_is_chosen_per_backend_and_refused_where_it_does_not_exist():
    cell, params, xs = _setup("min_gru", 16, jnp.float32)
    default = jax.jit(lambda p, x: rnnjax.unroll(cell, p, x)[1]).lower(params, xs).as_text()
    # on a CPU the sequential scan (measured faster there); on GPU/TPU the associative scan
    assert ("while" in default) == (jax.default_backend() == "cpu")
    lstm = rnnjax.lstm(4)
    with pytest.raises(ValueError, match="has no parallel unroll"):
        rnnjax.unroll(lstm, lstm.init(jax.random.key(0), 3), xs, parallel=True)
    with pytest.raises(ValueError, match="remat applies to the sequential unroll"):
        rnnjax.unroll(cell, params, xs, parallel=True, remat=4)


@pytest.mark.parametrize("name", ["min_gru", "lru"])
def test_bad_inputs_are_refused(name):
    cell, params, xs = _setup(name, 5, jnp.float32)
    with pytest.raises(ValueError, match="initialised with input_size=3"):
        rnnjax.unroll(cell, params, jnp.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"rank 2, \[T, D\]"):
        rnnjax.unroll(cell, params, xs[None])
    with pytest.raises(TypeError, match="floating point"):
        rnnjax.unroll(cell, params, jnp.zeros((5, 3), jnp.int32))
    with pytest.raises(ValueError, match="mask has length 4"):
        rnnjax.unroll(cell, params, xs, mask=jnp.ones(4, bool))
    with pytest.raises(ValueError, match=r"rank 1, \[D\]"):
        cell.step(params, cell.initial_carry(params), xs)
    assert math.isfinite(float(jnp.sum(rnnjax.unroll(cell, params, xs[:0])[0])))
