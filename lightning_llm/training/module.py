"""CausalLMModule: a `transformers` causal LM trained and evaluated as a LightningModule."""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import Any

import lightning as L
import numpy as np
import torch

from lightning_llm.config import from_dict
from lightning_llm.errors import UserError
from lightning_llm.evaluation.metrics import LanguageModelMetrics, token_nats
from lightning_llm.models import InitConfig, build_causal_lm, model_config
from lightning_llm.models.pretrained import load_causal_lm
from lightning_llm.training.fused_loss import decoder_and_head, linear_cross_entropy_sum
from lightning_llm.training.optim import OptimConfig, build_optimizer, clips_under_amp
from lightning_llm.training.schedule import trainer_clock

NONFINITE = ("stop", "skip")


class CausalLMModule(L.LightningModule):
    """Builds the model from its config (stored in the checkpoint, so `load_from_checkpoint` rebuilds it).

    Args:
        vocab_size: the tokenizer's size; the model's embedding follows it.
        arch: a `transformers` model type (llama, gpt2, qwen2, mistral, ...).
        config: that architecture's config fields (hidden_size, num_hidden_layers, ...).
        init: weight-init scheme, see `InitConfig`.
        optim: AdamW and schedule, see `OptimConfig`.
        eos_token_id: written into the model config so exports generate and stop correctly.
        compile: run the model through `torch.compile`.
        activation_checkpointing: recompute activations in backward (less memory, ~1/3 more compute).
        on_nonfinite_loss: "stop" raises with the step number; "skip" skips that optimizer step.
        init_from: continue training a pretrained model (an HF folder, a hub id, a .gguf file or a built-in name,
            see `models.pretrained.resolve_model`): its architecture and weights replace arch/config/init.
    """

    def __init__(self, vocab_size: int, arch: str = "llama", config: dict[str, Any] | None = None,
                 init: InitConfig | dict | None = None, optim: OptimConfig | dict | None = None,
                 eos_token_id: int | None = None, compile: bool = False, activation_checkpointing: bool = False,
                 on_nonfinite_loss: str = "stop", init_from: str | None = None):
        super().__init__()
        if on_nonfinite_loss not in NONFINITE:
            raise UserError(f"on_nonfinite_loss={on_nonfinite_loss!r}: choose one of {list(NONFINITE)}")
        self.init_cfg = from_dict(InitConfig, init, "model.init")
        self.optim_cfg = from_dict(OptimConfig, optim, "optim")
        if init_from:
            self.model = load_causal_lm(init_from)
            if vocab_size > self.model.config.vocab_size:
                raise UserError(f"init_from={init_from}: the data's tokenizer has {vocab_size} tokens, the model "
                                f"{self.model.config.vocab_size}: prepare the data with the model's own tokenizer")
            # its whole config, so a checkpoint rebuilds (and a resume compares) the same model without the source
            arch, config, eos_token_id = self.model.config.model_type, pretrained_config(self.model), None
            vocab_size = self.model.config.vocab_size
        self.save_hyperparameters({"vocab_size": vocab_size, "arch": arch, "config": dict(config or {}),
                                   "init": asdict(self.init_cfg), "optim": asdict(self.optim_cfg),
                                   "eos_token_id": eos_token_id, "compile": compile,
                                   "activation_checkpointing": activation_checkpointing,
                                   "on_nonfinite_loss": on_nonfinite_loss, "init_from": init_from})
        if not init_from:
            hf_config = model_config(arch, dict(config or {}), vocab_size, eos_token_id)
            self.model = build_causal_lm(hf_config, self.init_cfg)
        self._init_state()

    def _init_state(self) -> None:
        """What training and evaluation keep besides the model (subclasses that load their model call it)."""
        self.val_metrics = LanguageModelMetrics()
        self.test_metrics = LanguageModelMetrics()
        self.skipped_steps = 0
        self._compiled = None
        self._step_values: dict[str, list[torch.Tensor]] = {}  # micro-batch losses of the optimizer step
        self._rng_to_restore: dict[str, Any] | None = None  # a checkpoint's random state, for the next step

    def configure_model(self) -> None:
        # Parallelism from outside the model, in torchtitan's order: activation checkpointing, compile, FSDP2.
        if self.hparams.activation_checkpointing and not self.model.is_gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        mesh = self.device_mesh  # set by ModelParallelStrategy (strategy=fsdp2), else None
        if mesh is not None and not getattr(self, "_sharded", False):
            from lightning_llm.training.parallel import shard_with_fsdp2

            shard_with_fsdp2(self.model, mesh["data_parallel"])
            self._sharded = True
        if self.hparams.compile and self._compiled is None:
            # kept out of the module tree so checkpoints and exports keep the plain parameter names
            object.__setattr__(self, "_compiled", torch.compile(self.model))

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None) -> torch.Tensor:
        # Never an attention mask: with position ids restarting at 0 (packed examples) transformers builds a
        # per-example mask only when no 2D mask is given.
        model = self._compiled if self._compiled is not None and self.training else self.model
        return model(input_ids=input_ids, position_ids=position_ids, use_cache=False).logits

    def token_nats(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return token_nats(self(batch["input_ids"], batch.get("position_ids")), batch["labels"])

    def nats_sum(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The batch's target-token nats summed (`IGNORE` labels cost 0): without materializing the logits where
        the model and strategy allow it (`training.fused_loss`), else through `token_nats`."""
        parts = self._decoder_and_head()
        if parts is None:
            return self.token_nats(batch).sum()
        decoder, head = parts
        hidden = decoder(input_ids=batch["input_ids"], position_ids=batch.get("position_ids"),
                         use_cache=False).last_hidden_state
        return linear_cross_entropy_sum(hidden, head.weight, batch["labels"])

    def _decoder_and_head(self):
        if self._compiled is not None and self.training:
            return None  # the compiled graph is the whole model's
        if self._trainer is not None and type(self.trainer.strategy).__name__ not in ("SingleDeviceStrategy",
                                                                                       "DDPStrategy"):
            return None  # a sharded head's weight is whole only inside its own forward
        return decoder_and_head(self.model)

    def training_loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The loss to minimize, and its parts to log as train/<name> (subclasses change the objective)."""
        return self.nats_sum(batch) / batch["labels"].numel(), {}

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        loss, parts = self.training_loss(batch)
        bad = not torch.isfinite(loss).item()
        if self.trainer.world_size > 1:  # every rank must take the same branch
            bad = self.trainer.strategy.reduce_boolean_decision(bad, all=False)
        if bad:
            return self._nonfinite(loss)
        for name, value in {"loss": loss, **parts}.items():
            self._step_values.setdefault(name, []).append(value.detach())
        return loss

    def on_before_optimizer_step(self, optimizer) -> None:
        """Log each train/<name> once per optimizer step: the mean over its accumulated micro-batches (and,
        with sync_dist, over the processes), not the last micro-batch's value."""
        means = {f"train/{k}": torch.stack(v).mean() for k, v in self._step_values.items()}
        self._step_values.clear()
        sync = self.trainer.world_size > 1
        if "train/loss" in means:
            self.log("train/loss", means.pop("train/loss"), on_step=True, on_epoch=False, prog_bar=True,
                     sync_dist=sync)
        if means:
            self.log_dict(means, on_step=True, on_epoch=False, sync_dist=sync)

    def _nonfinite(self, loss: torch.Tensor) -> None:
        step = self.trainer.global_step
        if self.hparams.on_nonfinite_loss == "stop":
            raise UserError(f"training loss is {loss.item()} at step {step}: stopped. Lower optim.lr, keep "
                            "trainer.gradient_clip_val, try trainer.precision=32-true, or set "
                            "on_nonfinite_loss=skip; resume from the last checkpoint with resume=auto")
        self.skipped_steps += 1
        self.print(f"warning: training loss is {loss.item()} at step {step}: skipped this batch "
                   f"({self.skipped_steps} skipped so far)")
        self.log("train/skipped_steps", float(self.skipped_steps))
        return None  # Lightning skips backward and the optimizer step

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        # the per-token nats go on to callbacks (MixtureMetrics splits them by source)
        nats = self.token_nats(batch)
        self.val_metrics.update(nats, batch.get("label_bytes"), batch["labels"])
        return nats.detach()

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        nats = self.token_nats(batch)
        self.test_metrics.update(nats, batch.get("label_bytes"), batch["labels"])
        return nats.detach()

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val", self.val_metrics)

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test", self.test_metrics)

    def _log_metrics(self, prefix: str, metrics: LanguageModelMetrics) -> None:
        values = metrics.compute()  # already reduced across processes by torchmetrics
        # sync_dist only averages values that are already equal on every rank (it silences a warning)
        self.log_dict({f"{prefix}/{k}": v for k, v in values.items()}, prog_bar=prefix == "val", sync_dist=True)
        metrics.reset()

    def configure_optimizers(self):
        strategy = type(self.trainer.strategy).__name__
        if self.optim_cfg.name == "muon" and strategy in ("FSDPStrategy", "ModelParallelStrategy", "DeepSpeedStrategy"):
            # Newton-Schulz needs each whole matrix; sharded parameters hold slices of it
            raise UserError(f"optim=muon is not supported with a sharded strategy ({strategy}): use strategy=ddp "
                            "(or auto), or optim=adamw")
        return build_optimizer(self.model, self.optim_cfg, self.trainer.estimated_stepping_batches,
                               trainer_clock(self.trainer), clips_under_amp(self.trainer))

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # every process's random state (dropout differs per rank), gathered into the one checkpoint file
        states = _rng_states()
        if self.trainer.world_size > 1:
            gathered: list = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(gathered, states)
            checkpoint["rng_states_per_rank"] = gathered
        checkpoint["rng_states"] = states

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        per_rank = checkpoint.get("rng_states_per_rank")
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self._trainer else (1, 0)
        if per_rank and len(per_rank) == world:
            self._rng_to_restore = per_rank[rank]
        elif "rng_states" in checkpoint:
            self._rng_to_restore = checkpoint["rng_states"]

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        # Restored right before the first step, not at load time: setting up the run after the load (loops,
        # dataloaders, the strategy) may draw random numbers the interrupted run drew before its checkpoint.
        if self._rng_to_restore is not None:
            _set_rng_states(self._rng_to_restore)
            self._rng_to_restore = None


def pretrained_config(model) -> dict[str, Any]:
    """A loaded model's config as `model_config` takes it: the fields that differ from the architecture's defaults."""
    skip = {"model_type", "architectures", "transformers_version", "_name_or_path", "dtype", "torch_dtype",
            "quantization_config"}
    return {k: v for k, v in model.config.to_diff_dict().items() if k not in skip}


def _rng_states() -> dict[str, Any]:
    """Every random source, as types `torch.load(weights_only=True)` accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {"torch": torch.get_rng_state(), "python": random.getstate(),
              "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate(_tuples(states["python"]))
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _tuples(x: Any) -> Any:
    return tuple(_tuples(v) for v in x) if isinstance(x, list | tuple) else x
