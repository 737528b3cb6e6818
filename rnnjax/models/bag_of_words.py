"""The bag-of-n-grams logistic regression: the linear baseline that a sentence classifier must beat.

A sentence becomes the set of its word n-grams (binary features: present or not), and
``p(y = 1 | x) = σ(w · φ(x) + b)`` is fitted by L2-regularised maximum likelihood,
``min_w  mean_i ℓ(y_i, w · φ(x_i) + b) + λ/2 ‖w‖²``, a convex problem solved to convergence with
L-BFGS (``optax.lbfgs``). On the movie-review sentences this is the "unigram+bigram" baseline of Wang &
Manning 2012 and Kim 2014, whose NBSVM row (79.4%) adds naive-Bayes feature weighting to it.
The strength λ is chosen on held-out data; :func:`fit` trains one model per λ with one compiled solver
(λ is an argument, so a new value does not recompile). Not vmapped over λ: a vmapped L-BFGS runs every
line search as long as the slowest member's and was 100x slower here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from rnnjax.datasets.padding import pad
from rnnjax.datasets.tokens import Vocab, vocab_from


def ngrams(tokens: Sequence[str], n: int = 2) -> list[str]:
    """The distinct 1- to ``n``-grams of a token list, joined by spaces, in order of first appearance."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    grams = [" ".join(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)]
    return list(dict.fromkeys(grams))


class Features(NamedTuple):
    """Sparse binary features: ``ids [N, F]`` of the n-grams present (``<unk>`` dropped) and ``mask [N, F]``."""

    ids: np.ndarray
    mask: np.ndarray


def featurize(token_lists, vocab: Vocab, n: int = 2) -> Features:
    """:class:`Features` of each sentence under an n-gram ``vocab`` (from :func:`ngram_vocab`)."""
    rows = []
    for tokens in token_lists:
        ids = vocab.encode(ngrams(tokens, n))
        rows.append(np.unique(ids[ids > 1]).astype(np.int32))  # 0 is <unk>, 1 the unused <eos>
    ids, mask = pad(rows, multiple=16)
    return Features(ids, mask)


def ngram_vocab(token_lists, n: int = 2, min_count: int = 1) -> Vocab:
    """The n-grams of the training sentences seen at least ``min_count`` times."""
    return vocab_from((ngrams(t, n) for t in token_lists), min_count=min_count)


def logits(params, features: Features):
    """``w · φ(x) + b`` for every sentence: ``[N]``."""
    w = jnp.where(features.mask, params["w"][features.ids], 0.0)
    return jnp.sum(w, axis=-1) + params["b"]


def fit(features: Features, labels, num_features: int, l2, iterations: int = 100):
    """Fits one model per entry of ``l2`` (an array ``[S]``): params ``{"w": [S, F], "b": [S]}`` and the
    objective at every iteration ``[S, iterations]``.

    L-BFGS with a zoom line search for a fixed number of ``iterations`` inside one ``lax.scan`` (at
    λ = 1e-5 on 8,500 sentences the objective settles to 4 digits within 100).
    """
    l2 = jnp.atleast_1d(jnp.asarray(l2, jnp.float32))
    labels = jnp.asarray(labels, jnp.float32)
    if labels.shape != (features.ids.shape[0],):
        raise ValueError(f"labels shape {labels.shape} != ({features.ids.shape[0]},): one label per sentence")
    feats = Features(jnp.asarray(features.ids), jnp.asarray(features.mask))

    def one(lam):
        def objective(params):
            z = logits(params, feats)
            nll = jnp.mean(optax.sigmoid_binary_cross_entropy(z, labels))
            return nll + 0.5 * lam * jnp.sum(jnp.square(params["w"]))

        solver = optax.lbfgs()
        value_and_grad = optax.value_and_grad_from_state(objective)
        params = {"w": jnp.zeros((num_features,)), "b": jnp.zeros(())}

        def step(carry, _):
            params, state = carry
            value, grad = value_and_grad(params, state=state)
            updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=objective)
            return (optax.apply_updates(params, updates), state), value

        (params, _), values = jax.lax.scan(step, (params, solver.init(params)), length=iterations)
        return params, values

    solve = jax.jit(one)
    fits = [solve(lam) for lam in l2]
    return jax.tree.map(lambda *a: jnp.stack(a), *fits)


def accuracy(params, features: Features, labels) -> np.ndarray:
    """Accuracy of each fitted model (``params`` from :func:`fit`): ``[S]``."""
    z = jax.vmap(logits, (0, None))(params, Features(jnp.asarray(features.ids), jnp.asarray(features.mask)))
    return np.asarray(jnp.mean((z > 0) == (jnp.asarray(labels)[None] == 1), axis=-1))
