"""A mixture (`data.mixture`) streamed from an object store: each source's rows from its own LitData dataset, drawn
by weight as the memmap path draws them.

Global row `i` comes from source `draw.sources_of(i)` (`MixtureBatchSampler`'s Weyl sequence), so the share of each
source, and which global rows are whose, are the memmap path's; this process takes its slice of each global batch,
and each row is the next one of that source's stream (LitData's: this process's rows of the source, shuffled by
chunk, a new order each epoch; a small source starts its next epoch while a large one goes on). A resume needs no
loader state: the rows this process drew from each source before global batch `k` are counted in closed form
(`rank_counts`), and each stream is started there (LitData's own replay of a position).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset

from lightning_llm.data.sampling import MixtureBatchSampler, interleaved


def _rows_per_epoch(dataset: Any, epoch: int) -> int:
    dataset.set_epoch(epoch)
    return dataset.get_len(1, 1)


def _open(dataset: Any, drawn: int) -> Iterator:
    """`dataset`'s rows for this process from its `drawn`-th on (counted across epochs)."""
    dataset.reset_state_dict()
    dataset.set_batch_size(1)
    dataset.set_num_workers(1)
    epoch = 1
    while drawn >= (n := _rows_per_epoch(dataset, epoch)):
        drawn, epoch = drawn - n, epoch + 1
    dataset.set_epoch(epoch)
    if drawn:  # LitData replays to a position from a state of its own making
        state = dataset.state_dict(num_samples_yielded=drawn, num_workers=1, batch_size=1)
        dataset.load_state_dict({**state, "current_epoch": epoch})
    return iter(dataset)


class StreamedMixtureRows(IterableDataset):
    """This process's training rows of a streamed mixture, one global batch slice after another, from global batch
    `start_batch` to the end of its epoch (`len` is the epoch's rows, as Lightning takes an epoch); iterating again
    goes on from where the last iteration's batches ended. Items are `row_item`s with their `source` index.

    Args:
        datasets: each source's training split (LitData `StreamingDataset`s, made in this process's group).
        draw: the mixture's sampler (weights, seed, batch size, rank, world size): whose row each global row is.
        item: one row (seq_len + 1 tokens) to a training item.
    """

    def __init__(self, datasets: list[Any], draw: MixtureBatchSampler, item: Callable[[np.ndarray], dict],
                 start_batch: int = 0):
        self.datasets, self.draw, self.item = datasets, draw, item
        self.next_batch = start_batch

    def __len__(self) -> int:
        return self.draw.batches_per_epoch * self.draw.batch_size

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        first = self.next_batch
        end = first - first % self.draw.batches_per_epoch + self.draw.batches_per_epoch
        streams = [_open(ds, int(n)) for ds, n in zip(self.datasets, self.draw.rank_counts(first), strict=True)]
        for b in range(first, end):
            # counted before the batch's rows go out: Lightning takes `len` batches and never resumes this generator
            # past the last one, so the count must not wait for it
            self.next_batch = b + 1
            for s in self.draw.sources_of(self.draw.rank_rows(b, b + 1)):
                s = int(s)
                try:
                    row = next(streams[s])
                except StopIteration:  # the source's epoch for this process is used up: its next epoch, reshuffled
                    streams[s] = iter(self.datasets[s])
                    row = next(streams[s])
                yield {**self.item(row), "source": torch.tensor(s)}


class StreamedMixtureEval(IterableDataset):
    """This process's rows of an evaluation split of a streamed mixture, every row once, the sources interleaved in
    proportion to their size (so that a limited evaluation sees each), each item with its `source` index."""

    def __init__(self, datasets: list[Any], item: Callable[[np.ndarray], dict]):
        self.datasets, self.item = datasets, item

    def __len__(self) -> int:
        return sum(self._sizes())

    def _sizes(self) -> list[int]:
        return [ds.get_len(1, 1) for ds in self.datasets]

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        sizes = self._sizes()
        source_of = np.repeat(np.arange(len(sizes)), sizes)
        streams = [iter(ds) for ds in self.datasets]
        for row in interleaved(sizes, list(range(len(sizes)))):
            s = int(source_of[row])
            yield {**self.item(next(streams[s])), "source": torch.tensor(s)}
