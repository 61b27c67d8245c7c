"""The data pipeline: source -> cleaning -> split -> tokenizer -> packed shards + manifest.json.

The result is one folder under `data_dir`, named by a hash of everything that produced it; it is built
in a temp folder and renamed into place, so a folder with a manifest is always complete and is reused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from lightning_llm.data.cleaning import clean
from lightning_llm.data.config import SPLITS, DataConfig, TokenizerConfig
from lightning_llm.data.packing import pack, token_dtype
from lightning_llm.data.sources import describe, fingerprint, load_documents
from lightning_llm.data.splits import complete_splits
from lightning_llm.data.tokenizer import load_tokenizer, tokenizer_hash, train_bpe
from lightning_llm.errors import UserError
from lightning_llm.io import atomic_dir, write_json

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_BATCH = 1000  # documents per encode_batch call


def prepared_dir(data: DataConfig, tokenizer: TokenizerConfig, data_dir: str | Path) -> Path:
    """The folder that holds (or will hold) the data prepared from these configs."""
    produced_by = {"format": FORMAT_VERSION, "source": fingerprint(data), "data": _data_key(data),
                   "tokenizer": asdict(tokenizer)}
    key = hashlib.sha256(json.dumps(produced_by, sort_keys=True, default=str).encode()).hexdigest()[:12]
    label = "files" if data.data_files else Path(data.path).name if data.path else data.corpus
    return Path(data_dir).expanduser() / f"{label}-{key}"


def prepare(data: DataConfig, tokenizer: TokenizerConfig, data_dir: str | Path) -> Path:
    """Run the pipeline unless its output already exists; returns the prepared folder."""
    out = prepared_dir(data, tokenizer, data_dir)
    if (out / MANIFEST).exists():
        log.info("Reusing prepared data at %s", out)
        return out
    start = time.perf_counter()
    log.info("Preparing %s into %s", describe(data), out)
    docs = load_documents(data)
    reports = {}
    for split in list(docs):
        docs[split], reports[split] = clean(docs[split], data.cleaning, data.num_proc)
        if len(docs[split]) == 0:
            raise UserError(f"the {split} split of {describe(data)} is empty after cleaning "
                            f"({reports[split]['documents_in']} documents in, dropped: {reports[split]['dropped']}); "
                            "check the files hold text")
    docs = complete_splits(docs, data.split)
    with atomic_dir(out) as tmp:
        tok = _tokenizer(tokenizer, docs["train"])
        tok.save_pretrained(tmp / "tokenizer")
        shards = tmp / "shards"
        shards.mkdir()
        splits = {}
        for split in SPLITS:
            batches = (b["text"] for b in docs[split].iter(batch_size=_BATCH))
            splits[split] = pack(batches, tok, data.seq_len, shards, split, data.shard_size)
            if splits[split]["sequences"] == 0:
                raise UserError(f"the {split} split has {splits[split]['tokens']} tokens, fewer than "
                                f"data.seq_len + 1 = {data.seq_len + 1}: give it more text or lower data.seq_len")
        write_json(tmp / "cleaning_report.json", reports)
        write_json(tmp / MANIFEST, {
            "format": FORMAT_VERSION,
            "source": describe(data),
            "seq_len": data.seq_len,
            "dtype": token_dtype(len(tok)).name,
            "tokenizer": {"hash": tokenizer_hash(tok), "vocab_size": len(tok), "eos_token_id": tok.eos_token_id},
            "splits": splits,
            "cleaning": reports,
            "config": {"data": asdict(data), "tokenizer": asdict(tokenizer)},
            "seconds": round(time.perf_counter() - start, 2),
        })
    log.info("Prepared data in %.1fs: %s", time.perf_counter() - start,
             ", ".join(f"{s} {splits[s]['tokens']:,} tokens" for s in SPLITS))
    return out


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise UserError(f"{path} does not exist: run `llm-prepare` (or `llm-train`) with this data config first")
    return json.loads(path.read_text())


def _tokenizer(cfg: TokenizerConfig, train):
    if cfg.path:
        return load_tokenizer(cfg.path, cfg.trust_remote_code)
    texts = (b["text"] for b in train.iter(batch_size=_BATCH))
    batches = (t for batch in texts for t in batch)
    return train_bpe(batches, cfg.vocab_size, cfg.min_frequency, cfg.eos_token, length=len(train))


def _data_key(data: DataConfig) -> dict:
    """The data fields that change what is prepared (batching and workers do not)."""
    d = asdict(data)
    for k in ("batch_size", "eval_batch_size", "num_workers", "num_proc"):
        d.pop(k)
    return d
