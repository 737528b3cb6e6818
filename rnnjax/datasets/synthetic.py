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


def copy_task(key, batch: int, length: int, n_symbols: int = 8, n_copy: int = 10):
    """The copy-memory task (Hochreiter & Schmidhuber 1997; the setup of Arjovsky, Shah & Bengio 2016).

    A sequence of ``length + 2 * n_copy`` steps: ``n_copy`` symbols drawn from ``1..n_symbols``, then
    ``length - 1`` blanks (0), a delimiter (``n_symbols + 1``), and ``n_copy`` blanks during which the
    model must output the symbols it saw at the start. Targets are blanks everywhere else. A memoryless
    model that outputs blanks and then guesses uniformly scores cross-entropy
    ``n_copy · ln(n_symbols) / (length + 2 · n_copy)`` nats per step (0.173 at T = 100).

    Returns:
      ``(inputs [B, L] int32, targets [B, L] int32)`` with ``L = length + 2 * n_copy``; one-hot encode
      the inputs (``n_symbols + 2`` classes) before a cell.
    """
    batch = _checks.hidden_size(batch, "batch")
    length = _checks.hidden_size(length, "length")
    n_symbols = _checks.hidden_size(n_symbols, "n_symbols")
    n_copy = _checks.hidden_size(n_copy, "n_copy")
    symbols = jax.random.randint(key, (batch, n_copy), 1, n_symbols + 1)
    blanks = jnp.zeros((batch, length - 1), jnp.int32)
    delimiter = jnp.full((batch, 1), n_symbols + 1, jnp.int32)
    tail = jnp.zeros((batch, n_copy), jnp.int32)
    inputs = jnp.concatenate([symbols, blanks, delimiter, tail], axis=1)
    targets = jnp.concatenate([jnp.zeros((batch, length + n_copy), jnp.int32), symbols], axis=1)
    return inputs, targets


def copy_baseline(length: int, n_symbols: int = 8, n_copy: int = 10) -> float:
    """The memoryless cross-entropy of :func:`copy_task`, in nats per step."""
    import math

    return n_copy * math.log(n_symbols) / (length + 2 * n_copy)


def addition_pairs(key, n: int, digits: int = 3) -> list[tuple[str, str]]:
    """``n`` text pairs ``("a+b", "c")`` with ``c = a + b`` and ``a, b`` uniform in ``[0, 10**digits)``.

    A translation task with a known answer (the quick task of Flax's seq2seq example): a model that
    has learned carrying gets every held-out pair exactly right. The same key gives the same pairs.
    """
    n = _checks.hidden_size(n, "n")
    digits = _checks.hidden_size(digits, "digits")
    if digits > 9:
        raise ValueError(f"digits must be at most 9 (int32 operands), got {digits}")
    a, b = jax.random.randint(key, (2, n), 0, 10**digits)
    return [(f"{x}+{y}", str(x + y)) for x, y in zip(a.tolist(), b.tolist())]


def reverse_pairs(key, n: int, min_len: int = 3, max_len: int = 8) -> list[tuple[str, str]]:
    """``n`` text pairs ``(s, reversed s)`` of digit strings with lengths uniform in ``[min_len, max_len]``.

    The quickest translation task with a known answer: every output token is one source token, so an
    encoder–decoder with attention reaches 100% exact match in a few hundred steps.
    """
    n = _checks.hidden_size(n, "n")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len} and {max_len}")
    k_len, k_digits = jax.random.split(key)
    lengths = jax.random.randint(k_len, (n,), min_len, max_len + 1).tolist()
    digits = jax.random.randint(k_digits, (n, max_len), 0, 10).tolist()
    return [("".join(map(str, d[:m])), "".join(map(str, d[:m][::-1]))) for d, m in zip(digits, lengths)]
