"""Synthetic sequence tasks that test long-range memory, generated on device from a key."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from rnnjax import _checks


def adding_task(key, batch: int, length: int, dtype=jnp.float32):
    """The adding problem (Hochreiter & Schmidhuber 1997; the setup of Arjovsky, Shah & Bengio 2016).

    Each step carries two inputs: a value drawn from U[0, 1] and a marker. Exactly two steps are marked,
    one in each half of the sequence; the target is the sum of the two marked values. Predicting 1 for
    every sequence gives mean squared error 1/6 ≈ 0.167, the baseline a model must beat.

    Args:
      key: a PRNG key; the same key gives the same batch.
      batch: ``B``. length: ``T >= 2``.

    Returns:
      ``(xs [B, T, 2], targets [B])``: ``xs[..., 0]`` the values, ``xs[..., 1]`` the markers.
    """
    batch = _checks.hidden_size(batch, "batch")
    length = _checks.hidden_size(length, "length")
    if length < 2:
        raise ValueError(f"length must be at least 2 (one marker in each half), got {length}")
    k_values, k_first, k_second = jax.random.split(key, 3)
    half = length // 2
    values = jax.random.uniform(k_values, (batch, length), dtype)
    first = jax.random.randint(k_first, (batch,), 0, half)
    second = jax.random.randint(k_second, (batch,), half, length)
    steps = jnp.arange(length)[None, :]
    markers = ((steps == first[:, None]) | (steps == second[:, None])).astype(dtype)
    targets = jnp.sum(values * markers, axis=1)
    return jnp.stack([values, markers], axis=-1), targets
