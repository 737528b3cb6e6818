"""Unrolling: scan equals a Python loop, reversal, masks, vmap, jit, and the two gradient paths."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

import rnnjax
from tests.helpers import CELLS, assert_trees_close, perturb

T, D, H = 7, 3, 5


def setup(name, key, dtype=jnp.float32, hidden=H):
    cell = CELLS[name](hidden)
    kp, kn, kx = jax.random.split(key, 3)
    params = perturb(cell.init(kp, D), kn)
    params = jax.tree.map(lambda p: p.astype(dtype), params)
    xs = jax.random.normal(kx, (T, D), dtype)
    return cell, params, xs


def python_loop(cell, params, xs, carry=None):
    carry = cell.initial_carry(params) if carry is None else carry
    ys = []
    for x in xs:
        carry, y = cell.step(params, carry, x)
        ys.append(y)
    return carry, jnp.stack(ys)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
def test_unroll_equals_python_loop(name, fast, key):
    cell, params, xs = setup(name, key)
    expected = python_loop(cell, params, xs)
    assert_trees_close(rnnjax.unroll(cell, params, xs, fast=fast), expected, atol=1e-6)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
def test_reverse_equals_forward_of_reversed(name, fast, key):
    cell, params, xs = setup(name, key)
    carry, ys = rnnjax.unroll(cell, params, xs, reverse=True, fast=fast)
    carry_ref, ys_ref = rnnjax.unroll(cell, params, xs[::-1], fast=fast)
    assert_trees_close((carry, ys[::-1]), (carry_ref, ys_ref), atol=1e-6)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_padding_with_mask_matches_unpadded(name, fast, reverse, key):
    cell, params, xs = setup(name, key)
    n = 4
    padded = xs.at[n:].set(100.0)  # garbage in the padding must not leak
    mask = jnp.arange(T) < n
    carry, ys = rnnjax.unroll(cell, params, padded, mask=mask, reverse=reverse, fast=fast)
    carry_ref, ys_ref = rnnjax.unroll(cell, params, xs[:n], reverse=reverse, fast=fast)
    assert_trees_close(carry, carry_ref, atol=1e-6)
    assert_trees_close(ys[:n], ys_ref, atol=1e-6)
    np.testing.assert_array_equal(ys[n:], 0.0)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
def test_vmap_equals_loop_over_examples(name, fast, key):
    cell, params, _ = setup(name, key)
    batch = jax.random.normal(jax.random.key(1), (4, T, D))
    masks = jnp.arange(T)[None, :] < jnp.array([7, 3, 5, 1])[:, None]
    got = jax.vmap(lambda x, m: rnnjax.unroll(cell, params, x, mask=m, fast=fast))(batch, masks)
    for i in range(4):
        expected = rnnjax.unroll(cell, params, batch[i], mask=masks[i], fast=fast)
        assert_trees_close(jax.tree.map(lambda a: a[i], got), expected, atol=1e-6)


@pytest.mark.parametrize("fast", [False, True])
def test_jit_and_plain_calls_agree(fast, key):
    cell, params, xs = setup("lstm", key)
    f = functools.partial(rnnjax.unroll, cell, fast=fast)
    assert_trees_close(jax.jit(f)(params, xs), f(params, xs), atol=1e-6)


def loss_fn(cell, fast, mask=None, reverse=False):
    def loss(params, xs, carry):
        carry, ys = rnnjax.unroll(cell, params, xs, carry, mask=mask, reverse=reverse, fast=fast)
        weights = jnp.arange(1, ys.shape[0] + 1, dtype=ys.dtype)[:, None]
        return jnp.sum(jnp.sin(ys) * weights) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

    return loss


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("masked", [False, True])
def test_gradients_match_finite_differences_float64(name, fast, masked, key):
    with jax.enable_x64(True):
        cell, params, xs = setup(name, key, jnp.float64)
        carry = jax.tree.map(lambda c: c + 0.1, cell.initial_carry(params))
        mask = (jnp.arange(T) < 5) if masked else None
        loss = loss_fn(cell, fast, mask)
        check_grads(loss, (params, xs, carry), order=1, modes=["rev"], eps=1e-5, atol=1e-7, rtol=1e-7)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_fast_gradients_equal_autodiff_gradients(name, reverse, key):
    with jax.enable_x64(True):
        cell, params, xs = setup(name, key, jnp.float64)
        carry = jax.tree.map(lambda c: c + 0.1, cell.initial_carry(params))
        mask = jnp.arange(T) < 6
        args = (params, xs, carry)
        g_auto = jax.grad(loss_fn(cell, False, mask=mask, reverse=reverse), argnums=(0, 1, 2))(*args)
        g_fast = jax.grad(loss_fn(cell, True, mask, reverse), argnums=(0, 1, 2))(*args)
        assert_trees_close(g_fast, g_auto, atol=1e-12, rtol=1e-10)


def test_fast_path_under_vmap_grad_and_grad_vmap(key):
    """Batch gradients (grad of vmap), per-example gradients (vmap of grad) and a sweep over weights."""
    cell, params, _ = setup("lstm", key)
    batch = jax.random.normal(jax.random.key(2), (3, T, D))

    def mean_loss(fast, params, batch):
        per = jax.vmap(lambda x: loss_fn(cell, fast)(params, x, cell.initial_carry(params)))
        return jnp.mean(per(batch))

    assert_trees_close(
        jax.jit(jax.grad(functools.partial(mean_loss, True)))(params, batch),
        jax.grad(functools.partial(mean_loss, False))(params, batch),
        atol=1e-5,
    )
    per_example = lambda fast: jax.vmap(  # noqa: E731
        jax.grad(lambda p, x: loss_fn(cell, fast)(p, x, cell.initial_carry(p))),
        in_axes=(None, 0),
    )(params, batch)
    assert_trees_close(per_example(True), per_example(False), atol=1e-5)
    sweep = jax.tree.map(lambda p: jnp.stack([p, 0.5 * p]), params)
    by_model = lambda fast: jax.vmap(  # noqa: E731
        jax.grad(functools.partial(mean_loss, fast)), in_axes=(0, None)
    )(sweep, batch)
    assert_trees_close(by_model(True), by_model(False), atol=1e-5)


def test_fast_path_refuses_forward_mode(key):
    cell, params, xs = setup("lstm", key)
    with pytest.raises(TypeError, match="forward-mode autodiff"):
        jax.jvp(lambda x: rnnjax.unroll(cell, params, x)[1], (xs,), (xs,))
    # and the plain path supports it
    jax.jvp(lambda x: rnnjax.unroll(cell, params, x, fast=False)[1], (xs,), (xs,))


def test_fast_path_compiles_once_for_new_values(key):
    cell, params, xs = setup("gru", key)
    traces = []

    @jax.jit
    def f(params, xs):
        traces.append(1)
        return rnnjax.unroll(cell, params, xs)[1]

    f(params, xs)
    f(perturb(params, jax.random.key(5)), xs + 1.0)
    assert len(traces) == 1


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_remat_gives_the_same_outputs_and_gradients_float64(name, fast, reverse, key):
    with jax.enable_x64(True):
        cell, params, xs = setup(name, key, jnp.float64)
        xs = jnp.concatenate([xs, xs[::-1], xs])  # T = 21
        mask = jnp.arange(xs.shape[0]) < 17

        def loss(params, xs, remat, mask):
            carry, ys = rnnjax.unroll(cell, params, xs, mask=mask, reverse=reverse, fast=fast, remat=remat)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry)), ys

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1), has_aux=True), static_argnums=2)
        # 4 leaves 3 padded steps, 50 is longer than the sequence, 7 divides it
        for m, remats in ((None, (4, 50)), (mask, (7,))):
            (value0, ys0), grads0 = grad(params, xs, None, m)
            for remat in remats:
                (value, ys), grads = grad(params, xs, remat, m)
                np.testing.assert_allclose(value, value0, rtol=1e-13)
                np.testing.assert_allclose(ys, ys0, rtol=1e-13, atol=1e-15)
                assert_trees_close(grads, grads0, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("fast", [False, True])
def test_remat_keeps_less_for_the_backward_pass(fast):
    cell = rnnjax.lstm(32)
    params = cell.init(jax.random.key(0), 4)
    xs = jnp.ones((4, 1000, 4))

    def temp_bytes(remat):
        def loss(p):
            return jnp.sum(jax.vmap(lambda x: rnnjax.unroll(cell, p, x, fast=fast, remat=remat)[1])(xs) ** 2)
        return jax.jit(jax.grad(loss)).lower(params).compile().memory_analysis().temp_size_in_bytes

    assert temp_bytes(32) < temp_bytes(None) / 3


def test_remat_must_be_a_positive_integer(key):
    cell, params, xs = setup("lstm", key)
    for bad in (0, -3):
        with pytest.raises(ValueError, match="remat must be positive"):
            rnnjax.unroll(cell, params, xs, remat=bad)
    with pytest.raises(TypeError, match="remat must be an integer"):
        rnnjax.unroll(cell, params, xs, remat=2.5)


def test_stacked_bidirectional_net_with_remat_matches_without(key):
    cell = rnnjax.gru(6)
    xs = jax.random.normal(key, (19, 3))
    mask = jnp.arange(19) < 15
    plain, remat = rnnjax.stacked(cell, 2, bidirectional=True), rnnjax.stacked(cell, 2, bidirectional=True, remat=4)
    params = plain.init(key, 3)

    def loss(net):
        return jax.value_and_grad(lambda p: jnp.sum(net.apply(p, xs, mask)[0] ** 2))(params)

    (v0, g0), (v1, g1) = loss(plain), loss(remat)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    assert_trees_close(g1, g0, rtol=1e-5, atol=1e-6)


def _top_level_eqns(jaxpr):
    """Every equation outside loops (scan/while bodies are not entered; pjit and custom calls are)."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name in ("scan", "while"):
            yield eqn
            continue
        subs = [v for v in eqn.params.values() if hasattr(v, "jaxpr") or hasattr(v, "eqns")]
        if subs:
            for sub in subs:
                yield from _top_level_eqns(getattr(sub, "jaxpr", sub))
        else:
            yield eqn


