"""Unrolling a cell over a sequence with ``jax.lax.scan``: backpropagation through time.

The weights are shared by every step; ``jax.grad`` through the scan sums each step's contribution to
their gradient (Werbos 1990, "Backpropagation through time: what it does and how to do it").
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from rnnjax import _checks, fused
from rnnjax.types import Cell


def unroll(cell: Cell, params, xs, carry=None, mask=None, reverse: bool = False, fast: bool = True):
    """Runs ``cell`` over the sequence ``xs``: ``carry_t, y_t = cell.step(params, carry_{t-1}, x_t)``.

    Args:
      cell: a :class:`rnnjax.Cell`.
      params: the cell's params, from ``cell.init(key, D)``.
      xs: ``[T, D]``, floating point; one example (batch with ``jax.vmap``).
      carry: the state before the first step; ``cell.initial_carry(params)`` (zeros) if ``None``.
      mask: ``[T]`` of valid steps (bool or 0/1). At a masked step the carry is left unchanged and the
        output is zero, so with padding at the end the returned carry is the one after the last valid
        step, in either direction.
      reverse: run from ``t = T-1`` down to 0; ``ys[t]`` still lines up with ``xs[t]``.
      fast: use :mod:`rnnjax.fused` where the cell has a ``core``: a hand-written backward pass that
        reuses the forward pass's recurrent products, with the weight gradients formed beside the
        recurrence (CPU) or as one large matmul after it (GPU/TPU). The two paths give the same values
        and gradients; ``fast=False`` is plain autodiff through ``lax.scan`` and also supports
        forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``).

    Returns:
      ``(carry, ys)``: the final carry and the outputs ``[T, H]``.
    """
    _checks.sequence(xs, mask, params, cell.name)
    if carry is None:
        carry = cell.initial_carry(params)
    if mask is not None:
        mask = jnp.asarray(mask) != 0
    if fast and cell.core is not None:
        return fused.unroll(cell.core, params, xs, carry, mask, reverse)

    def body(c, inp):
        x, m = inp
        new, y = cell.step(params, c, x)
        return fused.masked(m, new, c, y)

    return lax.scan(body, carry, (xs, mask), reverse=reverse)
