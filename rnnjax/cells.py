"""Recurrent cells: the Elman RNN, the LSTM and the GRU, as pure functions.

Every cell keeps its weights as ``w_x`` ``[D, G]`` (input), ``w_h`` ``[H, G]`` (recurrent) and ``b``
``[G]``, with the gates side by side along ``G``. Each is written once, as ``core(rec, params, carry, xw)``
where ``xw = x @ w_x + b`` (``x @ w_x`` for a cell without ``b``) and ``rec(name, u) = u @ params[name]``; ``step`` binds the plain matmul, and
:mod:`rnnjax.fused` binds the fast path's recording matmul to the same ``core``, so the two can never
drift apart.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax._ops import add_bias, affine, scale
from rnnjax import initializers as inits
from rnnjax.types import Cell, LSTMCarry

ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu}


def _matmul(params):
    return lambda name, u: u @ params[name]


def _step(name, core, prepare=None):
    def step(params, carry, x):
        x, noise = x if isinstance(x, tuple) else (x, None)  # (x_t, noise_t): a cell with step_noise (zoneout)
        _checks.rank(x, 1, "[D] (one time step of one example)", name, "x")
        _checks.floating(x, "x", name)
        _checks.features(x, params, name)
        weights = params if prepare is None else prepare(params)
        xw = affine(x, weights["w_x"], weights["b"]) if "b" in weights else x @ weights["w_x"]
        return core(_matmul(weights), weights, carry, xw if noise is None else (xw, noise))

    return step


def _make_cell(name, hidden_size, init, core, initial_carry, prepare=None) -> Cell:
    def checked_init(key, input_size):
        _checks.hidden_size(input_size, "input_size")
        return init(key, input_size)

    return Cell(checked_init, _step(name, core, prepare), initial_carry, core, hidden_size, name, prepare=prepare)


def prepared(cell: Cell) -> Cell:
    """``cell`` to run on ``cell.prepare(params)`` (what :func:`rnnjax.unroll` computes once per sequence)."""
    return cell if cell.prepare is None else cell._replace(step=_step(cell.name, cell.core), prepare=None)


def _zeros_h(params):
    return jnp.zeros(params["w_h"].shape[:1], params["w_h"].dtype)


def rnn(
    hidden_size: int,
    activation: str = "tanh",
    init: str = "orthogonal",
    recurrent_scale=1.0,
    input_init: str = "glorot_uniform",
) -> Cell:
    """The Elman RNN: ``h_t = g(W_i x_t + W_R h_{t-1} + b)``, output ``y_t = h_t``.

    Shapes: ``x_t`` ``[D]``, ``h_t`` ``[H]``; params ``w_x`` ``[D, H]`` (``W_i``), ``w_h`` ``[H, H]``
    (``W_R``), ``b`` ``[H]``. The readout ``g_y(W_y h_t + b_y)`` belongs to the model on top.

    Args:
      hidden_size: ``H``.
      activation: ``"tanh"`` (range (-1, 1)) or ``"relu"``.
      init: the recurrent weights: ``"orthogonal"`` (``recurrent_scale * Q``, Saxe et al. 2014),
        ``"identity"`` (``recurrent_scale * I``: with ``activation="relu"`` and scale 1 this is the
        IRNN of Le et al. 2015), or ``"uniform"`` (``U(±recurrent_scale/sqrt(H))``, PyTorch's default).
      recurrent_scale: the gain of the recurrent init; an array is fine, so a sweep can vmap over it.
      input_init: ``"glorot_uniform"`` (Glorot & Bengio 2010) or ``"uniform"`` (``U(±1/sqrt(H))``).

    Reference: Elman 1990, "Finding structure in time".
    """
    hidden_size = _checks.hidden_size(hidden_size)
    g = ACTIVATIONS[_checks.choice(activation, ACTIVATIONS, "activation")]
    w_h_init = inits.recurrent(init, hidden_size, recurrent_scale)
    w_x_init = inits.input_(input_init, hidden_size)

    def init_fn(key, input_size):
        kx, kh = jax.random.split(key)
        return {
            "w_x": w_x_init(kx, (input_size, hidden_size)),
            "w_h": w_h_init(kh, (hidden_size, hidden_size)),
            "b": jnp.zeros((hidden_size,)),
        }

    def core(rec, params, h, xw):
        h = g(xw + rec("w_h", h))
        return h, h

    return _make_cell(f"rnn({hidden_size}, {activation})", hidden_size, init_fn, core, _zeros_h)


def _chrono(key, hidden_size: int, t_max):
    """``log U(1, T_max - 1)`` per unit (Tallec & Ollivier 2018): the characteristic forgetting times of
    the units spread over ``1 .. T_max``. ``t_max`` may be an array (a sweep vmaps over it)."""
    if isinstance(t_max, (int, float)) and not t_max > 2:
        raise ValueError(f"chrono: T_max must be > 2 (the longest dependency the cell should hold, in steps), got {t_max}")
    return jnp.log(jax.random.uniform(key, (hidden_size,), minval=1.0, maxval=jnp.asarray(t_max, float) - 1.0))


def _layer_norm(v, gain, bias=None, eps: float = 1e-5):
    """``gain ⊙ (v − mean(v)) / √(var(v) + eps) (+ bias)`` over the last axis (Ba, Kiros & Hinton 2016)."""
    mean = jnp.mean(v, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(v - mean), axis=-1, keepdims=True)
    out = scale((v - mean) * jax.lax.rsqrt(var + eps), gain)
    return out if bias is None else add_bias(out, bias)


def lstm(hidden_size: int, forget_bias=1.0, chrono=None, peepholes: bool = False, layer_norm: bool = False,
         proj_size: int | None = None) -> Cell:
    """The LSTM with a forget gate (Hochreiter & Schmidhuber 1997; Gers, Schmidhuber & Cummins 2000).

    With ``[a_i, a_f, a_g, a_o] = W_x x_t + W_h h_{t-1} + b``:

        i = σ(a_i), f = σ(a_f), g = tanh(a_g), o = σ(a_o)
        c_t = f ⊙ c_{t-1} + i ⊙ g
        h_t = o ⊙ tanh(c_t),   output y_t = h_t

    Shapes: ``x_t`` ``[D]``; carry ``LSTMCarry(h [H], c [H])``; params ``w_x`` ``[D, 4H]``, ``w_h``
    ``[H, 4H]``, ``b`` ``[4H]``, gates in PyTorch's order (i, f, g, o).

    Init: ``w_x`` Glorot uniform, each gate's ``[H, H]`` block of ``w_h`` orthogonal, ``b`` zero except
    the forget block, which is ``forget_bias`` (Gers et al. 2000; Jozefowicz, Zaremba & Sutskever 2015),
    so the cell starts out remembering.

    ``chrono=T_max``: chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp
    time?"): ``b_f ~ log U(1, T_max - 1)`` per unit and ``b_i = -b_f`` (in place of ``forget_bias``), so
    the units' memory times spread up to ``T_max``, the longest dependency expected.

    ``peepholes=True`` (Gers & Schmidhuber 2000, "Recurrent nets that time and count"; as in Graves 2013):
    the gates also read the cell state, ``i = σ(a_i + p_i ⊙ c_{t-1})``, ``f = σ(a_f + p_f ⊙ c_{t-1})``,
    ``o = σ(a_o + p_o ⊙ c_t)``; param ``peephole`` ``[3H]`` (i, f, o), zero at init (the plain LSTM).

    ``layer_norm=True`` (Ba, Kiros & Hinton 2016, "Layer normalization", the LN-LSTM):
    ``a = γ_h ⊙ LN(W_h h_{t-1}) + γ_x ⊙ LN(W_x x_t) + b`` over all ``4H`` pre-activations, and
    ``h_t = o ⊙ tanh(γ_c ⊙ LN(c_t) + β_c)``; the paper's shifts of the two normalised products add up
    with ``b`` into one. Params: ``w_x``, ``w_h`` as above, ``bias`` ``[4H]`` (in place of ``b``: it is
    added after the normalisation, inside the step), gains ``ln_x``, ``ln_h`` ``[4H]`` and ``ln_c`` ``[H]``
    (init 1), shift ``ln_c_bias`` ``[H]`` (init 0). ``LN(v) = (v − mean v) / √(var v + 1e-5)``.

    ``proj_size=P`` (LSTMP, Sak, Senior & Beaufays 2014; PyTorch's ``proj_size``): the output and the
    recurrent state are a projection of the usual one, ``h_t = W_p (o ⊙ tanh(c_t))`` ``[P]``, so ``w_h``
    is ``[P, 4H]`` and ``w_proj`` ``[H, P]`` (init: orthogonal blocks; Glorot uniform); the carry is
    ``LSTMCarry(h [P], c [H])`` and the cell's ``hidden_size`` is its output size ``P``.
    """
    hidden_size = _checks.hidden_size(hidden_size)
    H = hidden_size
    P = H if proj_size is None else _checks.hidden_size(proj_size, "proj_size")

    def init_fn(key, input_size):
        kx, kh = jax.random.split(key)
        b = jnp.zeros((4 * H,)).at[H : 2 * H].set(forget_bias)
        if chrono is not None:
            b_f = _chrono(jax.random.fold_in(key, 2), H, chrono)
            b = jnp.zeros((4 * H,), b_f.dtype).at[:H].set(-b_f).at[H : 2 * H].set(b_f)
        params = {"w_x": inits.glorot_uniform()(kx, (input_size, 4 * H)),
                  "w_h": inits.blocks(inits.orthogonal(), kh, 4, H, rows=P)}
        if proj_size is not None:
            params["w_proj"] = inits.glorot_uniform()(jax.random.fold_in(key, 3), (H, P))
        if layer_norm:
            params.update(bias=b, ln_x=jnp.ones((4 * H,)), ln_h=jnp.ones((4 * H,)), ln_c=jnp.ones((H,)), ln_c_bias=jnp.zeros((H,)))
        else:
            params["b"] = b
        if peepholes:
            params["peephole"] = jnp.zeros((3 * H,), b.dtype)
        return params

    def core(rec, params, carry, xw):
        if layer_norm:
            a = add_bias(_layer_norm(xw, params["ln_x"]) + _layer_norm(rec("w_h", carry.h), params["ln_h"]), params["bias"])
        else:
            a = xw + rec("w_h", carry.h)
        i, f, g, o = jnp.split(a, 4, axis=-1)
        if peepholes:
            p_i, p_f, p_o = jnp.split(params["peephole"], 3)
            i, f = i + scale(carry.c, p_i), f + scale(carry.c, p_f)
        c = jax.nn.sigmoid(f) * carry.c + jax.nn.sigmoid(i) * jnp.tanh(g)
        if peepholes:
            o = o + scale(c, p_o)
        h = jax.nn.sigmoid(o) * jnp.tanh(_layer_norm(c, params["ln_c"], params["ln_c_bias"]) if layer_norm else c)
        if proj_size is not None:
            h = rec("w_proj", h)
        return LSTMCarry(h, c), h

    def initial_carry(params):
        h = _zeros_h(params)  # [P]
        return LSTMCarry(h, jnp.zeros((params["w_h"].shape[1] // 4,), h.dtype))  # c [H]

    options = (f", chrono={chrono}" if chrono is not None else "") + (", peepholes" if peepholes else "") + (
        ", layer_norm" if layer_norm else "") + (f", proj_size={P}" if proj_size is not None else "")
    return _make_cell(f"lstm({H}{options})", P, init_fn, core, initial_carry)


def gru(hidden_size: int, reset_after: bool = False, chrono=None, layer_norm: bool = False) -> Cell:
    """The GRU (Cho et al. 2014), with update gate ``z`` and reset gate ``r``.

    With ``[a_r, a_z, a_n] = W_x x_t + b``:

        r = σ(a_r + W_hr h_{t-1}),  z = σ(a_z + W_hz h_{t-1})
        reset_after=False (Cho et al. 2014):  h~ = tanh(a_n + W_hn (r ⊙ h_{t-1}))
        reset_after=True (cuDNN, PyTorch, Flax): h~ = tanh(a_n + r ⊙ (W_hn h_{t-1} + b_hn))
        h_t = (1 - z) ⊙ h_{t-1} + z ⊙ h~,   output y_t = h_t

    ``z`` here is the fraction of the new candidate taken in; PyTorch and Flax write
    ``h_t = (1 - z') ⊙ h~ + z' ⊙ h_{t-1}``, so ``z = 1 - z'`` (:mod:`rnnjax.interop` converts).

    Shapes: ``x_t`` and carry ``h`` as for :func:`rnn`; params ``w_x`` ``[D, 3H]``, ``b`` ``[3H]``
    (gates r, z, n); ``reset_after=False``: ``w_h`` ``[H, 2H]`` (r, z) and ``w_hn`` ``[H, H]``;
    ``reset_after=True``: ``w_h`` ``[H, 3H]`` (r, z, n) and ``b_hn`` ``[H]``.

    ``chrono=T_max``: chrono initialisation (Tallec & Ollivier 2018): ``b_z ~ -log U(1, T_max - 1)`` per
    unit, so each unit takes in about ``1/T`` of its candidate per step for a ``T`` up to ``T_max``.

    ``layer_norm=True`` (after Ba, Kiros & Hinton 2016): each product is normalised per block before the
    biases, ``[a_r, a_z] = γ_x ⊙ LN(W_x x)_{rz} + γ_h ⊙ LN(W_h h) + b_{rz}``,
    ``a_n = γ_xn ⊙ LN(W_x x)_n + b_n`` and the candidate's recurrent product ``γ_hn ⊙ LN(·)`` in place of
    ``W_hn (r ⊙ h)`` (``W_hn h``, then ``+ b_hn``, with ``reset_after``). The biases move inside the
    step as ``bias`` ``[3H]``; gains ``ln_x`` ``[3H]``, ``ln_h`` ``[2H]``, ``ln_hn`` ``[H]`` (init 1).
    """
    hidden_size = _checks.hidden_size(hidden_size)
    H = hidden_size

    def init_fn(key, input_size):
        kx, kh = jax.random.split(key)
        params = {"w_x": inits.glorot_uniform()(kx, (input_size, 3 * H)), "b": jnp.zeros((3 * H,))}
        if chrono is not None:
            b_z = -_chrono(jax.random.fold_in(key, 2), H, chrono)
            params["b"] = jnp.zeros((3 * H,), b_z.dtype).at[H : 2 * H].set(b_z)
        if layer_norm:
            params.update(bias=params.pop("b"), ln_x=jnp.ones((3 * H,)), ln_h=jnp.ones((2 * H,)), ln_hn=jnp.ones((H,)))
        w_h = inits.blocks(inits.orthogonal(), kh, 3, H)
        if reset_after:
            params.update(w_h=w_h, b_hn=jnp.zeros((H,)))
        else:
            params.update(w_h=w_h[:, : 2 * H], w_hn=w_h[:, 2 * H :])
        return params

    def core(rec, params, h, xw):
        hw = rec("w_h", h)
        if layer_norm:
            g_x, bias = params["ln_x"], params["bias"]
            a_rz = add_bias(_layer_norm(xw[..., : 2 * H], g_x[: 2 * H]) + _layer_norm(hw[..., : 2 * H], params["ln_h"]), bias[: 2 * H])
            a_n = add_bias(_layer_norm(xw[..., 2 * H :], g_x[2 * H :]), bias[2 * H :])
            r, z = jax.nn.sigmoid(a_rz[..., :H]), jax.nn.sigmoid(a_rz[..., H:])
        else:
            a_r, a_z, a_n = jnp.split(xw, 3, axis=-1)
            # split, not three slices: the transpose of a split is one concatenate, of slices a sum of pads
            h_r, h_z, *h_n = jnp.split(hw, 3 if reset_after else 2, axis=-1)
            r = jax.nn.sigmoid(a_r + h_r)
            z = jax.nn.sigmoid(a_z + h_z)
        if reset_after:
            hn = _layer_norm(hw[..., 2 * H :], params["ln_hn"]) if layer_norm else h_n[0]
            n = jnp.tanh(a_n + r * add_bias(hn, params["b_hn"]))
        else:
            hn = rec("w_hn", r * h)
            n = jnp.tanh(a_n + (_layer_norm(hn, params["ln_hn"]) if layer_norm else hn))
        h = h + z * (n - h)
        return h, h

    suffix = (", reset_after=True" if reset_after else "") + (f", chrono={chrono}" if chrono is not None else "") + (
        ", layer_norm" if layer_norm else "")
    return _make_cell(f"gru({H}{suffix})", H, init_fn, core, _zeros_h)


def modrelu(z, bias):
    """modReLU (Arjovsky, Shah & Bengio 2016) on real numbers: ``sign(z) · relu(|z| + bias)``: the
    magnitude is shifted and rectified, the sign kept, so a negative ``bias`` opens a dead zone around 0."""
    return jnp.sign(z) * jax.nn.relu(add_bias(jnp.abs(z), bias))  # z may have leading axes (the fast path's)


def skew(a):
    """``A - Aᵀ`` with ``A`` the strict upper triangle of ``a``: every skew-symmetric matrix, once."""
    upper = jnp.triu(a, 1)
    return upper - upper.T


def _rotation_blocks(s, hidden_size):
    rows = jnp.arange(hidden_size // 2) * 2
    return jnp.zeros((hidden_size, hidden_size), s.dtype).at[rows, rows + 1].set(s)


def henaff_init(key, hidden_size: int, dtype=float):
    """The expRNN's init of ``a`` for the copy task (Henaff, Szlam & LeCun 2016): ``skew(a)`` block diagonal
    with 2 x 2 blocks ``[[0, s], [-s, 0]]``, ``s ~ U(-π, π)``, so ``expm(skew(a))`` is a block-diagonal
    rotation by angles spread over the circle."""
    return _rotation_blocks(jax.random.uniform(key, (hidden_size // 2,), dtype, -jnp.pi, jnp.pi), hidden_size)


def cayley_init(key, hidden_size: int, dtype=float):
    """The expRNN's init of ``a`` for MNIST (Helfrich, Willmott & Ye 2018): the same blocks with
    ``s = −√((1 − cos u) / (1 + cos u)) = −tan(u/2)``, ``u ~ U(0, π/2)``: rotations by at most one radian,
    near the identity, so a state is carried with little change from step to step."""
    u = jax.random.uniform(key, (hidden_size // 2,), dtype, 0.0, jnp.pi / 2)
    return _rotation_blocks(-jnp.sqrt((1 - jnp.cos(u)) / (1 + jnp.cos(u))), hidden_size)


EXP_RNN_INITS = {"henaff": henaff_init, "cayley": cayley_init}


def exp_rnn(hidden_size: int, activation: str = "modrelu", init: str = "henaff") -> Cell:
    """The orthogonal RNN of Lezcano-Casado & Martínez-Rubio 2019 (expRNN; "Cheap orthogonal constraints
    in neural networks", ICML), its recurrent matrix the exponential of a skew-symmetric one:

        W = expm(A - Aᵀ)                       (A the strict upper triangle of the param ``a``)
        h_t = σ(W_x x_t + b + W h_{t-1}),      σ = modReLU(·; b_mod) (the paper's) or tanh

    ``W`` is orthogonal for every ``a``, so it stays orthogonal through training by any optimiser, and
    ``∂h_t/∂h_{t-1} = diag(σ') W`` never shrinks a gradient through ``W`` itself: ``‖∂L/∂h_t‖`` stays flat
    over long sequences wherever σ' is 1. ``W`` is computed once per sequence (``prepare``; gradients flow
    through ``jax.scipy.linalg.expm``).

    Shapes: ``x_t`` ``[D]``; carry ``h`` ``[H]``; params ``w_x`` ``[D, H]``, ``b`` ``[H]``, ``a`` ``[H, H]``
    (its strict upper triangle is used) and, for modReLU, ``b_mod`` ``[H]``.

    Init (the paper's): ``a`` by :func:`henaff_init` (``init="henaff"``, the paper's for the copy task) or
    :func:`cayley_init` (``"cayley"``, its choice for MNIST); ``w_x`` He normal (He et al. 2015); ``b`` zero;
    ``b_mod`` ``U(-0.01, 0.01)``.
    """
    hidden_size = _checks.hidden_size(hidden_size)
    if activation not in ("modrelu", "tanh"):
        raise ValueError(f"exp_rnn: unknown activation {activation!r}; expected 'modrelu' or 'tanh'")
    if init not in EXP_RNN_INITS:
        raise ValueError(f"exp_rnn: unknown init {init!r}; expected one of {list(EXP_RNN_INITS)}")
    H = hidden_size

    def init_fn(key, input_size):
        kx, ka, kb = jax.random.split(key, 3)
        params = {"w_x": jax.nn.initializers.he_normal()(kx, (input_size, H), float), "b": jnp.zeros((H,)),
                  "a": EXP_RNN_INITS[init](ka, H)}
        if activation == "modrelu":
            params["b_mod"] = jax.random.uniform(kb, (H,), float, -0.01, 0.01)
        return params

    def prepare(params):
        weights = {k: v for k, v in params.items() if k != "a"}
        weights["w_h"] = jax.scipy.linalg.expm(skew(params["a"]))
        return weights

    def core(rec, weights, h, xw):
        z = xw + rec("w_h", h)
        h = modrelu(z, weights["b_mod"]) if activation == "modrelu" else jnp.tanh(z)
        return h, h

    def initial_carry(params):
        return jnp.zeros(params["b"].shape, params["b"].dtype)

    return _make_cell(f"exp_rnn({H}, {activation}, {init})", H, init_fn, core, initial_carry, prepare)


def indrnn(hidden_size: int, activation: str = "relu", recurrent_init=(0.0, 1.0),
           input_init: str = "glorot_uniform", input_scale=None) -> Cell:
    """The independently recurrent network (IndRNN; Li, Li, Cook, Zhu & Gao 2018, "Independently recurrent
    neural network (IndRNN): building a longer and deeper RNN", CVPR): each unit its own scalar recurrence,

        h_t = g(W_x x_t + u ⊙ h_{t-1} + b),    output y_t = h_t

    so ``∂h_t/∂h_{t-1} = diag(g'(·) ⊙ u)`` and a unit's gradient over ``T`` steps is ``∏ g' u``: with ReLU
    it is ``u^T`` along an active path, and bounding ``|u| ≤ γ^{1/T}`` keeps it below ``γ`` (the paper's
    Sec. 3.1). The bound is not part of the cell: it is a projection after each optimiser step,
    ``rnnjax.make_optimizer(param_bounds={"u": (-γ**(1/T), γ**(1/T))})``.

    Shapes: ``x_t`` ``[D]``, ``h_t`` ``[H]``; params ``w_x`` ``[D, H]``, ``u`` ``[H]``, ``b`` ``[H]``.

    Init: ``u ~ U(recurrent_init)`` (the experiments use ``[(1/2)^{1/T}, 1]``, so every unit starts out
    keeping at least half its value over ``T`` steps); ``w_x`` by ``input_init`` as in
    :func:`rnn`, or ``N(0, input_scale²)`` where ``input_scale`` is given (the paper's 0.001 on the adding
    problem: a unit with ``u ≈ 1`` sums its input over all ``T`` steps, so large input weights start the
    model's outputs at hundreds); ``b`` zero.
    """
    hidden_size = _checks.hidden_size(hidden_size)
    g = ACTIVATIONS[_checks.choice(activation, ACTIVATIONS, "activation")]
    try:
        lo, hi = (float(v) for v in recurrent_init)
    except (TypeError, ValueError):
        raise ValueError(f"indrnn: recurrent_init must be a pair (low, high), got {recurrent_init!r}") from None
    if not lo <= hi:
        raise ValueError(f"indrnn: recurrent_init must have low <= high, got {recurrent_init!r}")
    if input_scale is None:
        w_x_init = inits.input_(input_init, hidden_size)
    elif not float(input_scale) > 0:
        raise ValueError(f"indrnn: input_scale must be positive, got {input_scale!r}")
    else:
        w_x_init = jax.nn.initializers.normal(float(input_scale))

    def init_fn(key, input_size):
        kx, ku = jax.random.split(key)
        return {"w_x": w_x_init(kx, (input_size, hidden_size), float),
                "u": jax.random.uniform(ku, (hidden_size,), float, lo, hi),
                "b": jnp.zeros((hidden_size,))}

    def core(rec, params, h, xw):
        del rec  # no matrix: the recurrence is elementwise
        h = g(xw + scale(h, params["u"]))
        return h, h

    def initial_carry(params):
        return jnp.zeros(params["u"].shape, params["u"].dtype)

    return _make_cell(f"indrnn({hidden_size}, {activation})", hidden_size, init_fn, core, initial_carry)


def recurrent_dropout(cell: Cell, rate: float) -> Cell:
    """``cell`` with variational recurrent dropout (Gal & Ghahramani 2016, "A theoretically grounded
    application of dropout in recurrent neural networks"; Keras's ``recurrent_dropout``): the state read by
    the recurrent products is ``h_{t-1} ⊙ m``, with one mask ``m ~ Bernoulli(1 − rate) / (1 − rate)``
    ``[H]`` per sequence, the same at every step (drawn outside the loop, the point of flax#2194).

    The mask is drawn by ``noise(params, key)``, which :func:`rnnjax.unroll` calls once per sequence when
    given ``key=`` (a different key per example under ``jax.vmap``); without a key nothing is dropped, so
    evaluation needs no other cell. Masked: the inputs of the products ``w_h`` (and the GRU's ``w_hn``,
    whose input is ``r ⊙ h``); not the LSTMP's output projection. Params are the cell's own; the fast path,
    masks, reverse, ``stacked`` and remat work as for ``cell``.
    """
    rate = _checks.rate(rate, "recurrent_dropout: rate")
    if cell.core is None:
        raise ValueError(f"recurrent_dropout: {cell.name} has no core to wrap (the linear cells have no recurrent product)")
    inner = cell.core

    def core(rec, params, carry, xw):
        mask = params.get("dropout_mask")
        if mask is None:
            return inner(rec, params, carry, xw)
        return inner(lambda name, u: rec(name, scale(u, mask) if name in ("w_h", "w_hn") else u), params, carry, xw)

    def noise(params, key):
        if rate == 0.0:
            return params
        keep = jax.random.bernoulli(key, 1.0 - rate, params["w_h"].shape[:1])
        return {**params, "dropout_mask": keep.astype(params["w_h"].dtype) / (1.0 - rate)}

    name = f"recurrent_dropout({cell.name}, {rate})"
    return cell._replace(core=core, step=_step(name, core, cell.prepare), name=name, noise=noise)


def zoneout(cell: Cell, rate: float, cell_rate: float | None = None) -> Cell:
    """``cell`` with zoneout (Krueger et al. 2017, "Zoneout: regularizing RNNs by randomly preserving hidden
    activations"): each unit of the state keeps its previous value with probability ``rate``, afresh at
    every step,

        s_t = d_t ⊙ s_{t-1} + (1 − d_t) ⊙ s̃_t,    d_t ~ Bernoulli(rate) ``[H]`` per step,

    where ``s̃_t`` is the wrapped cell's new state; at evaluation ``d_t`` is its expectation ``rate``. A
    zoned-out unit passes its value and its gradient through the step unchanged (identity), which is why
    it helps gradients flow as well as regularising. The output is the new hidden state ``h_t``.

    For an LSTM (carry ``LSTMCarry(h, c)``) ``rate`` applies to ``h`` and ``cell_rate`` (default ``rate``)
    to ``c``, the paper's separate ``z_h`` and ``z_c`` (for its LSTMs it recommends ``z_c = 0.5``,
    ``z_h = 0.05``).

    The masks are drawn by ``step_noise(carry, key, T)`` (``[T, ...]`` per carry leaf), which
    :func:`rnnjax.unroll` calls once per sequence, before the scan, when given ``key=``; step ``t`` gets
    ``(x_t, d_t)``. Without a key: the expectation. Params are the cell's own; the fast path, masks,
    reverse, resets, ``stacked``, remat and :func:`recurrent_dropout` (in either order) work as for ``cell``.
    """
    rate = _checks.rate(rate, "zoneout: rate")
    if cell.core is None:
        raise ValueError(f"zoneout: {cell.name} has no core to wrap (the linear cells update their state in one "
                         "associative scan)")
    if cell.step_noise is not None:
        raise ValueError(f"zoneout: {cell.name} already draws per-step noise")
    carry = jax.eval_shape(lambda: cell.initial_carry(cell.init(jax.random.key(0), 1)))
    if isinstance(carry, LSTMCarry):
        rates = LSTMCarry(rate, rate if cell_rate is None else _checks.rate(cell_rate, "zoneout: cell_rate"))
    elif cell_rate is not None:
        raise ValueError(f"zoneout: cell_rate is the rate of an LSTM's memory cell c; {cell.name} has no c")
    else:
        rates = jax.tree.map(lambda _: rate, carry)
    inner = cell.core

    def core(rec, params, carry, xw):
        xw, d = xw if isinstance(xw, tuple) else (xw, rates)  # no draw: the expectation
        new, _ = inner(rec, params, carry, xw)
        new = jax.tree.map(lambda d, old, s: s + d * (old - s), d, carry, new)
        return new, (new.h if isinstance(new, LSTMCarry) else new)

    def step_noise(carry, key, length):
        leaves, tree = jax.tree.flatten(carry)
        draws = [jax.random.bernoulli(k, r, (length, *leaf.shape)).astype(leaf.dtype)
                 for k, r, leaf in zip(jax.random.split(key, len(leaves)), jax.tree.leaves(rates), leaves)]
        return jax.tree.unflatten(tree, draws)

    name = f"zoneout({cell.name}, {rate}" + ("" if cell_rate is None else f", cell_rate={cell_rate}") + ")"
    return cell._replace(core=core, step=_step(name, core, cell.prepare), name=name, step_noise=step_noise)
