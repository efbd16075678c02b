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
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import duckdb

from elt.core.db import quote
from elt.core.errors import ModelError
from elt.graph.dag import Graph, Node
from elt.project.modelfile import strip_sql
from elt.transform import changes, nodestate
from elt.transform.nodestate import NodeState

if TYPE_CHECKING:  # incremental.py needs sqlglot: imported only to plan an incremental build
    from elt.transform import incremental

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
    partitioned: Callable[..., Built] | None = None,
) -> Built:
    """(Re)build one model according to its materialization; `partitioned` builds a model
    with partition_by (partitioned.py, passed in: it builds on this module)."""
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
    versions = (stored.version if stored else None, version)
    # a partitioned model reads this one: keep the rows that differ (changes.py)
    diff = versions if partitioned is None and changes.wanted(graph, node) else None
    if node.materialized != "incremental":
        return full(cur, node, lock, record, diff=diff)
    if partitioned is not None:
        return partitioned(cur, graph, node, stored, full_refresh, lock, record)
    plan = plan_incremental(cur, graph, node, stored, inputs, full_refresh)
    if plan.reason is None:
        built = _incremental(cur, node, plan, lock, record, diff, versions)
        if built is not None:
            return built
        plan.reason = "output columns changed"
    return full(cur, node, lock, record, watermark=plan.marks,
                 note=f"full build ({plan.reason})", diff=diff)


@dataclass
class IncrementalPlan:
    """What the next build of an incremental model does: a full build (`reason`) or only
    the keys that the new rows of `grown` inputs reach."""

    reason: str | None
    shape: incremental.Shape
    marks: dict[str, list[int]]
    old: dict[str, int] = field(default_factory=dict)
    grown: set[str] = field(default_factory=set)

    def select(self, node: Node) -> str:
        """The last SELECT the build runs (what `elt compile` shows)."""
        from elt.transform import incremental

        if self.reason is not None:
            return strip_sql(node.sql)
        if self.shape.row_level:
            return incremental.delta_sql(self.shape, self.old)
        keys = f"{quote(node.schema)}.{quote(TMP_PREFIX + 'keys/' + node.identifier)}"
        return recompute_sql(node, self.shape, keys)


def recompute_sql(node: Node, shape: incremental.Shape, keys: str,
                  ranges: list[str | None] | None = None) -> str:
    """The model's rows of the keys in `keys`, from all input rows, the keys' filter
    pushed down to the deepest SELECT that computes them (partitions.py), so that the
    input rows of other keys are dropped before the model's expensive part."""
    from elt.transform import partitions

    return partitions.recompute_sql(shape.tree, list(node.unique_key), keys, ranges)


def plan_incremental(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node,
                     stored: NodeState | None, inputs: dict[str, Any],
                     full_refresh: bool) -> IncrementalPlan:
    """Decide full or incremental (shared by the build and `elt compile`)."""
    from elt.transform import incremental

    marks = watermarks(cur, graph, node)
    aggregates = {r[0] for r in cur.execute("SELECT DISTINCT function_name FROM "
                                            "duckdb_functions() WHERE function_type = "
                                            "'aggregate'").fetchall()}
    shape = incremental.analyse(node, set(marks), aggregates)  # raises if it never can be
    plan = IncrementalPlan(_full_reason(cur, graph, node, stored, inputs, marks, full_refresh),
                           shape, marks)
    if plan.reason is None and stored is not None and stored.watermark is not None:
        plan.old = {rel: int(stored.watermark[rel][0]) for rel in marks}
        plan.grown = {rel for rel in marks if marks[rel][0] > plan.old[rel]}
        plan.reason = next((f"new rows in {rel}: {shape.unsafe[rel]}"
                            for rel in sorted(plan.grown) if rel in shape.unsafe), None)
    return plan


