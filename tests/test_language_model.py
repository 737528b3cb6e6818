"""Tokens, streams, the language model, its sampler, and the char-level experiment end to end."""

import dataclasses
import os
import pathlib
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import rnnjax
from rnnjax.checkpoint import Checkpointer
from rnnjax.datasets import tokens
from rnnjax.models import language_model, sample
from rnnjax.train import read_metrics, tree_equal
from tests.helpers import wait_for_checkpoint

ROOT = pathlib.Path(__file__).parents[1]


def test_char_vocab_maps_unseen_characters_to_unk():
    v = tokens.char_vocab("to be or not")
    assert v.tokens[0] == "<unk>" and v.size == 1 + len(set("to be or not"))
    ids = v.encode("be? not")
    assert ids[2] == 0 and v.decode(ids) == "be<unk> not"
    with pytest.raises(ValueError, match="empty training text"):
        tokens.char_vocab("")


def test_stream_rows_continue_from_batch_to_batch():
    ids = np.arange(1000)
    s = tokens.stream(ids, batch=4, length=10)
    assert s.inputs.shape == s.targets.shape == (24, 4, 10)
    np.testing.assert_array_equal(s.targets, s.inputs + 1)
    np.testing.assert_array_equal(s.inputs[1][:, 0], s.inputs[0][:, -1] + 1)  # row b of batch i+1 follows batch i
    with pytest.raises(ValueError, match="too short"):
        tokens.stream(np.arange(10), batch=4, length=10)


def test_word_vocab_keeps_the_most_frequent_words():
    v = tokens.word_vocab("the cat sat.\nthe dog sat on the mat.", size=5)
    assert v.tokens == ("<unk>", "<eos>", "the", ".", "sat")
    np.testing.assert_array_equal(v.encode("the dog"), [2, 0, 1])


def test_language_model_shapes_and_errors():
    m = language_model(12, rnnjax.gru(8), num_layers=2, embed_dim=5)
    params = m.init(jax.random.key(0))
    logits, carry = m.apply(params, jnp.array([1, 2, 3]))
    assert logits.shape == (3, 12) and len(carry) == 2
    onehot = language_model(12, rnnjax.lstm(4))
    assert onehot.apply(onehot.init(jax.random.key(0)), jnp.array([0, 11]))[0].shape == (2, 12)
    with pytest.raises(TypeError, match="tokens must be integer ids"):
        m.apply(params, jnp.array([1.0, 2.0]))


def test_sampling_is_reproducible_and_greedy_at_temperature_zero():
    m = language_model(7, rnnjax.lstm(16), embed_dim=4)
    params = m.init(jax.random.key(0))
    prime = jnp.array([1, 2])
    draw = jax.jit(lambda k, t: sample(m, params, k, prime, 15, t))
    a, b = draw(jax.random.key(1), 1.0), draw(jax.random.key(1), 1.0)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, draw(jax.random.key(2), 1.0))
    greedy = draw(jax.random.key(3), 0.0)
    np.testing.assert_array_equal(greedy, draw(jax.random.key(4), 0.0))
    np.testing.assert_array_equal(greedy, draw(jax.random.key(4), 1e-4))  # temperature -> 0
    # greedy by hand: feed the argmax back one token at a time
    logits, carry = m.apply(params, prime)
    token, manual = int(jnp.argmax(logits[-1])), []
    for _ in range(15):
        manual.append(token)
        logits, carry = m.apply(params, jnp.array([token]), carry)
        token = int(jnp.argmax(logits[-1]))
    np.testing.assert_array_equal(greedy, manual)
    assert draw._cache_size() == 1
    with pytest.raises(ValueError, match="prime must be a non-empty"):
        sample(m, params, jax.random.key(0), jnp.array([], jnp.int32), 3)


def test_char_lm_quick_run_and_sample_from_its_checkpoint(tmp_path, capsys):
    from experiments import char_lm

    result = char_lm.run(char_lm.Config(**char_lm.QUICK), out=tmp_path, progress=False)
    assert result["test_nats_per_char"] < np.log(31)  # better than uniform over the quick vocabulary
    assert abs(result["test_bits_per_char"] - result["test_nats_per_char"] / np.log(2)) < 1e-9
    capsys.readouterr()
    char_lm.main(["sample", f"--out={tmp_path}", "--prime=First", "--length=30", "--seed=3"])
    first = capsys.readouterr().out
    char_lm.main(["sample", f"--out={tmp_path}", "--prime=First", "--length=30", "--seed=3"])
    assert capsys.readouterr().out == first and "First" in first


