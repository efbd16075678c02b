"""The house keeps its stages: no import cycles, and no lower layer imports a higher one.

Layers in data-flow order (docs/DESIGN.md shows the map). A module may import its own package
and any lower layer. The sandbox and the dev-data generator stand apart: they may use only
`elt.core`. Lazy imports inside functions count too: they are still dependencies.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ELT = Path(__file__).resolve().parents[1] / "elt"

# engines (duckdb, spark) implement what transform and publish ask of an engine
# and may use both; the Context hands one down, so neither imports an engine
LAYERS = ["core", "project", "load", "graph", "http", "sources", "transform", "publish", "engines",
          "lineage", "docs",
          "inspect", "context", "cli"]
APART = {"sandbox", "devdata"}  # peers of the engine: only elt.core below them


def module_edges(root: Path) -> dict[str, set[str]]:
    """module -> the modules of the same package tree it imports (anywhere in the file)."""
    modules: dict[str, Path] = {}
    for path in root.rglob("*.py"):
        name = ".".join(path.relative_to(root.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
            else:
                continue
            edges[module] |= {t for t in targets if t in modules and t != module}
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(edges: dict[str, set[str]]) -> list[str]:
    """`a -> b` for every import that climbs a layer or leaves the sandbox/devdata island."""
    bad: list[str] = []
    for module, targets in sorted(edges.items()):
        here = stage(module)
        for target in sorted(targets):
            there = stage(target)
            if there in ("", here):
                continue  # the root package (__version__) or the same stage
            if here in APART or there in APART:
                ok = here in APART and there == "core" or here in ("context", "cli")
            elif here not in LAYERS or there not in LAYERS:
                ok = False
            else:
                ok = LAYERS.index(there) < LAYERS.index(here)
            if not ok:
                bad.append(f"{module} -> {target}")
    return bad


def test_every_stage_is_placed() -> None:
    stages = {stage(m) for m in module_edges(ELT)} - {""}
    assert stages <= set(LAYERS) | APART, f"new stage(s) not in LAYERS: {stages - set(LAYERS)}"


def test_no_import_cycles() -> None:
    assert cycles(module_edges(ELT)) == []


def test_no_upward_imports() -> None:
    assert upward_imports(module_edges(ELT)) == []


@pytest.mark.parametrize(("files", "expect_cycle", "expect_upward"), [
    ({"core/a.py": "from pkg.core import b", "core/b.py": "import pkg.core.a"}, True, []),
    ({"core/a.py": "def f():\n    from pkg.publish import x\n", "publish/x.py": ""}, False,
     ["pkg.core.a -> pkg.publish", "pkg.core.a -> pkg.publish.x"]),
    ({"sandbox/s.py": "from pkg.http.t import T", "http/t.py": ""}, False,
     ["pkg.sandbox.s -> pkg.http.t"]),
    ({"publish/p.py": "from pkg.core.e import E", "core/e.py": ""}, False, []),
])
def test_the_checks_catch_what_they_claim(tmp_path: Path, files: dict[str, str],
                                         expect_cycle: bool, expect_upward: list[str]) -> None:
    root = tmp_path / "pkg"
    for rel, text in {"__init__.py": "", **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
        (root / rel).parent.joinpath("__init__.py").touch()
    edges = module_edges(root)
    assert bool(cycles(edges)) is expect_cycle
    assert upward_imports(edges) == expect_upward


def test_engine_code_lives_in_engines() -> None:
    """One runner for both engines (transform/runner.py over transform/engine.py's Engine): what is
    engine-specific is under elt/engines/, so no other stage imports pyspark or an engine
    (the Context picks one and hands it down)."""
    pyspark_outside, engine_users = [], []
    for module, path in sorted(_modules(ELT).items()):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = [alias.name for n in ast.walk(tree) if isinstance(n, ast.Import)
                 for alias in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        if stage(module) != "engines" and any(n.split(".")[0] == "pyspark" for n in names):
            pyspark_outside.append(module)
        if stage(module) not in ("engines", "context", "cli") and any(
                n.startswith("elt.engines") for n in names):
            engine_users.append(module)
    assert pyspark_outside == [] and engine_users == []
    assert not [p.name for p in (ELT / "transform").glob("spark_*.py")]


def _modules(root: Path) -> dict[str, Path]:
    return {".".join(p.relative_to(root.parent).with_suffix("").parts): p
            for p in root.rglob("*.py")}
