"""Inference from what training leaves behind: load an export or a checkpoint, generate text, int8 CPU
kernels, and generation from an ONNX export in onnxruntime."""

from lightning_llm.inference.generation import generate
from lightning_llm.inference.loading import load_model

__all__ = ["generate", "load_model"]
