"""Truncated backpropagation through time (Williams & Peng 1990; Sutskever 2013, §2.8.6).

The sequence is cut into chunks of ``k`` steps. The carry flows forward through every chunk, but its
gradient is stopped at each boundary (``jax.lax.stop_gradient``), so each chunk's loss backpropagates at
most ``k`` steps. Training on a stream, the carry also passes from one batch to the next (char-rnn; the
TensorFlow PTB model), which is how the model still sees context longer than ``k``.

This is the k1 = k2 = k form. The general form (update every k1 steps, backpropagate k2 ≥ k1) lets each
step's gradient see k2 steps back, at k2/k1 times the cost; the chunked form gets the same effect more
cheaply by making every chunk a training example and carrying the state across, which is what the
practical recipes above use, so it is the one provided.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import lax

from rnnjax import _checks
from rnnjax.types import Cell
from rnnjax.unroll import unroll


def check_chunk(chunk, length: int) -> int:
    """``chunk`` must be an integer in ``[1, length]``."""
    chunk = _checks.hidden_size(chunk, "chunk length")
    if chunk > length:
        raise ValueError(f"chunk length {chunk} is larger than the sequence ({length} steps)")
    return chunk


def truncated_unroll(cell: Cell, params, xs, chunk: int, carry=None, mask=None, fast: bool = True):
    """:func:`rnnjax.unroll` with the carry's gradient stopped every ``chunk`` steps.

    Values are exactly those of ``unroll``; only gradients differ: ``∂L/∂h`` does not flow from chunk
    ``i + 1`` into chunk ``i``. With ``chunk = T`` this is full BPTT. A last, shorter chunk takes the
    remainder when ``chunk`` does not divide ``T``.

    Args:
      cell, params, carry, mask, fast: as for :func:`rnnjax.unroll`; ``xs`` is ``[T, D]``.
      chunk: ``k``, between 1 and ``T``.

    Returns:
      ``(carry, ys [T, H])``; the carry is that after the last step, with its gradient intact, so a
      stream can stop it itself before the next batch (as ``rnnjax.train`` does for stateful steps).
    """
    _checks.sequence(xs, mask, params, cell.name)
    T = xs.shape[0]
    chunk = check_chunk(chunk, T)
    if carry is None:
        carry = cell.initial_carry(params)
    n, rest = divmod(T, chunk)

    def run(carry, x_chunk, m_chunk):
        return unroll(cell, params, x_chunk, lax.stop_gradient(carry), mask=m_chunk, fast=fast)

    # The first chunk keeps the incoming carry's gradient (the caller decides whether to stop it).
    carry, ys_first = unroll(cell, params, xs[:chunk], carry, None if mask is None else mask[:chunk], fast=fast)
    ys = [ys_first]
    if n > 1:
        x_rest = xs[chunk : n * chunk].reshape((n - 1, chunk) + xs.shape[1:])
        m_rest = None if mask is None else mask[chunk : n * chunk].reshape(n - 1, chunk)
        carry, ys_mid = lax.scan(lambda c, xm: run(c, *xm), carry, (x_rest, m_rest))
        ys.append(ys_mid.reshape((-1,) + ys_mid.shape[2:]))
    if rest:
        carry, ys_last = run(carry, xs[n * chunk :], None if mask is None else mask[n * chunk :])
        ys.append(ys_last)
    return carry, jnp.concatenate(ys, axis=0)
