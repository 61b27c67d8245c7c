"""Export to ONNX (`model.onnx`, logits for `input_ids` + `attention_mask`), checked in onnxruntime.

The folder also gets the tokenizer, `config.json` and `generation_config.json`, so a runtime that only
speaks ONNX has everything it needs. The graph takes the whole sequence each call (no KV-cache inputs):
scoring and short generations; a cached decoder export is future work (see docs/deployment.md).
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from lightning_llm.errors import UserError
from lightning_llm.inference.loading import load_model
from lightning_llm.inference.onnx_generation import onnx_session
from lightning_llm.io import atomic_dir

OPSET = 18


class _Logits(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def export_onnx(src: str | Path, out_dir: str | Path, atol: float = 1e-4) -> dict[str, float]:
    """Write `out_dir/model.onnx` from the exported HF folder `src`; returns the runtime check's figures.

    The check runs onnxruntime and `transformers` on the same random batches (two shapes, one left-padded
    row) and raises if their logits differ by more than `atol` times the largest logit (at least `atol`).
    """
    try:
        import onnxruntime  # noqa: F401
    except ImportError as e:
        raise UserError("format=onnx needs onnx, onnxscript and onnxruntime: pip install 'lightning_llm[onnx]'") from e
    model, tokenizer = load_model(src)
    max_len = model.config.max_position_embeddings
    example = torch.randint(0, model.config.vocab_size, (2, min(16, max_len)))
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=max_len)
    # the exporter's notes (torchvision ops it skips, axis names it merges) are not the user's business
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with atomic_dir(out_dir) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(_Logits(model).eval(), (example, torch.ones_like(example)), tmp / "model.onnx",
                          dynamo=True, input_names=["input_ids", "attention_mask"], output_names=["logits"],
                          opset_version=OPSET, external_data=False, verbose=False,
                          dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}})
        model.config.save_pretrained(tmp)
        model.generation_config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        check = check_onnx(tmp / "model.onnx", model)
        # relative to the logits' scale: fp32 rounding grows with depth and magnitude (30 layers of SmolLM2,
        # logits up to ~30: 2.1e-4 apart)
        allowed = atol * max(1.0, check["max_abs_logit"])
        if check["max_abs_diff"] > allowed:
            raise UserError(f"ONNX export of {src} is off: logits differ from transformers' by "
                            f"{check['max_abs_diff']:.3g} (> {allowed:.3g}, {atol} of the largest logit); please "
                            "report this with the model config")
    return check


@torch.no_grad()
def check_onnx(path: str | Path, model, seed: int = 0) -> dict[str, float]:
    """Largest |logit difference| between onnxruntime and the torch model, over two shapes and padding."""
    session = onnx_session(path)
    gen = torch.Generator().manual_seed(seed)
    worst, scale = 0.0, 0.0
    # the longer shape is capped: at a real base's context (8,192 for SmolLM2) three rows of logits alone are
    # 3 x 8192 x 49,152 floats per runtime, which exhausted 24 GB of RAM
    for rows, length in ((1, 7), (3, min(model.config.max_position_embeddings, 256))):
        ids = torch.randint(0, model.config.vocab_size, (rows, length), generator=gen)
        mask = torch.ones_like(ids)
        mask[-1, : length // 3] = 0  # a left-padded row, as batched generation feeds it
        got = session.run(["logits"], {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
        want = model(input_ids=ids, attention_mask=mask).logits.float().numpy()
        keep = mask.bool().numpy()  # padded positions have no defined output
        worst = max(worst, float(abs(got - want)[keep].max()))
        scale = max(scale, float(abs(want)[keep].max()))
    return {"max_abs_diff": worst, "max_abs_logit": scale}
