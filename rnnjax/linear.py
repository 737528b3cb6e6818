"""Linear recurrent cells, trained with a parallel scan: minGRU, minLSTM and the LRU.

When a cell's gates depend on the input only, never on the previous state, its recurrence is linear,

    h_t = a_t ⊙ h_{t-1} + b_t,        (a_t, b_t) functions of x_t alone,

and the map ``h_{t-1} -> h_t`` is an affine function. Affine maps compose associatively,
``(a_1, b_1) ∘ (a_2, b_2) = (a_1 a_2, a_2 b_1 + b_2)``, so ``jax.lax.associative_scan`` computes every
``h_t`` at once with O(log T) depth instead of T sequential steps (Blelloch 1990; Martin & Cundy 2018).

Each cell here is an ordinary :class:`rnnjax.Cell` (``step`` for sampling and streaming, and the plain
``lax.scan`` path of :func:`rnnjax.unroll` with ``fast=False``) with a ``parallel`` unroll that
:func:`rnnjax.unroll` uses by default. Both compute the same function; they differ by rounding only.

- :func:`min_gru`, :func:`min_lstm`: Feng, Tung, Ahmed, Bengio & Hajimirsadeghi 2024, "Were RNNs All We
  Needed?". With ``log_space=True`` (the paper's stable form) the candidate is ``g(·) > 0`` and the scan
  runs on ``(log a_t, log b_t)``; with ``log_space=False`` it is the paper's vanilla form (candidate
  linear in ``x_t``, scan on ``(a_t, b_t)``).
- :func:`lru`: the Linear Recurrent Unit of Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De 2023,
  "Resurrecting Recurrent Neural Networks for Long Sequences": a complex diagonal recurrence with the
  exponential parametrisation, ring initialisation and ``γ`` normalisation.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks
from rnnjax import initializers as inits
from rnnjax._ops import affine
from rnnjax.types import Cell

# log(0) as a finite number: exp() of it is exactly 0, and unlike -inf it keeps logaddexp's gradient finite
# when both of its arguments are "zero" (a run of masked steps at the start of a sequence).
_LOG_ZERO = -1e30


def _compose(earlier, later):
    """``(a1, b1) ∘ (a2, b2)``: the affine map ``h -> a2 (a1 h + b1) + b2`` as the pair ``(a1 a2, a2 b1 + b2)``."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def _compose_log(earlier, later):
    """:func:`_compose` on ``(log a, log b)`` with ``a, b > 0``: products become sums, sums ``logaddexp``."""
    la1, lb1 = earlier
    la2, lb2 = later
    return la1 + la2, jnp.logaddexp(la2 + lb1, lb2)


def linear_scan(a, b, h0, reverse: bool = False, log_space: bool = False):
    """All states of ``h_t = a_t ⊙ h_{t-1} + b_t`` (t = 1..T) at once, by ``lax.associative_scan``.

    Args:
      a, b: ``[T, N]`` coefficients (real or complex); with ``log_space``, ``log a`` and ``log b`` of
        positive coefficients (``log 0`` may be a large negative number).
      h0: ``[N]``, the state before the first step (any sign; it never enters a logarithm).
      reverse: run from ``t = T`` down to 1 (``h_{T+1} = h0``).
      log_space: combine the prefix products and sums in log space (``logaddexp``), as Feng et al. 2024
        do, so that no product of many gates underflows before it is added.

    Returns:
      ``[T, N]``: ``h_t`` for every ``t``; ``h_t = A_t h0 + B_t`` with ``(A_t, B_t)`` the composed map of
      steps ``1..t``.

    The gradient is written by hand (reverse mode only): the adjoint of a linear recurrence is the linear
    recurrence ``λ_t = ∂L/∂h_t + a_{t+1} λ_{t+1}`` run the other way, one more associative scan, and then
    ``∂L/∂b_t = λ_t``, ``∂L/∂a_t = λ_t h_{t-1}``, ``∂L/∂h0 = a_1 λ_1``. Differentiating through the
    associative scan's slices instead measured 5-10x slower on a CPU and compiled for 3x as long.
    """
    return _linear_scan(a, b, h0, reverse, log_space)


