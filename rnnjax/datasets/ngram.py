"""A count-based baseline for language models: the interpolated trigram (Jelinek & Mercer 1980).

    P(w | u, v) = λ3 P_ML(w | u, v) + λ2 P_ML(w | v) + λ1 P_ML(w) + λ0 / V

with maximum-likelihood estimates from training counts (an unseen context uses the next lower order's
estimate in its place, so every mixture sums to 1) and the λ chosen on validation text by grid search, so
a recurrent model's perplexity has something to be compared with.
"""

from __future__ import annotations

import collections
import itertools
import math

import numpy as np


class InterpolatedTrigram:
    """Counts from training ids; ``log_prob(ids)`` gives the natural-log probability of each next id."""

    def __init__(self, train_ids, vocab_size: int):
        ids = [int(i) for i in train_ids]
        self.V = vocab_size
        self.uni = collections.Counter(ids)
        self.bi = collections.Counter(zip(ids, ids[1:]))
        self.tri = collections.Counter(zip(ids, ids[1:], ids[2:]))
        self.ctx1 = collections.Counter(ids[:-1])
        self.ctx2 = collections.Counter(zip(ids, ids[1:-1]))
        self.total = len(ids)
        self.lambdas = (0.01, 0.3, 0.4, 0.29)  # λ0 (uniform), λ1, λ2, λ3; replaced by fit()

    def _estimates(self, u, v, w):
        # An unseen context borrows the next lower order's estimate, so every mixture sums to 1 over w.
        p1 = self.uni[w] / self.total
        p2 = self.bi[(v, w)] / self.ctx1[v] if self.ctx1[v] else p1
        c = 0 if u is None else self.ctx2[(u, v)]
        p3 = self.tri[(u, v, w)] / c if c else p2
        return (1.0 / self.V, p1, p2, p3)

    def prob(self, u, v, w) -> float:
        """``P(w | u, v)`` under the current interpolation weights."""
        return float(np.dot(self._estimates(u, v, w), self.lambdas))

    def _components(self, ids):
        """Per position t ≥ 1: the uniform, unigram, bigram and trigram estimates of ids[t]."""
        ids = [int(i) for i in ids]
        rows = []
        for t in range(1, len(ids)):
            w, v = ids[t], ids[t - 1]
            rows.append(self._estimates(ids[t - 2] if t >= 2 else None, v, w))
        return np.asarray(rows)

    def fit(self, validation_ids, grid: int = 10):
        """Chooses the λ (summing to 1, λ0 > 0) that minimise validation perplexity."""
        comps = self._components(validation_ids)
        best = None
        steps = [i / grid for i in range(grid + 1)]
        for l1, l2 in itertools.product(steps, steps):
            for l3 in steps:
                l0 = 1.0 - l1 - l2 - l3
                if l0 <= 1e-9:
                    continue
                nll = -np.mean(np.log(comps @ np.array([l0, l1, l2, l3])))
                if best is None or nll < best[0]:
                    best = (nll, (l0, l1, l2, l3))
        self.lambdas = best[1]
        return self

    def nats_per_token(self, ids) -> float:
        return float(-np.mean(np.log(self._components(ids) @ np.array(self.lambdas))))

    def perplexity(self, ids) -> float:
        return math.exp(self.nats_per_token(ids))
