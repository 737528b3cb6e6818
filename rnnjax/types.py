"""The shared vocabulary of rnnjax: cells, networks and their carries.

A *cell* is a NamedTuple of pure functions (the shape of Haiku's ``RNNCore`` and optax's
``GradientTransformation``):

- ``init(key, input_size) -> params``: a dict of arrays;
- ``step(params, carry, x) -> (carry, y)``: one time step for one example, ``x`` of shape ``[D]``; it is
  exactly a ``jax.lax.scan`` body once ``params`` is bound;
- ``initial_carry(params) -> carry``: the all-zero state.

Cells see one example; a batch is a ``jax.vmap``.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax

Array = jax.Array
Params = dict[str, Array]
Carry = Any


class LSTMCarry(NamedTuple):
    """State of an LSTM: the hidden state ``h`` ``[H]`` and the memory cell ``c`` ``[H]``."""

    h: Array
    c: Array


class Cell(NamedTuple):
    """A recurrent cell as pure functions; see the module docstring.

    Attributes:
      init: ``(key, input_size) -> params``.
      step: ``(params, carry, x[D]) -> (carry, y)``.
      initial_carry: ``(params) -> carry`` of zeros.
      core: optional, for the fast path of :func:`rnnjax.unroll`:
        ``core(rec, params, carry, xw) -> (carry, y)`` is ``step`` with the input projection
        ``xw = x @ params["w_x"] + params["b"]`` already done and every recurrent matrix product written
        as ``rec(name, u) = u @ params[name]``. ``None`` for cells that have no fast path.
      hidden_size: the size of the output ``H`` (the hidden state's, except for the LRU's larger state).
      name: a short description, used in error messages.
      parallel: optional, for linear recurrences (:mod:`rnnjax.linear`):
        ``parallel(params, xs[T, D], carry, mask, reverse) -> (carry, ys)``, the whole unroll at once by
        an associative scan; :func:`rnnjax.unroll` uses it when ``fast``. ``None`` for the others.
      readout: optional, ``readout(params, carry, x) -> y`` for a cell whose output is a function of the
        new carry other than its hidden state (the LRU), so that the gradient-flow diagnostics can follow
        a perturbation of the state into the same step's output. ``None`` when ``y`` is the hidden state.
      prepare: optional, ``prepare(params) -> weights`` for a cell whose recurrent matrix is computed from
        its params (the expRNN's ``W = expm(A - Aᵀ)``): ``core`` runs on ``prepare(params)``, which
        :func:`rnnjax.unroll` computes once per sequence (gradients flow through it); ``step`` computes it
        at every call, so scanning ``step`` by hand is right but slower. ``None``: ``core`` runs on params.
      noise: optional, ``noise(params, key) -> params`` with the random masks of one sequence added (the
        recurrent dropout of :func:`rnnjax.recurrent_dropout`): :func:`rnnjax.unroll` calls it once per
        sequence, before the scan, when it is given a ``key``; without a key the cell runs without noise
        (evaluation).
      step_noise: optional, ``step_noise(carry, key, T) -> noise`` with a fresh draw for every step (the
        zoneout of :func:`rnnjax.zoneout`), each leaf ``[T, ...]``: :func:`rnnjax.unroll` draws it before
        the scan when it is given a ``key`` and hands step ``t`` the pair ``(x_t, noise_t)`` in place of
        ``x_t`` (the core ``(xw_t, noise_t)``), so ``lax.scan(partial(cell.step, params), carry, (xs,
        noise))`` is the same unroll written by hand; without a key the step gets ``x_t`` alone and uses
        the noise's expectation.
    """

    init: Callable[..., Params]
    step: Callable[..., tuple[Carry, Array]]
    initial_carry: Callable[[Params], Carry]
    core: Callable[..., tuple[Carry, Array]] | None = None
    hidden_size: int = 0
    name: str = "cell"
    parallel: Callable[..., tuple[Carry, Array]] | None = None
    readout: Callable[..., Array] | None = None
    prepare: Callable[[Params], Params] | None = None
    noise: Callable[..., Params] | None = None
    step_noise: Callable[..., Any] | None = None


class Net(NamedTuple):
    """A multi-layer (optionally bidirectional) recurrent network as pure functions.

    Attributes:
      init: ``(key, input_size) -> params``: a tuple with one entry per layer.
      apply: ``(params, xs[T, D], mask=None, carry=None, resets=None, key=None) -> (ys[T, O], carry)``.
      initial_carry: ``(params) -> carry``: a tuple with one entry per layer.
      output_size: ``O``, the feature size of ``ys``.
    """

    init: Callable[..., Any]
    apply: Callable[..., tuple[Array, Any]]
    initial_carry: Callable[[Any], Any]
    output_size: int


class MLP(NamedTuple):
    """A feed-forward network ``y = g(W x + b)`` layer after layer, as pure functions.

    Attributes:
      init: ``(key, input_size) -> params``: a tuple of ``{"w": [D_in, D_out], "b": [D_out]}``.
      apply: ``(params, x[..., D]) -> y[..., O]``.
    """

    init: Callable[..., Any]
    apply: Callable[..., Array]