def _scan(a, b, h0, reverse, log_space):
    if reverse:
        a, b = a[::-1], b[::-1]
    big_a, big_b = lax.associative_scan(_compose_log if log_space else _compose, (a, b), axis=0)
    if log_space:
        big_a, big_b = jnp.exp(big_a), jnp.exp(big_b)
    hs = big_a * h0[None] + big_b
    return hs[::-1] if reverse else hs


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _linear_scan(a, b, h0, reverse, log_space):
    return _scan(a, b, h0, reverse, log_space)


def _linear_scan_fwd(a, b, h0, reverse, log_space):
    hs = _scan(a, b, h0, reverse, log_space)
    return hs, (a, b, h0, hs)


def _linear_scan_bwd(reverse, log_space, residuals, g):
    a, b, h0, hs = residuals
    if log_space:
        a, b = jnp.exp(a), jnp.exp(b)
    one = jnp.zeros_like(a[:1])  # the coefficient past the last step: λ starts from ∂L/∂h there alone
    if not reverse:  # h_{t-1} feeds step t; λ_t = g_t + a_{t+1} λ_{t+1}, from t = T down
        h_prev = jnp.concatenate([h0[None], hs[:-1]])
        lam = _scan(jnp.concatenate([a[1:], one]), g, jnp.zeros_like(g[0]), True, False)
        d_h0 = a[0] * lam[0]
    else:  # h_{t+1} feeds step t; λ_t = g_t + a_{t-1} λ_{t-1}, from t = 1 up
        h_prev = jnp.concatenate([hs[1:], h0[None]])
        lam = _scan(jnp.concatenate([one, a[:-1]]), g, jnp.zeros_like(g[0]), False, False)
        d_h0 = a[-1] * lam[-1]
    d_a, d_b = lam * h_prev, lam
    if log_space:  # ∂L/∂(log a) = a ∂L/∂a
        d_a, d_b = d_a * a, d_b * b
    return d_a, d_b, d_h0


_linear_scan.defvjp(_linear_scan_fwd, _linear_scan_bwd)


def _positive(x):
    """Feng et al.'s ``g(x) = x + 1/2`` for ``x ≥ 0`` and ``σ(x)`` below: continuous, increasing, positive."""
    return jnp.where(x >= 0, x + 0.5, jax.nn.sigmoid(x))


def _log_positive(x):
    """``log g(x)``, computed without forming ``g`` where it is tiny."""
    return jnp.where(x >= 0, jnp.log(jnp.maximum(x, 0.0) + 0.5), -jax.nn.softplus(-x))


def _make_linear_cell(name, hidden_size, init, coefficients, log_coefficients, readout=None, to_state=None,
                      from_state=None, carry_size=None) -> Cell:
    """A :class:`rnnjax.Cell` from the coefficient functions of a linear recurrence.

    ``coefficients(params, x[..., D]) -> (a, b)``; ``log_coefficients`` the same in log space, or None;
    ``readout(params, carry[..., S], x[..., D]) -> y``, or None when the output is the carry itself;
    ``to_state``/``from_state`` map the carry (real, ``carry_size`` wide, default ``hidden_size``) to the
    state the recurrence runs on (complex for the LRU) and back.
    """
    output = readout or (lambda params, carry, x: carry)
    to_state = to_state or (lambda c: c)
    from_state = from_state or (lambda s: s)

    def step(params, carry, x):
        _checks.rank(x, 1, "[D] (one time step of one example)", name, "x")
        _checks.floating(x, "x", name)
        _checks.features(x, params, name)
        a, b = coefficients(params, x)
        s = a * to_state(carry) + b
        carry = from_state(s)
        return carry, output(params, carry, x)

    def parallel(params, xs, carry, mask, reverse):
        if xs.shape[0] == 0:  # as lax.scan: the carry unchanged, no outputs
            return carry, jnp.zeros((0, hidden_size), xs.dtype)
        log_space = log_coefficients is not None
        a, b = (log_coefficients if log_space else coefficients)(params, xs)
        if mask is not None:  # a masked step is the identity map: a = 1, b = 0
            m = mask[:, None]
            a = jnp.where(m, a, 0.0 if log_space else 1.0)
            b = jnp.where(m, b, _LOG_ZERO if log_space else 0.0)
        states = from_state(linear_scan(a, b, to_state(carry), reverse, log_space))
        ys = output(params, states, xs)
        if mask is not None:
            ys = jnp.where(mask[:, None], ys, jnp.zeros_like(ys))
        return states[0] if reverse else states[-1], ys

    def checked_init(key, input_size):
        _checks.hidden_size(input_size, "input_size")
        return init(key, input_size)

    def zeros(params):
        return jnp.zeros((carry_size or hidden_size,), params["w_x"].dtype)

    return Cell(checked_init, step, zeros, None, hidden_size, name, parallel, readout)


