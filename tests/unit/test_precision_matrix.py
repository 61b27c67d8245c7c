"""Both precision paths on any host: every kind of training (pretraining, SFT full and LoRA, NER, distillation),
resume and export under `32-true` and under `bf16-mixed` forced (native or emulated), with the recipes'
gradient clipping and the default fused AdamW: the combination `trainer.precision: auto` picks on GPUs."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch.utils.data import DataLoader

from lightning_llm.data.datamodule import PackedDataset
from lightning_llm.data.sampling import GlobalBatchSampler
from lightning_llm.training.module import CausalLMModule
from tests.conftest import TINY_MODEL

PRECISIONS = ["32-true", "bf16-mixed"]
AUTOCAST_DTYPE = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}


class Probe(L.Callback):
    """Losses per step, the dtype the last decoder matmul computed in (autocast on or off), and whether AdamW is
    fused. (Not the LM head's: the causal-LM losses run it fused with the cross-entropy, outside its forward.)"""

    def __init__(self):
        self.losses: list[float] = []
        self.head_dtypes: set[torch.dtype] = set()
        self.fused: bool | None = None

    def on_train_start(self, trainer, pl_module):
        self.fused = bool(trainer.optimizers[0].defaults.get("fused"))
        model = pl_module.model
        model = model.get_base_model() if hasattr(model, "get_base_model") else model  # under LoRA (peft)
        head = getattr(model, "score", None) or model.model.layers[-1].mlp.down_proj
        head.register_forward_hook(lambda m, i, out: self.head_dtypes.add(out.dtype))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append(float(outputs["loss"]))


def _trainer(precision: str, steps: int, probe: Probe, **kwargs) -> L.Trainer:
    # gradient_clip_val=1.0 as every recipe sets it: the case Lightning refused for a fused AdamW under bf16
    return L.Trainer(max_steps=steps, accelerator="cpu", precision=precision, gradient_clip_val=1.0, logger=False,
                     callbacks=[probe, *kwargs.pop("callbacks", [])], enable_progress_bar=False,
                     enable_model_summary=False, limit_val_batches=0, use_distributed_sampler=False, **kwargs)


def _counting_rows(vocab: int = 300, start_batch: int = 0) -> DataLoader:
    starts = np.random.default_rng(0).integers(0, vocab, (64, 1))
    path = Path(tempfile.mkdtemp()) / "count-00000.npy"
    np.save(path, ((starts + np.arange(33)) % vocab).astype(np.uint16))
    dataset = PackedDataset([path], np.ones(vocab, dtype=np.uint8))
    return DataLoader(dataset, batch_sampler=GlobalBatchSampler(len(dataset), 8, start_batch=start_batch))


def _check(probe: Probe, precision: str, steps: int) -> None:
    assert probe.fused is True and len(probe.losses) == steps and all(np.isfinite(probe.losses))
    assert probe.head_dtypes == {AUTOCAST_DTYPE[precision]}  # bf16 really ran: the head's output is bf16
    assert min(probe.losses[-2:]) < probe.losses[0]


def _pretrain_module(**kwargs) -> CausalLMModule:
    return CausalLMModule(300, config={**TINY_MODEL, "max_position_embeddings": 32},
                          optim={"warmup_steps": 1, "lr": 1e-2}, **kwargs)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_pretraining_resumes_exactly_and_exports_under_each_precision(precision, tmp_path):
    from transformers import AutoModelForCausalLM

    from lightning_llm.export import export_hf

    L.seed_everything(0, verbose=False)
    straight, probe = _pretrain_module(), Probe()
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1, filename="s{step}",
                           auto_insert_metric_name=False)
    _trainer(precision, 6, probe, callbacks=[ckpt]).fit(straight, _counting_rows())
    _check(probe, precision, 6)

    resumed, after = _pretrain_module(), Probe()
    # (the datamodule tells its sampler where to start in a run; here the test does)
    _trainer(precision, 6, after, enable_checkpointing=False).fit(resumed, _counting_rows(start_batch=3),
                                                                  ckpt_path=str(tmp_path / "s3.ckpt"),
                                                                  weights_only=True)
    assert after.losses == probe.losses[3:]  # bit-identical steps after the resume
    for a, b in zip(straight.parameters(), resumed.parameters(), strict=True):
        assert a.dtype == torch.float32 and torch.equal(a, b)  # fp32 master weights under bf16-mixed too

    # the export is fp32 safetensors and reproduces the module's logits (checkpoint -> HF folder)
    from transformers import PreTrainedTokenizerFast

    from lightning_llm.data.tokenizer import train_bpe

    tok: PreTrainedTokenizerFast = train_bpe(["the king and the queen " * 50], vocab_size=300)
    export_hf(straight.model, tok, tmp_path / "export")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "export").eval()
    ids = torch.randint(0, 300, (2, 16))
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, straight.model.eval()(input_ids=ids).logits)
    assert json.loads((tmp_path / "export" / "config.json").read_text())["dtype"] == "float32"


