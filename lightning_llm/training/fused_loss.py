"""The training loss without the logits: the LM head and cross-entropy fused, a chunk of tokens at a time.

A causal LM's logits are its largest activation: batch x length x vocabulary (8 x 256 x 49,152 fp32 for SmolLM2
is 403 MB, and Qwen's vocabulary is 3x larger), kept for backward along with the log-softmax and its gradient.
Here the head's matmul, the cross-entropy and their gradients are computed in the forward pass, a chunk of
tokens at a time (as Liger Kernel's fused linear cross-entropy does), so only one chunk's logits ever exist
and backward only scales the stored gradients. Same FLOPs as the plain path, no recomputation.

Used for the training loss of architectures whose logits are exactly `lm_head(decoder(x))` (no soft-capping or
logit scaling), with a plain `nn.Linear` head, on one device or DDP; anything else keeps the plain path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lightning_llm.data.config import IGNORE

# model types whose forward is `logits = lm_head(<base_model_prefix>(...).last_hidden_state)`, nothing more
PLAIN_HEAD_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "smollm3", "olmo", "olmo2", "phi3", "gpt2"})
CHUNK_LOGITS = 2 ** 25  # elements of one chunk's logits (128 MB in fp32)


def decoder_and_head(model: nn.Module) -> tuple[nn.Module, nn.Linear] | None:
    """The decoder (up to the final norm) and the LM head of `model` (a peft model's base included), or None
    when its logits are anything more than the head applied to the decoder's output."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    config = getattr(base, "config", None)
    if config is None or config.model_type not in PLAIN_HEAD_TYPES:
        return None
    decoder = getattr(base, getattr(base, "base_model_prefix", ""), None)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    # a LoRA-wrapped or biased head, or a quantized one, is not a plain matmul of the weight
    if decoder is None or type(head) is not nn.Linear or head.bias is not None:
        return None
    return decoder, head


def linear_cross_entropy_sum(hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over tokens of cross-entropy(hidden @ weight.T, labels) in nats, in float32; `IGNORE` labels cost 0.
    hidden [..., H], weight [V, H], labels [...]. Differentiable in `hidden` and `weight`."""
    hidden, labels = hidden.reshape(-1, hidden.shape[-1]), labels.reshape(-1)
    chunk = max(1, CHUNK_LOGITS // weight.shape[0])
    return _LinearCrossEntropySum.apply(hidden, weight, labels, chunk)


class _LinearCrossEntropySum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, chunk: int) -> torch.Tensor:
        # Runs under the caller's autocast, so the matmuls are bf16 under bf16-mixed as in the plain path; the
        # softmax and its gradient are float32 as `token_nats` computes them.
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], chunk):
            h, y = hidden[start:start + chunk], labels[start:start + chunk]
            logits = F.linear(h, weight)
            probs = logits.float()
            keep = y != IGNORE
            target = torch.where(keep, y, 0)
            lse = torch.logsumexp(probs, dim=-1)
            nats = lse - probs.gather(1, target[:, None]).squeeze(1)
            total += nats[keep].sum()
            if not (want_h or want_w):
                continue
            # d nats / d logits = softmax - one_hot(target); 0 for ignored tokens
            probs.sub_(lse[:, None]).exp_()
            probs[torch.arange(len(y), device=y.device), target] -= 1.0
            probs.mul_(keep[:, None])
            g = probs.to(logits.dtype)
            del logits, probs
            if want_h:
                grad_h[start:start + chunk] = (g @ weight.to(g.dtype)).to(hidden.dtype)
            if want_w:
                grad_w += (g.t() @ h.to(g.dtype)).float()
        ctx.save_for_backward(*(t for t in (grad_h, grad_w) if t is not None))
        ctx.has = (want_h, want_w)
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        saved = iter(ctx.saved_tensors)
        want_h, want_w = ctx.has
        grad_h = next(saved) * grad_out if want_h else None  # a 0-dim factor keeps the stored dtype
        grad_w = (next(saved) * grad_out).to(ctx.weight_dtype) if want_w else None
        return grad_h, grad_w, None, None


def linear_token_logps(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log softmax(hidden @ weight.T)[target] of each token, float32, without the [tokens x vocabulary] logits: a
    chunk at a time, the logits computed again in backward (one more head matmul instead of keeping them).
    hidden [N, H] (only the tokens that need a log-prob), weight [V, H], targets [N]. Preference losses need
    per-sequence sums of these, which a single fused sum (`linear_cross_entropy_sum`) cannot give."""
    dtype = torch.get_autocast_dtype(hidden.device.type) if torch.is_autocast_enabled(hidden.device.type) \
        else hidden.dtype
    chunk = max(1, CHUNK_LOGITS // weight.shape[0])
    return _LinearTokenLogps.apply(hidden, weight, targets, chunk, dtype)


class _LinearTokenLogps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk: int, dtype: torch.dtype):
        out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(dtype)
            for start in range(0, hidden.shape[0], chunk):
                logits = F.linear(hidden[start:start + chunk].to(dtype), w).float()
                y = targets[start:start + chunk]
                out[start:start + chunk] = logits.gather(1, y[:, None]).squeeze(1) - torch.logsumexp(logits, dim=-1)
        ctx.save_for_backward(hidden, weight, targets)
        ctx.chunk, ctx.dtype = chunk, dtype
        return out

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        hidden, weight, targets = ctx.saved_tensors
        want_h, want_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty_like(hidden) if want_h else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if want_w else None
        with torch.autocast(hidden.device.type, enabled=False):
            w = weight.to(ctx.dtype)
            for start in range(0, hidden.shape[0], ctx.chunk):
                h = hidden[start:start + ctx.chunk].to(ctx.dtype)
                y = targets[start:start + ctx.chunk]
                # d logp / d logits = one_hot(target) - softmax, scaled by each token's incoming gradient
                g = torch.softmax(F.linear(h, w).float(), dim=-1).neg_()
                g[torch.arange(len(y), device=y.device), y] += 1.0
                g.mul_(grad_out[start:start + ctx.chunk, None])
                g = g.to(ctx.dtype)
                if want_h:
                    grad_h[start:start + ctx.chunk] = (g @ w).to(hidden.dtype)
                if want_w:
                    grad_w += (g.t() @ h).float()
        return grad_h, None if grad_w is None else grad_w.to(weight.dtype), None, None, None
