"""Lightning callbacks of the library."""

from lightning_llm.training.callbacks.curves import LossCurves
from lightning_llm.training.callbacks.evaluation import TaskEval, TextSamples
from lightning_llm.training.callbacks.throughput import ThroughputMFU

__all__ = ["LossCurves", "TaskEval", "TextSamples", "ThroughputMFU"]
