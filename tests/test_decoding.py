"""Greedy and beam search: beam 1 is greedy, a wide beam is exact, finished hypotheses stay finished."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnnjax
from rnnjax.models import decoding
from rnnjax.models.seq2seq import seq2seq
from tests.helpers import perturb

BOS, EOS = 2, 1


def tiny(vocab=4, attention=True, seed=0, scale=1.5):
    model = seq2seq(5, vocab, rnnjax.lstm(6), 3, attention=attention)
    params = perturb(model.init(jax.random.key(seed)), jax.random.key(seed + 1), scale)
    memory = model.encode(params, jnp.array([3, 4, 1]))
    return (lambda c, y: model.step(params, memory, c, y)), memory.carry


def exhaustive(step, carry, vocab, max_len, alpha):
    """The best normalised score over every output of at most max_len tokens (ending in <eos> or not)."""
    best = (-np.inf, None)
    step = jax.jit(step)
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(vocab), repeat=n):
            if EOS in seq[:-1] or (n < max_len and seq[-1] != EOS):
                continue  # <eos> ends an output; shorter outputs must end with it
            c, token, logp = carry, BOS, 0.0
            for y in seq:
                c, logits = step(c, token)
                logp += float(jax.nn.log_softmax(logits)[y])
                token = y
            score = logp / n**alpha
            if score > best[0]:
                best = (score, seq)
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_beam_of_one_is_greedy(seed):
    step, carry = tiny(vocab=7, seed=seed)
    g = decoding.greedy(step, carry, BOS, EOS, 6)
    b = decoding.beam_search(step, carry, BOS, EOS, 6, beam_size=1, alpha=0.0)
    np.testing.assert_array_equal(g.tokens, b.tokens)
    assert int(g.length) == int(b.length)
    np.testing.assert_allclose(g.score, b.score, rtol=1e-6)


@pytest.mark.parametrize("seed,alpha", [(0, 0.0), (1, 0.0), (2, 0.7), (3, 1.0)])
def test_a_beam_as_wide_as_all_outputs_is_exact(seed, alpha):
    vocab, max_len = 4, 3
    step, carry = tiny(vocab=vocab, seed=seed)
    score, seq = exhaustive(step, carry, vocab, max_len, alpha)
    b = decoding.beam_search(step, carry, BOS, EOS, max_len, beam_size=vocab**max_len, alpha=alpha)
    assert tuple(np.asarray(b.tokens)[: int(b.length)].tolist()) == seq
    np.testing.assert_allclose(float(b.score), score, rtol=1e-5)


def test_greedy_pads_after_eos_and_counts_it():
    # a step that always prefers token 3 first, then <eos>
    def step(count, token):
        logits = jnp.where(count == 0, jnp.array([0.0, 0.0, 0.0, 5.0]), jnp.array([0.0, 5.0, 0.0, 0.0]))
        return count + 1, logits

    out = decoding.greedy(step, jnp.asarray(0), BOS, EOS, 5)
    np.testing.assert_array_equal(out.tokens, [3, EOS, EOS, EOS, EOS])
    assert int(out.length) == 2
    beam = decoding.beam_search(step, jnp.asarray(0), BOS, EOS, 5, beam_size=3)
    np.testing.assert_array_equal(beam.tokens, [3, EOS, EOS, EOS, EOS])


def test_length_normalisation_favours_longer_outputs():
    # <eos> now (log 0.5) against two more tokens of probability 0.9 each: raw scores prefer stopping,
    # normalised ones do not
    def step(count, token):
        early = jnp.log(jnp.array([1e-9, 0.5, 1e-9, 0.5]))
        late = jnp.log(jnp.array([1e-9, 0.9, 1e-9, 0.1]))
        return count + 1, jnp.where(count == 0, early, late)

    short = decoding.beam_search(step, jnp.asarray(0), BOS, EOS, 4, beam_size=4, alpha=0.0)
    longer = decoding.beam_search(step, jnp.asarray(0), BOS, EOS, 4, beam_size=4, alpha=1.0)
    assert int(short.length) <= int(longer.length)
    assert int(longer.length) == 2


def test_decoders_jit_and_vmap_and_refuse_bad_sizes():
    step, carry = tiny()
    with pytest.raises(ValueError, match="max_len must be >= 1"):
        decoding.greedy(step, carry, BOS, EOS, 0)
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        decoding.beam_search(step, carry, BOS, EOS, 3, beam_size=0)
    model = seq2seq(5, 4, rnnjax.gru(6), 3, attention=False)
    params = model.init(jax.random.key(0))

    def one(src):
        memory = model.encode(params, src)
        return decoding.beam_search(lambda c, y: model.step(params, memory, c, y), memory.carry, BOS, EOS, 4, 3).tokens

    srcs = jnp.array([[3, 4, 1], [4, 4, 1]])
    batched = jax.jit(jax.vmap(one))(srcs)
    np.testing.assert_array_equal(batched[1], one(srcs[1]))


def test_an_ensemble_decodes_with_the_members_mean_probability():
    (step_a, carry_a), (step_b, carry_b) = tiny(vocab=4, seed=0), tiny(vocab=4, seed=4, attention=False)
    step = decoding.ensemble([step_a, step_b])
    states, logits = step((carry_a, carry_b), BOS)
    (next_a, logits_a), (next_b, logits_b) = step_a(carry_a, BOS), step_b(carry_b, BOS)
    mean = (jax.nn.softmax(logits_a) + jax.nn.softmax(logits_b)) / 2  # probabilities, not logits or log-probabilities
    np.testing.assert_allclose(jnp.exp(logits), mean, rtol=1e-6)
    assert not np.allclose(jax.nn.softmax((logits_a + logits_b) / 2), mean, rtol=1e-3)  # the test tells the rules apart
    for got, want in zip(jax.tree.leaves(states), jax.tree.leaves((next_a, next_b))):
        np.testing.assert_array_equal(got, want)  # each member carries its own state
    assert int(decoding.greedy(step, (carry_a, carry_b), BOS, EOS, 3).tokens[0]) == int(jnp.argmax(mean))
    # a beam as wide as every output is the exact maximiser of the ensemble's normalised score
    score, seq = exhaustive(step, (carry_a, carry_b), 4, 3, 0.5)
    b = decoding.beam_search(step, (carry_a, carry_b), BOS, EOS, 3, beam_size=4**3, alpha=0.5)
    assert tuple(np.asarray(b.tokens)[: int(b.length)].tolist()) == seq
    np.testing.assert_allclose(float(b.score), score, rtol=1e-5)


def test_an_ensemble_refuses_one_member_and_members_of_other_vocabularies():
    (step_a, carry_a), (step_c, carry_c) = tiny(vocab=4), tiny(vocab=5, seed=1)
    with pytest.raises(ValueError, match="at least two members"):
        decoding.ensemble([step_a])
    with pytest.raises(ValueError, match="must share the target vocabulary"):
        decoding.ensemble([step_a, step_c])((carry_a, carry_c), BOS)
    with pytest.raises(ValueError, match="3 states for 2 members"):
        decoding.ensemble([step_a, step_a])((carry_a, carry_a, carry_a), BOS)
