"""Imports flow one way: cli -> {export, training} -> {inference, evaluation} -> {data, models} -> base.

Read from the source (AST), not at run time, so imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "lightning_llm"

# The layer of each top-level part of the package; a module may import its own part and lower layers only.
LAYERS = {
    "errors": 0,
    "config": 1, "io": 1, "paths": 1, "checkpoint_files": 1, "run_lock": 1,
    "data": 2, "models": 2,
    "inference": 3, "evaluation": 3,
    "export": 4, "training": 4,
    "tasks": 5,
    "cli": 6,
}


def _part(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "lightning_llm" else None


def _module_name(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = PKG.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def import_edges() -> list[tuple[str, str]]:
    """(importer, imported) for every `lightning_llm` import in the package, resolved to module names."""
    edges = []
    for path in sorted(PKG.rglob("*.py")):
        name = _module_name(path)
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package.split(".")[:len(package.split(".")) - node.level + 1], base]).strip(".")
                # `from lightning_llm.x import y` where y is a submodule: the edge goes to the submodule too
                targets = [base] + [f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")]
            else:
                continue
            edges += [(name, t) for t in targets if t.startswith("lightning_llm")]
    return edges


def test_every_part_has_a_layer():
    parts = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if p.name != "__init__.py"
             and (p.suffix == ".py" or (p / "__init__.py").exists())}
    assert parts == set(LAYERS), f"give these a layer in LAYERS: {sorted(parts ^ set(LAYERS))}"


def test_imports_only_flow_downward():
    bad = []
    for importer, imported in import_edges():
        src, dst = _part(importer), _part(imported)
        if src is None or dst is None or src == dst:
            continue  # lightning_llm/__init__ maps names lazily and imports nothing at import time
        if LAYERS[dst] >= LAYERS[src]:
            bad.append(f"{importer} -> {imported} (layer {LAYERS[src]} {src} -> layer {LAYERS[dst]} {dst})")
    assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph: dict[str, set[str]] = {}
    for importer, imported in import_edges():
        if imported != importer:
            graph.setdefault(importer, set()).add(imported)
    # a package's __init__ re-exporting its own submodules is not a cycle of the design
    for importer in graph:
        graph[importer] = {m for m in graph[importer] if not m.startswith(importer + ".")}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt):], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_the_checker_sees_a_backward_edge_and_a_cycle(tmp_path, monkeypatch):
    """The rules must be able to fail: a fake package with a data -> training edge and a cycle."""
    fake = tmp_path / "lightning_llm"
    for part in ("data", "training"):
        (fake / part).mkdir(parents=True)
        (fake / part / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "data" / "a.py").write_text("from lightning_llm.training.b import x\n")
    (fake / "training" / "b.py").write_text("def f():\n    from lightning_llm.data.a import y\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["PKG"]), "PKG", fake)
    edges = import_edges()
    assert ("lightning_llm.data.a", "lightning_llm.training.b") in edges
    assert ("lightning_llm.training.b", "lightning_llm.data.a") in edges
    try:
        test_imports_only_flow_downward()
    except AssertionError as e:
        assert "lightning_llm.data.a -> lightning_llm.training.b" in str(e)
    else:
        raise AssertionError("a backward edge went unnoticed")
    try:
        test_no_import_cycle()
    except AssertionError as e:
        assert "import cycle" in str(e)
    else:
        raise AssertionError("a cycle went unnoticed")
