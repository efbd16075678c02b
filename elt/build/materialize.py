"""Materializations: view, table and incremental, each swapped in atomically.

The expensive SELECT runs into `main.__elt_tmp_<model>` outside any lock (so independent
models build in parallel); the swap (DROP old + RENAME) and the `_elt.nodes` row are then
committed in one short transaction. A failure at any point leaves the previous relation and
its state untouched; a crash leaves at worst a temp table, dropped by the next run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import duckdb
from sqlglot import exp

from elt.build import nodestate
from elt.build.nodestate import NodeState
from elt.core.db import quote
from elt.core.errors import ModelError
from elt.graph.dag import Graph, Node
from elt.project.modelfile import parse_select, strip_sql

TMP_PREFIX = "__elt_tmp_"
LOAD_ID = "_elt_load_id"


@dataclass
class Built:
    """What a model build did: rows processed (for the run) and a note for the user."""

    rows: int | None
    message: str | None = None


@contextmanager
def transaction(cur: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """BEGIN ... COMMIT, rolling back on any exception."""
    cur.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    cur.execute("COMMIT")


def drop_leftovers(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Drop temp relations a crashed run left behind; returns their names."""
    rows = con.execute(
        "SELECT table_schema, table_name, table_type FROM information_schema.tables "
        "WHERE starts_with(table_name, ?)", [TMP_PREFIX]).fetchall()
    for schema, name, table_type in rows:
        what = "VIEW" if table_type == "VIEW" else "TABLE"
        con.execute(f"DROP {what} IF EXISTS {quote(schema)}.{quote(name)}")
    return [f"{schema}.{name}" for schema, name, _ in rows]


def relation_type(cur: duckdb.DuckDBPyConnection, schema: str, name: str) -> str | None:
    """'BASE TABLE', 'VIEW' or None."""
    row = cur.execute("SELECT table_type FROM information_schema.tables "
                      "WHERE table_schema = ? AND table_name = ?", [schema, name]).fetchone()
    return row[0] if row else None


def columns_of(cur: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[str]:
    rows = cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                       "AND table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall()
    return [r[0] for r in rows]


def build_model(
    cur: duckdb.DuckDBPyConnection,
    graph: Graph,
    node: Node,
    *,
    stored: NodeState | None,
    inputs: dict[str, Any],
    full_refresh: bool,
    lock: threading.Lock,
    started: float,
) -> Built:
    """(Re)build one model according to its materialization."""
    version = (stored.version or 0) + 1 if stored else 1
    tests_ok = None if graph.tests_of.get(node.name) else True

    def record(rows: int | None, watermark: dict[str, Any] | None, message: str | None) -> None:
        nodestate.record_success(
            cur, name=node.name, kind=node.kind, checksum=node.checksum, version=version,
            inputs=inputs, rows=rows, seconds=round(time.monotonic() - started, 3),
            message=message, tests_ok=tests_ok, watermark=watermark)

    if node.materialized == "view":
        with lock, transaction(cur):
            if relation_type(cur, node.schema, node.identifier) == "BASE TABLE":
                cur.execute(f"DROP TABLE {node.qualified}")
            cur.execute(f"CREATE OR REPLACE VIEW {node.qualified} AS\n{strip_sql(node.sql)}")
            record(None, None, None)
        return Built(None)
    if node.materialized != "incremental":
        return _full(cur, node, lock, record)
    new_marks = watermarks(cur, graph, node)
    reason = _full_reason(cur, graph, node, stored, new_marks, full_refresh)
    if reason is None and stored is not None and stored.watermark is not None:
        built = _incremental(cur, node, stored.watermark, new_marks, lock, record)
        if built is not None:
            return built
        reason = "output columns changed"
    return _full(cur, node, lock, record, watermark=new_marks, note=f"full build ({reason})")


def _full(cur: duckdb.DuckDBPyConnection, node: Node, lock: threading.Lock,
          record: Callable[..., None], *, watermark: dict[str, Any] | None = None,
          note: str | None = None) -> Built:
    """CREATE TABLE tmp AS <sql>, then swap it in with the state row in one transaction."""
    tmp = f"{quote(node.schema)}.{quote(TMP_PREFIX + node.identifier)}"
    cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    try:
        cur.execute(f"CREATE TABLE {tmp} AS\n{strip_sql(node.sql)}")
        if node.materialized == "incremental":
            check_keys(cur, node, TMP_PREFIX + node.identifier)
        rows = _count(cur, tmp)
        with lock, transaction(cur):
            existing = relation_type(cur, node.schema, node.identifier)
            if existing:
                cur.execute(f"DROP {'VIEW' if existing == 'VIEW' else 'TABLE'} {node.qualified}")
            cur.execute(f"ALTER TABLE {tmp} RENAME TO {quote(node.identifier)}")
            record(rows, watermark, note)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    return Built(rows, note)


def _incremental(cur: duckdb.DuckDBPyConnection, node: Node, old: dict[str, Any],
                 new: dict[str, Any], lock: threading.Lock,
                 record: Callable[..., None]) -> Built | None:
    """Merge only rows from batches newer than the watermark; None means 'do a full build'."""
    sql = rewrite_incremental(node, {rel: int(old[rel]) for rel in new})
    tmp_name = TMP_PREFIX + node.identifier
    tmp = f"{quote(node.schema)}.{quote(tmp_name)}"
    cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    try:
        cur.execute(f"CREATE TABLE {tmp} AS\n{sql}")
        wanted = {c.lower() for c in columns_of(cur, node.schema, tmp_name)}
        if wanted != {c.lower() for c in columns_of(cur, node.schema, node.identifier)}:
            return None
        check_keys(cur, node, tmp_name)
        batch = _count(cur, tmp)
        on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in node.unique_key)
        note = f"incremental: {batch:,} rows merged"
        with lock, transaction(cur):
            cur.execute(f"DELETE FROM {node.qualified} AS t USING {tmp} AS s WHERE {on}")
            cur.execute(f"INSERT INTO {node.qualified} BY NAME SELECT * FROM {tmp}")
            record(_count(cur, node.qualified), new, note)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    return Built(batch, note)


