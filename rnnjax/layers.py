"""Stacked and bidirectional recurrent networks built from cells.

Layer ``l`` reads the outputs of layer ``l-1``; a bidirectional layer runs one cell forward and another
backward over the same inputs and concatenates their outputs, ``[y_fwd, y_bwd]`` along features (the
layout of PyTorch's ``bidirectional=True`` and of Schuster & Paliwal 1997).
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from rnnjax import _checks, _ops
from rnnjax.types import Cell, Net
from rnnjax.unroll import unroll


def stacked(
    cells: Cell | Sequence[Cell],
    num_layers: int | None = None,
    bidirectional: bool = False,
    fast: bool = True,
    remat: int | None = None,
    parallel: bool | None = None,
    dropout: float = 0.0,
) -> Net:
    """A multi-layer recurrent network.

    Args:
      cells: one cell used for every layer (with ``num_layers``), or a sequence of cells, one per layer.
      num_layers: the depth when ``cells`` is a single cell (default 1).
      bidirectional: each layer also runs a second cell (own params) from the last valid step back.
      fast, remat, parallel: passed to :func:`rnnjax.unroll` (``remat``: rematerialise each layer in chunks
        of this many steps, for long sequences; ``parallel``: the linear cells' associative scan).
      dropout: dropout on the outputs of every layer but the last, as the next layer reads them (Zaremba et
        al. 2014, "Recurrent neural network regularization": the non-recurrent connections; PyTorch's
        ``nn.LSTM(dropout=...)``). Only with a ``key``; a fresh mask at every step.

    Returns:
      A :class:`rnnjax.Net`. ``params`` is a tuple with one dict per layer, or per layer
      ``{"fwd": ..., "bwd": ...}`` when bidirectional; the carry has the same layout.
      ``apply(params, xs [T, D], mask=None, carry=None, resets=None, key=None) -> (ys [T, O], carry)`` with
      ``O = H`` (``2H`` bidirectional) of the last layer. With a mask (padding at the end), outputs at
      padded steps are zero and each direction's carry is the one after its last valid step. ``resets``
      ``[T]`` marks the steps where a new sequence starts (:func:`rnnjax.unroll`); a backward direction
      resets on entering the step before each start, so no direction reads across a boundary. ``key``:
      for cells with noise (recurrent dropout), one key per layer and direction folded from it, and the
      between-layer dropout's.
    """
    if isinstance(cells, Cell):
        cells = (cells,) * _checks.hidden_size(1 if num_layers is None else num_layers, "num_layers")
    else:
        cells = tuple(cells)
        if not cells or not all(isinstance(c, Cell) for c in cells):
            raise TypeError("cells must be a Cell or a non-empty sequence of Cells")
        if num_layers is not None and num_layers != len(cells):
            raise ValueError(f"num_layers={num_layers} but {len(cells)} cells were given")
    width = 2 if bidirectional else 1
    dropout = _checks.rate(dropout, "stacked: dropout")

    def init(key, input_size):
        _checks.hidden_size(input_size, "input_size")
        params = []
        for cell, k in zip(cells, jax.random.split(key, len(cells))):
            if bidirectional:
                kf, kb = jax.random.split(k)
                params.append({"fwd": cell.init(kf, input_size), "bwd": cell.init(kb, input_size)})
            else:
                params.append(cell.init(k, input_size))
            input_size = width * cell.hidden_size
        return tuple(params)

    def initial_carry(params):
        if bidirectional:
            return tuple(
                {"fwd": c.initial_carry(p["fwd"]), "bwd": c.initial_carry(p["bwd"])}
                for c, p in zip(cells, params)
            )
        return tuple(c.initial_carry(p) for c, p in zip(cells, params))

    def apply(params, xs, mask=None, carry=None, resets=None, key=None):
        if len(params) != len(cells):
            raise ValueError(f"params hold {len(params)} layers but the net has {len(cells)}")
        if carry is None:
            carry = initial_carry(params)
        ys, carries = xs, []
        back = None
        if resets is not None and bidirectional:  # going down, a piece ends where the next one starts
            r = jnp.asarray(resets) != 0
            back = jnp.concatenate([r[1:], jnp.zeros((1,), bool)])
        for layer, (cell, p, c) in enumerate(zip(cells, params, carry)):
            k = (None, None) if key is None else (jax.random.fold_in(key, 2 * layer), jax.random.fold_in(key, 2 * layer + 1))
            if bidirectional:
                cf, yf = unroll(cell, p["fwd"], ys, c["fwd"], mask, fast=fast, remat=remat, parallel=parallel, resets=resets, key=k[0])
                cb, yb = unroll(cell, p["bwd"], ys, c["bwd"], mask, reverse=True, fast=fast, remat=remat, parallel=parallel,
                                resets=back, key=k[1])
                ys = jnp.concatenate([yf, yb], axis=-1)
                carries.append({"fwd": cf, "bwd": cb})
            else:
                c, ys = unroll(cell, p, ys, c, mask, fast=fast, remat=remat, parallel=parallel, resets=resets, key=k[0])
                carries.append(c)
            if key is not None and layer < len(cells) - 1:
                ys = _ops.dropout(jax.random.fold_in(key, 2 * len(cells) + layer), dropout, ys)
        return ys, tuple(carries)

    return Net(init, apply, initial_carry, width * cells[-1].hidden_size)
