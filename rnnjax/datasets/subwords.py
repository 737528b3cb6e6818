"""Subword segmentation with sentencepiece (Kudo & Richardson 2018), for translation with a small vocabulary.

A model is trained on the training sentences of one language only (:func:`train`), splits any text into
pieces from a fixed set of ``vocab_size`` (``"▁" marks the start of a word``), and joins pieces back into text
(:meth:`Subwords.detokenize`), so a rare word becomes several frequent pieces instead of ``<unk>``: the
low-resource recipe of Sennrich & Zhang 2019 ("Revisiting Low-Resource Neural Machine Translation"). The
model is a serialised protobuf held as bytes: saved with a run, fingerprinted (sha256), loaded back
unchanged. Text is NFKC-normalised and case-folded (sentencepiece's ``nmt_nfkc_cf`` rule) unless
``lowercase=False``.
"""

from __future__ import annotations

import hashlib
import io
import os
import pathlib
import tempfile
from collections.abc import Iterable

MODEL_TYPES = ("bpe", "unigram")


class SubwordError(ValueError):
    """A segmentation model that cannot be trained or read; the message says why."""


class Subwords:
    """A trained sentencepiece model. ``pieces(text) -> [str]``; ``detokenize(pieces) -> text``."""

    def __init__(self, proto: bytes):
        import sentencepiece

        self.proto = bytes(proto)
        self._sp = sentencepiece.SentencePieceProcessor()
        try:
            self._sp.LoadFromSerializedProto(self.proto)
        except (RuntimeError, OSError) as err:  # sentencepiece raises RuntimeError on bytes that are no model
            raise SubwordError(f"not a sentencepiece model ({err})") from None

    @property
    def size(self) -> int:
        """The number of pieces (``<unk>`` included)."""
        return self._sp.GetPieceSize()

    def pieces(self, text: str) -> list[str]:
        return self._sp.EncodeAsPieces(text)

    def detokenize(self, pieces: Iterable[str]) -> str:
        return self._sp.DecodePieces(list(pieces))

    def fingerprint(self) -> str:
        """The sha256 of the serialised model: the same fingerprint segments every text the same way."""
        return hashlib.sha256(self.proto).hexdigest()

    def save(self, path) -> pathlib.Path:
        """Writes the model to ``path`` atomically (a temporary file renamed over it)."""
        path = pathlib.Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(self.proto)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path) -> Subwords:
        return cls(pathlib.Path(path).read_bytes())


def train(sentences: Iterable[str], vocab_size: int, model_type: str = "bpe", lowercase: bool = True) -> Subwords:
    """A sentencepiece model of (at most) ``vocab_size`` pieces learnt from ``sentences``.

    ``model_type`` ``"bpe"`` (byte-pair merges, Sennrich et al. 2016) or ``"unigram"`` (Kudo 2018). Every
    character of the training text is kept (``character_coverage=1``), so only characters never seen in
    training become ``<unk>``. One thread, so the same sentences give the same model byte for byte. A
    corpus too small for ``vocab_size`` gives fewer pieces (``hard_vocab_limit=False``), not an error.
    """
    import sentencepiece

    if model_type not in MODEL_TYPES:
        raise SubwordError(f"unknown subword model type {model_type!r}; expected one of {list(MODEL_TYPES)}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 8:
        raise SubwordError(f"vocab_size must be an integer of at least 8, got {vocab_size!r}")
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise SubwordError("no sentences to learn subwords from")
    model = io.BytesIO()
    try:
        sentencepiece.SentencePieceTrainer.Train(
            sentence_iterator=iter(sentences), model_writer=model, vocab_size=vocab_size, model_type=model_type,
            character_coverage=1.0, hard_vocab_limit=False, num_threads=1, minloglevel=2,
            normalization_rule_name="nmt_nfkc_cf" if lowercase else "nmt_nfkc",
            unk_id=0, bos_id=-1, eos_id=-1, pad_id=-1,  # the model's own ids are unused: a Vocab maps the pieces
        )
    except RuntimeError as err:
        raise SubwordError(f"sentencepiece could not learn {vocab_size} subwords from {len(sentences)} sentences: {err}") from None
    return Subwords(model.getvalue())
