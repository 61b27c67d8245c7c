from pathlib import Path

from lightning_llm.cli.export import positional_to_overrides
from lightning_llm.export.convert import default_out
from lightning_llm.inference.loading import missing_export_files


def test_positional_arguments_of_earlier_releases_become_overrides():
    assert positional_to_overrides(["run/checkpoints/last.ckpt"]) == ["model_path=run/checkpoints/last.ckpt"]
    assert positional_to_overrides(["a.ckpt", "out", "quantize=int8"]) == ["model_path=a.ckpt", "out=out",
                                                                             "quantize=int8"]
    assert positional_to_overrides(["model_path=a.ckpt", "--cfg", "job"]) == ["model_path=a.ckpt", "--cfg", "job"]


def test_default_output_sits_next_to_the_source():
    ckpt = Path("run/checkpoints/last.ckpt")
    assert default_out(ckpt, "hf", None) == Path("run/export-last")
    assert default_out(ckpt, "hf", "int8") == Path("run/export-last-int8")
    assert default_out(Path("run/export"), "onnx", None) == Path("run/export-onnx")


def test_missing_export_files_are_named(tmp_path):
    assert missing_export_files(tmp_path) == ["config.json", "weights (model.safetensors or "
                                              "model.safetensors.index.json)",
                                              "tokenizer files (tokenizer.json or tokenizer_config.json)"]
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    assert missing_export_files(tmp_path) == []


def test_cpu_int8_linear_matches_the_float_one_closely():
    import torch

    from lightning_llm.inference.int8 import DynamicInt8Linear, cpu_int8_kernels

    torch.manual_seed(0)

    class Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lm_head = torch.nn.Linear(64, 300, bias=False)

        def get_output_embeddings(self):
            return self.lm_head

    model = Head()
    x = torch.randn(5, 64)
    want = model.lm_head(x)
    cpu_int8_kernels(model)
    assert isinstance(model.lm_head, DynamicInt8Linear)
    got = model.lm_head(x)
    assert got.shape == want.shape and (got - want).abs().max() < 0.02 * want.abs().max()


def test_onnx_sampling_is_greedy_at_zero_temperature_and_respects_top_k_and_top_p():
    import numpy as np

    from lightning_llm.inference.onnx_generation import sample_next

    rng = np.random.default_rng(0)
    logits = np.array([0.1, 2.0, 1.9, -1.0])
    assert sample_next(logits, rng, temperature=0) == 1
    assert {sample_next(logits, rng, temperature=1.0, top_k=2) for _ in range(200)} == {1, 2}
    assert {sample_next(logits, rng, temperature=1.0, top_k=None, top_p=0.3) for _ in range(50)} == {1}
    assert len({sample_next(logits, rng, temperature=5.0, top_k=None) for _ in range(400)}) == 4


def test_a_deepspeed_checkpoint_folder_resumes_exports_and_names_its_run_data(tmp_path):
    """Lightning's DeepSpeedStrategy (ZeRO-2) writes `NAME.ckpt/checkpoint/mp_rank_00_model_states.pt` holding
    Lightning's state and the whole module: the same tools must read it as they read a .ckpt file."""
    import torch

    from lightning_llm.checkpoint_files import is_deepspeed_folder
    from lightning_llm.data.run_data import prepared_data_of
    from lightning_llm.export.convert import convert
    from lightning_llm.inference.checkpoint import model_from_checkpoint
    from lightning_llm.training.checkpointing import check_same_model, latest_checkpoint, wandb_id_of
    from lightning_llm.training.module import CausalLMModule
    from tests.conftest import TINY_MODEL

    prepared = tmp_path / "prepared"
    (prepared / "tokenizer").mkdir(parents=True)
    (prepared / "manifest.json").write_text("{}")
    from lightning_llm.data.tokenizer import train_bpe

    train_bpe(["the king and the queen"] * 40, 300).save_pretrained(prepared / "tokenizer")
    module = CausalLMModule(300, config=TINY_MODEL)
    folder = tmp_path / "run" / "checkpoints" / "step-0000010.ckpt"
    (folder / "checkpoint").mkdir(parents=True)
    torch.save({"module": {f"_forward_module.{k}": v for k, v in module.state_dict().items()},
                "hyper_parameters": dict(module.hparams), "wandb_run_id": "abc123",
                "PretrainDataModule": {"prepared_dir": str(prepared), "batches_consumed": 10}},
               folder / "checkpoint" / "mp_rank_00_model_states.pt")
    (folder / "latest").write_text("checkpoint")

    assert is_deepspeed_folder(folder) and latest_checkpoint(folder.parent) == folder
    check_same_model(str(folder), dict(module.hparams))
    assert wandb_id_of(str(folder)) == "abc123" and prepared_data_of(folder) == prepared
    model = model_from_checkpoint(folder)
    ids = torch.randint(0, 300, (1, 16))
    assert torch.allclose(model(input_ids=ids).logits, module.model.eval()(input_ids=ids).logits, atol=1e-6)
    made = convert(folder)
    assert made["out"] == tmp_path / "run" / "export-step-0000010" and (made["out"] / "model.safetensors").exists()
