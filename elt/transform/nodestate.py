"""`_elt.nodes`: what every node looked like at its last build, for up-to-date decisions.

Success rows are written inside the same transaction as the table swap, so the state can
never claim a build that was rolled back. A failure only updates status/message: checksum,
version, inputs and watermark keep describing the relation that is actually there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

NODES_DDL = """
CREATE TABLE IF NOT EXISTS _elt.nodes (
    name VARCHAR PRIMARY KEY,
    kind VARCHAR,
    checksum VARCHAR,
    version BIGINT,
    inputs JSON,
    status VARCHAR,
    rows BIGINT,
    built_at TIMESTAMP,
    seconds DOUBLE,
    message VARCHAR,
    tests_ok BOOLEAN,
    watermark JSON
)"""

COLUMNS = ("name", "kind", "checksum", "version", "inputs", "status", "rows", "built_at",
           "seconds", "message", "tests_ok", "watermark")


@dataclass
class NodeState:
    """One row of `_elt.nodes`, JSON columns decoded."""

    name: str
    kind: str
    checksum: str | None
    version: int | None
    inputs: dict[str, Any] | None
    status: str | None
    rows: int | None
    built_at: datetime | None
    seconds: float | None
    message: str | None
    tests_ok: bool | None
    watermark: dict[str, Any] | None


# changes.py: between which versions the kept changed rows of a table model lie (created
# here, before a run starts, so parallel builds never race to create it)
CHANGES_DDL = ("CREATE TABLE IF NOT EXISTS _elt.changes (model VARCHAR PRIMARY KEY, "
               "from_version BIGINT, to_version BIGINT, rows BIGINT)")


def ensure(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS _elt")
    con.execute(NODES_DDL)
    con.execute(CHANGES_DDL)


def read(con: duckdb.DuckDBPyConnection, name: str) -> NodeState | None:
    row = con.execute(f"SELECT {', '.join(COLUMNS)} FROM _elt.nodes WHERE name = ?",
                      [name]).fetchone()
    return _decode(row) if row else None


def read_all(con: duckdb.DuckDBPyConnection) -> dict[str, NodeState]:
    """Every node's state (empty when nothing was ever built)."""
    exists = con.execute("SELECT count(*) FROM information_schema.tables "
                         "WHERE table_schema = '_elt' AND table_name = 'nodes'").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM _elt.nodes").fetchall()
    return {row[0]: _decode(row) for row in rows}


def _decode(row: tuple) -> NodeState:
    values = dict(zip(COLUMNS, row, strict=True))
    for key in ("inputs", "watermark"):
        values[key] = json.loads(values[key]) if values[key] is not None else None
    return NodeState(**values)


def now() -> datetime:
    """UTC wall clock as a naive TIMESTAMP (DuckDB's TIMESTAMP has no zone)."""
    return datetime.now(UTC).replace(tzinfo=None)


def record_success(
    con: duckdb.DuckDBPyConnection,
    *,
    name: str,
    kind: str,
    checksum: str,
    version: int | None,
    inputs: dict[str, Any],
    rows: int | None,
    seconds: float,
    message: str | None = None,
    tests_ok: bool | None = None,
    watermark: dict[str, Any] | None = None,
) -> None:
    """Upsert a successful build; call inside the transaction that made the change."""
    con.execute(
        f"""INSERT INTO _elt.nodes ({', '.join(COLUMNS)})
            VALUES (?, ?, ?, ?, ?, 'success', ?, ?, ?, ?, ?, ?)
            ON CONFLICT (name) DO UPDATE SET
              kind = excluded.kind, checksum = excluded.checksum, version = excluded.version,
              inputs = excluded.inputs, status = 'success', rows = excluded.rows,
              built_at = excluded.built_at, seconds = excluded.seconds,
              message = excluded.message, tests_ok = excluded.tests_ok,
              watermark = excluded.watermark""",
        [name, kind, checksum, version, json.dumps(inputs, sort_keys=True), rows, now(),
         seconds, message, tests_ok,
         json.dumps(watermark, sort_keys=True) if watermark is not None else None],
    )


def record_status(
    con: duckdb.DuckDBPyConnection, *, name: str, kind: str, status: str,
    message: str | None, seconds: float = 0.0,
) -> None:
    """An error or skip: keep what describes the existing relation, update the status."""
    con.execute(
        """INSERT INTO _elt.nodes (name, kind, status, message, seconds)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (name) DO UPDATE SET status = excluded.status,
             message = excluded.message, seconds = excluded.seconds""",
        [name, kind, status, message, seconds],
    )


def set_tests_ok(con: duckdb.DuckDBPyConnection, name: str, ok: bool | None) -> None:
    """Publishing reads this: a model whose error-severity tests failed is not sent."""
    con.execute("UPDATE _elt.nodes SET tests_ok = ? WHERE name = ?", [ok, name])


def input_versions(con: duckdb.DuckDBPyConnection, graph: Any, node: Any,
                   seed_version: Callable[[duckdb.DuckDBPyConnection, Any], int],
                   state: Callable[[duckdb.DuckDBPyConnection, str], NodeState | None]
                   ) -> dict[str, int | None]:
    """Current version of everything the node reads (DESIGN.md: versions): a seed's load
    id, `published.*` max(seq), any other node's build counter. The lookups are passed in
    so the DuckDB runner can answer from its snapshot and a Spark build from the file."""
    versions: dict[str, int | None] = {}
    for dep in node.depends_on:
        up = graph.nodes[dep]
        if up.kind == "seed":
            versions[dep] = seed_version(con, up)
        elif up.kind == "published":
            versions[dep] = published_version(con, up)
        else:
            stored = state(con, dep)
            versions[dep] = stored.version if stored else None
    return versions


def published_version(con: duckdb.DuckDBPyConnection, node: Any) -> int | None:
    """A `published.<x>` view's version: the highest ledger seq of x (None: no view yet)."""
    from elt.core import db

    if not db.table_exists(con, node.schema, node.identifier):
        return None
    row = con.execute(f"SELECT coalesce(max(seq), 0) FROM {node.qualified}").fetchone()
    return int(row[0]) if row else None


def predates_answers(con: duckdb.DuckDBPyConnection, graph: Any, name: str) -> bool:
    """A built model whose `published.*` inputs moved since: answers were recorded after it
    was built (a model never built is not one: it has no rows to be stale)."""
    stored = read(con, name) if graph.nodes[name].kind == "model" else None
    if stored is None or stored.inputs is None:
        return False
    return any(stored.inputs.get(dep) != published_version(con, graph.nodes[dep])
               for dep in graph.nodes[name].depends_on if graph.nodes[dep].kind == "published")
