"""Lightning callbacks of the library."""

from lightning_llm.callbacks.curves import LossCurves

__all__ = ["LossCurves"]
