"""The sandbox's persistence: one DuckDB file of its own, so what was published can be inspected.

The tables mirror what the real services keep (FlowKit's MySQL, UOIS's PostgreSQL) closely
enough to query after a publish (`duckdb target/sandbox.duckdb`). Deliberately there is no
unique constraint on a dataset key: the real server has none either, which is how two
concurrent POSTs of one key end up as an ambiguous pair.

One connection serves every request thread; a re-entrant lock serialises its use, and
`atomic()` holds the lock across a check-then-write so ordinary requests never race.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from elt.core.errors import EltError

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS mdid_seq START 1;
CREATE SEQUENCE IF NOT EXISTS scope_mapping_seq START 1;
CREATE SEQUENCE IF NOT EXISTS srid_seq START 1;
CREATE SEQUENCE IF NOT EXISTS trid_seq START 1;
CREATE TABLE IF NOT EXISTS flowkit_config (
    section VARCHAR NOT NULL,      -- languages, data_providers, categories, indicators, ...
    position INTEGER NOT NULL,     -- index in the list as posted
    item JSON NOT NULL,            -- the object as posted (srid/trid filled in)
    updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (section, position)
);
CREATE TABLE IF NOT EXISTS flowkit_datasets (
    mdid BIGINT PRIMARY KEY,
    category_id VARCHAR NOT NULL,
    indicator_id VARCHAR NOT NULL,
    srid INTEGER NOT NULL,
    trid INTEGER NOT NULL,
    dt TIMESTAMP,                  -- NULL when posted without dt (as on the real backend)
    revision VARCHAR NOT NULL,
    date_added TIMESTAMP NOT NULL,
    data_type VARCHAR NOT NULL,
    data JSON NOT NULL,            -- data_input as posted
    n_values INTEGER NOT NULL,
    min_value INTEGER NOT NULL,
    max_value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS flowkit_scope_mappings (
    id BIGINT PRIMARY KEY,
    scope VARCHAR NOT NULL,
    mdid BIGINT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS uois_users (
    id VARCHAR PRIMARY KEY, name VARCHAR, surname VARCHAR, email VARCHAR,
    valid BOOLEAN, lastchange TIMESTAMP NOT NULL, seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS uois_groups (
    id VARCHAR PRIMARY KEY, name VARCHAR, name_en VARCHAR, grouptype_id VARCHAR,
    mastergroup_id VARCHAR, valid BOOLEAN, lastchange TIMESTAMP NOT NULL, seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS uois_memberships (
    id VARCHAR PRIMARY KEY, user_id VARCHAR NOT NULL, group_id VARCHAR NOT NULL,
    valid BOOLEAN, startdate TIMESTAMP, enddate TIMESTAMP, lastchange TIMESTAMP NOT NULL,
    seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS uois_externalids (
    id VARCHAR PRIMARY KEY, inner_id VARCHAR NOT NULL, typeid_id VARCHAR NOT NULL,
    outer_id VARCHAR NOT NULL, lastchange TIMESTAMP NOT NULL, seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS uois_grouptypes (
    id VARCHAR PRIMARY KEY, name VARCHAR, name_en VARCHAR, lastchange TIMESTAMP NOT NULL,
    seq BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS uois_externalidtypes (
    id VARCHAR PRIMARY KEY, name VARCHAR, name_en VARCHAR, urlformat VARCHAR,
    category_id VARCHAR, lastchange TIMESTAMP NOT NULL, seq BIGINT NOT NULL
);
CREATE SEQUENCE IF NOT EXISTS uois_seq START 1;
CREATE SEQUENCE IF NOT EXISTS crud_seq START 1;
CREATE TABLE IF NOT EXISTS crud_items (
    collection VARCHAR NOT NULL, id VARCHAR NOT NULL, body JSON NOT NULL,
    version INTEGER NOT NULL, created_at TIMESTAMP NOT NULL, updated_at TIMESTAMP NOT NULL,
    PRIMARY KEY (collection, id)
);
CREATE TABLE IF NOT EXISTS crud_idempotency (
    key VARCHAR PRIMARY KEY, digest VARCHAR NOT NULL, status INTEGER, body VARCHAR,
    location VARCHAR, first_seen TIMESTAMP NOT NULL
);
"""

TABLES = (
    "flowkit_config",
    "flowkit_datasets",
    "flowkit_scope_mappings",
    "uois_users",
    "uois_groups",
    "uois_memberships",
    "uois_externalids",
    "uois_grouptypes",
    "uois_externalidtypes",
    "crud_items",
)


class Store:
    """A DuckDB database (file or in-memory) holding everything the sandbox received."""

    def __init__(self, path: Path | None, *, fresh: bool = False) -> None:
        self.path = path
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh:
                for stale in (path, path.with_name(path.name + ".wal")):
                    stale.unlink(missing_ok=True)
        self._lock = threading.RLock()
        try:
            self._con: duckdb.DuckDBPyConnection | None = duckdb.connect(
                str(path) if path is not None else ":memory:"
            )
        except duckdb.IOException as exc:
            raise EltError(
                f"sandbox store is in use (is `elt sandbox serve` running?): {exc}", where=str(path)
            ) from exc
        self._con.execute(SCHEMA)
        # stores written before dt became nullable (a missing dt is stored as NULL)
        self._con.execute("ALTER TABLE flowkit_datasets ALTER COLUMN dt DROP NOT NULL")

    def close(self) -> None:
        """Checkpoint and release the file so a restarted sandbox can open it again."""
        with self._lock:
            if self._con is not None:
                if self.path is not None:
                    self._con.execute("CHECKPOINT")
                self._con.close()
                self._con = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            raise RuntimeError("sandbox store is closed")
        return self._con

    def query(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Run one statement and return its rows as dicts (empty for statements without rows)."""
        with self._lock:
            cur = self.con.execute(sql, list(params))
            if cur.description is None:
                return []
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def scalar(self, sql: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        """The first column of the first row, or None."""
        with self._lock:
            row = self.con.execute(sql, list(params)).fetchone()
            return None if row is None else row[0]

    def next_id(self, sequence: str) -> int:
        return int(self.scalar(f"SELECT nextval('{sequence}')"))

    @contextmanager
    def atomic(self) -> Iterator[Store]:
        """Hold the lock and one transaction for a check-then-write sequence."""
        with self._lock:
            self.con.execute("BEGIN TRANSACTION")
            try:
                yield self
            except BaseException:
                self.con.execute("ROLLBACK")
                raise
            self.con.execute("COMMIT")

    def counts(self) -> dict[str, int]:
        """Row count per table, for the CLI banner and quick checks."""
        return {t: int(self.scalar(f"SELECT count(*) FROM {t}")) for t in TABLES}