def check_keys(cur: duckdb.DuckDBPyConnection, node: Node, table: str) -> None:
    """Every unique_key column exists and holds no NULL (a NULL key cannot be merged)."""
    present = {c.lower() for c in columns_of(cur, node.schema, table)}
    for key in node.unique_key:
        if key.lower() not in present:
            raise ModelError(f"model {node.name}: unique_key column {key} is not in its output")
    counts = cur.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {quote(k)} IS NULL)"
                              for k in node.unique_key)
        + f" FROM {quote(node.schema)}.{quote(table)}").fetchone() or ()
    for key, nulls in zip(node.unique_key, counts, strict=True):
        if nulls:
            raise ModelError(f"model {node.name}: unique_key column {key} is NULL in "
                             f"{nulls:,} row(s); nothing was changed")


def watermarks(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node) -> dict[str, int]:
    """Per input relation carrying `_elt_load_id`: the newest batch it holds now."""
    having = {(s, t.lower()) for s, t in cur.execute(
        "SELECT table_schema, table_name FROM information_schema.columns "
        "WHERE column_name = ?", [LOAD_ID]).fetchall()}
    marks: dict[str, int] = {}
    for dep in node.depends_on:
        up = graph.nodes[dep]
        if (up.schema, up.identifier.lower()) not in having:
            continue
        row = cur.execute(f"SELECT coalesce(max({LOAD_ID}), 0) FROM {up.qualified}").fetchone()
        mark = int(row[0]) if row else 0
        if up.kind == "seed":  # removals leave no rows behind, only an event
            event = cur.execute("SELECT coalesce(max(load_id), 0) FROM _elt.loads WHERE seed = ?",
                                [up.spec.name]).fetchone()
            mark = max(mark, int(event[0]) if event else 0)
        marks[up.relation] = mark
    return marks


def _full_reason(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node,
                 stored: NodeState | None, marks: dict[str, int],
                 full_refresh: bool) -> str | None:
    """Why an incremental model must be rebuilt from scratch, or None."""
    if full_refresh:
        return "--full-refresh"
    if stored is None or stored.watermark is None or stored.checksum is None:
        return "first build"
    if stored.checksum != node.checksum:
        return "SQL or config changed"
    if relation_type(cur, node.schema, node.identifier) != "BASE TABLE":
        return "table missing"
    for rel in marks:
        if rel not in stored.watermark:
            return f"new input {rel}"
    for dep in node.depends_on:
        up = graph.nodes[dep]
        if up.kind == "seed" and up.relation in stored.watermark:
            row = cur.execute(
                "SELECT count(*) FROM _elt.loads WHERE seed = ? AND kind = 'removed' "
                "AND load_id > ?", [up.spec.name, int(stored.watermark[up.relation])]).fetchone()
            if row and row[0]:
                return f"files removed from {up.relation}"
    return None


def rewrite_incremental(node: Node, marks: dict[str, int]) -> str:
    """Replace each input carrying `_elt_load_id` by its rows newer than the watermark."""
    tree = parse_select(node.sql, node.name, str(node.path))
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}

    def swap(table: exp.Expression) -> exp.Expression:
        if not isinstance(table, exp.Table) or not isinstance(table.this, exp.Identifier):
            return table
        schema, name = table.db.lower(), table.name.lower()
        if table.catalog or (not schema and name in ctes):
            return table
        rel = f"{schema or 'main'}.{name}"
        if rel not in marks:
            return table
        source = table.copy()
        source.set("alias", None)
        newer = exp.GT(this=exp.column(LOAD_ID), expression=exp.Literal.number(marks[rel]))
        return exp.select("*").from_(source).where(newer).subquery(table.alias_or_name)

    return tree.transform(swap).sql(dialect="duckdb")


def _count(cur: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = cur.execute(f"SELECT count(*) FROM {relation}").fetchone()
    return int(row[0]) if row else 0
