"""Variable-length sequences as padded arrays with masks, and batches bucketed by length.

Padding goes at the end and the mask marks the valid steps, the layout :func:`rnnjax.unroll` expects.
Sorting sentences into batches of similar length keeps padding (wasted steps) small; rounding each
batch's length up to a multiple bounds the number of distinct shapes, hence of compilations.
"""

from __future__ import annotations

import numpy as np


def pad(sequences, multiple: int = 8, pad_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(ids [B, T], mask [B, T])`` for a list of 1-D integer sequences.

    ``T`` is the longest length rounded up to ``multiple``; ``mask[b, t]`` is True for ``t < len(seq_b)``,
    and padded places hold ``pad_id``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    sequences = [np.asarray(s) for s in sequences]
    if not sequences:
        raise ValueError("pad: no sequences given")
    bad = [i for i, s in enumerate(sequences) if s.ndim != 1 or not np.issubdtype(s.dtype, np.integer) and s.size]
    if bad:
        raise ValueError(f"pad: sequence {bad[0]} is not a 1-D array of integer ids (shape {sequences[bad[0]].shape}, dtype {sequences[bad[0]].dtype})")
    longest = max(s.size for s in sequences)
    length = max(multiple, -(-longest // multiple) * multiple)
    ids = np.full((len(sequences), length), pad_id, np.int32)
    mask = np.zeros((len(sequences), length), bool)
    for b, s in enumerate(sequences):
        ids[b, : s.size] = s
        mask[b, : s.size] = True
    return ids, mask


def length_batches(lengths, batch_size: int, seed: int | None = None, pool: int = 50) -> list[np.ndarray]:
    """Index batches over examples of the given ``lengths``, grouped by length.

    With ``seed`` None (evaluation): all examples sorted by length (stable), cut into consecutive batches.
    With a ``seed`` (training): examples shuffled, cut into pools of ``pool`` batches, sorted by length
    inside each pool and cut into batches, and the batches shuffled; so batches are random yet nearly
    uniform in length. Every example appears exactly once; the same seed gives the same batches.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths)
    if seed is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, order.size, batch_size)]
    rng = np.random.default_rng(seed)
    order = rng.permutation(lengths.size)
    batches = []
    for start in range(0, order.size, batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, chunk.size, batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]
