"""The project as a DAG: seeds, API sources, models, data tests and published answers.

Dependencies come from the SQL itself (sqlglot), never from templating, so a model file is
plain SQL that runs in any DuckDB shell. Node names are the relation a user would type:
models by bare name, seeds and API sources as `raw.<name>`, publications as
`published.<name>`, tests by their generated or file name.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt.core import db
from elt.core.errors import ModelError
from elt.graph.nodeselect import KINDS

__all__ = ["KINDS", "Graph", "Node"]



@dataclass
class Node:
    """One buildable (or readable) relation and what it needs."""

    name: str
    kind: str
    schema: str
    identifier: str
    path: Path | None = None
    sql: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    depends_on: list[str] = field(default_factory=list)
    checksum: str = ""
    tags: list[str] = field(default_factory=list)
    materialized: str | None = None
    unique_key: list[str] = field(default_factory=list)
    description: str | None = None
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)
    owner: str | None = None        # test: the model whose downstream it guards
    severity: str = "error"         # test: error | warn
    condition: str | None = None    # row test: its failing rows' predicate over `child`,
    #                                 the owner's rows (row tests of a model share one scan)
    spec: Any = None                # seed: load.SeedSpec
    paths: list[Path] = field(default_factory=list)  # every file the node comes from

    @property
    def relation(self) -> str:
        return f"{self.schema}.{self.identifier}"

    @property
    def qualified(self) -> str:
        return f"{db.quote(self.schema)}.{db.quote(self.identifier)}"


class Graph:
    """Nodes plus topological order, lineage queries and dbt-style selection."""

    def __init__(self, nodes: dict[str, Node], root: Path | None = None,
                 project_name: str | None = None) -> None:
        self.nodes = nodes
        self.root = root or Path(".")
        self.project_name = project_name or self.root.resolve().name  # dbt's package name
        self.state_dir: Path | None = None  # `state:` selectors: --state DIR, else target/state
        self.children: dict[str, list[str]] = {n: [] for n in nodes}
        for node in nodes.values():
            for dep in node.depends_on:
                self.children[dep].append(node.name)
        self.order = _toposort(nodes)
        self._upstream: dict[str, set[str]] = {}
        self.tests_of: dict[str, list[str]] = {}
        self.guarded_by: dict[str, list[str]] = {}
        for name in self.order:
            owner = nodes[name].owner
            if nodes[name].kind == "test" and owner:
                self.tests_of.setdefault(owner, []).append(name)
            elif nodes[name].kind == "test":
                self._guard(name)

    # -- lineage ---------------------------------------------------------------------
    def upstream(self, name: str) -> set[str]:
        """Every ancestor of a node (cached: the graph does not change once built)."""
        if name not in self._upstream:
            self._upstream[name] = _walk([name], lambda n: self.nodes[n].depends_on)
        return set(self._upstream[name])

    def downstream(self, name: str) -> set[str]:
        return _walk([name], lambda n: self.children[n])

    def run_after(self, name: str) -> list[str]:
        """Deps plus the tests guarding them: a failing test must block what reads its model."""
        deps = list(self.nodes[name].depends_on)
        if self.nodes[name].kind == "test":
            return deps
        for dep in self.nodes[name].depends_on:
            for test in self.tests_of.get(dep, []):
                if test != name and name not in self.upstream(test):
                    deps.append(test)
        return deps + [t for t in self.guarded_by.get(name, []) if t not in deps]

    def _guard(self, test: str) -> None:
        """A test reading several models (a singular test) guards, like dbt build's test
        edges, each node that reads one of them and has all of them upstream: a failure
        skips it and so everything downstream, and publishing refuses what was skipped."""
        parents = {d for d in self.nodes[test].depends_on if self.nodes[d].kind == "model"}
        if len(parents) < 2:
            return
        above = self.upstream(test)
        for parent in sorted(parents):
            for child in self.children[parent]:
                if (self.nodes[child].kind != "test" and child not in above
                        and test not in self.guarded_by.get(child, ())
                        and parents <= self.upstream(child)):
                    self.guarded_by.setdefault(child, []).append(test)

    # -- names -----------------------------------------------------------------------
    def resolve(self, name: str) -> str | None:
        """Node name for what a user typed: `x`, `main.x`, `raw.x`, `published.x`."""
        key = name.strip().lower()
        if key in self.nodes:
            return key
        if key.startswith("main.") and key[5:] in self.nodes:
            return key[5:]
        for prefix in ("raw.", "published."):
            if prefix + key in self.nodes:
                return prefix + key
        return None

    def resolve_table(self, schema: str, table: str) -> str | None:
        """Node a SQL table reference points at (see DESIGN.md: Models)."""
        if schema in ("", "main"):
            node = self.nodes.get(table)
            return table if node and node.kind == "model" else None
        if schema in ("raw", "published"):
            name = f"{schema}.{table}"
            node = self.nodes.get(name)
            wanted = ("seed", "api") if schema == "raw" else ("published",)
            return name if node and node.kind in wanted else None
        return None

    def suggest(self, name: str, kinds: Iterable[str] = KINDS) -> str:
        names = [n for n, node in self.nodes.items() if node.kind in set(kinds)]
        close = difflib.get_close_matches(name.lower(), names, n=1, cutoff=0.6)
        return f" (did you mean {close[0]}?)" if close else ""

    # -- selection -------------------------------------------------------------------
    def select(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[str]:
        """Node names matching --select minus --exclude (dbt's syntax: elt/graph/selection.py),
        in topological order."""
        from elt.graph.nodeselect import NodeUniverse
        from elt.graph.selection import evaluate

        universe = NodeUniverse(self)
        chosen = set(self.nodes) if not select else evaluate(universe, select, "--select")
        if exclude:
            chosen -= evaluate(universe, exclude, "--exclude")
        return [n for n in self.order if n in chosen]

    def tests_for(self, names: Iterable[str]) -> list[str]:
        """Tests reading any of these nodes (dbt's eager indirect selection)."""
        wanted = set(names)
        return [n for n in self.order
                if self.nodes[n].kind == "test" and wanted & set(self.nodes[n].depends_on)]

    def manifest(self) -> dict[str, Any]:
        """target/manifest.json's sections, in dbt's shape (elt/graph/manifest.py)."""
        from elt.graph.manifest import manifest_body

        return manifest_body(self)


def _walk(start: list[str], step: Any) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in step(stack.pop()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def _toposort(nodes: dict[str, Node]) -> list[str]:
    """Kahn's algorithm, alphabetical among ready nodes; a cycle is reported as a path."""
    indegree = {n: len(set(node.depends_on)) for n, node in nodes.items()}
    children: dict[str, set[str]] = {n: set() for n in nodes}
    for node in nodes.values():
        for dep in set(node.depends_on):
            children[dep].add(node.name)
    ready = [n for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order: list[str] = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in children[name]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(nodes):
        raise ModelError(f"dependency cycle: {_find_cycle(nodes, set(nodes) - set(order))}")
    return order


def _find_cycle(nodes: dict[str, Node], remaining: set[str]) -> str:
    start = min(remaining)
    path = [start]
    while True:
        nxt = min(d for d in nodes[path[-1]].depends_on if d in remaining)
        if nxt in path:
            cycle = path[path.index(nxt):] + [nxt]
            return " -> ".join(reversed(cycle))
        path.append(nxt)