def min_gru(hidden_size: int, log_space: bool = True) -> Cell:
    """minGRU (Feng et al. 2024): a GRU whose gates see only the input.

    With ``[k_z, k_h] = W_x x_t + b``:

        z_t = σ(k_z),   h~_t = g(k_h) (log_space) or k_h (vanilla)
        h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h~_t,   output y_t = h_t

    where ``g(k) = k + 1/2`` for ``k ≥ 0`` and ``σ(k)`` below, so ``h~ > 0`` and the parallel unroll
    can run in log space: ``log(1 - z) = -softplus(k_z)``, ``log z = -softplus(-k_z)``.

    Shapes: ``x_t`` ``[D]``, ``h_t`` ``[H]``; params ``w_x`` ``[D, 2H]`` (gates z, h~; Glorot uniform),
    ``b`` ``[2H]`` (zeros).
    """
    H = _checks.hidden_size(hidden_size)
    candidate = _positive if log_space else (lambda k: k)

    def init(key, input_size):
        return {"w_x": inits.glorot_uniform()(key, (input_size, 2 * H)), "b": jnp.zeros((2 * H,))}

    def coefficients(params, x):
        k_z, k_h = jnp.split(affine(x, params["w_x"], params["b"]), 2, axis=-1)
        return jax.nn.sigmoid(-k_z), jax.nn.sigmoid(k_z) * candidate(k_h)

    def log_coefficients(params, xs):
        k_z, k_h = jnp.split(affine(xs, params["w_x"], params["b"]), 2, axis=-1)
        return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + _log_positive(k_h)

    return _make_linear_cell(f"min_gru({H}{'' if log_space else ', log_space=False'})", H, init, coefficients,
                             log_coefficients if log_space else None)


def min_lstm(hidden_size: int, log_space: bool = True) -> Cell:
    """minLSTM (Feng et al. 2024): an LSTM whose gates see only the input, forget and input gate normalised.

    With ``[k_f, k_i, k_h] = W_x x_t + b``:

        f_t = σ(k_f), i_t = σ(k_i),   f'_t = f_t / (f_t + i_t), i'_t = i_t / (f_t + i_t)
        h~_t = g(k_h) (log_space) or k_h (vanilla)
        h_t = f'_t ⊙ h_{t-1} + i'_t ⊙ h~_t,   output y_t = h_t

    (the normalisation makes the state time-independent in scale; there is no output gate and no
    separate memory cell). In log space, with ``d = softplus(-k_f) - softplus(-k_i)``:
    ``log f' = -softplus(d)`` and ``log i' = -softplus(-d)``.

    Shapes: ``x_t`` ``[D]``, ``h_t`` ``[H]``; params ``w_x`` ``[D, 3H]`` (gates f, i, h~; Glorot
    uniform), ``b`` ``[3H]`` (zeros).
    """
    H = _checks.hidden_size(hidden_size)
    candidate = _positive if log_space else (lambda k: k)

    def init(key, input_size):
        return {"w_x": inits.glorot_uniform()(key, (input_size, 3 * H)), "b": jnp.zeros((3 * H,))}

    def coefficients(params, x):
        k_f, k_i, k_h = jnp.split(affine(x, params["w_x"], params["b"]), 3, axis=-1)
        f, i = jax.nn.sigmoid(k_f), jax.nn.sigmoid(k_i)
        return f / (f + i), i / (f + i) * candidate(k_h)

    def log_coefficients(params, xs):
        k_f, k_i, k_h = jnp.split(affine(xs, params["w_x"], params["b"]), 3, axis=-1)
        d = jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i)
        return -jax.nn.softplus(d), -jax.nn.softplus(-d) + _log_positive(k_h)

    return _make_linear_cell(f"min_lstm({H}{'' if log_space else ', log_space=False'})", H, init, coefficients,
                             log_coefficients if log_space else None)


LRU_ACTIVATIONS = {"gelu": jax.nn.gelu, "identity": lambda y: y}


