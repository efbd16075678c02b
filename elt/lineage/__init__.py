"""Column lineage from seed (and API source) columns to the fields an API receives.

For each publication, the fields of the body (the JSON keys a `body:` column builds, read
off its SQL by fields.py; the model's columns when the row itself is the body; the
document's variables for GraphQL) are traced back through the models (trace.py) to the
`raw.*` columns they are computed from. `elt lineage PUB.FIELD` prints the chain,
`--format json` writes it; `elt docs` draws it.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

from elt.core.errors import ConfigError
from elt.graph.dag import Graph
from elt.http.graphql import read_document, variable_names
from elt.lineage.fields import body_fields
from elt.lineage.trace import ColumnRef, Tracer
from elt.publish.spec import Publication

__all__ = ["db_schema", "publication_lineage", "select_fields", "render_text"]


def db_schema(con: Any) -> dict[str, dict[str, dict[str, str]]]:
    """{schema: {table: {column: type}}} of the staging database, for `SELECT *`."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    if con is None:
        return out
    rows = con.execute("SELECT table_schema, table_name, column_name FROM "
                       "information_schema.columns WHERE table_catalog = current_database() "
                       "ORDER BY table_schema, table_name, ordinal_position").fetchall()
    for schema, table, column in rows:
        out.setdefault(schema, {}).setdefault(table, {})[column] = "VARCHAR"
    return out


def _model(graph: Graph, pub: Publication) -> str:
    schema, _, table = pub.model.lower().rpartition(".")
    return graph.resolve_table(schema, table) or pub.model


def publication_lineage(graph: Graph, pubs: dict[str, Publication],
                        schema: dict[str, dict[str, dict[str, str]]]) -> list[dict[str, Any]]:
    """Per publication: its fields, each with the expression computing it, the chain of
    columns it comes from and the source columns at the end of that chain."""
    tracer = Tracer(graph, schema)
    out = []
    for name, pub in pubs.items():
        model = _model(graph, pub)
        fields = _fields(tracer, graph, pub, model) if model in graph.nodes else []
        out.append({"publication": name, "model": model, "endpoint": pub.endpoint,
                    "kind": pub.kind, "body": pub.body, "operation": _operation(pub),
                    "fields": fields})
    return out


def _operation(pub: Publication) -> str:
    if pub.kind == "graphql":
        return f"GraphQL {pub.config.get('document')}"
    insert = pub.config.get("insert") or {}
    return f"{insert.get('method', 'POST')} {insert.get('path', '')}".strip()


def _entry(field: str, expression: str | None, inputs: list[ColumnRef],
           note: str | None = None) -> dict[str, Any]:
    sources: dict[tuple[str, str], ColumnRef] = {}
    for ref in inputs:
        for leaf in ref.sources():
            sources.setdefault((leaf.node, leaf.column), leaf)
    entry: dict[str, Any] = {"field": field, "expression": expression,
                             "inputs": [i.to_dict() for i in inputs],
                             "sources": [{"node": s.node, "kind": s.kind, "column": s.column}
                                         for s in sources.values()]}
    if note:
        entry["note"] = note
    return entry


def _fields(tracer: Tracer, graph: Graph, pub: Publication, model: str) -> list[dict[str, Any]]:
    if pub.body:
        root = tracer.root(model, pub.body)
        if root is None:
            ref = tracer.trace(model, pub.body)
            return [_entry("$", None, ref.inputs, ref.note)]
        defined = root.expression.this if hasattr(root.expression, "this") else root.expression
        merged: dict[str, tuple[list[str], list[ColumnRef], bool]] = {}
        for f in body_fields(defined, (model, root), tracer.resolve):
            # pieces of one value (an array element's text) are one field
            exprs, inputs, constant = merged.setdefault(f.name or "$", ([], [], True))
            exprs.append(f.constant if f.expression is None else f.expression.sql("duckdb"))
            inputs += tracer.field_inputs(f)
            merged[f.name or "$"] = (exprs, inputs, constant and f.expression is None)
        return [_entry(name, " || ".join(exprs), _unique(inputs), "constant" if c else None)
                for name, (exprs, inputs, c) in merged.items()]
    columns = tracer.columns_of(model)
    if pub.kind == "graphql":
        document = pub.config.get("document")
        try:
            _, op, _ = read_document(pub.base_dir / str(document))
            wanted = variable_names(op)
        except Exception:  # noqa: BLE001 - a broken document is publish's error to report
            wanted = columns
        columns = [c for c in wanted if c in columns] or columns
    out = []
    for column in columns:
        ref = tracer.trace(model, column)
        out.append(_entry(column, ref.expression or column, ref.inputs or [ref], ref.note))
    return out


def _unique(refs: list[ColumnRef]) -> list[ColumnRef]:
    seen: dict[tuple[str, str], ColumnRef] = {}
    for r in refs:
        seen.setdefault((r.node, r.column), r)
    return list(seen.values())


def select_fields(lineage: list[dict[str, Any]], target: str | None) -> list[dict[str, Any]]:
    """`PUB` (every field), `PUB.FIELD` (that field, or every field under it), or all."""
    if not target:
        return lineage
    pub, _, field = target.partition(".")
    by_name = {p["publication"]: p for p in lineage}
    if pub not in by_name:
        close = difflib.get_close_matches(pub, list(by_name), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"unknown publication {pub!r}{hint}; publications: "
                          f"{', '.join(by_name) or 'none'}")
    entry = by_name[pub]
    if not field:
        return [entry]
    names = [f["field"] for f in entry["fields"]]
    chosen = [f for f in entry["fields"] if f["field"] == field
              or f["field"].startswith(field + ".") or f["field"].startswith(field + "[]")]
    if not chosen:
        close = difflib.get_close_matches(field, names, n=1)
        hint = f" (did you mean {pub}.{close[0]}?)" if close else ""
        raise ConfigError(f"publication {pub} has no field {field!r}{hint}; fields: "
                          f"{', '.join(names)}")
    return [{**entry, "fields": chosen}]


def _ref_lines(ref: dict[str, Any], depth: int) -> list[str]:
    pad = "   " * depth
    where = f"{ref['node']}.{ref['column']}"
    kind = "" if ref["kind"] == "model" else f"  ({ref['kind']})"
    expr = ref.get("expression")
    shown = f" = {expr}" if expr and expr != ref["column"] else ""
    lines = [f"{pad}<- {where}{shown}{kind}"]
    if ref.get("note") and ref["column"] == "*":
        lines[-1] += f"  [{ref['note']}]"
    for child in ref["inputs"]:
        lines += _ref_lines(child, depth + 1)
    return lines


def render_text(lineage: list[dict[str, Any]]) -> str:
    """The chain of every selected field, indented, then its source columns."""
    lines: list[str] = []
    for pub in lineage:
        lines.append(f"{pub['publication']} ({pub['operation']} -> {pub['endpoint']}, "
                     f"model {pub['model']}"
                     + (f", body column {pub['body']}" if pub["body"] else "") + ")")
        for f in pub["fields"]:
            expr = f" = {f['expression']}" if f["expression"] else ""
            lines.append(f"  {pub['publication']}.{f['field']}{expr}")
            for ref in f["inputs"]:
                lines += _ref_lines(ref, 2)
            srcs = ", ".join(f"{s['node']}.{s['column']}" for s in f["sources"]) or \
                ("none (a constant)" if f.get("note") == "constant" else "none")
            lines.append(f"     sources: {srcs}")
    return "\n".join(lines)


def write_json(lineage: list[dict[str, Any]], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(lineage, indent=2), encoding="utf-8")
    return path
