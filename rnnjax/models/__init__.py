"""Models built from cells: language models (more arrive with the sentiment and translation issues)."""

from rnnjax.models.language_model import LanguageModel, language_model, sample

__all__ = ["LanguageModel", "language_model", "sample"]