@pytest.mark.parametrize("name", ["lstm", "gru-reset-after"])
def test_fast_path_forms_each_weight_gradient_as_one_matmul_over_time_and_batch(name, key):
    """The batch is a real axis of the weight-gradient products: under grad of vmap, each of w_x and w_h
    gets one product outside every loop, contracting over steps and examples together."""
    cell, params, _ = setup(name, key, hidden=6)
    batch = jax.random.normal(jax.random.key(3), (4, T, D))

    def loss(params):
        return jnp.sum(jax.vmap(lambda x: rnnjax.unroll(cell, params, x)[1])(batch) ** 2)

    eqns = list(_top_level_eqns(jax.make_jaxpr(jax.grad(loss))(params).jaxpr))
    for w in ("w_x", "w_h"):
        products = [e for e in eqns if e.primitive.name == "dot_general"
                    and e.outvars[0].aval.shape in (params[w].shape, params[w].shape[::-1])]
        assert len(products) == 1, (w, products)
        (contract, _), (batch_dims, _) = products[0].params["dimension_numbers"]
        assert len(contract) == 2 and not batch_dims  # steps and examples, no per-example products
    assert sum(e.primitive.name == "scan" for e in eqns) == 2  # the forward and the backward recurrence


def test_the_default_path_imports_nothing_experimental():
    import pathlib
    import subprocess
    import sys

    src = pathlib.Path(rnnjax.__file__).parent
    offenders = [str(p) for p in src.rglob("*.py") if "jax.experimental" in p.read_text() or "jax._src" in p.read_text()]
    assert not offenders
    code = ("import sys, jax; before = {m for m in sys.modules if m.startswith('jax.experimental')}\n"
            "import jax.numpy as jnp, rnnjax\n"
            "cell = rnnjax.lstm(3); p = cell.init(jax.random.key(0), 2)\n"
            "jax.grad(lambda p: jnp.sum(rnnjax.unroll(cell, p, jnp.ones((4, 2)))[1]))(p)\n"
            "print(sorted({m for m in sys.modules if m.startswith('jax.experimental')} - before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("reverse", [False, True])
def test_nan_and_inf_in_masked_padding_reach_no_gradient(name, fast, reverse, key):
    """Issue 18: NaN or inf in *masked* padding gave a finite loss but NaN gradients for every param.
    Masked steps now see zeros: the gradients are finite and equal the unpadded sequence's."""
    cell, params, xs = setup(name, key)
    n = 4
    padded = xs.at[n:].set(jnp.nan).at[-1, 0].set(jnp.inf)
    mask = jnp.arange(T) < n

    def loss(params, xs, mask):
        carry, ys = rnnjax.unroll(cell, params, xs, mask=mask, reverse=reverse, fast=fast)
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

    value, (g_params, g_xs) = jax.value_and_grad(loss, argnums=(0, 1))(params, padded, mask)
    ref_value, (ref_params, ref_xs) = jax.value_and_grad(loss, argnums=(0, 1))(params, xs[:n], None)
    np.testing.assert_allclose(value, ref_value, rtol=1e-5)
    assert_trees_close(g_params, ref_params, atol=1e-5)
    np.testing.assert_allclose(g_xs[:n], ref_xs, atol=1e-5)
    np.testing.assert_array_equal(g_xs[n:], 0.0)


@pytest.mark.parametrize("fast", [False, True])
def test_params_or_carry_that_do_not_fit_the_cell_are_refused(fast, key):
    """Issue 18: an LSTM ran on RNN params (shapes that broadcast), params of another size ran at that size,
    and a wrong carry failed deep in XLA. Each is now refused with the cell and the place named."""
    lstm = rnnjax.lstm(4)
    xs = jnp.ones((5, 3))
    cases = [
        (lstm, rnnjax.rnn(4).init(key, 3), None, r"lstm\(4\): params\['b'\] has shape \(4,\).*gives \(16,\)"),
        (lstm, rnnjax.lstm(5).init(key, 3), None, r"lstm\(4\): params\['b'\] has shape \(20,\)"),
        (rnnjax.gru(4), rnnjax.gru(4, reset_after=True).init(key, 3), None,
         r"gru\(4\): params do not match .*missing \['w_hn'\], unexpected \['b_hn'\]"),
        (lstm, lstm.init(key, 3), jnp.zeros(4), r"lstm\(4\): carry do not match lstm\(4\).initial_carry"),
        (lstm, lstm.init(key, 3), rnnjax.LSTMCarry(jnp.zeros(4), jnp.zeros(5)), r"lstm\(4\): carry.c has shape \(5,\)"),
    ]
    for cell, params, carry, message in cases:
        with pytest.raises(ValueError, match=message):
            rnnjax.unroll(cell, params, xs, carry, fast=fast)


@pytest.mark.parametrize("name", CELLS)
def test_x64_mode_works_end_to_end(name, key):
    """Issue 18: with x64 enabled, init mixed float32 and float64 params and every unroll failed. Params now
    take JAX's default float dtype, and both paths run and differentiate in float64."""
    with jax.enable_x64(True):
        cell = CELLS[name](H)
        params = cell.init(key, D)
        assert {p.dtype for p in jax.tree.leaves(params)} == {jnp.dtype(jnp.float64)}
        xs = jax.random.normal(jax.random.key(1), (T, D), jnp.float64)
        grads = [jax.grad(lambda p: jnp.sum(rnnjax.unroll(cell, p, xs, fast=fast)[1]))(params) for fast in (False, True)]
        assert {g.dtype for g in jax.tree.leaves(grads)} == {jnp.dtype(jnp.float64)}
        assert_trees_close(grads[0], grads[1], atol=1e-12, rtol=1e-10)
    assert {p.dtype for p in jax.tree.leaves(cell.init(key, D))} == {jnp.dtype(jnp.float32)}
