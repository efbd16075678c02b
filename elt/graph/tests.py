"""Generic data tests from model config, compiled to test nodes of the graph.

Every test compiles to a SELECT returning the failing rows (see elt/transform/datatests.py for
running them). Names are deterministic (`unique_<model>_<cols>`) so results stay comparable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from elt.core.db import FAILURES_SCHEMA, literal, quote
from elt.core.errors import ConfigError
from elt.graph.dag import Graph, Node
from elt.project.modelfile import checksum, relative, str_list, strip_sql

GENERIC = ("not_null", "unique", "accepted_values", "relationships", "expression",
           "payload_matches_schema")
COMMON_ARGS = {"severity", "name", "where"}
_MAX_NAME = 100


def generic_tests(model: Node, graph: Graph, root: Path) -> list[Node]:
    """Test nodes for a model's `tests:` and `columns.<c>.tests:` entries."""
    where = relative(model.path, root) if model.path else model.name
    specs: list[tuple[Any, str | None]] = []
    for column, spec in model.columns.items():
        specs += [(entry, column) for entry in _as_list(spec.get("tests"), model, where)]
    specs += [(entry, None) for entry in _as_list(model.config.get("tests"), model, where)]
    nodes: list[Node] = []
    for entry, column in specs:
        node = _compile(entry, column, model, graph, where)
        if any(n.name == node.name for n in nodes):
            node.name = node.identifier = f"{node.name}_{node.checksum[:8]}"
        nodes.append(node)
    return nodes


def _as_list(value: Any, model: Node, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"model {model.name}: tests must be a list", where=where)
    return value


def _compile(entry: Any, column: str | None, model: Node, graph: Graph, where: str) -> Node:
    """One test entry (`not_null` or `{unique: [a, b]}` ...) -> a test node."""
    if isinstance(entry, str):
        kind, args = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        kind, args = next(iter(entry.items()))
    else:
        raise ConfigError(f"model {model.name}: a test is a name or a one-key mapping "
                          f"{{test: args}}, got {entry!r}", where=where)
    if kind not in GENERIC:
        raise ConfigError(f"model {model.name}: unknown test {kind!r} "
                          f"(one of {', '.join(GENERIC)})", where=where)
    opts = args if isinstance(args, dict) else {}
    what = f"model {model.name}: test {kind}"
    severity = opts.get("severity", "error")
    if severity not in ("error", "warn"):
        raise ConfigError(f"{what}: severity must be error or warn", where=where)
    rel = model.qualified
    if opts.get("where"):
        rel = f"(SELECT * FROM {rel} WHERE {opts['where']})"
    deps = [model.name]
    condition: str | None = None  # failing rows of a row test, when the SQL is rel WHERE it
    if kind in ("not_null", "unique"):
        cols = [column] if column else _columns(args, what, where)
        if kind == "not_null":
            condition = " OR ".join(f"{quote(c)} IS NULL" for c in cols)
            sql = f"SELECT * FROM {rel} WHERE {condition}"
        else:
            sql = _unique(rel, cols)
        parts = cols
    elif kind == "accepted_values":
        col = column or _one_column(opts, what, where)
        values = args if isinstance(args, list) else opts.get("values")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{what}: needs `values: [...]`", where=where)
        literals = ", ".join(_value_sql(v) for v in values)
        condition = f"{quote(col)} IS NOT NULL AND {quote(col)} NOT IN ({literals})"
        sql = f"SELECT * FROM {rel} WHERE {condition}"
        cols, parts = [col], [col]
    elif kind == "relationships":
        col = column or _one_column(opts, what, where)
        target_name = str(opts.get("to") or "")
        schema, _, table = target_name.lower().rpartition(".")
        target = graph.resolve_table(schema, table) if table else None
        if target is None:
            raise ConfigError(f"{what}: unknown `to:` {target_name or '(missing)'}"
                              f"{graph.suggest(target_name)}", where=where)
        field_name = str(opts.get("field") or col)
        parent = graph.nodes[target]
        condition = (f"child.{quote(col)} IS NOT NULL AND NOT EXISTS "
                     f"(SELECT 1 FROM {parent.qualified} AS parent "
                     f"WHERE parent.{quote(field_name)} = child.{quote(col)})")
        sql = f"SELECT * FROM {rel} AS child WHERE {condition}"
        deps.append(target)
        cols, parts = [col], [col, parent.identifier, field_name]
    elif kind == "payload_matches_schema":  # run in Python: elt/transform/schematest.py
        publication = args if isinstance(args, str) else opts.get("publication")
        if not isinstance(publication, str) or not publication:
            raise ConfigError(f"{what}: needs the publication (`payload_matches_schema: "
                              "{publication: NAME}`)", where=where)
        sql = f"SELECT * FROM {rel} LIMIT 0"
        cols, parts = [], [publication]
        opts = {**opts, "publication": publication}
    else:  # expression
        condition = args if isinstance(args, str) else (opts.get("sql") or opts.get("expression"))
        if not isinstance(condition, str) or not condition.strip():
            raise ConfigError(f"{what}: needs the SQL condition (`expression: \"x > 0\"` or "
                              "`expression: {sql: ...}`)", where=where)
        parts = [*([column] if column else []), condition[:40]]
        condition = f"({strip_sql(condition)}) IS NOT TRUE"
        sql = f"SELECT * FROM {rel} WHERE {condition}"
        cols = [column] if column else []
    name = _sanitize(str(opts["name"])) if opts.get("name") else test_name(kind, model.name, parts)
    config = {"test": kind, "model": model.name, "columns": cols, "severity": severity,
              **{k: v for k, v in opts.items() if k not in ("severity",)}}
    return Node(name=name, kind="test", schema=FAILURES_SCHEMA, identifier=name,
                path=model.path, sql=sql, config=config, depends_on=deps,
                checksum=checksum(sql, severity), tags=list(model.tags), owner=model.name,
                severity=severity, columns={c: {} for c in cols},
                condition=_within(condition, opts.get("where")))


