"""The fast path of :func:`rnnjax.unroll`: a recurrent scan with a hand-written backward pass.

Plain autodiff through ``lax.scan`` transposes every op of the step generically. Here the backward pass is
written once, for every cell, from the cell's own ``core``:

- The forward scan saves, per step, the carry it started from and the value of every recurrent matrix
  product ``u @ W`` (and ``u`` itself unless ``u`` is a leaf of the carry, which is already saved).
- The backward scan takes the vjp of the cell's own ``core`` with each recurrent product replaced by its
  saved value plus a zero input ``z`` (``_ghost_matmul``): the cotangent of ``z`` is the pre-activation
  cotangent ``δ_t``, and the vjp with respect to ``u`` is ``δ_t W^T``. So the gradients are the cell's own
  derivatives, not a second derivation that could disagree, and no recurrent matmul is redone.
- Weight gradients ``dW = Σ_t u_t^T δ_t`` are formed in one of two ways (``hoist``):

  - ``hoist=True`` (cuDNN's layout; Appleyard, Kocisky & Blunsom 2016): the input projection
    ``XW = X W_x + b`` is one ``[T·B, D] @ [D, G]`` matmul before the scan, and each weight gradient is one
    ``[H, T·B] @ [T·B, G]`` matmul after the backward scan. Meant for GPUs and TPUs, where one large matmul
    is far cheaper than many small ones; the default there, though not yet measured on one here.
  - ``hoist=False``: projection and weight-gradient products stay inside the loops, as independent work
    beside the sequential ``δ_t W^T`` chain; XLA:CPU's thunk executor can run them on the other core.
    The default on CPU. In the side-by-side benchmark (``experiments/benchmark.py``, README) on a 2-core
    CPU the two layouts and plain autodiff trade places from run to run within about ±10% for the LSTM
    and GRU at the S and M shapes, the hoisted one ahead for the tanh RNN and at batch 1; but the hoisted
    layout keeps about 3x the memory for the backward pass (an LSTM(512), batch 32, T 10,000 step:
    14.4 GiB against 5.1 GiB), so it is not the CPU default.

The scan is a ``jax.experimental.hijax.VJPHiPrimitive`` rather than a ``jax.custom_vjp`` so that
``jax.vmap`` over examples reaches it *before* differentiation: a batch becomes extra leading axes of one
primitive, and the weight gradients contract over time and batch together (under ``custom_vjp`` each
example would build its own ``[H, G]`` gradient, summed afterwards). ``jax.vmap`` of ``jax.grad``
(per-example gradients) and ``vmap`` over the weights themselves (a sweep of models) still work, by
JAX's generic batching of the backward pass.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import hijax

from rnnjax._ops import affine

INPUT_PARAMS = ("w_x", "b")


def masked(m, new_carry, old_carry, y):
    """Where ``m`` is false (padding), keep the old carry and output zeros. ``m``: ``[...]`` or None."""
    if m is None:
        return new_carry, y

    def where(a, b):
        mm = m.reshape(m.shape + (1,) * (a.ndim - m.ndim))
        return jnp.where(mm, a, b)

    carry = jax.tree.map(where, new_carry, old_carry)
    return carry, where(y, jnp.zeros_like(y))


def split_params(params):
    """Recurrent matrices (``w_*`` except ``w_x``) and the other params used inside the step."""
    rec = {k: v for k, v in params.items() if k.startswith("w_") and k not in INPUT_PARAMS}
    pointwise = {k: v for k, v in params.items() if k not in rec and k not in INPUT_PARAMS}
    return rec, pointwise


@jax.custom_vjp
def _ghost_matmul(u, z, w):
    """Stands in for ``u @ w`` in the backward step: its value is ``z`` (zero); see the module docstring."""
    del u, w
    return z


def _ghost_fwd(u, z, w):
    return z, w


def _ghost_bwd(w, g):
    # The weight gradient is deliberately absent: the backward scan forms it from u_t and δ_t.
    return g @ w.T, g, None


_ghost_matmul.defvjp(_ghost_fwd, _ghost_bwd)


def _chunks(a, width):
    """Splits the gate axis of ``a`` (``[..., k*H]``) into a tuple of ``k`` arrays ``[..., H]``.

    Why: inside a scan, XLA:CPU fuses the per-step ``dynamic-slice`` of a ``[T, B, k*H]`` array with the
    gate slicing that follows into one elementwise loop that it does not vectorise (measured 3x slower
    for an LSTM step). Scanning over per-gate arrays and joining them in the body lets the simplifier
    turn each gate's slice of the join back into a plain read.
    """
    if a.shape[-1] % width or a.shape[-1] == width:
        return (a,)
    return tuple(jnp.split(a, a.shape[-1] // width, axis=-1))


def _join(chunks):
    return chunks[0] if len(chunks) == 1 else jnp.concatenate(chunks, axis=-1)


def _flat(a):
    """``[..., F] -> [N, F]``: steps and batch axes become one contraction axis (a vector becomes a row)."""
    return a.reshape(-1, a.shape[-1])


def _outer_sum(u, d):
    """``Σ u^T d`` over every leading axis: ``[..., F1], [..., F2] -> [F1, F2]``."""
    return _flat(u).T @ _flat(d)


def _zeros_if_symbolic(cts, avals):
    return jax.tree.map(
        lambda ct, aval: jnp.zeros(aval.shape, aval.dtype) if isinstance(ct, hijax.Zero) else ct,
        cts,
        avals,
        is_leaf=lambda x: isinstance(x, hijax.Zero),
    )


def _forward(prm, w_x, b, rec, pointwise, xs, carry, mask, save):
    """The forward scan; with ``save``, also the residuals the backward scan needs."""
    core, reverse, hoist, from_carry = prm["core"], prm["reverse"], prm["hoist"], prm["from_carry"]
    params = {**rec, **pointwise}
    width = next(iter(rec.values())).shape[0]
    xw = _chunks(affine(xs, w_x, b), width) if hoist else None

    def body(c, inp):
        x_t, m_t = inp
        us, outs = {}, {}

        def matmul(name, u):
            outs[name] = u @ rec[name]
            us[name] = u
            return outs[name]

        xw_t = _join(x_t) if hoist else affine(x_t, w_x, b)
        new, y = core(matmul, params, c, xw_t)
        new, y = masked(m_t, new, c, y)
        if not save:
            return new, y
        kept = {k: u for k, u in us.items() if k not in from_carry}
        return new, (y, c, kept, {k: _chunks(o, width) for k, o in outs.items()})

    last, out = lax.scan(body, carry, (xw if hoist else xs, mask), reverse=reverse)
    if not save:
        return (last, out), None
    ys, carries, us, outs = out
    return (last, ys), (w_x, b, rec, pointwise, xs, xw, mask, carries, us, outs)


def _backward(prm, residuals, cotangents):
    core, reverse, hoist, from_carry = prm["core"], prm["reverse"], prm["hoist"], prm["from_carry"]
    w_x, b, rec, pointwise, xs, xw, mask, carries, us, outs = residuals
    d_last, d_ys = cotangents
    width = next(iter(rec.values())).shape[0]
    carry_leaves = jax.tree.leaves(carries)
    us = {**us, **{name: carry_leaves[i] for name, i in from_carry.items()}}

    def body(state, inp):
        d_carry, acc = state
        c, step_in, m_t, outs_t, dy_t, u_t = inp
        xw_t = step_in if hoist else _chunks(affine(step_in, w_x, b), width)

        def step(c, xw_t, zs, pointwise):
            def saved(name, u):
                return _join(outs_t[name]) + _ghost_matmul(u, zs[name], rec[name])

            new, y = core(saved, {**rec, **pointwise}, c, _join(xw_t))
            return masked(m_t, new, c, y)

        zeros = {name: jnp.zeros_like(_join(o)) for name, o in outs_t.items()}
        _, vjp = jax.vjp(step, c, xw_t, zeros, pointwise)
        d_c, d_xw, d_z, d_pw = vjp((d_carry, dy_t))
        acc = {**acc, "pointwise": jax.tree.map(jnp.add, acc["pointwise"], d_pw)}
        if hoist:
            return (d_c, acc), (d_xw, {k: _chunks(v, width) for k, v in d_z.items()})
        # Independent of the δ W^T chain, so XLA runs these products beside it.
        d_xw = _join(d_xw)
        acc["w_x"] = acc["w_x"] + _outer_sum(step_in, d_xw)
        acc["b"] = acc["b"] + _flat(d_xw).sum(0)
        acc["rec"] = {k: acc["rec"][k] + _outer_sum(u_t[k], d_z[k]) for k in rec}
        return (d_c, acc), d_xw @ w_x.T

    acc = {"pointwise": jax.tree.map(jnp.zeros_like, pointwise)}
    if not hoist:
        acc.update(w_x=jnp.zeros_like(w_x), b=jnp.zeros_like(b), rec=jax.tree.map(jnp.zeros_like, rec))
    scanned = (carries, xw if hoist else xs, mask, outs, d_ys, us)
    (d_carry, acc), out = lax.scan(body, (d_last, acc), scanned, reverse=not reverse)
    if hoist:
        d_xw, d_z = out
        d_xw = _join(d_xw)
        # The point of the hoisted layout: one large matmul per weight matrix.
        d_w_x, d_b = _outer_sum(xs, d_xw), _flat(d_xw).sum(0)
        d_rec = {k: _outer_sum(us[k], _join(d_z[k])) for k in rec}
        d_xs = d_xw @ w_x.T
    else:
        d_w_x, d_b, d_rec, d_xs = acc["w_x"], acc["b"], acc["rec"], out
    d_mask = None if mask is None else jnp.zeros_like(mask)
    return d_w_x, d_b, d_rec, acc["pointwise"], d_xs, d_carry, d_mask


class _FusedScan(hijax.VJPHiPrimitive):
    """``(w_x, b, rec, pointwise, xs [T, *batch, D], carry, mask) -> (carry, ys [T, *batch, H])``."""

    def __init__(self, in_avals, core, reverse, hoist, from_carry):
        self.in_avals = in_avals
        self.params = dict(core=core, reverse=reverse, hoist=hoist, from_carry=from_carry)
        prm = dict(self.params, from_carry=dict(from_carry))
        out = jax.eval_shape(lambda *a: _forward(prm, *a, save=False)[0], *in_avals)
        self.out_aval = jax.tree.map(lambda s: hijax.ShapedArray(s.shape, s.dtype), out)
        super().__init__()

    def _prm(self):
        return dict(self.params, from_carry=dict(self.params["from_carry"]))

    def expand(self, *args):
        return _forward(self._prm(), *args, save=False)[0]

    def vjp_fwd(self, nzs_in, *args):
        del nzs_in
        return _forward(self._prm(), *args, save=True)

    def vjp_bwd_retval(self, residuals, cotangents):
        cotangents = _zeros_if_symbolic(cotangents, self.out_aval)
        return _backward(self._prm(), residuals, cotangents)

    def jvp(self, primals, tangents):
        raise NotImplementedError(
            "rnnjax's fast path (unroll(..., fast=True)) has a hand-written reverse-mode derivative only; "
            "for forward mode (jax.jvp, jax.jacfwd, jax.linearize) use unroll(..., fast=False)"
        )

    def batch(self, axis_data, args, dims):
        w_x, b, rec, pointwise, xs, carry, mask = args
        d_w_x, d_b, d_rec, d_pw, d_xs, d_carry, d_mask = dims
        if any(d is not None for d in jax.tree.leaves((d_w_x, d_b, d_rec, d_pw))):
            return super().batch(axis_data, args, dims)  # a sweep over weights: generic batching
        size = axis_data.size

        def put(a, d, at):
            if d is None:
                return jnp.broadcast_to(jnp.expand_dims(a, at), a.shape[:at] + (size,) + a.shape[at:])
            return jnp.moveaxis(a, d, at)

        xs = put(xs, d_xs, 1)
        carry = jax.tree.map(lambda a, d: put(a, d, 0), carry, d_carry)
        mask = None if mask is None else put(mask, d_mask, 1)
        args = (w_x, b, rec, pointwise, xs, carry, mask)
        prim = _FusedScan(jax.tree.map(jax.typeof, args), **self.params)
        last, ys = prim(*args)
        return (last, ys), (jax.tree.map(lambda _: 0, last), 1)

    def batch_dim_rule(self, axis_data, dims):
        return jax.tree.map(lambda _: 0, self.out_aval)


def _carry_inputs(core, params, carry, xw):
    """Which recurrent products take a leaf of the carry as ``u``: ``{matrix name: leaf index}``."""
    found = {}

    def probe(c, xw):
        leaves = jax.tree.leaves(c)

        def matmul(name, u):
            for i, leaf in enumerate(leaves):
                if u is leaf:
                    found[name] = i
            return u @ params[name]

        return core(matmul, params, c, xw)

    jax.eval_shape(probe, carry, xw)
    return tuple(sorted(found.items()))


def unroll(core, params, xs, carry, mask=None, reverse=False, hoist=None):
    """Fast-path unroll of a cell's ``core`` over ``xs`` ``[T, D]``; returns ``(carry, ys)``.

    Callers should use :func:`rnnjax.unroll`, which checks the inputs and picks this path by default.
    ``hoist=None`` picks per backend: ``False`` on CPU, ``True`` elsewhere (see the module docstring).
    """
    if hoist is None:
        hoist = jax.default_backend() != "cpu"
    rec, pointwise = split_params(params)
    xw0 = jax.ShapeDtypeStruct(params["b"].shape, jnp.result_type(xs, params["w_x"]))
    from_carry = _carry_inputs(core, params, carry, xw0)
    args = (params["w_x"], params["b"], rec, pointwise, xs, carry, mask)
    prim = _FusedScan(jax.tree.map(jax.typeof, args), core, bool(reverse), bool(hoist), from_carry)
    return prim(*args)
