"""Gradient-flow diagnostics: where backpropagation through time loses (or blows up) its signal.

All functions are pure and return arrays, so they ``jax.jit`` and ``jax.vmap`` (over a batch of sequences
or a sweep of models); notebooks and experiments draw them.

- :func:`hidden_grad_norms` — ``‖∂L/∂h_t‖`` for every step (the figure of Arjovsky, Shah & Bengio 2016):
  a zero perturbation ``ε_t`` is added to each hidden state inside the scan, and ``∂L/∂ε_t = ∂L/∂h_t``,
  the total derivative through every later step.
- :func:`jacobian_norms` — ``‖∂h_s/∂h_t‖`` (spectral and Frobenius) for every ``t ≤ s``: the product of
  step Jacobians whose norm decides vanishing (``→ 0``) or exploding (``→ ∞``) gradients (Bengio,
  Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013).
- :func:`recurrent_spectrum` — spectral radius and singular values of a recurrent matrix, per gate.

Both step-wise diagnostics run the cell's plain ``step`` (autodiff through ``lax.scan``), never the fast
path, since they differentiate with respect to quantities inside the recurrence.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks, _linalg, cells
from rnnjax.fused import masked
from rnnjax.types import Cell, LSTMCarry


def _hidden(carry):
    return carry.h if isinstance(carry, LSTMCarry) else carry


def _with_hidden(carry, h):
    return carry._replace(h=h) if isinstance(carry, LSTMCarry) else h


def _check(cell, params, xs, mask):
    _checks.sequence(xs, mask, params, cell.name)
    if xs.shape[0] == 0:
        raise ValueError(f"{cell.name}: a gradient-flow diagnostic needs a sequence of at least one step, got T = 0")


def _prepared(cell, params):
    # a cell with derived weights (the expRNN's W = expm(A - Aᵀ)) steps on them, computed once, not per step
    return (cell, params) if cell.prepare is None else (cells.prepared(cell), cell.prepare(params))


def hidden_grad_norms(cell: Cell, params, xs, loss_fn, carry=None, mask=None, truncate: int | None = None):
    """``‖∂L/∂h_t‖`` for t = 1..T: how much the loss depends on each hidden state.

    Args:
      cell, params: a cell and its params. xs: ``[T, D]`` (one sequence; ``jax.vmap`` for a batch).
      loss_fn: ``loss_fn(ys [T, H], final_carry) -> scalar``, any loss of the unrolled outputs.
      carry, mask: as for :func:`rnnjax.unroll`.
      truncate: if given, the carry's gradient is stopped every ``truncate`` steps, as in truncated BPTT
        (:func:`rnnjax.truncated_unroll`), to show how far back the gradient then reaches.

    Returns:
      ``[T]`` array: entry ``t`` is the Euclidean norm of ``∂L/∂h_t`` (``h_t`` the hidden state after
      step ``t``; for the LSTM the ``h`` part of the carry; for the LRU its state ``(Re x_t, Im x_t)``).
    """
    _check(cell, params, xs, mask)
    T = xs.shape[0]
    if truncate is not None:
        from rnnjax.tbptt import check_chunk

        truncate = check_chunk(truncate, T)
    carry = cell.initial_carry(params) if carry is None else carry
    cell, params = _prepared(cell, params)
    mask = None if mask is None else jnp.asarray(mask) != 0

    def loss_of_perturbations(eps):
        def body(c, inp):
            t, x, m, e = inp
            if truncate is not None:
                c = lax.cond(t % truncate == 0, lax.stop_gradient, lambda a: a, c)
            new, y = cell.step(params, c, x)
            if cell.readout is None:
                new, y = masked(m, new, c, y)
                # ε_t enters the hidden state and the output (which is h_t), so ∂L/∂ε_t = ∂L/∂h_t.
                return _with_hidden(new, _hidden(new) + e), y + e
            # the output is read from the state (LRU): read it again from the perturbed state
            new, _ = masked(m, new, c, y)
            new = _with_hidden(new, _hidden(new) + e)
            return masked(m, new, new, cell.readout(params, new, x))

        final, ys = lax.scan(body, carry, (jnp.arange(T), xs, mask, eps))
        return loss_fn(ys, final)

    eps = jnp.zeros((T,) + _hidden(carry).shape, _hidden(carry).dtype)
    grads = jax.grad(loss_of_perturbations)(eps)
    return jnp.sqrt(jnp.sum(grads**2, axis=-1))


def _flatten_carry(carry):
    leaves, tree = jax.tree.flatten(carry)
    bounds = list(itertools.accumulate(leaf.shape[-1] for leaf in leaves))[:-1]

    def unflatten(v):
        return tree.unflatten(jnp.split(v, bounds))

    return jnp.concatenate(leaves), unflatten


def jacobian_norms(cell: Cell, params, xs, carry=None, until: int | None = None):
    """Norms of ``∂h_s/∂h_t`` for ``t = 0..s``, with ``s = until`` (default: the last step, T-1).

    The Jacobian is taken through the whole state (``(h, c)`` for the LSTM) and its ``h``-to-``h`` block
    is reported, so it is the sensitivity of ``h_s`` to a change of ``h_t`` holding ``c_t`` fixed.

    Args:
      cell, params: a cell and its params. xs: ``[T, D]``. carry: the state before step 0.
      until: the index ``s`` of the later state, ``0 <= s < T``.

    Returns:
      ``{"spectral": [s+1], "frobenius": [s+1]}``; entry ``t`` is the norm of ``∂h_s/∂h_t`` (entry ``s`` is
      the identity: 1 and ``sqrt(H)``).
    """
    _check(cell, params, xs, None)
    T = xs.shape[0]
    s = T - 1 if until is None else until
    if not isinstance(s, int) or not 0 <= s < T:
        raise IndexError(f"{cell.name}: time index until={until} is out of range for a sequence of {T} steps (0..{T - 1})")
    carry = cell.initial_carry(params) if carry is None else carry
    cell, params = _prepared(cell, params)
    xs = xs[: s + 1]
    # states entering each step t+1, i.e. the state after step t, for t = 0..s
    _, states = lax.scan(lambda c, x: (lambda n: (n, n))(cell.step(params, c, x)[0]), carry, xs)
    flat0, unflatten = _flatten_carry(jax.tree.map(lambda a: a[0], states))
    H = _hidden(carry).shape[-1]

    def step_jacobian(state_flat, x):
        return jax.jacrev(lambda v: _flatten_carry(cell.step(params, unflatten(v), x)[0])[0])(state_flat)

    flat_states = jax.vmap(lambda c: _flatten_carry(c)[0])(states)  # [s+1, S]

    def back(J, inp):
        # J = ∂state_s/∂state_{t+1}; multiply by ∂state_{t+1}/∂state_t to step back to t.
        state_t, x_next = inp
        J = J @ step_jacobian(state_t, x_next)
        return J, J

    eye = jnp.eye(flat0.shape[0], dtype=flat0.dtype)
    _, Js = lax.scan(back, eye, (flat_states[:-1], xs[1:]), reverse=True)
    Js = jnp.concatenate([Js, eye[None]], axis=0)[:, :H, :H]  # the h-to-h block (h leads the carry)
    return {
        "spectral": _linalg.svdvals(Js)[..., 0],
        "frobenius": jnp.linalg.norm(Js, axis=(-2, -1)),
    }


def recurrent_spectrum(w_h, block: int | None = None):
    """Spectral radius and singular values of a recurrent matrix, or of each of its gate blocks.

    Args:
      w_h: ``[H, k*H]`` (rnnjax's layout, ``h_t = ... h_{t-1} @ w_h``).
      block: the block width (default ``H``): a gated cell's ``w_h`` splits into one ``[H, H]`` per gate.

    Returns:
      ``{"spectral_radius": [k], "singular_values": [k, H]}``: the largest eigenvalue modulus and the
      singular values (descending) of each block. For a linear RNN ``h_t = W h_{t-1}``, the spectral
      radius decides whether ``W^t`` vanishes (< 1) or explodes (> 1).
    """
    H = w_h.shape[0]
    block = H if block is None else block
    if w_h.shape[1] % block or block != H:
        raise ValueError(f"w_h of shape {tuple(w_h.shape)} does not split into [H, H] blocks of width {block}")
    blocks = jnp.stack(jnp.split(w_h, w_h.shape[1] // block, axis=1))
    return {
        "spectral_radius": jnp.max(jnp.abs(_linalg.eigvals(blocks)), axis=-1),
        "singular_values": _linalg.svdvals(blocks),
    }