def full(cur: duckdb.DuckDBPyConnection, node: Node, lock: threading.Lock,
          record: Callable[..., None], *, watermark: dict[str, Any] | None = None,
          note: str | None = None, diff: tuple[int | None, int] | None = None) -> Built:
    """CREATE TABLE tmp AS <sql>, then swap it in with the state row in one transaction.

    `diff` (old version, new version): a partitioned model reads this table, so the rows
    that differ between the old and the new table are kept for it (changes.py)."""
    tmp = f"{quote(node.schema)}.{quote(TMP_PREFIX + node.identifier)}"
    cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    try:
        cur.execute(f"CREATE TABLE {tmp} AS\n{strip_sql(node.sql)}")
        if node.materialized == "incremental":
            check_keys(cur, node, TMP_PREFIX + node.identifier)
        rows = count_rows(cur, tmp)
        kept = diff is not None and changes.prepare(cur, node, TMP_PREFIX + node.identifier)
        with lock, transaction(cur):
            if diff is not None:
                changes.record(cur, node, kept, *diff)
            existing = relation_type(cur, node.schema, node.identifier)
            if existing:
                cur.execute(f"DROP {'VIEW' if existing == 'VIEW' else 'TABLE'} {node.qualified}")
            cur.execute(f"ALTER TABLE {tmp} RENAME TO {quote(node.identifier)}")
            record(rows, watermark, note)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}")
    return Built(rows, note)


def _incremental(cur: duckdb.DuckDBPyConnection, node: Node, plan: IncrementalPlan,
                 lock: threading.Lock, record: Callable[..., None],
                 diff: tuple[int | None, int] | None,
                 versions: tuple[int | None, int]) -> Built | None:
    """Redo only the keys new input rows reach (incremental.py); None: do a full build.

    Row by row models merge the new rows' result; others recompute those keys from all
    input rows, the keys' filter pushed down to the inputs. Either way the keys' old rows
    are replaced in one transaction; `diff`: the rows that differ are kept (changes.py).
    The keys are kept too, with the versions they lie between (`partial`), so that the
    model's tests whose failing rows lie in one key may check these keys only."""
    from elt.transform import incremental, partitions

    shape, old = plan.shape, plan.old
    # "/" cannot be in a model name (a file stem): no other model's temp table is called so
    tmp_name, keys_name = TMP_PREFIX + node.identifier, TMP_PREFIX + "keys/" + node.identifier
    tmp = f"{quote(node.schema)}.{quote(tmp_name)}"
    keys = f"{quote(node.schema)}.{quote(keys_name)}"
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in node.unique_key)

    def recompute() -> None:
        ranges = partitions.bounds(cur, list(node.unique_key), keys)
        cur.execute(f"CREATE TABLE {tmp} AS\n{recompute_sql(node, shape, keys, ranges)}")

    cur.execute(f"DROP TABLE IF EXISTS {tmp}; DROP TABLE IF EXISTS {keys}")
    try:
        merged = shape.row_level
        if merged:
            cur.execute(f"CREATE TABLE {tmp} AS\n{incremental.delta_sql(shape, old)}")
        else:
            cur.execute(f"CREATE TABLE {keys} AS\n"
                        f"{incremental.keys_sql(node, shape, old, plan.grown)}")
            recompute()
        wanted = {c.lower() for c in columns_of(cur, node.schema, tmp_name)}
        if wanted != {c.lower() for c in columns_of(cur, node.schema, node.identifier)}:
            return None
        check_keys(cur, node, tmp_name)
        if merged and cur.execute(f"SELECT 1 FROM {node.qualified} AS t SEMI JOIN {tmp} AS s "
                                  f"ON {on} LIMIT 1").fetchone():
            # a new row repeats the key of an older input row (old rows never change: a
            # replaced file rebuilds fully), so a full build has both: recompute those keys
            merged = False
            cols = ", ".join(quote(k) for k in node.unique_key)
            cur.execute(f"CREATE TABLE {keys} AS SELECT DISTINCT {cols} FROM {tmp}; "
                        f"DROP TABLE {tmp}")
            recompute()
        keys = tmp if merged else keys
        batch = count_rows(cur, tmp)
        note = (f"incremental: {batch:,} rows merged" if merged else
                f"incremental: {count_rows(cur, keys):,} keys recomputed, {batch:,} rows")
        replaced = f"(SELECT t.* FROM {node.qualified} AS t SEMI JOIN {keys} AS s ON {on})"
        kept = diff is not None and changes.prepare(cur, node, tmp_name, old=replaced)
        with lock, transaction(cur):
            if diff is not None:
                changes.record(cur, node, kept, *diff)
            cur.execute(f"DELETE FROM {node.qualified} AS t USING {keys} AS s WHERE {on}")
            cur.execute(f"INSERT INTO {node.qualified} BY NAME SELECT * FROM {tmp}")
            cols = ", ".join(quote(k) for k in node.unique_key)
            cur.execute(f"CREATE OR REPLACE TABLE {changes.partitions_table(node)} AS "
                        f"SELECT DISTINCT {cols} FROM {keys}")
            record(count_rows(cur, node.qualified), {**plan.marks, "partial": list(versions)},
                   note)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}; "
                    f"DROP TABLE IF EXISTS {quote(node.schema)}.{quote(keys_name)}")
    return Built(batch, note)


