"""The fast path of :func:`rnnjax.unroll`: a recurrent scan with a hand-written backward pass.

Plain autodiff through ``lax.scan`` transposes every op of the step, the recurrent weight's gradient
``u_t^T δ_t`` included, one small product per step. The fast path splits the work three ways, on stable
JAX only (``lax.scan``, ``jax.custom_vjp``, ``lax.stop_gradient``, ``lax.optimization_barrier``):

1. The input projection ``XW = X W_x`` is one matmul over every step (and, under ``jax.vmap``, every
   example) before the recurrence; autodiff transposes it into one matmul for ``dW_x`` after it. The bias
   ``b`` is added inside each step (``_biased``); its gradient is the sum over steps of ``XW + b``'s.
2. The forward scan runs the cell's ``core`` with the weights held constant and saves, per step, the
   carry it started from and every recurrent product ``u_t W``; an output that is a leaf of the next carry
   (no mask, no resets) is read back from the saved carries rather than stacked again.
3. A ``jax.custom_vjp`` identity (``_attach``) hands the outputs on. Its backward scan takes the vjp of the
   cell's own ``core`` with each recurrent product replaced by its saved value plus a zero input ``z``
   (``_ghost_matmul``): the cotangent of ``z`` is the pre-activation gradient ``δ_t`` and the cotangent of
   ``u`` is ``δ_t W^T``. So the gradients are the cell's own derivatives, never a second derivation that
   could disagree, and no recurrent product of the forward pass is redone. The scan carries only the
   carry's cotangent and stacks ``δ``.

The weight gradient ``dW = Σ_t u_t^T δ_t`` is left to autodiff: ``_attach`` also takes the "ghost"
``stop_gradient(U) @ W`` (value unused, so XLA drops it) and returns ``δ`` as its cotangent, so
transposing that one product forms ``dW`` as one ``[F, T·B] @ [T·B, G]`` matmul after the backward scan
(cuDNN's layout; Appleyard, Kocisky & Blunsom 2016, "Optimizing performance of recurrent neural networks
on GPUs"). Because it is an ordinary product, ``jax.vmap`` treats it as one: over examples (a batch) the
contraction runs over time and batch together; under ``vmap`` of ``grad`` (per-example gradients) or over
the weights themselves (a sweep of models) it stays per example or per model. No batching rule is written
by hand: the scans batch as any ``lax.scan`` does, the batch a real axis of every matmul.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax._ops import add_bias

INPUT_PARAMS = ("w_x",)


def masked(m, new_carry, old_carry, y):
    """Where ``m`` is false (padding), keep the old carry and output zeros. ``m``: ``[...]`` or None."""
    if m is None:
        return new_carry, y

    def where(a, b):
        mm = m.reshape(m.shape + (1,) * (a.ndim - m.ndim))
        return jnp.where(mm, a, b)

    carry = jax.tree.map(where, new_carry, old_carry)
    return carry, where(y, jnp.zeros_like(y))


def reset(r, start, carry):
    """Where ``r`` is true, ``start`` in place of ``carry`` (a new sequence begins). ``r``: ``[...]`` or None."""
    if r is None:
        return carry

    def where(a, b):
        rr = r.reshape(r.shape + (1,) * (b.ndim - r.ndim))
        return jnp.where(rr, a, b)

    return jax.tree.map(where, start, carry)


def split_params(params):
    """Recurrent matrices (``w_*`` except ``w_x``) and the other params used inside the step."""
    rec = {k: v for k, v in params.items() if k.startswith("w_") and k not in INPUT_PARAMS}
    pointwise = {k: v for k, v in params.items() if k not in rec and k not in INPUT_PARAMS}
    return rec, pointwise


@jax.custom_vjp
def _ghost_matmul(u, z, w_t):
    """Stands in for ``u @ w`` in the backward step: its value is ``z`` (zero); ``w_t = w.T``. See the
    module docstring."""
    del u, w_t
    return z


def _ghost_fwd(u, z, w_t):
    return z, w_t


def _ghost_bwd(w_t, g):
    # The weight gradient is deliberately absent: the ghost product outside the scans forms it.
    return g @ w_t, g, None


_ghost_matmul.defvjp(_ghost_fwd, _ghost_bwd)


@jax.custom_vjp
def _transposed(w):
    """``w.T``, whose backward pass keeps XLA from fusing the transpose back into the product before it."""
    return w.T


def _transposed_fwd(w):
    return w.T, None


def _transposed_bwd(_, g):
    return (lax.optimization_barrier(g).T,)


_transposed.defvjp(_transposed_fwd, _transposed_bwd)


def _product(u, w):
    """``u [..., F] @ w [F, G]``, differentiated into one ``[G, N] @ [N, F]`` matmul over every leading axis.

    Why: autodiff of ``u @ w`` asks XLA for ``transpose(dot(g, u))``, which XLA:CPU computes by first
    copying the cotangent ``g`` (``[T, B, G]``) into a transposed layout, several times the cost of the
    product itself (README, Performance); with the transpose of the small ``[G, F]`` result kept apart by
    an optimisation barrier, the product reads both operands as they are.
    """
    return u @ _transposed(w).T


def _chunks(a, width):
    """Splits the feature axis of ``a`` (``[..., k*width]``) into a tuple of ``k`` arrays ``[..., width]``.

    Why: inside a scan, XLA:CPU fuses the per-step ``dynamic-slice`` of a ``[T, B, k*H]`` array with the
    gate slicing that follows into one elementwise loop that it vectorises poorly; scanning over per-gate
    arrays and joining them in the body lets the simplifier turn each gate's slice back into a plain read.
    """
    if a.shape[-1] % width or a.shape[-1] == width:
        return (a,)
    return tuple(jnp.split(a, a.shape[-1] // width, axis=-1))


def _join(chunks):
    return chunks[0] if len(chunks) == 1 else jnp.concatenate(chunks, axis=-1)


def _width(carry):
    return jax.tree.leaves(carry)[0].shape[-1]


def _biased(xw, params):
    """``xw + b`` where the cell has an input bias ``b``.

    Why here and not on the whole ``[T, ...]`` projection: under ``jax.vmap`` an elementwise op between a
    batched array and an unbatched one moves the batch axis to the front, so adding ``b`` to the stacked
    projection would turn ``[T, B, G]`` into ``[B, T, G]`` and cost a transposed copy of it (and of every
    gate slice) before the scan; inside the step the batch axis is in front already.
    """
    return add_bias(xw, params["b"]) if "b" in params else xw


def _with_noise(xw, noise):
    """The core's input: ``xw``, or ``(xw, noise)`` for a cell with per-step noise (``Cell.step_noise``)."""
    return xw if noise is None else (xw, noise)


