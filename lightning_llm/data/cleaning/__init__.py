"""The cleaning suite: HTML to text, Unicode and whitespace repair, boilerplate, quality and repetition
filters, PII masking, optional language id, then exact and near dedup across the corpus."""

from lightning_llm.data.cleaning.config import CleaningConfig

__all__ = ["CleaningConfig"]
