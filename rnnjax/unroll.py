"""Unrolling a cell over a sequence with ``jax.lax.scan``: backpropagation through time.

The weights are shared by every step; ``jax.grad`` through the scan sums each step's contribution to
their gradient (Werbos 1990, "Backpropagation through time: what it does and how to do it").
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks, cells, fused
from rnnjax.types import Cell


def unroll(cell: Cell, params, xs, carry=None, mask=None, reverse: bool = False, fast: bool = True,
           remat: int | None = None, parallel: bool | None = None, resets=None, key=None):
    """Runs ``cell`` over the sequence ``xs``: ``carry_t, y_t = cell.step(params, carry_{t-1}, x_t)``.

    Args:
      cell: a :class:`rnnjax.Cell`.
      params: the cell's params, from ``cell.init(key, D)``.
      xs: ``[T, D]``, floating point; one example (batch with ``jax.vmap``).
      carry: the state before the first step; ``cell.initial_carry(params)`` (zeros) if ``None``.
      mask: ``[T]`` of valid steps (bool or 0/1). At a masked step the carry is left unchanged and the
        output is zero, so with padding at the end the returned carry is the one after the last valid
        step, in either direction. Masked steps are computed on zeros, so whatever the padding holds
        (NaN and inf included) reaches neither the outputs nor any gradient.
      reverse: run from ``t = T-1`` down to 0; ``ys[t]`` still lines up with ``xs[t]``.
      fast: use :mod:`rnnjax.fused` where the cell has a ``core``: a hand-written backward pass that
        reuses the forward pass's recurrent products, with each weight gradient formed as one matmul
        over every step (and example) after the backward scan. The two paths give the same values
        and gradients; ``fast=False`` is plain autodiff through ``lax.scan`` and also supports
        forward-mode differentiation (``jax.jvp``, ``jax.jacfwd``).
      remat: rematerialise in chunks of this many steps: an outer ``lax.scan`` over chunks, each chunk's
        unroll under ``jax.checkpoint``, so the backward pass keeps only the carries at chunk boundaries
        and recomputes one chunk's forward pass at a time. Memory for the residuals falls from ``O(T)``
        steps to ``O(T / remat + remat)`` (least near ``remat = sqrt(T)``) for about one extra forward
        pass. The same values and gradients as without it; the chunks run the plain autodiff path
        whatever ``fast`` says. ``T`` need not be a multiple: the sequence is padded with masked steps,
        which change nothing.

      parallel: for the linear cells of :mod:`rnnjax.linear` (those with ``cell.parallel``): ``True``
        runs every step at once by ``jax.lax.associative_scan`` (O(log T) depth; reverse mode only);
        ``False`` the sequential ``lax.scan`` of ``step``; ``None`` (default) the parallel scan on GPU/TPU
        when ``fast``, and the sequential scan on CPU, where it measured faster for minGRU and minLSTM at
        every size tried (the LRU at batch 1 was the exception: README, "Linear recurrences"). The same
        values and gradients up to rounding.

      resets: ``[T]`` (bool or 0/1): where true, a new sequence starts at that step: the carry entering it
        is ``cell.initial_carry(params)`` (a constant: no gradient flows into it or back through it), as
        if the stream were cut there and each piece unrolled on its own (episode or document boundaries in
        one stream; Haiku's ``ResetCore``). In the order of processing: with ``reverse``, the carry
        entering step ``t`` on the way down. Not with ``parallel``.
      key: randomness for a cell with noise (``cell.noise``: :func:`rnnjax.recurrent_dropout`;
        ``cell.step_noise``: :func:`rnnjax.zoneout`), drawn for the whole sequence before the scan:
        ``cell.noise(params, key)`` and ``cell.step_noise(carry, jax.random.fold_in(key, 1), T)``. ``None``
        runs the cell without noise (evaluation).

    Returns:
      ``(carry, ys)``: the final carry and the outputs ``[T, H]``.
    """
    _checks.sequence(xs, mask, params, cell.name)
    _checks.against_cell(cell, params, carry, xs.shape[-1])
    if carry is None:
        carry = cell.initial_carry(params)
    if resets is not None:
        resets = jnp.asarray(resets) != 0
        if resets.shape != xs.shape[:1]:
            raise ValueError(f"{cell.name}: resets must be [T] = {xs.shape[:1]}, got shape {resets.shape}")
    if mask is not None:
        mask = jnp.asarray(mask) != 0
        # Masked steps see zeros, not the padding: a step computed on NaN or inf padding would put
        # 0 * NaN into every gradient even though its result is discarded.
        xs = jnp.where(mask[:, None], xs, jnp.zeros_like(xs))
    if parallel is None:
        parallel = fast and cell.parallel is not None and jax.default_backend() != "cpu"
    elif parallel and cell.parallel is None:
        raise ValueError(f"{cell.name} has no parallel unroll; only the linear cells of rnnjax.linear "
                         "(min_gru, min_lstm, lru) do")
    if parallel:
        if resets is not None:
            raise ValueError(f"{cell.name}: resets run on the sequential unroll; use parallel=False with them")
        if remat is not None:
            raise ValueError(f"{cell.name}: remat applies to the sequential unroll; the parallel scan keeps "
                             "O(T) states either way (use parallel=False with remat)")
        return cell.parallel(params, xs, carry, mask, reverse)
    start = None if resets is None else lax.stop_gradient(cell.initial_carry(params))
    if cell.prepare is not None:  # the derived weights once per sequence, not once per step
        params, cell = cell.prepare(params), cells.prepared(cell)
    noise = None
    if key is not None and cell.noise is not None:  # one draw per sequence: the same masks at every step
        params = cell.noise(params, key)
    if key is not None and cell.step_noise is not None:  # a draw per step, all made before the scan
        noise = cell.step_noise(carry, jax.random.fold_in(key, 1), xs.shape[0])
    if remat is not None:
        return _remat_unroll(cell, params, xs, carry, mask, reverse, _checks.positive_int(remat, f"{cell.name}: remat"),
                             resets, start, noise)
    return _unroll(cell, params, xs, carry, mask, resets, start, noise, reverse=reverse, fast=fast)


def _unroll(cell, params, xs, carry, mask, resets=None, start=None, noise=None, *, reverse, fast):
    if fast and cell.core is not None:
        return fused.unroll(cell.core, params, xs, carry, mask, reverse, resets, start, noise)

    def body(c, inp):
        x, m, r, d = inp
        c = fused.reset(r, start, c)
        new, y = cell.step(params, c, x if d is None else (x, d))
        return fused.masked(m, new, c, y)

    return lax.scan(body, carry, (xs, mask, resets, noise), reverse=reverse)


def _remat_unroll(cell, params, xs, carry, mask, reverse, size, resets=None, start=None, noise=None):
    T = xs.shape[0]
    n = -(-T // size)
    pad = n * size - T
    if pad:  # masked steps at the end: the carry passes through them unchanged, in either direction
        mask = jnp.ones(T, bool) if mask is None else mask
        mask = jnp.concatenate([mask, jnp.zeros(pad, bool)])
        xs = jnp.concatenate([xs, jnp.zeros((pad, *xs.shape[1:]), xs.dtype)])
        resets = None if resets is None else jnp.concatenate([resets, jnp.zeros(pad, bool)])
        noise = jax.tree.map(lambda d: jnp.concatenate([d, jnp.zeros((pad, *d.shape[1:]), d.dtype)]), noise)
    chunks = (xs.reshape(n, size, *xs.shape[1:]), None if mask is None else mask.reshape(n, size),
              None if resets is None else resets.reshape(n, size),
              jax.tree.map(lambda d: d.reshape(n, size, *d.shape[1:]), noise))

    # The chunks run the plain path: jax.checkpoint differentiates through forward mode, which the fast
    # path lacks, and a recomputing custom_vjp around it measured slower and kept more (its residuals,
    # the weights among them, were stacked once per chunk). prevent_cse=False: inside a scan the
    # recomputation cannot merge with the forward pass anyway.
    chunk = jax.checkpoint(functools.partial(_unroll, cell, reverse=reverse, fast=False), prevent_cse=False)

    carry, ys = lax.scan(lambda c, inp: chunk(params, inp[0], c, inp[1], inp[2], start, inp[3]), carry, chunks, reverse=reverse)
    ys = jax.tree.map(lambda y: y.reshape(n * size, *y.shape[2:])[:T], ys)
    return carry, ys