def _forward(core, rec, pointwise, xw, carry, mask, reverse, resets=None, start=None, noise=None):
    """The forward scan: ``(last, ys)`` and the residuals ``(carries, outs)`` (each ``[T, ...]``); a step
    with ``resets`` true starts from ``start``, and the carry saved for it is that one."""
    params = {**rec, **pointwise}

    def body(c, inp):
        xw_t, m_t, r_t, d_t = inp
        c = reset(r_t, start, c)
        xw_t = _with_noise(_biased(_join(xw_t), pointwise), d_t)
        outs = {}

        def matmul(name, u):
            outs[name] = u @ rec[name]
            return outs[name]

        new, y = core(matmul, params, c, xw_t)
        new, y = masked(m_t, new, c, y)
        # Where the output is a leaf of the new carry (no mask, no resets), it is the next step's saved carry.
        same = [i for i, leaf in enumerate(jax.tree.leaves(new)) if leaf is y] if resets is None else []
        found[:] = same[:1]
        return new, (None if found else y, c, outs)

    found = []
    width = _width(carry)
    last, (ys, carries, outs) = lax.scan(body, carry, (_chunks(xw, width), mask, resets, noise), reverse=reverse)
    if found:  # read the outputs back from the saved carries (one stacked array fewer per step)
        before, after = jax.tree.leaves(carries)[found[0]], jax.tree.leaves(last)[found[0]][None]
        ys = jnp.concatenate([after, before[:-1]] if reverse else [before[1:], after])[: before.shape[0]]  # T may be 0
    return (last, ys), (carries, outs)


def _recurrent_inputs(core, params, carries, xw, outs, noise=None):
    """Every step's ``u`` of every recurrent product ``u @ W``, from the saved carries, all steps at once.

    ``core`` is elementwise over leading axes, so it runs on the stacked ``[T, ...]`` carries; only what
    leads to each ``u`` is kept (for most cells ``u`` is the carry's ``h`` itself).
    """
    us = {}

    def saved(name, u):
        us[name] = u
        return outs[name]

    core(saved, params, carries, _with_noise(_biased(xw, params), noise))
    return us


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _attach(core, reverse, out, residuals, rec, pointwise, xw, ghosts, carry, mask, resets, noise):
    """``out`` unchanged; its backward pass is the recurrence's (see the module docstring)."""
    del core, reverse, residuals, rec, pointwise, xw, ghosts, carry, mask, resets, noise
    return out


