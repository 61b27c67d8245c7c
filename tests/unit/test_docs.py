"""Docs that cannot lie: every `llm-*` command in README.md and docs/*.md composes with Hydra (as `--cfg job`
would, without running), every relative link and image resolves, and every config key named in backticks exists.

A renamed or removed key fails here, naming the page and line.
"""

from __future__ import annotations

import importlib
import re
import shlex
import tomllib
from functools import cache
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep
from omegaconf import DictConfig, OmegaConf

from lightning_llm.cli._app import CONF_DIR, RECIPES_DIR, use_our_optuna_sweeper

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]  # llm-train -> module:main
FENCE = re.compile(r"^```(\w*)\s*$")
SHELL = {"bash", "sh", "shell", "console"}
# a file name in backticks (`metrics.json`, `model.safetensors`) is not a config key
FILE_SUFFIX = re.compile(r"\.(json|jsonl|safetensors|yaml|yml|py|txt|ckpt|gguf|npy|png|html|csv|md|onnx|db|log|bin|pt|"
                         r"conll|sh|toml|whl|gz|zst|tar|Modelfile)$")


def shell_commands(text: str) -> list[tuple[int, list[str]]]:
    """(line number, argv) of every command in the fenced shell blocks of a Markdown text."""
    out, block, start, joined = [], None, 0, ""
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line.strip())
        if fence:
            block = None if block is not None else fence.group(1)
            continue
        if block is None or block not in SHELL:
            continue
        if not joined:
            start = number
        if line.rstrip().endswith("\\"):
            joined += line.rstrip()[:-1] + " "
            continue
        joined += line
        lexer = shlex.shlex(joined, posix=True, punctuation_chars=";&|")
        lexer.whitespace_split, lexer.commenters = True, "#"
        try:
            tokens, command = list(lexer), []
        except ValueError as e:  # unbalanced quotes: the command cannot run as printed
            raise ValueError(f"line {start}: {e}: {joined.strip()}") from None
        for token in [*tokens, ";"]:
            if token and set(token) <= set(";&|"):
                if command:
                    out.append((start, command))
                command = []
            else:
                command.append(token)
        joined = ""
    return out


def llm_invocation(argv: list[str]) -> tuple[str, list[str]] | None:
    """(`llm-<verb>`, its arguments) of a command that runs one of ours: `llm-train ...`, `torchrun ... -m
    lightning_llm.cli.train ...`, `python -m lightning_llm.cli.eval ...`, `bash scripts/train.sh ...`."""
    if argv and argv[0] in SCRIPTS:
        return argv[0], argv[1:]
    for i, token in enumerate(argv[:-1]):
        if token == "-m" and argv[i + 1].startswith("lightning_llm.cli."):
            return "llm-" + argv[i + 1].rsplit(".", 1)[1], argv[i + 2:]
    if argv[:2] == ["bash", "scripts/train.sh"]:
        return "llm-train", argv[2:]
    return None


def sweep_to_value(override: str) -> str:
    """A sweep of `-m` (`choice(8, 16)`, `tag(log, interval(1e-4, 1e-2))`, `a,b`) as one of its values: the
    config a trial composes."""
    parsed = OverridesParser.create().parse_override(override)
    value = parsed.value()
    if isinstance(value, ChoiceSweep):
        first = value.list[0]
    elif isinstance(value, RangeSweep | IntervalSweep):
        first = value.start
    else:
        return override
    return f"{parsed.get_key_element()}={first}"


@cache
def _hydra_ready() -> None:
    use_our_optuna_sweeper([])  # `hydra/sweeper=optuna` as the entry points see it


def compose_command(verb: str, args: list[str]) -> DictConfig:
    """Compose `verb args` as the entry point would (its argument hook first); raises on a bad override."""
    module, _ = SCRIPTS[verb].split(":")
    main = importlib.import_module(module).main
    if not hasattr(main, "config_name"):  # an argparse command (llm-generate, llm-ner): parse its arguments
        importlib.import_module(module).parse_args(args)
        return OmegaConf.create()
    multirun = args[:1] in (["-m"], ["--multirun"])
    args = [a for a in args if a not in ("-m", "--multirun", "...")]
    if main.argv_hook is not None:
        args = main.argv_hook(list(args)) or args
    if multirun:
        args = [sweep_to_value(a) for a in args]
    _hydra_ready()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(config_name=main.config_name, overrides=args, return_hydra_config=True)


def page_commands() -> list[tuple[str, int, str, list[str]]]:
    found = []
    for page in PAGES:
        for number, argv in shell_commands(page.read_text()):
            if (call := llm_invocation(argv)) is not None:
                found.append((page.relative_to(ROOT).as_posix(), number, *call))
    return found


COMMANDS = page_commands()


def check_command(where: str, verb: str, args: list[str]) -> str | None:
    """None, or what is wrong with the command, naming the page and line."""
    try:
        compose_command(verb, args)
    except SystemExit as e:  # our argument hooks end with a one-line error
        return f"{where}: {verb} {shlex.join(args)}: exits {e.code}"
    except Exception as e:  # any composition error is the finding
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return f"{where}: {verb} {shlex.join(args)}: {first}"
    return None


def test_the_pages_show_commands_of_every_kind():
    verbs = {verb for *_, verb, _ in COMMANDS}
    assert {"llm-train", "llm-prepare", "llm-eval", "llm-export", "llm-inspect", "llm-generate", "llm-ner"} <= verbs
    assert len(COMMANDS) > 60


@pytest.mark.parametrize(("page", "line", "verb", "args"), COMMANDS,
                         ids=[f"{p}:{n}" for p, n, *_ in COMMANDS])
