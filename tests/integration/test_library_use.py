"""The README's library example: our DataModule and LightningModule with a plain Lightning Trainer."""

import lightning as L

from lightning_llm.data import PretrainDataModule
from lightning_llm.module import CausalLMModule
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


def _save(trainer, tmp_path):
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    return path