def _attach_fwd(core, reverse, out, residuals, rec, pointwise, xw, ghosts, carry, mask, resets, noise):
    del core, reverse, ghosts, carry
    return out, (residuals, rec, pointwise, xw, mask, resets, noise)


def _attach_bwd(core, reverse, saved, cotangents):
    (carries, outs), rec, pointwise, xw, mask, resets, noise = saved
    d_last, d_ys = cotangents
    # Transposed once, outside the loop: a product with a transposed operand inside it measured slower.
    rec_t = {k: w.T for k, w in rec.items()}

    shared = []  # products whose cotangent is d_xw itself (found while tracing the body)
    rest = {k: v for k, v in pointwise.items() if k != "b"}  # accumulated in the scan; b's gradient is d_xw's sum

    def body(state, inp):
        d_carry, d_pw_sum = state
        c, xw_t, outs_t, m_t, r_t, d_t, dy_t = inp

        def step(c, xwb_t, zs, pw):
            def product(name, u):
                return outs_t[name] + _ghost_matmul(u, zs[name], rec_t[name])

            new, y = core(product, {**rec, **pw}, c, _with_noise(xwb_t, d_t))
            return masked(m_t, new, c, y)

        zeros = jax.tree.map(jnp.zeros_like, outs_t)
        # xw + b is differentiated as one input: b's cotangent is that input's, summed after the scan
        _, vjp = jax.vjp(step, c, _biased(xw_t, pointwise), zeros, rest)
        d_c, d_xw, d_z, d_pw = vjp((d_carry, dy_t))
        d_c = reset(r_t, jax.tree.map(jnp.zeros_like, d_c), d_c)  # a reset step's carry came from no step
        # Where the cell adds the input projection to a product (a = xw + u @ W: the LSTM, the RNN), the
        # transpose of that sum hands both the same cotangent; stacking it once saves a [T, B, G] buffer
        # and its copy. If JAX ever handed out equal but distinct values, this would only be slower.
        shared[:] = [k for k, v in d_z.items() if v is d_xw][:1]
        return (d_c, jax.tree.map(jnp.add, d_pw_sum, d_pw)), (None if shared else d_xw, d_z)

    init = (d_last, jax.tree.map(jnp.zeros_like, rest))
    scanned = (carries, xw, outs, mask, resets, noise, d_ys)
    (d_carry, d_pw), (d_xw, d_z) = lax.scan(body, init, scanned, reverse=not reverse)
    if shared:
        d_xw = d_z[shared[0]]
    if "b" in pointwise:
        d_pw = {**d_pw, "b": d_xw.sum(0)}
    return None, None, None, d_pw, d_xw, d_z, d_carry, None, None, None


_attach.defvjp(_attach_fwd, _attach_bwd)


def unroll(core, params, xs, carry, mask=None, reverse=False, resets=None, start=None, noise=None):
    """Fast-path unroll of a cell's ``core`` over ``xs`` ``[T, D]``; returns ``(carry, ys)``. ``noise``:
    per-step draws ``[T, ...]`` (``Cell.step_noise``), handed to the core with each step's input; a
    constant, not differentiated.

    Callers should use :func:`rnnjax.unroll`, which checks the inputs and picks this path by default.
    Reverse mode only: ``jax.jvp`` of it fails (``custom_vjp``); ``unroll(..., fast=False)`` has both.
    """
    rec, pointwise = split_params(params)
    xw = _product(xs, params["w_x"])  # the bias ``b`` is added inside the steps (_biased)
    # The forward pass sees constants only; _attach supplies every derivative.
    rec_c, pointwise_c, xw_c, carry_c = lax.stop_gradient((rec, pointwise, xw, carry))
    start = None if resets is None else lax.stop_gradient(start)  # the carry a new sequence starts from: a constant
    noise = lax.stop_gradient(noise)
    out, residuals = _forward(core, rec_c, pointwise_c, xw_c, carry_c, mask, reverse, resets, start, noise)
    carries, outs = residuals
    us = _recurrent_inputs(core, {**rec_c, **pointwise_c}, carries, xw_c, outs, noise)
    ghosts = {k: _product(lax.stop_gradient(us[k]), rec[k]) for k in rec}
    return _attach(core, bool(reverse), out, residuals, rec_c, pointwise, xw, ghosts, carry, mask, resets, noise)
