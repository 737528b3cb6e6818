"""Vocabularies and token streams for language models.

A stream is cut char-rnn style (Karpathy 2015): the token sequence is split into ``batch`` contiguous rows,
and batch ``i`` holds columns ``[i·T, (i+1)·T)`` of every row, so row ``b`` of batch ``i + 1`` continues
row ``b`` of batch ``i`` and a stateful train step can pass the carry between them (truncated BPTT over
the whole stream).
"""

from __future__ import annotations

import collections
import hashlib
import re
from typing import NamedTuple

import numpy as np

UNK = "<unk>"
EOS = "<eos>"
BOS = "<bos>"


class Vocab(NamedTuple):
    """``tokens[i]`` is the token with id ``i``; id 0 is ``<unk>`` for anything not seen in training."""

    tokens: tuple[str, ...]
    chars: bool

    @property
    def size(self) -> int:
        return len(self.tokens)

    def encode(self, text_or_tokens) -> np.ndarray:
        index = _index(self.tokens)
        items = text_or_tokens if not isinstance(text_or_tokens, str) or self.chars else words(text_or_tokens)
        return np.fromiter((index.get(t, 0) for t in items), np.int32)

    def fingerprint(self) -> str:
        """The sha256 of the tokens in order: two vocabularies with the same fingerprint give the same ids."""
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()

    def decode(self, ids) -> str:
        pieces = [self.tokens[int(i)] for i in np.asarray(ids).reshape(-1)]
        return "".join(pieces) if self.chars else " ".join(pieces).replace(f" {EOS} ", "\n")


_INDEXES: collections.OrderedDict = collections.OrderedDict()


def _index(tokens: tuple[str, ...]) -> dict[str, int]:
    # token -> id, kept for the few most recent vocabularies: encoding sentence after sentence must not
    # rebuild a dict of 100,000 n-grams each time.
    key = id(tokens)
    hit = _INDEXES.get(key)
    if hit is None or hit[0] is not tokens:
        hit = (tokens, {t: i for i, t in enumerate(tokens)})
        _INDEXES[key] = hit
        while len(_INDEXES) > 8:
            _INDEXES.popitem(last=False)
    _INDEXES.move_to_end(key)
    return hit[1]


def char_vocab(train_text: str) -> Vocab:
    """Every character of the training text, sorted, after ``<unk>`` (id 0)."""
    if not train_text:
        raise ValueError("cannot build a vocabulary from an empty training text")
    return Vocab((UNK,) + tuple(sorted(set(train_text))), chars=True)


def words(text: str) -> list[str]:
    """Lower-cased words and punctuation, with ``<eos>`` at each line end."""
    out = []
    for line in text.splitlines():
        tokens = re.findall(r"[a-z0-9']+|[^\sa-z0-9']", line.lower())
        if tokens:
            out.extend(tokens + [EOS])
    return out


def word_vocab(train_text: str, size: int) -> Vocab:
    """``<unk>``, ``<eos>`` and the ``size - 2`` most frequent training words (ties broken alphabetically)."""
    if size < 3:
        raise ValueError(f"a word vocabulary needs size >= 3, got {size}")
    counts = collections.Counter(w for w in words(train_text) if w != EOS)
    common = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[: size - 2]
    return Vocab((UNK, EOS) + tuple(w for w, _ in common), chars=False)


# Clitics split off as their own tokens ("don't" -> "do n't", "film's" -> "film 's"), as in the Penn Treebank
# and in Kim 2014's preprocessing of the movie-review sentences.
_CLITIC = re.compile(r"(n't|'s|'ve|'re|'d|'ll|'m)\b")
_SENTENCE_TOKEN = re.compile(r"n't|'(?:s|ve|re|d|ll|m)\b|[a-z0-9]+(?:-[a-z0-9]+)*|[^\sa-z0-9]")


def sentence_words(sentence: str) -> list[str]:
    """Lower-cased words of one sentence: clitics, punctuation and quotes (``''``, ``` `` ```) split off.

    ``"The film's ''hero'' isn't bad."`` -> ``the film 's " hero " is n't bad .``. No ``<eos>``: a
    classifier appends it itself.
    """
    s = sentence.lower().replace("''", ' " ').replace("``", ' " ')
    return _SENTENCE_TOKEN.findall(_CLITIC.sub(r" \1", s))


def vocab_from(token_lists, min_count: int = 1, max_size: int | None = None) -> Vocab:
    """``<unk>``, ``<eos>`` and every token seen at least ``min_count`` times, most frequent first.

    Ties are broken alphabetically, so the same data always gives the same ids. ``max_size`` caps the
    total (the two specials included).
    """
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if max_size is not None and max_size < 3:
        raise ValueError(f"a word vocabulary needs max_size >= 3, got {max_size}")
    counts = collections.Counter(t for tokens in token_lists for t in tokens if t not in (UNK, EOS))
    common = sorted(((t, c) for t, c in counts.items() if c >= min_count), key=lambda kv: (-kv[1], kv[0]))
    if max_size is not None:
        common = common[: max_size - 2]
    return Vocab((UNK, EOS) + tuple(t for t, _ in common), chars=False)


class Stream(NamedTuple):
    """Batches of a token stream: ``inputs`` ``[n, B, T]`` and ``targets`` (the next tokens); ``resets``
    ``[n, B, T]`` (bool, or None) marks the inputs that start a document."""

    inputs: np.ndarray
    targets: np.ndarray
    resets: np.ndarray | None = None

    @property
    def num_batches(self) -> int:
        return self.inputs.shape[0]


def stream(ids: np.ndarray, batch: int, length: int, starts=None) -> Stream:
    """Cuts ``ids`` into ``[n, batch, length]`` inputs and next-token targets (the tail is dropped).

    ``starts``: the positions in ``ids`` (``0..len(ids)``) where a document begins; ``resets`` then marks them, for a model to
    zero its carry there (``rnnjax.unroll(resets=)``) instead of reading one document into the next.
    """
    ids = np.asarray(ids)
    per_row = (ids.size - 1) // batch
    n = per_row // length
    if n < 1:
        raise ValueError(f"a stream of {ids.size} tokens is too short for batch {batch} x length {length}")
    rows = per_row - per_row % length
    split = lambda a: a[: batch * per_row].reshape(batch, per_row)[:, :rows].reshape(batch, n, length).transpose(1, 0, 2)  # noqa: E731
    resets = None
    if starts is not None:
        starts = np.asarray(starts)
        if starts.ndim != 1 or not np.issubdtype(starts.dtype, np.integer) or np.any((starts < 0) | (starts > ids.size)):
            raise ValueError(f"starts must be positions in the stream of {ids.size} tokens, got {starts!r}")
        marks = np.zeros(ids.size + 1, bool)  # a start at the very end begins an empty document
        marks[starts] = True
        resets = split(marks[:-1])
    return Stream(split(ids), split(ids[1:]), resets)
