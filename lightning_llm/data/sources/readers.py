"""Read local files as datatrove Documents, counting every record that cannot become one.

datatrove's own JsonlReader logs a malformed line and moves on (and drops the rest of a file at the first
invalid UTF-8 byte); here each such record is a counted drop with its reason, and nothing disappears silently.

Encodings: a file is read as UTF-8; one that is not (real corpora come in Latin-1 / CP-1252 often) is decoded
in the encoding charset-normalizer detects for it, per file, and counted per encoding (`decoded_<encoding>`
in the read step of the cleaning report); only bytes no encoding explains become U+FFFD
(`repaired_invalid_utf8`).
"""

from __future__ import annotations

import os
from pathlib import Path

import charset_normalizer
import orjson
from datatrove.data import Document
from datatrove.pipeline.readers.base import BaseDiskReader

TEXT_SUFFIXES = {".txt", ".text", ".md"}
HTML_SUFFIXES = {".html", ".htm", ".xhtml"}
JSON_SUFFIXES = {".jsonl", ".json", ".ndjson"}
PARQUET_SUFFIXES = {".parquet"}
CSV_SUFFIXES = {".csv", ".tsv"}
COMPRESSION_SUFFIXES = {".gz", ".zst", ".zstd", ".bz2", ".xz"}


