"""Read-only views of the project: `elt sql`, `elt show`, `elt ls`, `elt dag`.

Everything returns (columns, rows) first and renders second, so the same data can be printed
as an aligned table, CSV or JSON without each command knowing about formats.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Sequence
from typing import Any

import duckdb

from elt.core.console import Console
from elt.core.errors import EltError
from elt.core.readonly import refuse_writes
from elt.graph.dag import Graph, Node
from elt.transform import nodestate

LS_COLUMNS = ["name", "kind", "materialized", "rows", "last_build", "status"]
_SHAPES = {"seed": "cylinder", "api": "cylinder", "model": "box", "published": "note",
           "test": "diamond"}


def run_query(con: duckdb.DuckDBPyConnection, query: str,
              limit: int | None = None) -> tuple[list[str], list[tuple]]:
    """Run a read-only query; other statements and DuckDB errors become one-line
    EltErrors."""
    if not query.strip():
        raise EltError("no SQL given (pass a query or pipe it on stdin)")
    refuse_writes(query)
    try:
        cur = con.execute(query)
        if cur.description is None:
            return [], []
        columns = [d[0] for d in cur.description]
        rows = cur.fetchmany(limit) if limit is not None else cur.fetchall()
    except duckdb.Error as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise EltError(lines[0] if lines else type(exc).__name__) from exc
    return columns, rows


def render(console: Console, columns: list[str], rows: Sequence[tuple], fmt: str) -> None:
    """Print rows as `table` (aligned), `csv` (with header) or `json` (list of objects)."""
    if fmt == "json":
        objects = [dict(zip(columns, row, strict=True)) for row in rows]
        console.result(json.dumps(objects, indent=2, default=str, ensure_ascii=False))
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(rows)
        console.result(buffer.getvalue().rstrip("\n"))
    elif fmt == "table":
        console.table(columns, rows)
    else:
        raise EltError(f"unknown format {fmt!r} (table, csv, json)")


def show_relation(con: duckdb.DuckDBPyConnection, graph: Graph, name: str,
                  limit: int) -> tuple[list[str], list[tuple]]:
    """First rows of a model, seed, source, publication or test's failing rows."""
    resolved = graph.resolve(name)
    if resolved is not None:
        node = graph.nodes[resolved]
        relation, label = node.qualified, f"{node.kind} {node.name}"
    elif "." in name and _exists(con, *name.lower().split(".", 1)):
        relation, label = name, name  # e.g. _elt.nodes or test_failures.x
    else:
        raise EltError(f"no model, seed or source named {name!r}{graph.suggest(name)}")
    if resolved is not None and not _exists(con, node.schema, node.identifier):
        hint = "elt test" if node.kind == "test" else f"elt build -s {node.name}"
        raise EltError(f"{label} has not been built yet; run `{hint}`")
    return run_query(con, f"SELECT * FROM {relation} LIMIT {int(limit)}")


def _exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = ? "
                      "AND table_name = ?", [schema, name]).fetchone()
    return bool(row and row[0])


def list_nodes(con: duckdb.DuckDBPyConnection | None, graph: Graph, select: Sequence[str],
               exclude: Sequence[str]) -> tuple[list[str], list[tuple]]:
    """One row per selected node with its last build from `_elt.nodes` (when a db exists)."""
    states = nodestate.read_all(con) if con is not None else {}
    rows = []
    for name in graph.select(select, exclude):
        node, state = graph.nodes[name], states.get(name)
        built = state.built_at.strftime("%Y-%m-%d %H:%M:%S") if state and state.built_at else None
        status = state.status if state and state.status else "not built"
        if node.kind == "test" and status == "success" and state and state.rows:
            status = "warn"  # stored as a success (it passes), found rows: severity warn
        rows.append((name, node.kind, _materialized(node), state.rows if state else None,
                     built, status))
    return LS_COLUMNS, rows


def _materialized(node: Node) -> str | None:
    if node.kind == "model":
        return node.materialized
    return {"seed": "table", "api": "table", "published": "view"}.get(node.kind)


def render_dag(graph: Graph, fmt: str = "text") -> str:
    """The DAG (tests folded into their model) as text, a Mermaid flowchart or Graphviz dot."""
    names = [n for n in graph.order if graph.nodes[n].kind != "test"]
    edges = [(dep, n, "-->") for n in names for dep in graph.nodes[n].depends_on
             if graph.nodes[dep].kind != "test"]
    for name in names:  # a publication is fed by `elt publish` from its model
        node = graph.nodes[name]
        model = str(node.config.get("model", "")).lower() if node.kind == "published" else ""
        if model in graph.nodes:
            edges.append((model, name, "-.->"))
    if fmt == "text":
        return _text(graph, names)
    if fmt == "mermaid":
        ids = {n: f"{graph.nodes[n].kind}_{re.sub(r'[^A-Za-z0-9_]', '_', n)}" for n in names}
        lines = ["flowchart LR"]
        lines += [f'  {ids[n]}["{n}"]:::{graph.nodes[n].kind}' for n in names]
        lines += [f"  {ids[a]} {arrow} {ids[b]}" for a, b, arrow in edges]
        lines += ["  classDef seed fill:#e8f4ff,stroke:#4a90d9",
                  "  classDef api fill:#fff4e0,stroke:#d9a04a",
                  "  classDef model fill:#eefbe8,stroke:#5aa84a",
                  "  classDef published fill:#f6ecff,stroke:#9a5ad9"]
        return "\n".join(lines)
    if fmt == "dot":
        lines = ["digraph elt {", "  rankdir=LR;"]
        lines += [f'  "{n}" [shape={_SHAPES[graph.nodes[n].kind]}];' for n in names]
        lines += [f'  "{a}" -> "{b}"' + (" [style=dashed];" if arrow == "-.->" else ";")
                  for a, b, arrow in edges]
        return "\n".join([*lines, "}"])
    raise EltError(f"unknown dag format {fmt!r} (text, mermaid, dot)")


def _text(graph: Graph, names: list[str]) -> str:
    lines = []
    width = max((len(n) for n in names), default=0)
    for name in names:
        node: Node = graph.nodes[name]
        line = f"{node.kind:<9} {name:<{width}}"
        deps = [d for d in node.depends_on if graph.nodes[d].kind != "test"]
        extra: list[Any] = []
        if deps:
            extra.append("<- " + ", ".join(deps))
        if node.kind == "published" and node.config.get("model"):
            extra.append(f"(sent from {node.config['model']})")
        tests = graph.tests_of.get(name, [])
        if tests:
            extra.append(f"[{len(tests)} test{'s' if len(tests) > 1 else ''}]")
        lines.append("  ".join([line, *map(str, extra)]).rstrip())
    return "\n".join(lines)