def _columns(args: Any, what: str, where: str) -> list[str]:
    """Model-level not_null/unique: `[a, b]`, `a`, or `{columns: [...]}` / `{column: a}`."""
    if isinstance(args, dict):
        args = args.get("columns", args.get("column"))
    cols = str_list(args, f"{what}: columns", where)
    if not cols:
        raise ConfigError(f"{what}: at model level it needs the column(s)", where=where)
    return cols


def _one_column(opts: dict[str, Any], what: str, where: str) -> str:
    if not isinstance(opts.get("column"), str):
        raise ConfigError(f"{what}: at model level it needs `column:`", where=where)
    return opts["column"]


def _within(condition: str | None, where: Any) -> str | None:
    """The failing-row predicate over the model's own rows (a `where:` narrows it)."""
    if condition is None or not where:
        return condition
    return f"({where}) AND ({condition})"


def _unique(rel: str, cols: list[str]) -> str:
    keys = ", ".join(quote(c) for c in cols)
    not_all_null = " OR ".join(f"{quote(c)} IS NOT NULL" for c in cols)
    return (f"SELECT {keys}, count(*) AS n_records FROM {rel} WHERE {not_all_null} "
            f"GROUP BY {keys} HAVING count(*) > 1")


def _sanitize(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def test_name(kind: str, model: str, parts: list[str]) -> str:
    """`unique_flowkit_datasets_category_id__indicator_id`: deterministic and SQL-safe."""
    tail = "__".join(_sanitize(p) for p in parts)
    name = f"{kind}_{_sanitize(model)}" + (f"_{tail}" if tail else "")
    if len(name) > _MAX_NAME:
        name = f"{name[:_MAX_NAME - 9]}_{checksum(name)[:8]}"
    return name


test_name.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def _value_sql(value: Any) -> str:
    """A YAML scalar as a SQL literal (accepted_values)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return literal(str(value))
