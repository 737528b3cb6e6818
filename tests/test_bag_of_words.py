"""The bag-of-n-grams logistic-regression baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from rnnjax.models import bag_of_words as bow


def test_ngrams_and_features():
    assert bow.ngrams(["a", "b", "a", "b"], 2) == ["a", "b", "a b", "b a"]
    assert bow.ngrams(["a", "b"], 1) == ["a", "b"]
    with pytest.raises(ValueError, match="n must be >= 1"):
        bow.ngrams(["a"], 0)
    vocab = bow.ngram_vocab([["good", "film"], ["bad", "film"]], n=2)
    feats = bow.featurize([["good", "film", "good"], ["unseen", "words"]], vocab, n=2)
    row = set(feats.ids[0][feats.mask[0]].tolist())
    assert row == {vocab.tokens.index(g) for g in ("good", "film", "good film")}  # "film good" is unknown: dropped
    assert not feats.mask[1].any()  # nothing known: no features


def test_fit_solves_the_regularised_problem_and_separates_the_classes():
    rng = np.random.default_rng(0)
    good, bad, filler = ["great", "fine", "moving"], ["dull", "awful", "weak"], ["the", "a", "film", "plot", "is"]
    sentences, labels = [], []
    for i in range(200):
        words = list(rng.choice(filler, 4)) + [str(rng.choice(good if i % 2 else bad))]
        sentences.append(list(rng.permutation(words)))
        labels.append(i % 2)
    labels = np.array(labels)
    vocab = bow.ngram_vocab(sentences)
    feats = bow.featurize(sentences, vocab)
    l2 = np.array([1e-3, 1e-1])
    params, values = bow.fit(feats, labels, vocab.size, l2)
    assert params["w"].shape == (2, vocab.size) and values.shape == (2, 100)
    np.testing.assert_array_equal(bow.accuracy(params, feats, labels), [1.0, 1.0])
    assert np.all(np.diff(np.asarray(values), axis=1) <= 1e-6)  # L-BFGS descends
    # stronger regularisation, smaller weights; and the solution is a stationary point of the objective
    assert np.linalg.norm(params["w"][1]) < np.linalg.norm(params["w"][0])
    for s, lam in enumerate(l2):
        def objective(p):
            z = bow.logits(p, bow.Features(jnp.asarray(feats.ids), jnp.asarray(feats.mask)))
            return jnp.mean(optax.sigmoid_binary_cross_entropy(z, labels)) + 0.5 * lam * jnp.sum(p["w"] ** 2)
        grad = jax.grad(objective)({"w": params["w"][s], "b": params["b"][s]})
        assert optax.tree.norm(grad) < 1e-4
    with pytest.raises(ValueError, match="one label per sentence"):
        bow.fit(feats, labels[:-1], vocab.size, l2)
