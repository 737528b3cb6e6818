"""Dense linear algebra that never reaches LAPACK as a batch.

Why: jaxlib's CPU LAPACK kernels (QR, SVD, eig) split a batch of matrices over XLA's intra-op thread pool
and block the calling pool thread until the pieces finish. Two such batched calls running at once in one
program (XLA runs independent operations concurrently) can hold every thread of a small pool -- both
threads on a 2-core machine -- and wait on each other forever, at 0% CPU. jax 0.10.2 does this for two
``vmap``-ed orthogonal initialisations in one ``jit`` (a sweep, an ensemble). Handing LAPACK one matrix
at a time, through ``lax.map``, never uses the pool, and a single matrix is what LAPACK is fast at anyway.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax


def one_at_a_time(f):
    """``f`` of single matrices, made to run as a sequential ``lax.map`` whenever it is vmapped (any depth)
    or given leading batch axes, instead of as one batched LAPACK call."""
    g = jax.custom_batching.custom_vmap(f)

    @g.def_vmap
    def rule(axis_size, in_batched, *args):
        args = [a if b else jnp.broadcast_to(a, (axis_size, *jnp.shape(a))) for a, b in zip(args, in_batched)]
        out = lax.map(lambda xs: g(*xs), tuple(args))
        return out, jax.tree.map(lambda _: True, out)

    def call(*args):
        batch = jnp.shape(args[0])[:-2]
        if batch:  # explicit leading axes: the same sequential map
            flat = [jnp.reshape(a, (-1, *jnp.shape(a)[-2:])) for a in args]
            out = lax.map(lambda xs: g(*xs), tuple(flat))
            return jax.tree.map(lambda o: jnp.reshape(o, (*batch, *o.shape[1:])), out)
        return g(*args)

    return call


qr = one_at_a_time(lambda a: tuple(jnp.linalg.qr(a)))
"""``(Q, R)`` of ``[..., M, N]``, reduced, as ``jnp.linalg.qr``."""

svdvals = one_at_a_time(lambda a: jnp.linalg.svd(a, compute_uv=False))
"""Singular values of ``[..., M, N]``, descending."""

eigvals = one_at_a_time(lambda a: jnp.linalg.eigvals(a))
"""Eigenvalues (complex) of ``[..., N, N]``."""