def check_keys(cur: duckdb.DuckDBPyConnection, node: Node, table: str) -> None:
    """Every unique_key column exists and holds no NULL (a NULL key cannot be merged)."""
    present = {c.lower() for c in columns_of(cur, node.schema, table)}
    for key in node.config.get("partition_by") or []:
        if key.lower() not in present:
            raise ModelError(f"model {node.name}: partition_by column {key} is not in its "
                             "output")
    for key in node.unique_key:
        if key.lower() not in present:
            raise ModelError(f"model {node.name}: unique_key column {key} is not in its output")
    if not node.unique_key:
        return
    counts = cur.execute(
        "SELECT " + ", ".join(f"count(*) FILTER (WHERE {quote(k)} IS NULL)"
                              for k in node.unique_key)
        + f" FROM {quote(node.schema)}.{quote(table)}").fetchone() or ()
    for key, nulls in zip(node.unique_key, counts, strict=True):
        if nulls:
            raise ModelError(f"model {node.name}: unique_key column {key} is NULL in "
                             f"{nulls:,} row(s); nothing was changed")


def watermarks(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node) -> dict[str, list[int]]:
    """Per seed or API source input: [newest batch it holds, its number of rows].

    Only raw relations are read by watermark: their rows never change in place (a new
    answer or file version is a new batch), so the row count at or below an old mark tells
    whether rows were removed or replaced since. A model input is read whole."""
    marks: dict[str, list[int]] = {}
    for dep in node.depends_on:
        up = graph.nodes[dep]
        if up.kind not in ("seed", "api") or LOAD_ID not in {
                c.lower() for c in columns_of(cur, up.schema, up.identifier)}:
            continue
        mark, rows = cur.execute(f"SELECT coalesce(max({LOAD_ID}), 0), count(*) "
                                 f"FROM {up.qualified}").fetchone() or (0, 0)
        if up.kind == "seed":  # removals leave no rows behind, only an event
            event = cur.execute("SELECT coalesce(max(load_id), 0) FROM _elt.loads WHERE seed = ?",
                                [up.spec.name]).fetchone()
            mark = max(mark, int(event[0]) if event else 0)
        marks[up.relation] = [int(mark), int(rows)]
    return marks


def _full_reason(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node,
                 stored: NodeState | None, inputs: dict[str, Any], marks: dict[str, list[int]],
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
        old = stored.watermark.get(rel)
        if not isinstance(old, list):
            return f"new input {rel}" if old is None else "watermark of an older elt"
    for dep in node.depends_on:
        up = graph.nodes[dep]
        if up.relation not in marks and (stored.inputs or {}).get(dep) != inputs.get(dep):
            return f"{dep} changed and is read whole"
    for rel in marks:
        mark, rows = stored.watermark[rel]
        schema, _, name = rel.partition(".")
        row = cur.execute(f"SELECT count(*) FROM {quote(schema)}.{quote(name)} "
                          f"WHERE {LOAD_ID} <= ?", [int(mark)]).fetchone()
        if row and int(row[0]) != int(rows):
            return f"rows of {rel} were replaced or removed"
    return None


def count_rows(cur: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = cur.execute(f"SELECT count(*) FROM {relation}").fetchone()
    return int(row[0]) if row else 0
