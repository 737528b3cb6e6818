"""Models built from cells: language models, a many-to-one classifier, an encoder–decoder and its
decoders, and the bag-of-n-grams baseline."""

from rnnjax.models import bag_of_words, decoding
from rnnjax.models.classifier import Classifier, sequence_classifier
from rnnjax.models.language_model import LanguageModel, language_model, sample
from rnnjax.models.seq2seq import Memory, Seq2Seq, seq2seq

__all__ = [
    "Classifier",
    "LanguageModel",
    "Memory",
    "Seq2Seq",
    "bag_of_words",
    "decoding",
    "language_model",
    "sample",
    "seq2seq",
    "sequence_classifier",
]
