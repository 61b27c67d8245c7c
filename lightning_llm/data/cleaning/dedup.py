"""Dedup across splits that decontaminates train and never empties an evaluation split.

A document of validation or test outranks its copies (`priority`): exact dedup keeps it and drops the train
copies, so no evaluation text is also trained on. Evaluation documents themselves are never dropped by
dedup: a copy in another evaluation split (the same file given as validation and test, say) is kept in
both, counted as `eval_duplicates_kept` and warned about.
"""

from __future__ import annotations

from datatrove.data import Document
from datatrove.pipeline.dedup.exact_dedup import ExactDedupFilter
from datatrove.pipeline.dedup.minhash import MinhashDedupFilter


def priority(doc: Document) -> int:
    """Which copy of a duplicate exact dedup keeps: an evaluation document over a train one."""
    return 1 if doc.metadata.get("split", "train") == "train" else 2


class _TakeBackEval:
    """Stands in as a filter's exclusion writer: evaluation documents it is handed are taken back, the rest
    go on to the real writer (if `write_dropped` is on)."""

    def __init__(self, inner, step):
        self.inner, self.step = inner, step
        self.taken: list[Document] = []

    def __enter__(self):
        if self.inner is not None:
            self.inner.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self.inner is not None:
            self.inner.__exit__(*exc)

    def write(self, doc: Document, rank: int = 0, **kwargs) -> None:
        if doc.metadata.get("split", "train") != "train":
            self.taken.append(doc)
            return
        reason = self.step.reason
        self.step.stat_update(f"chars_dropped_{reason}", value=len(doc.text))
        if "document" in doc.metadata:  # a unit of a longer document: the document itself goes on
            self.step.stat_update("dropped", value=-1)
            self.step.stat_update(f"units_dropped_{reason}")
        if self.inner is not None:
            self.inner.write(doc, rank=rank, **kwargs)


class _KeepEvalSplits:
    """Mixin for datatrove's dedup filters: every document of an evaluation split passes."""

    def run(self, data, rank: int = 0, world_size: int = 1):
        taken = self.exclusion_writer = _TakeBackEval(self.exclusion_writer, self)
        for doc in super().run(data, rank, world_size):
            yield from self._give_back(taken)
            yield doc
        yield from self._give_back(taken)

    def _give_back(self, taken: _TakeBackEval):
        for doc in taken.taken:
            self.stat_update("dropped", value=-1)
            self.stat_update("eval_duplicates_kept")
            yield doc
        taken.taken.clear()


class ExactDedupKeepEval(_KeepEvalSplits, ExactDedupFilter):
    reason = "exact_duplicate"


class MinhashDedupKeepEval(_KeepEvalSplits, MinhashDedupFilter):
    reason = "near_duplicate"