def kind_of(path: str) -> str | None:
    """"text", "html", "jsonl", "parquet" or "csv" from a file name (compression suffixes ignored); a file with
    another or no suffix (README, LICENSE-2.0, chapter.01) is plain text if its start is UTF-8 without NULs."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in COMPRESSION_SUFFIXES:
        suffix = Path(p.stem).suffix.lower()
    for kind, suffixes in (("text", TEXT_SUFFIXES), ("html", HTML_SUFFIXES), ("jsonl", JSON_SUFFIXES),
                           ("parquet", PARQUET_SUFFIXES), ("csv", CSV_SUFFIXES)):
        if suffix in suffixes:
            return kind
    return "text" if _looks_like_text(p) else None


def _looks_like_text(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        return False
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # a character cut at the end of the sample is fine
            return detect_encoding(head) is not None
    return True


def detect_encoding(raw: bytes) -> str | None:
    """The text encoding charset-normalizer finds most likely for `raw` (None: it is not text). Short Western
    text often fits several 8-bit code pages equally well (French in cp1250 or cp1252, at the same "chaos");
    a tie within 0.01 goes to cp1252, by far the most common of them (and Latin-1's printable superset)."""
    matches = list(charset_normalizer.from_bytes(raw))
    if not matches:
        return None
    best = matches[0]
    if any(m.encoding == "cp1252" and m.chaos <= best.chaos + 0.01 for m in matches):
        return "cp1252"
    return best.encoding


class LocalDocumentsReader(BaseDiskReader):
    """Text/HTML files (one document each), JSONL, Parquet and CSV/TSV with a header (one per record),
    optionally compressed.

    Args:
        paths_file: a file listing the input paths, one per line, relative to `/`.
        text_key: the JSONL/Parquet field (CSV column) holding the text.
        default_metadata: added to every document (e.g. {"split": "train"}).
    """

    name = "📖 local documents"

    def __init__(self, paths_file: str, text_key: str = "text", default_metadata: dict | None = None,
                 group_fn=None):
        super().__init__("/", paths_file=paths_file, text_key=text_key, default_metadata=default_metadata,
                         add_file_path=False)
        self.compression = "infer"
        self.group_fn = group_fn  # metadata "group" from the file name (documents that must share a split)
        with open(paths_file) as f:
            paths = [line.strip() for line in f if line.strip()]
        self.num_files = len(paths)
        # what the cleaning stages split into tasks by (stored bytes: a compressed file counts as its size on disk)
        self.num_bytes = sum(os.path.getsize("/" + p.lstrip("/")) for p in paths)

    def read_file(self, filepath: str):
        kind = kind_of("/" + filepath.lstrip("/"))
        if kind in ("text", "html"):
            yield from self._whole_file(filepath, kind)
        elif kind == "jsonl":
            yield from self._jsonl(filepath)
        elif kind == "parquet":
            yield from self._parquet(filepath)
        elif kind == "csv":
            yield from self._csv(filepath)
        else:
            self.stat_update("dropped_unsupported_file")

    def _decode(self, raw: bytes, encoding: str | None = None) -> str:
        """`raw` as UTF-8, else in `encoding` (the file's detected one), else UTF-8 with U+FFFD, counted."""
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            pass
        if encoding and encoding != "utf_8":
            try:
                text = raw.decode(encoding)
                self.stat_update(f"decoded_{encoding}")
                return text
            except UnicodeDecodeError:
                pass
        self.stat_update("repaired_invalid_utf8")
        return raw.decode("utf-8", errors="replace")

    def _decode_file(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._decode(raw, None if _damaged_utf8(raw) else detect_encoding(raw))

    def _document(self, text: str, filepath: str, index: int, metadata: dict) -> Document:
        meta = {**(self.default_metadata or {}), **metadata, "source": "/" + filepath.lstrip("/")}
        if self.group_fn is not None:
            meta["group"] = self.group_fn(Path(filepath))
        return Document(text=text, id=f"{filepath}#{index}", metadata=meta)

    def _whole_file(self, filepath: str, kind: str):
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            text = self._decode_file(f.read())
        yield self._document(text, filepath, 0, {"format": kind})

    def _jsonl(self, filepath: str):
        encoding = None  # detected on the file's first line that is not UTF-8, then kept for the file
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            for index, raw in enumerate(_lines(f)):
                if not raw.strip():
                    continue
                if encoding is None and not _is_utf8(raw):
                    encoding = self._file_encoding(filepath)
                try:
                    record = orjson.loads(self._decode(raw, encoding))
                except orjson.JSONDecodeError:
                    self.stat_update("dropped_malformed_json")
                    continue
                doc = self._from_record(record, filepath, index)
                if doc is not None:
                    yield doc

    def _parquet(self, filepath: str):
        import pyarrow.parquet as pq

        with self.data_folder.open(filepath, "rb") as f:
            table = pq.read_table(f)
        for index, record in enumerate(table.to_pylist()):
            doc = self._from_record(record, filepath, index)
            if doc is not None:
                yield doc

    def _csv(self, filepath: str):
        """One document per row of a CSV (TSV) file with a header; quoted fields may span lines."""
        import csv
        import io

        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            text = self._decode_file(f.read())
        delimiter = "\t" if ".tsv" in Path(filepath).suffixes else ","
        csv.field_size_limit(1 << 30)  # a row can hold a whole book
        for index, record in enumerate(csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)):
            record.pop(None, None)  # cells beyond the header
            doc = self._from_record(record, filepath, index)
            if doc is not None:
                yield doc

    def _file_encoding(self, filepath: str) -> str:
        with self.data_folder.open(filepath, "rb", compression=self.compression) as f:
            head = f.read(1 << 20)
        return "utf_8" if _damaged_utf8(head) else detect_encoding(head) or "utf_8"

    def _from_record(self, record, filepath: str, index: int) -> Document | None:
        if not isinstance(record, dict) or self.text_key not in record:
            self.stat_update(f"dropped_no_{self.text_key}_field")
            return None
        text = record.pop(self.text_key)
        if not isinstance(text, str):
            self.stat_update(f"dropped_{self.text_key}_not_a_string")
            return None
        record.pop("metadata", None)
        return self._document(text, filepath, index, {k: v for k, v in record.items()
                                                      if isinstance(v, str | int | float | bool)})


def _damaged_utf8(raw: bytes) -> bool:
    """UTF-8 with some invalid bytes (a cut or corrupted file), not another encoding: it holds valid multi-byte
    UTF-8 sequences, which text in a legacy 8-bit encoding almost never forms by chance."""
    return any(c > "\x7f" and c != "\ufffd" for c in raw.decode("utf-8", errors="replace"))


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _lines(f, chunk_size: int = 1 << 20):
    """Lines of a binary stream, also for decompressors whose streams cannot iterate lines themselves."""
    rest = b""
    while chunk := f.read(chunk_size):
        *lines, rest = (rest + chunk).split(b"\n")
        yield from lines
    if rest:
        yield rest
