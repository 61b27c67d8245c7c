"""LitData's row decoding under the in-chunk shuffles, side by side in one run: rows/s of a `StreamingDataset` over
a local optimized dataset of packed rows (uint16 arrays, as `llm-prepare` publishes them), for each `batch_decode`
and `item_shuffle_window` our streaming path could use.

    python -m benchmarks.streaming_decode                  # 20,000 rows of 257 tokens, 5,000 read per case
    python -m benchmarks.streaming_decode --rows 100000 --seq-len 2049

No network and no training: it isolates the reading cost that `benchmarks.streaming_speed` measures inside a run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = [("all", 0), ("auto", 0), (0, 0), ("auto", None)]  # ours first; (auto, None) is LitData's default


def _write(root: Path, rows: int, seq_len: int) -> None:
    from litdata.streaming.writer import BinaryWriter
    from litdata.utilities.env import _DistributedEnv

    writer = BinaryWriter(str(root), chunk_bytes="64MB")
    writer._distributed_env = _DistributedEnv(world_size=1, global_rank=0, num_nodes=1)
    rng = np.random.default_rng(0)
    for i in range(rows):
        writer.add_item(i, rng.integers(0, 8000, seq_len, dtype=np.uint16))
    writer.done()
    writer.merge()


def _rows_per_s(root: Path, cache: Path, batch_decode, window, read: int) -> float:
    import litdata

    ds = litdata.StreamingDataset(str(root), cache_dir=str(cache), shuffle=True, seed=0, drop_last=False,
                                  item_shuffle_window=window, batch_decode=batch_decode)
    start, n = time.perf_counter(), 0
    for _ in ds:
        n += 1
        if n == read:
            break
    return n / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seq-len", type=int, default=257, help="tokens a row (the default recipe's seq_len + 1)")
    parser.add_argument("--read", type=int, default=5_000, help="rows read in each case")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        _write(root, args.rows, args.seq_len)
        results = [(bd, w, _rows_per_s(root, Path(tmp) / f"cache-{i}", bd, w, args.read))
                   for i, (bd, w) in enumerate(CASES)]
    ours = results[0][2]
    print(f"\n{args.rows:,} rows of {args.seq_len} tokens, shuffle=True, {args.read:,} rows read per case, "
          "one process\n")
    print("| batch_decode | item_shuffle_window | rows/s | vs ours |")
    print("|---|---|---|---|")
    for bd, w, r in results:
        window = "0 (full permutation)" if w == 0 else "256 (LitData's default)"
        print(f"| {bd!r} | {window} | {r:,.0f} | {r / ours:.3f}x |")


if __name__ == "__main__":
    main()