def _sft_data(tmp_path: Path) -> Path:
    rng = random.Random(0)
    words = ["king", "queen", "good", "night", "love", "sword", "crown", "fair"]
    path = tmp_path / "sft.jsonl"
    path.write_text("".join(json.dumps({"prompt": "Repeat: " + " ".join(rng.choices(words, k=3)),
                                        "response": " ".join(rng.choices(words, k=rng.randint(1, 6)))}) + "\n"
                            for _ in range(48)))
    return path


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_sft_full_and_lora_train_under_each_precision(precision, lora, tiny_export, tmp_path):
    from lightning_llm.tasks.sft_data import SFTDataModule
    from lightning_llm.tasks.sft_module import SFTModule

    if lora:
        pytest.importorskip("peft")
    L.seed_everything(0, verbose=False)
    dm = SFTDataModule({"data_files": {"train": str(_sft_data(tmp_path))}, "seq_len": 48, "batch_size": 8},
                       tiny_export, seed=0)
    module, probe = SFTModule(str(tiny_export), optim={"warmup_steps": 0, "lr": 3e-3}, lora={"r": lora}), Probe()
    _trainer(precision, 5, probe, enable_checkpointing=False).fit(module, datamodule=dm)
    _check(probe, precision, 5)
    trainable = [n for n, p in module.named_parameters() if p.requires_grad]
    assert all("lora_" in n for n in trainable) == bool(lora)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_ner_trains_under_each_precision(precision, tiny_export, tmp_path):
    from lightning_llm.tasks.ner_data import NERDataModule
    from lightning_llm.tasks.ner_module import TokenClassificationModule

    rng = random.Random(0)
    with open(tmp_path / "train.conll", "w") as f:
        for _ in range(60):
            words = [rng.choice(["Hamlet", "Elsinore", "the", "king", "went", "to", "night"]) for _ in range(6)]
            tags = ["B-PER" if w == "Hamlet" else "B-LOC" if w == "Elsinore" else "O" for w in words]
            f.write("".join(f"{w} {t}\n" for w, t in zip(words, tags, strict=True)) + "\n")
    L.seed_everything(0, verbose=False)
    dm = NERDataModule({"format": "conll", "data_files": {"train": str(tmp_path / "train.conll")},
                        "batch_size": 8}, tiny_export, seed=0)
    dm.setup("fit")
    module = TokenClassificationModule(str(tiny_export), dm.labels, optim={"warmup_steps": 0, "lr": 3e-3})
    probe = Probe()
    _trainer(precision, 5, probe, enable_checkpointing=False).fit(module, datamodule=dm)
    _check(probe, precision, 5)


@pytest.mark.parametrize("precision", PRECISIONS)
def test_distillation_trains_under_each_precision(precision, tiny_export):
    from lightning_llm.training.distillation import DistillationModule

    L.seed_everything(0, verbose=False)
    student = DistillationModule(teacher=str(tiny_export), vocab_size=400, config={**TINY_MODEL, "hidden_size": 32,
                                 "intermediate_size": 64, "num_hidden_layers": 1, "max_position_embeddings": 32},
                                 optim={"warmup_steps": 1, "lr": 1e-2})
    probe = Probe()
    _trainer(precision, 5, probe, enable_checkpointing=False).fit(student, _counting_rows(300))
    _check(probe, precision, 5)
