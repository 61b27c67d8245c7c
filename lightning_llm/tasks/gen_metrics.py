"""Scores of generated text against references, all offline: SQuAD exact match/F1, sacreBLEU BLEU and chrF,
ROUGE-1/2/L (torchmetrics; no tokenizer or nltk download at run time)."""

from __future__ import annotations

from lightning_llm.errors import UserError

METRICS = ("squad", "bleu", "chrf", "rouge")


def score(metrics: list[str], predictions: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus-level scores on a 0-100 scale: exact_match and f1 (squad), bleu, chrf, rouge1/rouge2/rougeL."""
    from torchmetrics.functional.text import chrf_score, rouge_score, sacre_bleu_score, squad

    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise UserError(f"finetune.eval.metrics: unknown {unknown}; choose from {list(METRICS)}")
    if not predictions:
        return {}
    out: dict[str, float] = {}
    if "squad" in metrics:
        preds = [{"prediction_text": p, "id": str(i)} for i, p in enumerate(predictions)]
        target = [{"answers": {"answer_start": [0] * len(r), "text": r}, "id": str(i)}
                  for i, r in enumerate(references)]
        out.update({k: float(v) for k, v in squad(preds, target).items()})
    if "bleu" in metrics:
        out["bleu"] = 100 * float(sacre_bleu_score(predictions, references))
    if "chrf" in metrics:
        out["chrf"] = 100 * float(chrf_score(predictions, references))
    if "rouge" in metrics:
        r = rouge_score(predictions, [ref[0] for ref in references], rouge_keys=("rouge1", "rouge2", "rougeL"))
        out.update({k: 100 * float(r[f"{k}_fmeasure"]) for k in ("rouge1", "rouge2", "rougeL")})
    return out
