"""Opening the staging database, and the internal schemas elt keeps in it.

DuckDB allows one writing process per file. Commands that only read (`elt sql`, `elt show`,
`elt status`) open read-only and wait briefly for a writer to finish; when the lock stays
taken we say which process holds it instead of failing with DuckDB's raw message.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import duckdb

from elt.core.errors import DatabaseLockedError, EltError

STATE_SCHEMA = "_elt"          # fingerprints, node state, ledger, runs
FAILURES_SCHEMA = "test_failures"  # failing rows of data tests, one table per test
PUBLISHED_SCHEMA = "published"  # per publication: what the endpoint acknowledged (views)
RAW_SCHEMA = "raw"

_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")


def connect(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float = 10.0,
    memory_limit: str | None = None,
    threads: int | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, retrying while another process holds its lock."""
    if read_only and not path.exists():
        raise EltError("staging database does not exist yet; run `elt build` first",
                       where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str] = {}
    if memory_limit:
        config["memory_limit"] = str(memory_limit)
    if threads:
        config["threads"] = str(threads)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            message = str(exc)
            if "lock" not in message.lower():
                raise EltError(f"cannot open database: {message}", where=str(path)) from exc
            if time.monotonic() >= deadline:
                pid = _LOCK_HOLDER.search(message)
                holder = f"process {pid.group(1)}" if pid else "another process"
                raise DatabaseLockedError(
                    f"database is locked by {holder} (an `elt build` or `elt publish` "
                    "still running?); try again when it finishes",
                    where=str(path),
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    for schema in (RAW_SCHEMA, STATE_SCHEMA, FAILURES_SCHEMA, PUBLISHED_SCHEMA):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")


def quote(identifier: str) -> str:
    """Quote an identifier for DuckDB SQL."""
    return '"' + identifier.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    row = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, name],
    ).fetchone()
    return bool(row and row[0])
