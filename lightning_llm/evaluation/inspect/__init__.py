"""Looking inside a model: per-token surprisal (an HTML page), attention maps, and the logit lens."""

from lightning_llm.evaluation.inspect.attention import attention_entropy, attention_maps, save_attention_grids
from lightning_llm.evaluation.inspect.logit_lens import logit_lens, save_logit_lens
from lightning_llm.evaluation.inspect.page import surprisal_page
from lightning_llm.evaluation.inspect.run import inspect_text
from lightning_llm.evaluation.inspect.surprisal import TokenSurprisal, encode_text, surprisal

__all__ = ["TokenSurprisal", "attention_entropy", "attention_maps", "encode_text", "inspect_text", "logit_lens",
           "save_attention_grids", "save_logit_lens", "surprisal", "surprisal_page"]
