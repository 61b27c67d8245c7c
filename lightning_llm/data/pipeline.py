"""The data pipeline: source -> cleaning suite -> split -> tokenizer -> packed shards + manifest.json.

The result is one folder under `data_dir`, named by a hash of everything that produced it. It is built
in `<name>.partial` and renamed into place at the end, so a folder with a manifest is always complete and
is reused; a killed preparation resumes in `.partial`, where the cleaning stages skip finished shards.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import datasets
import orjson

from lightning_llm.data.cleaning.report import format_table, mass_losses, merge_reports
from lightning_llm.data.cleaning.run import clean_corpus
from lightning_llm.data.config import SPLITS, DataConfig, TokenizerConfig
from lightning_llm.data.mixture import mixture_sources
from lightning_llm.data.packing import pack, token_dtype
from lightning_llm.data.prepared_source import PreparedSource, check_seq_len, copy_rows, open_prepared, split_counts
from lightning_llm.data.sources import describe, fingerprint, source_readers
from lightning_llm.data.splits import complete_splits
from lightning_llm.data.streaming import is_url
from lightning_llm.data.tokenizer import load_tokenizer, tokenizer_files_hash, tokenizer_hash, train_bpe
from lightning_llm.errors import UserError
from lightning_llm.io import write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
MANIFEST = "manifest.json"
REPORT = "cleaning_report.json"
_BATCH = 1000  # documents per encode_batch call
_MAX_TASKS = 64
_ONE_TASK_BYTES = 4 * 2**20


def prepared_dir(data: DataConfig, tokenizer: TokenizerConfig, data_dir: str | Path, streamed: bool = False) -> Path:
    """The folder that holds (or will hold) the data prepared from these configs (`streamed`: for a run that streams
    it from an object store, where a mixture's URL sources are streamed from where they are instead of copied)."""
    if data.mixture:
        sources = mixture_sources(data)
        source = {n: fingerprint(c) if isinstance(c, DataConfig) else open_prepared(c, f"data.mixture.{n}").digest
                  for n, (_, c) in sources.items()}
    else:
        source = fingerprint(data)
    produced_by = {"format": FORMAT_VERSION, "source": source, "data": _data_key(data),
                   "tokenizer": asdict(tokenizer)}
    if streamed and data.mixture and any(isinstance(c, str) and is_url(c) for _, c in sources.values()):
        produced_by["url_sources_streamed"] = True  # its manifest points at them: not a folder a local run can use
    if tokenizer.path and (files := tokenizer_files_hash(tokenizer.path)):
        produced_by["tokenizer_files"] = files
    key = hashlib.sha256(json.dumps(produced_by, sort_keys=True, default=str).encode()).hexdigest()[:12]
    label = ("mixture" if data.mixture else "files" if data.data_files else Path(data.path).name if data.path
             else data.corpus)
    return Path(data_dir).expanduser() / f"{label}-{key}"


def prepare(data: DataConfig, tokenizer: TokenizerConfig, data_dir: str | Path, streamed: bool = False) -> Path:
    """Run the pipeline unless its output already exists; returns the prepared folder.

    Processes that share `data_dir` (the ranks of a torchrun or SLURM job, on one node or on a shared
    filesystem) take turns through a lock beside the folder: the first prepares, the others wait for it and
    then reuse what it made. A rank on a node-local `data_dir` prepares that node's copy.
    """
    from filelock import FileLock, Timeout

    out = prepared_dir(data, tokenizer, data_dir, streamed)
    if (out / MANIFEST).exists():
        log.info("Reusing prepared data at %s", out)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(f"{out}.lock")
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("Another process is preparing %s: waiting for it (at most data.prepare_timeout_s=%s s)", out,
                 data.prepare_timeout_s)
        try:
            lock.acquire(timeout=data.prepare_timeout_s)
        except Timeout:
            raise UserError(f"waited {data.prepare_timeout_s} s for another process preparing {out} (lock "
                            f"{out}.lock): raise data.prepare_timeout_s, or run llm-prepare once before the "
                            "job") from None
    try:
        if (out / MANIFEST).exists():
            log.info("Reusing prepared data at %s (another process made it)", out)
            return out
        return _prepare(data, tokenizer, out, streamed)
    finally:
        lock.release()


def _prepare(data: DataConfig, tokenizer: TokenizerConfig, out: Path, streamed: bool = False) -> Path:
    start = time.perf_counter()
    datasets.disable_progress_bars()
    work = out.with_name(out.name + ".partial")
    # A mixture's sources are cleaned and split each in a folder of its own, under its own cleaning profile
    everything = {name: cfg for name, (_, cfg) in mixture_sources(data).items()} if data.mixture else {"": data}
    sources = {name: cfg for name, cfg in everything.items() if isinstance(cfg, DataConfig)}
    ready = {name: open_prepared(cfg, f"data.mixture.{name}") for name, cfg in everything.items()
             if isinstance(cfg, str)}  # prepared sources, taken as they are
    docs, reports = {}, {}
    work.mkdir(parents=True, exist_ok=True)
    for name, source in ready.items():
        check_seq_len(source, data.seq_len, f"data.mixture.{name}")
        reports[name] = json.loads((source.folder / REPORT).read_text())
    # checked before the other sources are cleaned, which can take hours
    prepared_tok = _prepared_tokenizer(tokenizer, ready) if ready else None
    for name, cfg in sources.items():
        where = work / "sources" / name if name else work
        log.info("Preparing %s in %s", describe(cfg) + (f" (data.mixture.{name})" if name else ""), where)
        outputs, reports[name] = clean(cfg, where, f"data.mixture.{name}: " if name else "")
        docs[name] = complete_splits(_load_cleaned(outputs, data.split.group_by, where / "arrow"), data.split)
        for split in SPLITS:  # the cleaned corpus, one kept document a line, for users and other tools
            _write_corpus(docs[name][split], where / "corpus" / f"{split}.jsonl")
    if data.mixture:
        write_json(work / REPORT, merge_reports({name: reports[name] for name in everything}))
    # one tokenizer for every source
    tok = prepared_tok or _tokenizer(tokenizer, [d["train"] for d in docs.values()])
    tok.save_pretrained(work / "tokenizer")
    shutil.rmtree(work / "shards", ignore_errors=True)
    (work / "shards").mkdir()
    splits: dict[str, dict] = {}
    mixture: dict[str, dict] = {}
    for name in everything:
        if source := ready.get(name):
            # a URL streamed into a streamed mixture stays where it is; otherwise its rows join the mixture's shards
            linked = streamed and source.url is not None
            mixture[name] = {"source": f"prepared {source.location}", **({"url": source.url} if linked else {}),
                             "splits": {}}
            for split in SPLITS:
                mixture[name]["splits"][split] = counts = split_counts(source, split)
                shards = [] if linked else copy_rows(source, name, split, work / "shards", data.shard_size)
                splits[split] = _add_counts(splits.get(split), {**counts, "shards": shards})
            continue
        dd = docs[name]
        for split in SPLITS:
            batches = (b["text"] for b in dd[split].iter(batch_size=_BATCH))
            packed = pack(batches, tok, data.seq_len, work / "shards", f"{name}-{split}" if name else split,
                          data.shard_size)
            if packed["sequences"] == 0:
                raise UserError(f"{f'data.mixture.{name}: ' if name else ''}the {split} split has "
                                f"{packed['tokens']} tokens, fewer than data.seq_len + 1 = {data.seq_len + 1}: give "
                                "it more text or lower data.seq_len")
            if name:
                packed["shards"] = [{**s, "source": name} for s in packed["shards"]]
                mixture.setdefault(name, {"source": describe(sources[name]), "splits": {}})["splits"][split] = \
                    {k: v for k, v in packed.items() if k != "shards"}
            splits[split] = _add_counts(splits.get(split), packed)
    report = json.loads((work / REPORT).read_text())
    write_json(work / MANIFEST, {
        "format": FORMAT_VERSION,
        "source": describe(data),
        "seq_len": data.seq_len,
        "dtype": token_dtype(len(tok)).name,
        "tokenizer": {"hash": tokenizer_hash(tok), "vocab_size": len(tok), "eos_token_id": tok.eos_token_id},
        "splits": splits,
        **({"mixture": mixture} if mixture else {}),
        "cleaning": {k: v for k, v in report.items() if k not in ("steps", "sources")},
        "config": {"data": asdict(data), "tokenizer": asdict(tokenizer)},
        "seconds": round(time.perf_counter() - start, 2),
    })
    del docs  # release the Arrow files before removing them
    for name in sources:
        where = work / "sources" / name if name else work
        shutil.rmtree(where / "arrow", ignore_errors=True)
        for intermediate in ("clean", "exact", "exact_kept", "minhash", "kept"):
            shutil.rmtree(where / "cleaning" / intermediate, ignore_errors=True)
    if out.exists():
        shutil.rmtree(out)
    work.rename(out)
    print(f"\nCleaning report ({out / REPORT}):\n{format_table(json.loads((out / REPORT).read_text()))}\n")
    log.info("Prepared data in %.1fs: %s", time.perf_counter() - start,
             ", ".join(f"{s} {splits[s]['tokens']:,} tokens" for s in SPLITS))
    return out


def _tasks(readers) -> int:
    """Cleaning tasks for these readers: one per file (at most `_MAX_TASKS`), but one in all for an input under
    `_ONE_TASK_BYTES`. Each task costs datatrove ~0.5 s of set-up and files of its own whatever its size: 24 files
    of 1 kB took 17 s to clean as 24 pooled tasks, 4 s as one task run in-process (measured, 2 cores)."""
    files = max(getattr(r, "num_files", 1) for r in readers)
    if sum(getattr(r, "num_bytes", _ONE_TASK_BYTES) for r in readers) < _ONE_TASK_BYTES:
        return 1
    return min(_MAX_TASKS, files)


def _add_counts(total: dict | None, packed: dict) -> dict:
    """A split's counts over the sources packed so far (one source: its own)."""
    if total is None:
        return packed
    return {k: total[k] + v for k, v in packed.items()}


def clean(data: DataConfig, work: Path, where: str = "") -> tuple[dict[str, Path], dict]:
    """Run the cleaning suite in `work`; returns each split's folder of cleaned JSONL files and the report,
    written as `cleaning_report.json` beside them. `where` begins each error (the mixture source's key)."""
    readers = source_readers(data, work)
    tasks = data.cleaning.tasks or _tasks(readers.values())
    outputs, report = clean_corpus(readers, data.cleaning, work / "cleaning", tasks, data.num_proc or os.cpu_count())
    (work / "corpus").mkdir(parents=True, exist_ok=True)
    report["warnings"] = mass_losses(report, data.cleaning.warn_drop_fraction)
    write_json(work / REPORT, report)
    _guard(report, data.cleaning.max_drop_fraction, work / REPORT, where)
    for split in outputs:
        if report["splits"][split]["documents"] == 0:
            raise UserError(f"{where}the {split} split of {describe(data)} is empty after cleaning "
                            f"({report['records_in']} "
                            f"records in, dropped: {report['dropped']}); check the files hold text, or relax "
                            f"{_step_to_relax(report['dropped'])} (see {work / REPORT})")
    if kept := sum(step.get("eval_duplicates_kept", 0) for step in report["steps"]):
        log.warning("%d validation/test document(s) duplicate other validation/test documents (the same file "
                    "given for both splits?): kept in each, so those splits overlap (see %s)", kept, work / REPORT)
    return outputs, report


def _guard(report: dict, max_fraction: float | None, path: Path, where: str = "") -> None:
    """Warn about (or, past `max_fraction`, refuse) a step that dropped a large share of a split's text."""
    for w in report["warnings"]:
        reasons = ", ".join(f"{r} {share:.0%}" for r, share in w["reasons"].items())
        message = (f"{where}cleaning step '{w['step']}' dropped {w['share']:.0%} of the {w['split']} split's "
                   "characters "
                   f"({reasons}); if that text is good, pick the profile for its kind (cleaning=books|docs|"
                   f"dialogue|web) or relax {_step_to_relax(w['reasons'])} (see {path})")
        if max_fraction is not None and w["share"] > max_fraction:
            raise UserError(message + f"; data.cleaning.max_drop_fraction={max_fraction} makes this an error")
        log.warning(message)


_STEP_OF_REASON = (("gopher_", "data.cleaning.gopher_quality (e.g. =null for text that is not English)"),
                   (("dup_", "top_", "duplicated_"), "data.cleaning.gopher_repetition"),
                   (("line_rules", "lorem_ipsum", "curly_bracket", "too_few_sentences", "no_text_after"),
                    "data.cleaning.c4_lines"),
                   (("empty", "too_short", "too_long"), "data.cleaning.length"),
                   ("language", "data.cleaning.language"), ("html", "data.cleaning.html"),
                   (("exact_", "near_"), "data.cleaning.exact_dedup / near_dedup"))


def _step_to_relax(dropped: dict[str, int]) -> str:
    """The config key of the step that dropped the most documents."""
    if not dropped:
        return "data.cleaning"
    reason = max(dropped, key=dropped.get)
    for prefixes, key in _STEP_OF_REASON:
        if reason.startswith(prefixes):
            return key
    return "data.cleaning.c4_lines"


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise UserError(f"{path} does not exist: run `llm-prepare` (or `llm-train`) with this data config first")
    return json.loads(path.read_text())


def _load_cleaned(outputs: dict[str, Path], group_by: str | None, cache: Path) -> datasets.DatasetDict:
    """Cleaned documents as datasets (Arrow on disk): `text`, `group` where documents must share a split,
    and the rest of each document's metadata as one JSON string, since fields differ between sources."""
    dd = {}
    for split, folder in outputs.items():
        files = sorted(str(f) for f in folder.glob("*.jsonl"))
        features = {"text": datasets.Value("string"), "meta": datasets.Value("string")}
        if group_by or _has_groups(files):
            features["group"] = datasets.Value("string")
        dd[split] = datasets.Dataset.from_generator(
            _records, features=datasets.Features(features), cache_dir=str(cache / split),
            gen_kwargs={"files": files, "group_by": group_by or "group", "grouped": "group" in features})
    return datasets.DatasetDict(dd)


def _records(files: list[str], group_by: str, grouped: bool):
    for record, path in _documents(files):
        row = {"text": record.pop("text")}
        if grouped:
            if group_by not in record:
                raise UserError(f"data.split.group_by={group_by!r} is not a field of every document "
                                f"(missing in {path}; fields: {sorted(record)})")
            row["group"] = str(record.pop(group_by))
        row["meta"] = orjson.dumps(record).decode()
        yield row


def _documents(files: list[str]):
    """The cleaned records, with the kept units of a cut document joined back into one document."""
    held: dict | None = None
    held_path = ""
    for path in files:
        with open(path, "rb") as f:
            for line in f:
                record = orjson.loads(line)
                parent = record.get("document")
                if held is not None and parent is not None and held.get("document") == parent:
                    held["parts"].append(held.pop("sep") + record["text"])
                    held["sep"] = record.get("unit_sep", "\n\n")
                    continue
                if held is not None:
                    yield _joined(held), held_path
                held, held_path = {**record, "parts": [record["text"]], "sep": record.get("unit_sep", "")}, path
    if held is not None:
        yield _joined(held), held_path


def _joined(held: dict) -> dict:
    if "document" not in held:
        return {k: v for k, v in held.items() if k not in ("parts", "sep")}
    record = {k: v for k, v in held.items() if k not in ("parts", "sep", "unit", "unit_sep", "id")}
    record["id"] = record.pop("document")
    record["text"] = "".join(held["parts"])
    return record


def _has_groups(files: list[str]) -> bool:
    if not files:
        return False
    with open(files[0], "rb") as f:
        first = f.readline()
    return bool(first) and "group" in orjson.loads(first)


def _write_corpus(ds: datasets.Dataset, path: Path) -> None:
    """One kept document a line: {"text": ..., **metadata}."""
    with path.open("wb") as f:
        for batch in ds.iter(batch_size=_BATCH):
            metas = batch.get("meta") or [None] * len(batch["text"])
            groups = batch.get("group") or [None] * len(batch["text"])
            for text, meta, group in zip(batch["text"], metas, groups, strict=True):
                record = {"text": text, **(orjson.loads(meta) if meta else {})}
                if group is not None:
                    record.setdefault("group", group)
                f.write(orjson.dumps(record) + b"\n")


def _tokenizer(cfg: TokenizerConfig, trains: list[datasets.Dataset]):
    """The tokenizer of every source: `cfg.path`'s, or a BPE trained on the train splits (each source's once)."""
    if cfg.path:
        return load_tokenizer(cfg.path, cfg.trust_remote_code)
    texts = (b["text"] for train in trains for b in train.iter(batch_size=_BATCH))
    batches = (t for batch in texts for t in batch)
    return train_bpe(batches, cfg.vocab_size, cfg.min_frequency, cfg.eos_token, length=sum(map(len, trains)))


def _prepared_tokenizer(cfg: TokenizerConfig, ready: dict[str, PreparedSource]):
    """The one tokenizer of the prepared sources; `tokenizer.path`, if given, must be the same."""
    hashes = {name: source.manifest["tokenizer"]["hash"] for name, source in ready.items()}
    first = next(iter(ready))
    if other := next((n for n in hashes if hashes[n] != hashes[first]), None):
        raise UserError(f"data.mixture.{first} and data.mixture.{other} were prepared with different tokenizers "
                        f"(hash {hashes[first]}, {hashes[other]}): one tokenizer serves a mixture; prepare them "
                        "again with the same tokenizer.path")
    tok = load_tokenizer(ready[first].folder / "tokenizer")
    if tokenizer_hash(tok) != hashes[first]:
        raise UserError(f"the tokenizer of data.mixture.{first}.prepared={ready[first].location} does not match "
                        "its rows (tokenizer files changed): prepare it again")
    if cfg.path and tokenizer_hash(load_tokenizer(cfg.path, cfg.trust_remote_code)) != hashes[first]:
        raise UserError(f"tokenizer.path={cfg.path} is not the tokenizer data.mixture.{first}.prepared="
                        f"{ready[first].location} was made with: drop tokenizer.path (the mixture then takes the "
                        "prepared source's), or prepare that source again with it")
    log.info("The mixture's tokenizer is the one data.mixture.%s was prepared with (%s)", first,
             ready[first].location)
    return tok


def _data_key(data: DataConfig) -> dict:
    """The data fields that change what is prepared (batching and workers do not)."""
    d = asdict(data)
    for k in ("batch_size", "eval_batch_size", "num_workers", "num_proc", "prepare_timeout_s", "verify",
              "document_mask", "mixture"):
        d.pop(k)
    d["cleaning"].pop("executor")
    if data.mixture:  # each source's documents and cleaning; not the weights, which only change the draw
        for k in ("corpus", "path", "name", "revision", "data_files", "text_column", "cleaning"):
            d.pop(k)
        d["mixture"] = {name: _data_key(cfg) if isinstance(cfg, DataConfig) else {"prepared": cfg}
                        for name, (_, cfg) in mixture_sources(data).items()}
    return d