def test_resumed_char_lm_continues_the_same_loss_curve(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = lambda out: [sys.executable, "-m", "experiments.char_lm", "--quick", f"--out={out}", "--steps=300", "--checkpoint_every=20", "--eval_every=100"]  # noqa: E731
    subprocess.run(cmd(tmp_path / "full"), cwd=ROOT, env=env, check=True, capture_output=True)
    proc = subprocess.Popen(cmd(tmp_path / "cut"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_checkpoint(proc, tmp_path / "cut" / "checkpoints", 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    subprocess.run(cmd(tmp_path / "cut"), cwd=ROOT, env=env, check=True, capture_output=True)
    full = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "full" / "metrics.jsonl")}
    cut = {r["step"]: r["loss"] for r in read_metrics(tmp_path / "cut" / "metrics.jsonl")}
    assert cut == full
    from experiments import char_lm

    cfg = dataclasses.replace(char_lm.Config(**char_lm.QUICK), steps=300)
    template = char_lm.build(cfg, char_lm.load(cfg))[2]
    a, _ = Checkpointer(tmp_path / "full" / "checkpoints").restore(template)
    b, _ = Checkpointer(tmp_path / "cut" / "checkpoints").restore(template)
    assert tree_equal(a.params, b.params) and tree_equal(a.carry, b.carry)


def test_interpolated_trigram_is_a_distribution_and_beats_unigrams():
    from rnnjax.datasets import ngram

    rng = np.random.default_rng(0)
    # a text with structure: each token mostly follows from the one before
    ids = [0]
    for _ in range(3000):
        ids.append((ids[-1] * 3 + (rng.random() < 0.2)) % 7)
    model = ngram.InterpolatedTrigram(ids[:2000], 7).fit(ids[2000:2500])
    assert abs(sum(model.lambdas) - 1) < 1e-9 and model.lambdas[0] > 0
    for u, v in [(ids[5], ids[6]), (6, 6), (None, 3)]:  # seen and unseen contexts
        assert abs(sum(model.prob(u, v, w) for w in range(7)) - 1) < 1e-9
    unigram = ngram.InterpolatedTrigram(ids[:2000], 7)
    unigram.lambdas = (0.0, 1.0, 0.0, 0.0)
    assert model.perplexity(ids[2500:]) < 0.5 * unigram.perplexity(ids[2500:])


def test_word_lm_quick_run_reports_both_perplexities(tmp_path):
    from experiments import word_lm

    result = word_lm.run(word_lm.Config(**word_lm.QUICK), out=tmp_path, progress=False)
    assert set(result) == {"rnn", "trigram", "steps"}
    for model in ("rnn", "trigram"):
        assert 1.0 <= result[model]["test"] < 16  # below uniform over the quick vocabulary


def test_document_starts_reset_the_carry_in_the_stream_the_evaluator_and_training():
    from experiments import _lm, char_lm
    from rnnjax.datasets import text

    docs = ["to be or not", "that is the question", "whether tis nobler"]
    joined = text.join(docs)
    starts = text.starts(docs)
    assert [joined[s:].startswith(d) for s, d in zip(starts, docs[1:])] == [True, True]
    s = tokens.stream(np.arange(len(joined)), batch=2, length=5, starts=starts)
    np.testing.assert_array_equal(np.sort(s.inputs[s.resets]), np.intersect1d(starts, s.inputs))  # ids are positions
    assert s.resets.sum() >= 1
    with pytest.raises(ValueError, match="starts must be positions in the stream"):
        tokens.stream(np.arange(10), batch=1, length=3, starts=[11])

    cfg = char_lm.Config(**char_lm.QUICK)
    vocab = tokens.char_vocab(joined)
    ids = vocab.encode(joined)
    model = language_model(vocab.size, rnnjax.lstm(8), 1, 4)
    params = model.init(jax.random.key(0))
    # one stream of every position: the evaluator with starts = each document read from a zero carry
    evaluated = _lm.evaluator(model, ids, rows=1, length=len(ids) - 1, starts=starts)(params)
    bounds = [0, *starts, len(ids)]
    logits = jnp.concatenate([model.apply(params, jnp.asarray(ids[a:b]))[0] for a, b in zip(bounds, bounds[1:])])[:-1]
    expected = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, jnp.asarray(ids[1:])))
    np.testing.assert_allclose(evaluated, expected, rtol=1e-5)
    assert abs(float(_lm.evaluator(model, ids, rows=1, length=len(ids) - 1)(params)) - float(expected)) > 1e-4
    # training: the batches carry the marks, and the loss reads them
    cfg = dataclasses.replace(cfg, batch=1, length=len(ids) - 1)
    state, step, batch_fn = _lm.training(cfg, model, ids, starts)
    assert int(np.sum(batch_fn(0)[3])) == len(starts)
    plain_state, plain_step, _ = _lm.training(cfg, model, ids)
    assert abs(float(step(state, batch_fn(0))[1]["loss"]) - float(plain_step(plain_state, batch_fn(0)[:3] + (None,))[1]["loss"])) > 1e-4


def test_documents_join_to_the_texts():
    from experiments import char_lm
    from rnnjax.datasets import text

    cfg = char_lm.Config(**char_lm.QUICK)
    texts, docs = char_lm.load(cfg), char_lm.load(cfg, documents=True)
    assert {k: text.join(v) for k, v in docs.items()} == texts and len(docs["train"]) > 40
