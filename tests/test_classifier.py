"""The many-to-one sequence classifier: pooling, padding invariance, dropout, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.datasets.padding import pad
from rnnjax.models.classifier import sequence_classifier
from tests.helpers import perturb

V, E, H = 23, 5, 4


def model_and_params(cell="lstm", seed=0, **kw):
    make = {"lstm": rnnjax.lstm, "gru": rnnjax.gru, "rnn": rnnjax.rnn}[cell]
    model = sequence_classifier(V, make(H), E, num_classes=3, **kw)
    return model, perturb(model.init(jax.random.key(seed)), jax.random.key(seed + 1))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max", "mean+max", "last+mean+max"])
def test_padding_does_not_change_the_prediction(cell, bidirectional, pooling):
    model, params = model_and_params(cell, bidirectional=bidirectional, pooling=pooling)
    sentence = np.array([3, 7, 1, 9, 2], np.int32)
    others = [np.arange(1, 12) % V, np.array([4]), np.array([5, 6, 7])]
    ids, mask = pad([others[0], sentence, others[1], others[2]], multiple=8)
    assert ids.shape == (4, 16)  # the sentence sits among 11 steps of padding
    alone = jax.nn.softmax(model.apply(params, sentence))
    batched = jax.nn.softmax(jax.vmap(model.apply, (None, 0, 0))(params, ids, mask))
    np.testing.assert_allclose(batched[1], alone, atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(batched.sum(-1), 1.0, atol=1e-6)


def test_pooled_features_are_what_the_docstring_says():
    cell = rnnjax.gru(H)
    tokens = np.array([3, 7, 1, 9, 2, 0, 0], np.int32)
    mask = np.arange(7) < 5
    for bidirectional in (False, True):
        model = sequence_classifier(V, cell, E, pooling="last+mean+max", bidirectional=bidirectional)
        params = perturb(model.init(jax.random.key(3)), jax.random.key(4))
        xs = params["embed"][tokens[:5]]
        ys = np.asarray(rnnjax.unroll(cell, params["net"][0]["fwd"] if bidirectional else params["net"][0], xs)[1])
        if bidirectional:
            yb = np.asarray(rnnjax.unroll(cell, params["net"][0]["bwd"], xs, reverse=True)[1])
            last, both = np.concatenate([ys[-1], yb[0]]), np.concatenate([ys, yb], axis=1)
        else:
            last, both = ys[-1], ys
        features = np.concatenate([last, both.mean(0), both.max(0)])
        expected = features @ np.asarray(params["readout"]["w"]) + np.asarray(params["readout"]["b"])
        np.testing.assert_allclose(model.apply(params, tokens, mask), expected, atol=1e-5, rtol=1e-5)
        assert model.features == features.size


def test_dropout_only_with_a_key_and_reproducible():
    model, params = model_and_params(embed_dropout=0.5, word_dropout=0.3, output_dropout=0.5, pooling="mean")
    tokens = np.array([3, 7, 1, 9, 2, 4, 4, 8], np.int32)
    plain = model.apply(params, tokens)
    np.testing.assert_array_equal(plain, model.apply(params, tokens))
    a = model.apply(params, tokens, key=jax.random.key(0))
    assert not np.allclose(a, plain)
    np.testing.assert_array_equal(a, model.apply(params, tokens, key=jax.random.key(0)))
    assert not np.allclose(a, model.apply(params, tokens, key=jax.random.key(1)))
    # without dropout rates, a key changes nothing
    model0, params0 = model_and_params(pooling="mean")
    np.testing.assert_allclose(model0.apply(params0, tokens, key=jax.random.key(0)), model0.apply(params0, tokens))


def test_classifier_trains_and_gradients_reach_the_embeddings():
    model, params = model_and_params(bidirectional=True, pooling="mean+max")
    tokens, labels = jnp.array([[1, 2, 3, 0], [4, 5, 0, 0]]), jnp.array([0, 2])
    mask = tokens > 0

    def loss(p):
        logits = jax.vmap(model.apply, (None, 0, 0))(p, tokens, mask)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels])

    grads = jax.grad(loss)(params)
    g = np.asarray(grads["embed"])
    assert np.all(g[[1, 2, 3, 4, 5]] != 0) and np.all(g[6:] == 0)  # only the words read get gradient
    assert np.all(g[0] == 0)  # padding (id 0 under the mask) gets none


def test_bad_arguments_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown pooling 'sum'"):
        sequence_classifier(V, rnnjax.lstm(H), E, pooling="sum")
    with pytest.raises(ValueError, match="unknown pooling 'mean\\+mean'"):
        sequence_classifier(V, rnnjax.lstm(H), E, pooling="mean+mean")
    with pytest.raises(ValueError, match=r"embed_dropout must be in \[0, 1\), got 1.0"):
        sequence_classifier(V, rnnjax.lstm(H), E, embed_dropout=1.0)
    with pytest.raises(ValueError, match="vocab_size"):
        sequence_classifier(0, rnnjax.lstm(H), E)
    model, params = model_and_params()
    with pytest.raises(TypeError, match="tokens must be integer ids"):
        model.apply(params, jnp.ones(3))
    with pytest.raises(ValueError, match=r"mask shape \(2,\) != tokens shape \(3,\)"):
        model.apply(params, jnp.array([1, 2, 3]), jnp.array([True, False]))
    with pytest.raises(ValueError, match=r"tokens must have rank 1, \[T\], got shape \(2, 3\) \(batch with jax.vmap\)"):
        model.apply(params, jnp.ones((2, 3), jnp.int32))
    other = sequence_classifier(V + 1, rnnjax.lstm(H), E, num_classes=3)
    with pytest.raises(ValueError, match="params have 23 embeddings, the model expects vocab_size 24"):
        other.apply(params, jnp.array([1, 2]))
