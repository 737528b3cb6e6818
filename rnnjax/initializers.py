"""Weight initialisations for recurrent networks.

Each initialiser is ``(key, shape, dtype) -> array`` like ``jax.nn.initializers``. Scales are
``ArrayLike`` (never branched on in Python), so a sweep can ``jax.vmap`` over them. The default dtype
``float`` is JAX's default float type (float32, or float64 with ``jax_enable_x64``), as for
``jax.nn.initializers``, so every param of a cell has the same dtype in either mode.

References:
  Saxe, McClelland & Ganguli 2014, "Exact solutions to the nonlinear dynamics of learning in deep linear
  neural networks" (orthogonal initialisation).
  Le, Jaitly & Hinton 2015, "A Simple Way to Initialize Recurrent Networks of Rectified Linear Units"
  (identity recurrent weights with ReLU: the IRNN).
  Glorot & Bengio 2010, "Understanding the difficulty of training deep feedforward neural networks".
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import _checks, _linalg


def orthogonal(scale=1.0):
    """``W = scale * Q`` with ``Q`` a uniformly random orthogonal matrix (Saxe et al. 2014).

    Every singular value of ``W`` equals ``scale``, so ``scale`` sets how fast a linear recurrence
    ``h_t = W h_{t-1}`` grows (``> 1``) or decays (``< 1``).

    The draw is Mezzadri's (2007): ``Q R = Z`` for a Gaussian ``Z``, columns of ``Q`` signed by
    ``diag(R)``; the same matrices as ``jax.nn.initializers.orthogonal`` for the same key, but the QR
    goes to LAPACK one matrix at a time even when vmapped (see ``rnnjax._linalg``: batched LAPACK
    calls can deadlock a small CPU's thread pool).
    """

    def init(key, shape, dtype=float):
        if len(shape) != 2:
            raise ValueError(f"orthogonal init needs a 2-D shape, got {tuple(shape)}")
        rows, cols = shape
        z = jax.random.normal(key, (max(rows, cols), min(rows, cols)), dtype)
        q, r = _linalg.qr(z)
        q = q * jnp.sign(jnp.diagonal(r))[None, :]
        return scale * (q.T if rows < cols else q)

    return init


def identity(scale=1.0):
    """``W = scale * I`` (the IRNN of Le et al. 2015, used with ReLU and ``scale = 1``)."""

    def init(key, shape, dtype=float):
        del key
        return scale * jnp.eye(shape[0], shape[1], dtype=dtype)

    return init


def uniform(bound):
    """``U(-bound, bound)``; PyTorch's default for its recurrent layers uses ``bound = 1/sqrt(H)``."""

    def init(key, shape, dtype=float):
        return jax.random.uniform(key, shape, dtype, -1.0, 1.0) * bound

    return init


def glorot_uniform():
    """``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (Glorot & Bengio 2010)."""
    return jax.nn.initializers.glorot_uniform()


RECURRENT = ("orthogonal", "identity", "uniform")
INPUT = ("glorot_uniform", "uniform")


def recurrent(name: str, hidden_size: int, scale=1.0):
    """The recurrent-weight initialiser called ``name`` (one of :data:`RECURRENT`)."""
    _checks.choice(name, RECURRENT, "recurrent init")
    if name == "orthogonal":
        return orthogonal(scale)
    if name == "identity":
        return identity(scale)
    return uniform(scale / jnp.sqrt(hidden_size))


def input_(name: str, hidden_size: int):
    """The input-weight initialiser called ``name`` (one of :data:`INPUT`)."""
    _checks.choice(name, INPUT, "input init")
    if name == "glorot_uniform":
        return glorot_uniform()
    return uniform(1.0 / jnp.sqrt(hidden_size))


def blocks(init, key, n_blocks: int, hidden_size: int, dtype=float, rows: int | None = None):
    """``n_blocks`` independent ``[R, H]`` draws of ``init`` side by side: ``[R, n_blocks * H]`` (``R = rows``,
    by default ``H``).

    Gated cells initialise each gate's recurrent block orthogonally on its own, since a ``[H, 4H]``
    matrix cannot be orthogonal as a whole.
    """
    keys = jax.random.split(key, n_blocks)
    rows = hidden_size if rows is None else rows
    return jnp.concatenate([init(k, (rows, hidden_size), dtype) for k in keys], axis=1)
