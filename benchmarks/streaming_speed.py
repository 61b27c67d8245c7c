"""Streaming from an S3 server against the memmap path: the default recipe's training tokens/s, side by side in one
run (the same data, model and steps; only `paths.data_dir` differs).

    python -m benchmarks.streaming_speed                 # a moto S3 server on localhost, 3 x 300 steps each
    python -m benchmarks.streaming_speed --steps 600 --repeats 1
    AWS_ENDPOINT_URL=... python -m benchmarks.streaming_speed --bucket mine --no-server   # a server of your own

Each run is an `llm-train` process (`trainer.max_time=null`, a fixed number of steps, CSV logger). Its tokens/s is
the whole run's: every `perf/tokens_per_s` window of its metrics.csv but the first (start-up), harmonic mean, i.e.
tokens over training time with evaluation left out. The runs alternate (memmap, stream, memmap, ...) so that a
machine's drift hits both; the table gives each path's median and every pair's ratio. The data is published once
(not timed); every streamed run starts from an empty local cache, i.e. streams cold from the server.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(data_dir: str, run: Path, steps: int, cache: Path, workers: int) -> dict:
    cmd = [sys.executable, "-m", "lightning_llm.cli.train", "logger=csv", f"paths.data_dir={data_dir}",
           f"data.num_workers={workers}",
           "trainer.max_time=null", f"trainer.max_steps={steps}", f"trainer.val_check_interval={steps}",
           f"checkpoint.every_n_train_steps={steps}", "samples.every_n_steps=0", f"hydra.run.dir={run}"]
    env = {**os.environ, "LIGHTNING_LLM_CACHE": str(cache)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[2:])} failed:\n{proc.stderr[-2000:]}")
    with open(run / "csv" / "metrics.csv") as f:
        windows = [float(r["perf/tokens_per_s"]) for r in csv.DictReader(f) if r.get("perf/tokens_per_s")]
    # equal windows of steps, so the harmonic mean is tokens over time; the first holds the start-up
    tokens_per_s = statistics.harmonic_mean(windows[1:] or windows)
    return tokens_per_s, json.loads((run / "metrics.json").read_text())["val"]["bpb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path, alternating")
    parser.add_argument("--bucket", default="bench")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of both runs")
    parser.add_argument("--no-server", action="store_true", help="use AWS_ENDPOINT_URL's server as it is")
    args = parser.parse_args()
    server = None
    if not args.no_server:
        import logging

        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

        port = _free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1",
                          AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}")
        import boto3

        boto3.client("s3").create_bucket(Bucket=args.bucket)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            url = f"s3://{args.bucket}/prepared"
            prep = subprocess.run([sys.executable, "-m", "lightning_llm.cli.prepare", f"paths.data_dir={url}",
                                   f"hydra.run.dir={tmp}"],  # its prepare.log there, not in the working folder
                                  capture_output=True, text=True, env={**os.environ, "LIGHTNING_LLM_CACHE": str(tmp)})
            if prep.returncode != 0:
                sys.exit(f"error: llm-prepare to {url} failed:\n{prep.stderr[-2000:]}")
            runs: dict[str, list[tuple[float, float]]] = {}
            for repeat in range(args.repeats):
                for name, data_dir in (("memmap (local .npy)", str(tmp / "prepared")),
                                       (f"LitData from {url}", url)):
                    cache = tmp if data_dir != url else tmp / f"cold-{repeat}"
                    run = tmp / f"{name.split()[0]}-{repeat}"
                    runs.setdefault(name, []).append(_train(data_dir, run, args.steps, cache, args.num_workers))
    finally:
        if server is not None:
            server.stop()
    mem_runs, stream_runs = runs.values()
    base = statistics.median(t for t, _ in mem_runs)
    print(f"\nDefault recipe, {args.steps} steps a run, {args.repeats} runs each (alternating), one process, "
          f"{os.cpu_count()} CPU threads, data.num_workers={args.num_workers}\n")
    print("| data path | tokens/s (median) | vs memmap | every run's tokens/s | val bpb |")
    print("|---|---|---|---|---|")
    for name, rs in runs.items():
        median = statistics.median(t for t, _ in rs)
        print(f"| {name} | {median:,.0f} | {median / base:.2f}x | {', '.join(f'{t:,.0f}' for t, _ in rs)} | "
              f"{rs[0][1]:.4f} |")
    ratios = [s / m for (s, _), (m, _) in zip(stream_runs, mem_runs, strict=True)]
    print(f"\nstream / memmap, run by run: {', '.join(f'{r:.2f}x' for r in ratios)}")


if __name__ == "__main__":
    main()
