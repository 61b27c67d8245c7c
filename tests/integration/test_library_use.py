"""The README's library examples: our DataModule and LightningModules with a plain Lightning Trainer."""

import lightning as L

from lightning_llm.data import PretrainDataModule
from lightning_llm.export import export_hf
from lightning_llm.training import CausalLMModule, DistillationModule
from tests.conftest import TINY_MODEL


def test_plain_trainer_learns_and_reports_bits_per_byte(corpus_dir, tmp_path):
    L.seed_everything(0)
    dm = PretrainDataModule(data={"data_files": {"train": f"{corpus_dir}/*.txt"}, "seq_len": 32, "batch_size": 8},
                            tokenizer={"vocab_size": 300}, data_dir=tmp_path / "data")
    dm.prepare_data()
    dm.setup()
    model = CausalLMModule(vocab_size=dm.vocab_size, arch="llama", config=TINY_MODEL,
                           optim={"lr": 3e-3, "warmup_steps": 5})
    trainer = L.Trainer(max_steps=60, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    before = trainer.validate(model, datamodule=dm, verbose=False)[0]
    trainer.fit(model, datamodule=dm)
    after = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert before["val/bpb"] > 2.0  # untrained: near log2(vocab) bits per ~1.7-byte token
    assert after["test/bpb"] < 0.8 * before["val/bpb"]
    assert after["test/ppl"] < before["val/ppl"]

    reloaded = CausalLMModule.load_from_checkpoint(_save(trainer, tmp_path), weights_only=True)
    assert reloaded.hparams.config == TINY_MODEL and reloaded.model.config.vocab_size == dm.vocab_size

    # the README's distillation example: that model as the teacher of a smaller student, still no Hydra
    export_hf(model.model, dm.tokenizer, tmp_path / "teacher")
    student = DistillationModule(teacher=str(tmp_path / "teacher"), temperature=2.0, kd_weight=1.0, ce_weight=0.0,
                                 vocab_size=dm.vocab_size, config={**TINY_MODEL, "hidden_size": 32},
                                 optim={"lr": 3e-3, "warmup_steps": 5})
    batch = next(iter(dm.val_dataloader()))
    kd_before = student.training_loss(batch)[1]["kd"]
    L.Trainer(max_steps=40, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(student, datamodule=dm)
    assert student.training_loss(batch)[1]["kd"] < 0.7 * kd_before  # pulled toward the teacher


def _save(trainer, tmp_path):
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    return path