def lru(hidden_size: int, state_size: int | None = None, r_min: float = 0.9, r_max: float = 0.999,
        max_phase: float = 2 * math.pi, activation: str = "gelu") -> Cell:
    """The Linear Recurrent Unit (Orvieto et al. 2023): a complex diagonal linear recurrence.

        x_t = λ ⊙ x_{t-1} + γ ⊙ (B u_t),     λ = exp(-exp(ν) + i exp(θ)),  γ = sqrt(1 - |λ|²)
        y_t = act(Re(C x_t) + D u_t)

    ``|λ| = exp(-exp(ν)) < 1`` for every ``ν``, so the recurrence is stable by construction. Init: ``|λ|``
    uniform on the ring ``[r_min, r_max]`` (by area) and phase uniform on ``[0, max_phase]``; ``B`` and
    ``C`` complex Gaussian (variance ``1/(2D)`` and ``1/N`` per part), ``D`` Gaussian ``/ sqrt(D)``; ``γ``
    keeps the state's scale independent of ``|λ|`` at init. The paper's LRU layer is linear and its
    network puts a GELU/GLU after each one; ``activation="gelu"`` (default) puts the GELU inside the
    cell so a single cell is a usable model, ``"identity"`` gives the linear layer.

    Shapes: input ``u_t`` ``[D]``, output ``y_t`` ``[H]``, state ``x_t`` ``N`` complex numbers, carried
    as the real ``[2N]`` array ``(Re x, Im x)``. Params: ``nu_log``, ``theta_log``, ``gamma_log`` ``[N]``;
    ``w_x`` ``[D, 2N]`` (``(Re B, Im B)`` transposed), ``w_out`` ``[2N, H]`` (the real-linear map
    ``(Re x, Im x) -> Re(C x)``), ``w_skip`` ``[D, H]`` (``D``).
    """
    H = _checks.hidden_size(hidden_size)
    N = H if state_size is None else _checks.hidden_size(state_size, "state_size")
    if not 0.0 <= r_min < r_max <= 1.0:
        raise ValueError(f"lru: need 0 <= r_min < r_max <= 1, got r_min={r_min}, r_max={r_max}")
    if not max_phase > 0:
        raise ValueError(f"lru: max_phase must be positive, got {max_phase}")
    act = LRU_ACTIVATIONS[_checks.choice(activation, LRU_ACTIVATIONS, "activation")]

    def init(key, input_size):
        k_r, k_p, k_b, k_c, k_d = jax.random.split(key, 5)
        u = jax.random.uniform(k_r, (N,))
        nu_log = jnp.log(-0.5 * jnp.log(u * (r_max**2 - r_min**2) + r_min**2))
        theta_log = jnp.log(max_phase * jax.random.uniform(k_p, (N,), minval=1e-6))
        modulus = jnp.exp(-jnp.exp(nu_log))
        c = jax.random.normal(k_c, (2, H, N)) / math.sqrt(N)  # C = c[0] + i c[1]
        return {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": jnp.log(jnp.sqrt(1.0 - modulus**2)),
            "w_x": jax.random.normal(k_b, (input_size, 2 * N)) / math.sqrt(2 * input_size),
            # Re(C x) = Re(C) Re(x) - Im(C) Im(x)
            "w_out": jnp.concatenate([c[0].T, -c[1].T], axis=0),
            "w_skip": jax.random.normal(k_d, (input_size, H)) / math.sqrt(input_size),
        }

    def coefficients(params, u):
        lam = jnp.exp(lax.complex(-jnp.exp(params["nu_log"]), jnp.exp(params["theta_log"])))
        bu = u @ params["w_x"]
        bu = lax.complex(bu[..., :N], bu[..., N:])
        gamma = jnp.exp(params["gamma_log"])
        lead = (1,) * (bu.ndim - 1)
        return jnp.broadcast_to(lam.reshape(lead + (N,)), bu.shape), gamma.reshape(lead + (N,)) * bu

    def readout(params, carry, u):
        return act(carry @ params["w_out"] + u @ params["w_skip"])

    def to_state(carry):
        return lax.complex(carry[..., :N], carry[..., N:])

    def from_state(s):
        return jnp.concatenate([jnp.real(s), jnp.imag(s)], axis=-1)

    return _make_linear_cell(f"lru({H}, state_size={N})", H, init, coefficients, None, readout, to_state,
                             from_state, carry_size=2 * N)
