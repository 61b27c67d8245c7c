"""The forgetting report of a fine-tuning run: bits per byte on a reference text before and after.

Fine-tuning a pretrained base on a narrow task can wreck its language modelling while the task metric climbs
(a learning rate tuned on a small model does it in a dozen steps). Every fine-tuning run scores one general
text the task data does not contain, with the base and with the fine-tuned model, and warns when the second is
worse by more than `warn_above` (a fraction).

The default text: the opening speeches of the plays the built-in QA and NER data hold out for test (so the
`qa` and `ner` recipes never train on it; `translate` and `summarize` train on Bible verses and Debian package
descriptions), `max_bytes` of it in all. `files=` scores your own text instead.
"""

from __future__ import annotations

import glob
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from lightning_llm.data.tokenizer import token_byte_lengths
from lightning_llm.errors import UserError

log = logging.getLogger("lightning_llm")


@dataclass
class ForgettingConfig:
    """`finetune.forgetting.*`."""

    enabled: bool = True
    files: list[str] | str | None = None  # your own reference text (.txt, globs); None: held-out plays
    max_bytes: int = 24_000  # of the reference text scored (its first bytes)
    seq_len: int = 512  # scored in windows of this many tokens, each token once
    batch_size: int = 4
    warn_above: float = 0.05  # warn when bpb after / bpb before - 1 exceeds this


