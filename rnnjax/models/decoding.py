"""Decoding a conditional language model: greedy and beam search, each one compiled ``lax.scan``.

Both take ``step(state, token) -> (state, logits [V])`` (for an encoder–decoder,
``lambda c, y: model.step(params, memory, c, y)``), the state before the first step, and the ids of
``<bos>`` (the first input) and ``<eos>`` (which ends a hypothesis). They run a fixed ``max_len`` steps, so
each compiles once; after ``<eos>`` a hypothesis is padded with ``<eos>``. Outputs exclude ``<bos>`` and
include the ``<eos>`` when one was emitted: ``length`` counts it.

Beam search (Graves 2012; Sutskever et al. 2014) keeps the ``beam_size`` best prefixes by log-probability;
a finished hypothesis keeps its slot with its score frozen. The final choice among the beams divides each
score by ``length ** alpha`` (length normalisation; ``alpha = 0`` is none), since raw log-probabilities
favour short outputs.

:func:`ensemble` makes one ``step`` of several models' (Sutskever et al. 2014 decoded with an ensemble of
five): either search then decodes with the mean of their next-token distributions.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


class Decoded(NamedTuple):
    """``tokens [max_len]`` (``<eos>``-padded), ``length`` (tokens up to and including ``<eos>``, or
    ``max_len``), ``score`` (summed log-probability; beam search: divided by ``length ** alpha``)."""

    tokens: jax.Array
    length: jax.Array
    score: jax.Array


def _check(max_len, beam_size=1):
    if int(max_len) < 1:
        raise ValueError(f"max_len must be >= 1, got {max_len}")
    if int(beam_size) < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")


def ensemble(steps):
    """One ``step(states, token) -> (states, logits)`` for several models decoded together: ``states`` is the
    tuple of the members' states, and the logits are ``log((1/N) Σ_i softmax(logits_i))``, the log of the
    members' mean next-token probability (so a softmax of them is that mean). Every member must share the
    target vocabulary; each keeps its own state, so they may differ in size, cell or attention.

    The start state is ``tuple`` of the members' start states, in the order of ``steps``. A single member is
    refused: decode with its own ``step``, whose logits need no second normalisation.
    """
    steps = tuple(steps)
    if len(steps) < 2:
        raise ValueError(f"ensemble: needs at least two members' steps, got {len(steps)}")

    def step(states, token):
        if len(states) != len(steps):
            raise ValueError(f"ensemble: {len(states)} states for {len(steps)} members")
        outs = [member(state, token) for member, state in zip(steps, states)]
        sizes = {o[1].shape for o in outs}
        if len(sizes) != 1:
            raise ValueError(f"ensemble: the members' logits differ in shape {sorted(sizes)}: they must share the target vocabulary")
        logp = jnp.stack([jax.nn.log_softmax(o[1]) for o in outs])
        return tuple(o[0] for o in outs), jax.nn.logsumexp(logp, axis=0) - jnp.log(len(steps))

    return step


def greedy(step, state, bos: int, eos: int, max_len: int) -> Decoded:
    """The most likely token at every step, fed back as the next input."""
    _check(max_len)

    def body(carry, _):
        state, token, done, length, score = carry
        state, logits = step(state, token)
        logp = jax.nn.log_softmax(logits)
        best = jnp.argmax(logp).astype(jnp.int32)
        out = jnp.where(done, eos, best)
        score = score + jnp.where(done, 0.0, logp[best])
        length = length + jnp.where(done, 0, 1)
        return (state, out, done | (out == eos), length, score), out

    init = (state, jnp.asarray(bos, jnp.int32), jnp.asarray(False), jnp.asarray(0, jnp.int32), jnp.asarray(0.0))
    (_, _, _, length, score), tokens = lax.scan(body, init, None, length=max_len)
    return Decoded(tokens, length, score)


def beam_search(step, state, bos: int, eos: int, max_len: int, beam_size: int = 5, alpha: float = 0.0) -> Decoded:
    """The best of ``beam_size`` hypotheses kept by log-probability, chosen by ``score / length ** alpha``.

    The beams are one batch: ``step`` is vmapped over them. With ``beam_size = 1`` this is :func:`greedy`;
    with a beam as wide as the number of possible outputs nothing is pruned and the result is the exact
    maximiser of the normalised score.
    """
    _check(max_len, beam_size)
    k = int(beam_size)
    states = jax.tree.map(lambda a: jnp.broadcast_to(a, (k,) + jnp.shape(a)), state)
    vstep = jax.vmap(step)

    def body(carry, t):
        states, last, tokens, logp, done, length = carry
        states, logits = vstep(states, last)
        step_logp = jax.nn.log_softmax(logits)  # [K, V]
        vocab = step_logp.shape[-1]
        # a finished hypothesis has exactly one continuation, <eos> at no cost
        frozen = jnp.full((vocab,), -jnp.inf).at[eos].set(0.0)
        step_logp = jnp.where(done[:, None], frozen[None, :], step_logp)
        total = (logp[:, None] + step_logp).reshape(-1)
        logp, flat = lax.top_k(total, k)
        beam, token = flat // vocab, (flat % vocab).astype(jnp.int32)
        states = jax.tree.map(lambda a: a[beam], states)
        tokens = tokens[beam].at[:, t].set(token)
        length = length[beam] + jnp.where(done[beam], 0, 1)
        done = done[beam] | (token == eos)
        return (states, token, tokens, logp, done, length), None

    # only beam 0 is alive at first, so the first expansion does not repeat one hypothesis k times
    logp = jnp.full((k,), -jnp.inf).at[0].set(0.0)
    init = (states, jnp.full((k,), bos, jnp.int32), jnp.full((k, max_len), eos, jnp.int32), logp,
            jnp.zeros((k,), bool), jnp.zeros((k,), jnp.int32))
    (_, _, tokens, logp, _, length), _ = lax.scan(body, init, jnp.arange(max_len))
    normalised = logp / jnp.maximum(length, 1).astype(logp.dtype) ** alpha
    best = jnp.argmax(normalised)
    return Decoded(tokens[best], length[best], normalised[best])
