"""Deployment formats: a Hugging Face folder (`hf`), int8 weights (`quantize`), ONNX (`onnx`).

Export builds on inference (it loads what it converts), never the other way round.
"""

from lightning_llm.export.hf import export_checkpoint, export_hf

__all__ = ["export_checkpoint", "export_hf"]