def test_every_command_in_the_docs_composes(page, line, verb, args):
    assert (problem := check_command(f"{page}:{line}", verb, args)) is None, problem


def test_the_check_fails_on_a_stale_command():
    """The README's llm-inspect line as it stood before its fix: Hydra reads the commas of an unquoted value as a
    sweep. The check must name the page and line; the fixed form passes."""
    stale = "```bash\nllm-inspect model_path=RUN/export text=\"To be, or not to be, that is the question\"\n```\n"
    ((number, argv),) = shell_commands(stale)
    problem = check_command(f"README.md:{number}", *llm_invocation(argv))
    assert problem is not None and problem.startswith("README.md:2: llm-inspect") and "text=" in problem
    fixed = stale.replace('text="To be, or not to be, that is the question"',
                          "'text=\"To be, or not to be, that is the question\"'")
    ((_, argv),) = shell_commands(fixed)
    assert check_command("README.md:2", *llm_invocation(argv)) is None
    renamed = "```bash\nllm-train optim.learning_rate=1e-3\n```\n"  # a key that does not exist
    ((_, argv),) = shell_commands(renamed)
    assert "optim.learning_rate" in check_command("README.md:2", *llm_invocation(argv))


# ---- links and images ----

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return {slug(m.group(1)) for m in re.finditer(r"^#+\s+(.+)$", text, flags=re.M)}


def test_every_relative_link_and_image_resolves():
    broken = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for target in LINK.findall(line):
                if re.match(r"^[a-z]+:", target):
                    continue  # https:, mailto:
                path, _, anchor = target.partition("#")
                dest = (page.parent / path).resolve() if path else page
                if not dest.exists():
                    broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no such file)")
                elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                    broken.append(f"{page.relative_to(ROOT)}:{number}: {target} (no heading #{anchor})")
    assert not broken, "\n".join(broken)


def test_the_readme_is_a_map_of_every_docs_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.encode()) < 15_000
    for page in PAGES[1:]:
        assert f"](docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"
        paragraphs = page.read_text().strip().split("\n\n")
        assert paragraphs[0].startswith("# ") and "\n" not in paragraphs[1], \
            f"{page.name}: a title, then one line saying what the page covers"
        last = re.findall(r"^## (.+)$", page.read_text(), flags=re.M)[-1]
        assert last.startswith("Reproduce") and "```bash" in page.read_text().rsplit("## Reproduce", 1)[1], \
            f"{page.name}: end with '## Reproduce', a block of the commands behind its figures"


# ---- config keys in backticks ----

KEY = re.compile(r"`([a-z_][a-z0-9_]*(?:\.[A-Za-z0-9_]+)+)(?:(?:=|: )[^`]*)?`")
CONFIGS = ("train", "eval", "export", "inspect", "prepare")


@cache
def known_keys() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(every dotted key, the keys that end open (a null or empty node takes any sub-key), top-level names) of
    every entry point's config, the training config composed with each recipe and with the Optuna sweeper."""
    keys, open_ended, tops = set(), set(), set()
    runs = [(name, []) for name in CONFIGS] + [("train", [f"recipe={p.stem}"]) for p in RECIPES_DIR.glob("*.yaml")]
    runs += [("train", ["hydra/sweeper=optuna"]), ("train", ["hydra/launcher=slurm"])]
    verbs = {v.removeprefix("llm-"): v for v in SCRIPTS}
    for name, overrides in runs:
        cfg = compose_command(verbs.get(name, "llm-train"), overrides) if name != "prepare" else \
            compose_command("llm-prepare", overrides)
        _walk(OmegaConf.to_container(cfg, resolve=False), "", keys, open_ended)
        tops |= {k for k in cfg if k != "hydra"}
    return frozenset(keys), frozenset(open_ended), frozenset(tops)


def _walk(node: dict, prefix: str, keys: set, open_ended: set) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        keys.add(path)
        if isinstance(value, dict):
            _walk(value, path + ".", keys, open_ended)
            if not value:
                open_ended.add(path)
        elif value is None or isinstance(value, list) or str(value).startswith("${"):
            open_ended.add(path)


def named_keys() -> list[tuple[str, int, str]]:
    tops = known_keys()[2] | {"hydra"}
    found = []
    for page in PAGES:
        for number, line in enumerate(page.read_text().splitlines(), 1):
            for key in KEY.findall(line):
                if key.split(".")[0] in tops and not FILE_SUFFIX.search(key):
                    found.append((page.relative_to(ROOT).as_posix(), number, key))
    return found


def test_every_config_key_named_in_the_docs_exists():
    keys, open_ended, _ = known_keys()
    missing = [f"{page}:{line}: `{key}`" for page, line, key in named_keys()
               if key not in keys and not any(key.startswith(o + ".") for o in open_ended)]
    assert not missing, "no such config key:\n" + "\n".join(missing)
    assert len(named_keys()) > 100  # the check reads the pages: it is not vacuous


def test_every_benchmark_script_and_test_file_a_page_runs_exists():
    missing = []
    for page in PAGES:
        for number, argv in shell_commands(page.read_text()):
            paths = [a for a in argv if re.match(r"^(tests|scripts|benchmarks)/\S+\.(py|sh)$", a)]
            if argv[:2] == ["python", "-m"] and argv[2].startswith("benchmarks."):
                paths.append(argv[2].replace(".", "/") + ".py")
            missing += [f"{page.relative_to(ROOT)}:{number}: {p}" for p in paths if not (ROOT / p).is_file()]
    assert not missing, "no such file:\n" + "\n".join(missing)
