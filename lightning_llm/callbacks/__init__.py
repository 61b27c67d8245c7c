"""Lightning callbacks of the library."""

from lightning_llm.callbacks.curves import LossCurves
from lightning_llm.callbacks.evaluation import TaskEval, TextSamples
from lightning_llm.callbacks.throughput import ThroughputMFU

__all__ = ["LossCurves", "TaskEval", "TextSamples", "ThroughputMFU"]
