"""rnnjax against PyTorch and Flax given the same weights: outputs, carries and gradients.

The independent oracle for every cell: torch.nn.RNN/LSTM/GRU (any depth, direction and bias) and Flax's
linen cells. Sizes are drawn at random per case.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax import interop
from tests.helpers import assert_trees_close

torch = pytest.importorskip("torch", reason="install the 'interop' extra (pip install torch==2.13.0)")

TOL = dict(atol=1e-5, rtol=1e-5)


def sizes(seed):
    rng = np.random.default_rng(seed)
    return int(rng.integers(1, 7)), int(rng.integers(1, 9)), int(rng.integers(1, 8))  # D, H, T


TORCH_CASES = [
    (kind, layers, bidi, bias, extra)
    for kind, extra in [("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {}),
                        ("LSTM", {"proj_size": "half"})]  # LSTMP: proj_size = H // 2 of the drawn H (at least 2)
    for layers, bidi, bias in [(1, False, True), (2, True, True), (2, False, False), (3, True, False)]
]


def torch_case_id(case):
    kind, layers, bidi, bias, extra = case
    return f"{kind}{extra.get('nonlinearity', '')}{'P' if 'proj_size' in extra else ''}-L{layers}-{'bi' if bidi else 'uni'}-{'bias' if bias else 'nobias'}"


def torch_carry_to_rnnjax(kind, h_n, c_n, layers, bidi):
    """torch's h_n [L*dirs, 1, H] (and c_n) -> rnnjax's tuple of per-layer carries."""

    def one(i):
        h = jnp.asarray(h_n[i, 0].detach().numpy())
        if kind == "LSTM":
            return rnnjax.LSTMCarry(h, jnp.asarray(c_n[i, 0].detach().numpy()))
        return h

    dirs = 2 if bidi else 1
    out = []
    for layer in range(layers):
        if bidi:
            out.append({"fwd": one(dirs * layer), "bwd": one(dirs * layer + 1)})
        else:
            out.append(one(layer))
    return tuple(out)


def torch_grads_to_rnnjax(kind, module, layers, bidi, H):
    """torch's parameter gradients, mapped into rnnjax's layout.

    The maps are linear per tensor (transpose; sign of the GRU update gate), so converting a gradient is
    converting a weight, except the summed biases: rnnjax's ``b`` gets the gradient of ``b_ih``.
    """
    grads = {k: v.grad.detach().numpy() for k, v in module.named_parameters()}
    out = []
    for layer in range(layers):
        dirs = []
        for suffix in ("", "_reverse")[: 2 if bidi else 1]:
            g = lambda n, s=suffix, l=layer: grads[f"{n}_l{l}{s}"]  # noqa: E731
            d = {"w_x": g("weight_ih").T, "w_h": g("weight_hh").T}
            if module.proj_size if kind == "LSTM" else 0:
                d["w_proj"] = g("weight_hr").T
            if module.bias:
                d["b"] = g("bias_ih")
            if kind == "GRU":
                d["w_x"] = interop._negate_update_gate(d["w_x"], H)
                d["w_h"] = interop._negate_update_gate(d["w_h"], H)
                if module.bias:
                    d["b"] = interop._negate_update_gate(d["b"], H)
                    d["b_hn"] = g("bias_hh")[2 * H :]
            dirs.append(d)
        out.append({"fwd": dirs[0], "bwd": dirs[1]} if bidi else dirs[0])
    return tuple(out)


def _layers(tree):
    for layer in tree:
        if "fwd" in layer:
            yield layer["fwd"]
            yield layer["bwd"]
        else:
            yield layer


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")  # torch's own note
@pytest.mark.parametrize("case", TORCH_CASES, ids=torch_case_id)
@pytest.mark.parametrize(
    "seed,batch_first,fast", [(0, False, True), (1, True, True), (2, False, False)], ids=["fast", "fast-batch-first", "autodiff"]
)
def test_matches_torch(case, seed, batch_first, fast):
    kind, layers, bidi, bias, extra = case
    D, H, T = sizes(seed + 10 * layers)
    out_size = H
    if extra.get("proj_size") == "half":
        H = max(H, 2)
        extra = {"proj_size": H // 2}
        out_size = H // 2
    torch.manual_seed(seed)
    module = getattr(torch.nn, kind)(D, H, num_layers=layers, bidirectional=bidi, bias=bias, batch_first=batch_first, **extra)
    with torch.no_grad():  # larger than torch's default init, so every term matters
        for p in module.parameters():
            p.uniform_(-0.8, 0.8)
    xs = np.random.default_rng(seed).normal(size=(T, D)).astype(np.float32)
    weights = np.random.default_rng(seed + 1).normal(size=(T, (2 if bidi else 1) * out_size)).astype(np.float32)

    x_t = torch.tensor(xs[None] if batch_first else xs[:, None], requires_grad=True)
    out, state = module(x_t)
    h_n, c_n = state if kind == "LSTM" else (state, None)
    ys_t = out[0] if batch_first else out[:, 0]
    torch_loss = (ys_t * torch.tensor(weights)).sum() + (h_n**2).sum() + (0 if c_n is None else (c_n**2).sum())
    torch_loss.backward()

    net, params = interop.from_torch(module, fast=fast)

    def loss(params, xs):
        ys, carry = net.apply(params, xs)
        return jnp.sum(ys * weights) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry)), (ys, carry)

    (value, (ys, carry)), (g_params, g_xs) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(params, jnp.asarray(xs))
    assert_trees_close(ys, ys_t.detach().numpy(), **TOL)
    assert_trees_close(carry, torch_carry_to_rnnjax(kind, h_n, c_n, layers, bidi), **TOL)
    np.testing.assert_allclose(value, torch_loss.item(), **TOL)
    x_grad = x_t.grad.numpy()[0] if batch_first else x_t.grad.numpy()[:, 0]
    np.testing.assert_allclose(g_xs, x_grad, **TOL)
    expected = torch_grads_to_rnnjax(kind, module, layers, bidi, H)
    got = [{k: v for k, v in d.items() if bias or not k.startswith("b")} for d in _layers(g_params)]
    assert_grads_close(got, list(_layers(expected)))


def assert_grads_close(got, expected):
    """Weight gradients are float32 sums over time and batch of terms as large as the largest entry, and
    the frameworks add them in different orders: the absolute tolerance scales with that entry."""
    assert jax.tree.structure(got) == jax.tree.structure(expected)
    for g, e in zip(jax.tree.leaves(got), jax.tree.leaves(expected)):
        e = np.asarray(e)
        np.testing.assert_allclose(np.asarray(g), e, rtol=TOL["rtol"], atol=TOL["atol"] * max(1.0, float(np.abs(e).max())))


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "autodiff"])
@pytest.mark.parametrize("masked_len", [None, 3])
def test_bidirectional_stack_with_mask_matches_torch_on_the_unpadded_sequence(fast, masked_len):
    torch.manual_seed(3)
    module = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True)
    xs = np.random.default_rng(3).normal(size=(6, 4)).astype(np.float32)
    n = masked_len or 6
    out, (h_n, c_n) = module(torch.tensor(xs[:n, None]))
    net, params = interop.from_torch(module, fast=fast)
    padded = jnp.asarray(xs).at[n:].set(7.0)
    ys, carry = net.apply(params, padded, mask=jnp.arange(6) < n)
    assert_trees_close(ys[:n], out[:, 0].detach().numpy(), **TOL)
    np.testing.assert_array_equal(ys[n:], 0.0)
    assert_trees_close(carry, torch_carry_to_rnnjax("LSTM", h_n, c_n, 2, True), **TOL)


FLAX_CELLS = {
    "simple-tanh": lambda H: nn.SimpleCell(H),
    "simple-relu": lambda H: nn.SimpleCell(H, activation_fn=nn.relu),
    "lstm": lambda H: nn.LSTMCell(H),
    "optimized-lstm": lambda H: nn.OptimizedLSTMCell(H),
    "gru": lambda H: nn.GRUCell(H),
}


def _flax_carry_to_rnnjax(name, carry):
    if "lstm" in name:
        c, h = carry
        return rnnjax.LSTMCarry(h, c)
    return carry


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "autodiff"])
@pytest.mark.parametrize("name", FLAX_CELLS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_flax(name, seed, fast):
    D, H, T = sizes(seed + 100)
    cell = FLAX_CELLS[name](H)
    layer = nn.RNN(cell, return_carry=True)
    xs = jax.random.normal(jax.random.key(seed), (T, D))
    variables = layer.init(jax.random.key(seed + 1), xs[None])
    # Flax initialises biases to zero; random ones make the bias terms count.
    variables = jax.tree.map(lambda v: v + 0.3 * jax.random.normal(jax.random.key(seed + 2), v.shape), variables)
    weights = jax.random.normal(jax.random.key(seed + 3), (T, H))
    inner = {"params": variables["params"]["cell"]}
    net, params = interop.from_flax(cell, inner, fast=fast)

    def flax_loss(variables, xs):
        carry, ys = layer.apply(variables, xs[None])
        return jnp.sum(ys[0] * weights) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry)), (ys[0], carry)

    def our_loss(params, xs):
        ys, carry = net.apply(params, xs)
        return jnp.sum(ys * weights) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry)), (ys, carry)

    (v_f, (ys_f, carry_f)), (gv_f, gx_f) = jax.value_and_grad(flax_loss, (0, 1), has_aux=True)(variables, xs)
    (v_o, (ys_o, carry_o)), (gp_o, gx_o) = jax.value_and_grad(our_loss, (0, 1), has_aux=True)(params, xs)
    assert_trees_close(ys_o, ys_f, **TOL)
    assert_trees_close(carry_o[0], _flax_carry_to_rnnjax(name, jax.tree.map(lambda a: a[0], carry_f)), **TOL)
    np.testing.assert_allclose(v_o, v_f, **TOL)
    np.testing.assert_allclose(gx_o, gx_f, **TOL)
    # The conversion is linear per tensor, so converting Flax's gradients gives rnnjax's.
    _, expected = interop.from_flax(cell, {"params": gv_f["params"]["cell"]})
    assert_trees_close(gp_o, expected, **TOL)


def test_interop_rejects_what_it_cannot_convert():
    with pytest.raises(TypeError, match="torch.nn.RNN, LSTM or GRU"):
        interop.from_torch(torch.nn.Linear(2, 3))
    with pytest.raises(TypeError, match="SimpleCell, LSTMCell"):
        interop.from_flax(nn.Dense(3), {})
    with pytest.raises(ValueError, match="residual"):
        interop.from_flax(nn.SimpleCell(3, residual=True), {})
