"""A recurrent language model ``P(c_t | c_{t-1}, ..., c_0)`` and its sampler.

Tokens are embedded, run through a stack of cells, and read out by a softmax layer (the seed's
``y_t = g_y(W_y h_t + b_y)`` with ``g_y`` the softmax): logits ``[T, V]`` for the next token at every step.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax

from rnnjax import _checks, _ops
from rnnjax._ops import affine
from rnnjax.layers import stacked
from rnnjax.types import Cell


class LanguageModel(NamedTuple):
    """``init(key) -> params``; ``apply(params, tokens [T], carry=None, resets=None, key=None) ->
    (logits [T, V], carry)``; ``initial_carry(params)``; ``vocab_size``."""

    init: Callable[..., Any]
    apply: Callable[..., Any]
    initial_carry: Callable[..., Any]
    vocab_size: int


def language_model(vocab_size: int, cell: Cell, num_layers: int = 1, embed_dim: int | None = None,
                   fast: bool = True, dropout: float = 0.0) -> LanguageModel:
    """Embedding (or one-hot when ``embed_dim`` is None) → ``num_layers`` × ``cell`` → linear → logits;
    ``fast`` is passed to :func:`rnnjax.unroll`.

    ``dropout``: with a ``key`` in ``apply``, dropout on every non-recurrent connection (the embeddings, between
    layers, and the last layer's outputs before the softmax; Zaremba et al. 2014, "Recurrent neural network
    regularization", Fig. 2). The key also reaches the cells, so a cell wrapped by
    :func:`rnnjax.recurrent_dropout` draws its masks (Gal & Ghahramani 2016). Without a key: no dropout.
    ``resets [T]``: the steps where a new document starts (the carry is zeroed there; :func:`rnnjax.unroll`).
    """
    vocab_size = _checks.hidden_size(vocab_size, "vocab_size")
    dropout = _checks.rate(dropout, "language model: dropout")
    net = stacked(cell, num_layers, fast=fast, dropout=dropout)

    def init(key):
        k_embed, k_net, k_out = jax.random.split(key, 3)
        d = vocab_size if embed_dim is None else embed_dim
        params = {
            "net": net.init(k_net, d),
            "readout": {
                "w": jax.nn.initializers.glorot_uniform()(k_out, (cell.hidden_size, vocab_size)),
                "b": jnp.zeros((vocab_size,)),
            },
        }
        if embed_dim is not None:
            params["embed"] = jax.random.normal(k_embed, (vocab_size, embed_dim)) * 0.1
        return params

    def embed(params, tokens):
        if not jnp.issubdtype(jnp.result_type(tokens), jnp.integer):
            raise TypeError(f"language model: tokens must be integer ids, got dtype {jnp.result_type(tokens)}")
        if "embed" in params:
            return params["embed"][tokens]
        return jax.nn.one_hot(tokens, vocab_size)

    def apply(params, tokens, carry=None, resets=None, key=None):
        _checks.rank(tokens, 1, "[T]", "language model", "tokens")
        xs = embed(params, tokens)
        k_in = k_net = k_out = None
        if key is not None:
            k_in, k_net, k_out = jax.random.split(key, 3)
            xs = _ops.dropout(k_in, dropout, xs)
        ys, carry = net.apply(params["net"], xs, carry=carry, resets=resets, key=k_net)
        if key is not None:
            ys = _ops.dropout(k_out, dropout, ys)
        return affine(ys, params["readout"]["w"], params["readout"]["b"]), carry

    return LanguageModel(init, apply, lambda params: net.initial_carry(params["net"]), vocab_size)


def sample(model: LanguageModel, params, key, prime, length: int, temperature=1.0):
    """Generates ``length`` tokens after the priming ids ``prime [P]`` (P ≥ 1); returns ``[length]``.

    One ``lax.scan``, so it compiles once per ``length``; ``temperature`` is an array (sweepable).
    Temperature 0 is greedy (argmax). The same key gives the same tokens.
    """
    prime = jnp.asarray(prime)
    if prime.ndim != 1 or prime.shape[0] < 1:
        raise ValueError(f"sample: prime must be a non-empty [P] array of token ids, got shape {prime.shape}")
    logits, carry = model.apply(params, prime[:-1]) if prime.shape[0] > 1 else (None, None)

    def step(state, k):
        carry, token = state
        logits, carry = model.apply(params, token[None], carry)
        logits = logits[0]
        greedy = jnp.argmax(logits)
        drawn = jax.random.categorical(k, logits / jnp.maximum(temperature, 1e-6))
        token = jnp.where(temperature > 0, drawn, greedy).astype(prime.dtype)
        return (carry, token), token

    if carry is None:
        carry = model.initial_carry(params)
    _, tokens = lax.scan(step, (carry, prime[-1]), jax.random.split(key, length))
    return tokens
