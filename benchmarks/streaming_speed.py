"""Streaming from an S3 server against the memmap path: the default recipe's training tokens/s, side by side in one
run (the same data, model and steps; only `paths.data_dir` differs).

    python -m benchmarks.streaming_speed                 # a moto S3 server on localhost, 600 steps each
    python -m benchmarks.streaming_speed --steps 300
    AWS_ENDPOINT_URL=... python -m benchmarks.streaming_speed --bucket mine --no-server   # a server of your own

Each run is an `llm-train` process (`trainer.max_time=null`, a fixed number of steps, CSV logger); tokens/s is its
`perf.tokens_per_s` (training steps only, evaluation left out). The streamed run publishes the data first (not
timed) and then streams it cold from the server.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
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
    return json.loads((run / "metrics.json").read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--bucket", default="bench")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers of both runs")
    parser.add_argument("--no-server", action="store_true", help="use AWS_ENDPOINT_URL's server as it is")
    args = parser.parse_args()
    server = None
    if not args.no_server:
        from moto.server import ThreadedMotoServer

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
            prep = subprocess.run([sys.executable, "-m", "lightning_llm.cli.prepare", f"paths.data_dir={url}"],
                                  capture_output=True, text=True, env={**os.environ, "LIGHTNING_LLM_CACHE": str(tmp)})
            if prep.returncode != 0:
                sys.exit(f"error: llm-prepare to {url} failed:\n{prep.stderr[-2000:]}")
            rows = []
            for name, data_dir, cache in (("memmap (local .npy)", str(tmp / "prepared"), tmp),
                                          (f"LitData from {url}", url, tmp / "cold")):
                metrics = _train(data_dir, tmp / name.split()[0], args.steps, cache, args.num_workers)
                rows.append((name, metrics["perf"]["tokens_per_s"], metrics["val"]["bpb"]))
    finally:
        if server is not None:
            server.stop()
    base = rows[0][1]
    print(f"\nDefault recipe, {args.steps} steps each, one process, {os.cpu_count()} CPU threads, "
          f"data.num_workers={args.num_workers}\n")
    print("| data path | tokens/s | vs memmap | val bpb |")
    print("|---|---|---|---|")
    for name, tps, bpb in rows:
        print(f"| {name} | {tps:,.0f} | {tps / base:.2f}x | {bpb:.4f} |")


if __name__ == "__main__":
    main()