def reference_text(files: list[str] | str | None, max_bytes: int) -> tuple[str, str]:
    """The reference text (at most `max_bytes` UTF-8 bytes) and a short description of where it came from."""
    if files:
        paths = [p for pattern in ([files] if isinstance(files, str) else files)
                 for p in (sorted(glob.glob(pattern)) or [pattern])]
        texts = []
        for p in paths:
            try:
                texts.append(Path(p).read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise UserError(f"finetune.forgetting.files: {p} does not exist: give a text file (or glob) "
                                "of general text, or null for the built-in held-out plays") from None
            except UnicodeDecodeError as e:
                raise UserError(f"finetune.forgetting.files: {p} is not UTF-8 ({e.reason} at byte {e.start}): "
                                "convert it (iconv -t UTF-8) or give another file") from None
        text, where = "\n\n".join(texts), ", ".join(paths)
    else:
        text, where = _held_out_plays(max_bytes)
    text = _cut(text, max_bytes)
    if not text.strip():
        raise UserError(f"finetune.forgetting: the reference text ({where}) is empty: give files with text")
    return text, where


def _held_out_plays(max_bytes: int) -> tuple[str, str]:
    from lightning_llm.tasks.sources import _bucket, _modern_plays

    plays = [p for p in _modern_plays() if _bucket(p.stem, 0.1, 0.1) == "test"]
    share = max_bytes // max(1, len(plays)) + 1  # an equal share of each, from its first act on
    parts = [_cut(re.split(r"\n\s*ACT I\b", p.read_text(encoding="utf-8"), maxsplit=1)[-1].strip(), share)
             for p in plays]
    return "\n\n".join(parts), f"held-out plays ({', '.join(p.stem.removesuffix('_gut') for p in plays)})"


def _cut(text: str, max_bytes: int) -> str:
    return text.encode()[:max_bytes].decode(errors="ignore")


@torch.no_grad()
def bits_per_byte(model, tokenizer, text: str, seq_len: int = 512, batch_size: int = 4) -> dict[str, float]:
    """Bits per UTF-8 byte of `text` under `model`: windows of `seq_len` tokens that overlap by one, so every
    token after the first is predicted once (with less context at a window's start, the same for every model
    scored this way). Computed in float32 logits, in eval mode; the model's mode is restored."""
    ids = torch.tensor(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])
    if len(ids) < 2:
        raise UserError("the reference text is under two tokens: give a longer one")
    lengths = torch.from_numpy(token_byte_lengths(tokenizer).astype("int64"))
    context = getattr(model.config, "max_position_embeddings", None) or seq_len
    step = min(seq_len, context) - 1
    windows = [ids[i:i + step + 1] for i in range(0, len(ids) - 1, step)]
    was_training = model.training
    model.eval()
    nats, nbytes = 0.0, 0
    device = next(model.parameters()).device
    try:
        for start in range(0, len(windows), batch_size):
            chunk = windows[start:start + batch_size]
            width = max(len(w) for w in chunk)
            batch = torch.zeros(len(chunk), width, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for row, w in enumerate(chunk):
                batch[row, :len(w)], mask[row, :len(w)] = w, 1
            logits = model(input_ids=batch.to(device), attention_mask=mask.to(device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            target = batch[:, 1:].to(device)
            token_nats = -logp.gather(-1, target.unsqueeze(-1)).squeeze(-1)
            keep = mask[:, 1:].bool().to(device)
            nats += float(token_nats[keep].double().sum())
            nbytes += int(lengths[batch[:, 1:][mask[:, 1:].bool()]].sum())
    finally:
        model.train(was_training)
    return {"bpb": nats / max(1, nbytes) / math.log(2), "tokens": len(ids), "bytes": nbytes}


def language_model_view(model, base: str | Path):
    """A causal LM to score with: `model` itself when it has an LM head; for a token-classification model
    (recipe=ner), the base's causal LM with the fine-tuned backbone loaded into it, so the figure says how
    far fine-tuning moved the backbone the base's head reads (a tied head moves with the embeddings)."""
    if not hasattr(model, "get_output_embeddings") or model.get_output_embeddings() is not None:
        return model
    from lightning_llm.models.pretrained import load_causal_lm

    lm = load_causal_lm(base)
    backbone = getattr(model, model.base_model_prefix)
    getattr(lm, lm.base_model_prefix).load_state_dict(backbone.state_dict())
    return lm


def report(before: dict[str, float], after: dict[str, float], where: str, warn_above: float) -> dict:
    """The `forgetting` entry of metrics.json; logs a warning when bpb rose by more than `warn_above`."""
    change = after["bpb"] / before["bpb"] - 1
    out = {"reference": where, "bytes": after["bytes"], "bpb_before": round(before["bpb"], 4),
           "bpb_after": round(after["bpb"], 4), "change": round(change, 4), "warn_above": warn_above,
           "warned": change > warn_above}
    if out["warned"]:
        log.warning("Forgetting: bits per byte on the reference text rose %.1f%% (%.4f -> %.4f), over the "
                    "%.0f%% of finetune.forgetting.warn_above: lower optim.lr, use LoRA (lora.r=16) or fewer "
                    "steps", 100 * change, before["bpb"], after["bpb"], 100 * warn_above)
    return out


def closing_line(entry: dict) -> str:
    return (f"reference bpb (forgetting): {entry['bpb_before']:.4f} before -> {entry['bpb_after']:.4f} after "
            f"({100 * entry['change']:+.1f}%; warns above +{100 * entry['warn_above']:.0f}%)"
            + ("  ** WARNING **" if entry["warned"] else ""))


class ReferenceScore:
    """The forgetting report of one run: bits per byte of the reference text before fine-tuning and after. A resumed
    run has no "before" figure (its first part ended before writing metrics), so it scores the base again at the
    end."""

    def __init__(self, cfg: ForgettingConfig, base: Path, tokenizer):
        self.cfg, self.base, self.tokenizer, self.before = cfg, base, tokenizer, None
        self.text, self.where = reference_text(cfg.files, cfg.max_bytes) if cfg.enabled else ("", "")

    def _score(self, model) -> dict:
        return bits_per_byte(language_model_view(model, self.base), self.tokenizer, self.text, self.cfg.seq_len,
                             self.cfg.batch_size)

    def score_before(self, model) -> None:
        if self.cfg.enabled:
            self.before = self._score(model)
            log.info("Reference text (%s, %d bytes): %.4f bits per byte before fine-tuning", self.where,
                     self.before["bytes"], self.before["bpb"])

    def report(self, model, loggers: list, step: int) -> dict | None:
        """The metrics.json entry, also logged as forgetting/* (at once: after fit and test flushed theirs)."""
        if not self.cfg.enabled:
            return None
        if self.before is None:  # resumed: the base is loaded again to score it
            from lightning_llm.models.pretrained import load_causal_lm

            self.before = self._score(load_causal_lm(self.base))
        entry = report(self.before, self._score(model), self.where, self.cfg.warn_above)
        for lg in loggers:
            lg.log_metrics({f"forgetting/{k}": float(entry[k]) for k in ("bpb_before", "bpb_after", "change")},
                           step=step)
            getattr(lg, "flush", lg.save)()  # our CSV logger buffers rows; flush() writes them
        return entry
