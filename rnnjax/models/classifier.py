"""A many-to-one sequence classifier: read a sentence, then classify it with a softmax.

The seed's design (and Elman's): tokens are embedded and run through a recurrent network; when the network
reaches the end-of-sentence token, its state there is read out by a linear layer and a softmax over the
classes, ``p(y | x_1..x_T) = softmax(W_y h_T + b_y)``. The "last valid step" ``T`` of each sentence is
found through the mask, so a padded batch classifies every sentence exactly as it would alone. Options
that help on small data sets: a bidirectional encoder (the backward direction's state after reading back
to the first word joins the forward state at the last, Schuster & Paliwal 1997), pooling over the valid
steps (mean, max, or both), and dropout on embeddings, whole words and the pooled features
(Srivastava et al. 2014; word dropout: Iyyer et al. 2015).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnnjax import _checks
from rnnjax._ops import affine, dropout
from rnnjax.layers import stacked
from rnnjax.types import Cell

POOLINGS = ("last", "mean", "max")


class Classifier(NamedTuple):
    """``init(key) -> params``; ``apply(params, tokens [T], mask [T] | None = None, key=None) -> logits [C]``.

    ``apply`` sees one sentence (batch with ``jax.vmap``); with a ``key`` it applies dropout (training),
    without one it is deterministic (evaluation).
    """

    init: Callable[..., Any]
    apply: Callable[..., Any]
    vocab_size: int
    num_classes: int
    features: int


def _pooling(pooling) -> tuple[str, ...]:
    names = tuple(pooling.split("+")) if isinstance(pooling, str) else tuple(pooling)
    bad = [p for p in names if p not in POOLINGS]
    if not names or bad or len(set(names)) != len(names):
        raise ValueError(f"unknown pooling {pooling!r}; expected one or more of {POOLINGS} joined by '+', e.g. 'mean+max'")
    return names


def sequence_classifier(
    vocab_size: int,
    cell: Cell,
    embed_dim: int,
    num_classes: int = 2,
    num_layers: int = 1,
    bidirectional: bool = False,
    pooling: str | Sequence[str] = "last",
    embed_dropout: float = 0.0,
    word_dropout: float = 0.0,
    output_dropout: float = 0.0,
    fast: bool = True,
) -> Classifier:
    """Embedding → ``num_layers`` × ``cell`` (optionally bidirectional) → pooling → dropout → linear.

    Args:
      vocab_size, embed_dim: the embedding table ``[V, E]``, learned from scratch (N(0, 0.1²) init).
      cell: the recurrent cell of every layer (``rnnjax.lstm(H)``, ``gru``, ``rnn``).
      num_classes: ``C``, the softmax's width.
      pooling: ``"last"`` (the state at the last valid step; bidirectional: forward state at the last valid
        step and backward state at the first), ``"mean"`` or ``"max"`` over valid steps, or several joined
        by ``+`` (``"mean+max"``), whose features are concatenated.
      embed_dropout: dropout on each embedding component; word_dropout: the probability that a whole
        word's embedding is zeroed; output_dropout: dropout on the pooled features. Only with a key, which
        also reaches the cells: a cell wrapped by :func:`rnnjax.recurrent_dropout` draws its masks from it.

    Returns:
      A :class:`Classifier`. A sentence must have at least one valid step (with mask all False the
      pooled features are zero).
    """
    vocab_size = _checks.hidden_size(vocab_size, "vocab_size")
    embed_dim = _checks.hidden_size(embed_dim, "embed_dim")
    num_classes = _checks.hidden_size(num_classes, "num_classes")
    pools = _pooling(pooling)
    rates = {n: _checks.rate(v, n) for n, v in (("embed_dropout", embed_dropout), ("word_dropout", word_dropout), ("output_dropout", output_dropout))}
    net = stacked(cell, num_layers, bidirectional=bidirectional, fast=fast)
    features = net.output_size * len(pools)
    hidden = cell.hidden_size

    def init(key):
        k_embed, k_net, k_out = jax.random.split(key, 3)
        return {
            "embed": jax.random.normal(k_embed, (vocab_size, embed_dim)) * 0.1,
            "net": net.init(k_net, embed_dim),
            "readout": {
                "w": jax.nn.initializers.glorot_uniform()(k_out, (features, num_classes)),
                "b": jnp.zeros((num_classes,)),
            },
        }

    def pool(ys, valid):
        count = jnp.maximum(jnp.sum(valid), 1)
        out = []
        for p in pools:
            if p == "mean":
                out.append(jnp.sum(jnp.where(valid[:, None], ys, 0.0), axis=0) / count)
            elif p == "max":
                out.append(jnp.where(jnp.any(valid), jnp.max(jnp.where(valid[:, None], ys, -jnp.inf), axis=0), 0.0))
            else:
                last = ys[count - 1]
                out.append(jnp.concatenate([last[:hidden], ys[0, hidden:]]) if bidirectional else last)
        return jnp.concatenate(out)

    def apply(params, tokens, mask=None, key=None):
        _checks.rank(tokens, 1, "[T]", "sequence classifier", "tokens")
        if not jnp.issubdtype(jnp.result_type(tokens), jnp.integer):
            raise TypeError(f"sequence classifier: tokens must be integer ids, got dtype {jnp.result_type(tokens)}")
        if params["embed"].shape[0] != vocab_size:
            raise ValueError(f"sequence classifier: params have {params['embed'].shape[0]} embeddings, the model expects vocab_size {vocab_size}")
        valid = jnp.ones(tokens.shape, bool) if mask is None else jnp.asarray(mask) != 0
        if valid.shape != tokens.shape:
            raise ValueError(f"sequence classifier: mask shape {valid.shape} != tokens shape {tokens.shape}")
        xs = params["embed"][tokens]
        if key is not None:
            k_word, k_embed, k_out = jax.random.split(key, 3)
            xs = dropout(k_embed, rates["embed_dropout"], dropout(k_word, rates["word_dropout"], xs, (tokens.shape[0], 1)))
        # fold_in, not a fourth split: the three draws above stay those of a run without recurrent dropout
        ys, _ = net.apply(params["net"], xs, mask=valid, key=None if key is None else jax.random.fold_in(key, 3))
        features = pool(ys, valid)
        if key is not None:
            features = dropout(k_out, rates["output_dropout"], features)
        return affine(features, params["readout"]["w"], params["readout"]["b"])

    return Classifier(init, apply, vocab_size, num_classes, features)
