"""Lightning callbacks of the library."""

from lightning_llm.training.callbacks.curves import LossCurves
from lightning_llm.training.callbacks.evaluation import TaskEval, TextSamples
from lightning_llm.training.callbacks.inspect import InspectViews
from lightning_llm.training.callbacks.mixture import MixtureMetrics
from lightning_llm.training.callbacks.progress import StepProgressBar
from lightning_llm.training.callbacks.throughput import ThroughputMFU

__all__ = ["InspectViews", "LossCurves", "MixtureMetrics", "StepProgressBar", "TaskEval", "TextSamples",
           "ThroughputMFU"]
