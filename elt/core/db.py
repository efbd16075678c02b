"""Opening the staging database, and the internal schemas elt keeps in it.

DuckDB allows one writing process per file. Commands that only read (`elt sql`, `elt show`,
`elt status`) open read-only and wait briefly for a writer to finish; when the lock stays
taken we say which process holds it instead of failing with DuckDB's raw message.

Storage version: a database file is created in DuckDB's v1.4.0 storage format
(`storage_compatibility_version`), not the running DuckDB's newest one, so DuckDB 1.4 LTS
and 1.5 (CLI, DBeaver, another service) open what elt wrote; duckdb 2.0's default would be
v2.0.0, which every 1.x refuses. A file keeps the format it was created with.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from elt.core import walcheck
from elt.core.errors import DatabaseLockedError, EltError

STATE_SCHEMA = "_elt"          # fingerprints, node state, ledger, runs
FAILURES_SCHEMA = "test_failures"  # failing rows of data tests, one table per test
PUBLISHED_SCHEMA = "published"  # per publication: what the endpoint acknowledged (views)
RAW_SCHEMA = "raw"

_LOCK_HOLDER = re.compile(r"\(PID (\d+)\)")
STORAGE_VERSION = "v1.4.0"  # readable by DuckDB >= 1.4 (see the module docstring)
sql_log = logging.getLogger("elt.sql")


def _version() -> tuple[int, int]:
    try:
        major, minor = (int(p) for p in duckdb.__version__.split(".")[:2])
    except ValueError:
        return (0, 0)
    return (major, minor)


def _storage_setting() -> dict[str, str]:
    """The storage version to create files with, where this DuckDB knows the setting."""
    return {"storage_compatibility_version": STORAGE_VERSION} if _version() >= (1, 4) else {}


def storage_version(con: duckdb.DuckDBPyConnection) -> str | None:
    """The storage format the open database file declares, e.g. 'v1.4.0+'."""
    row = con.execute("SELECT tags['storage_version'] FROM duckdb_databases() "
                      "WHERE database_name = current_database()").fetchone()
    return str(row[0]) if row and row[0] else None


def connect(
    path: Path,
    *,
    read_only: bool = False,
    wait_seconds: float = 10.0,
    memory_limit: str | None = None,
    threads: int | None = None,
    wal: bool = True,
    row_group_size: int | None = None,
    on_wait: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB file, retrying while another process holds its lock.

    on_wait: told once, in one line, what is being waited for (`elt sql` during a build).
    warn: told when a damaged WAL was set aside (elt.core.walcheck).

    Writers pass the target's `row_group_size`: tables are written in row groups of that
    many rows. wal=False (a build): commits skip DuckDB's write-ahead log and reach the
    file at the next checkpoint (`DeferredCheckpoint`). Both are ATTACH options; see
    `_open_attached`."""
    if read_only and not path.exists():
        raise EltError("staging database does not exist yet; run `elt build` first",
                       where=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str] = _storage_setting()
    if memory_limit:
        config["memory_limit"] = str(memory_limit)
    if threads:
        config["threads"] = str(threads)
    deadline = time.monotonic() + wait_seconds
    delay = 0.05
    while True:
        try:
            if not read_only and _ATTACH_OPTIONS and (row_group_size or not wal):
                return _open_attached(path, config, wal, row_group_size)
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.Error as exc:
            message = str(exc)
            if walcheck.is_damaged_wal(exc) and walcheck.wal_path(path).exists():
                if read_only:
                    raise EltError(walcheck.reader_message(path, exc)) from exc
                moved = walcheck.set_aside(path)
                (warn or logging.getLogger("elt").warning)(
                    walcheck.writer_message(path, moved, exc))
                continue
            if not isinstance(exc, duckdb.IOException):
                raise
            if "lock" not in message.lower():
                raise EltError(f"cannot open database: {message}", where=str(path)) from exc
            pid = _LOCK_HOLDER.search(message)
            holder = f"process {pid.group(1)}" if pid else "another process"
            if on_wait is not None:
                on_wait(f"waiting for {holder} (an `elt build` or `elt publish`?) to release "
                        f"{path} (up to {wait_seconds:.0f} s; Ctrl-C to stop)")
                on_wait = None
            if time.monotonic() >= deadline:
                raise DatabaseLockedError(
                    f"database is locked by {holder} (an `elt build`, `elt publish` or "
                    "`elt sandbox serve` still running?); try again when it finishes",
                    where=str(path),
                ) from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


_ATTACH_OPTIONS = _version() >= (1, 5)  # RECOVERY_MODE no_wal_writes, ROW_GROUP_SIZE
_RESERVED = {"memory", "system", "temp", "main"}


def _open_attached(path: Path, config: dict[str, str], wal: bool,
                   row_group_size: int | None) -> duckdb.DuckDBPyConnection:
    """The file ATTACHed with options, as the default database of its own instance.

    ROW_GROUP_SIZE: DuckDB keeps no row group size in the file, and a checkpoint by a
    connection with a larger one merges smaller row groups (rewriting them), so every
    writer of the file passes the same size. DuckDB prunes and parallelises scans by row
    group: the FlowKit build took ~10% less CPU at 16,384 than at DuckDB's 122,880.

    RECOVERY_MODE no_wal_writes (wal=False, builds): a build's tables are derived data,
    and every commit of a big model went through the WAL and then into the file again at
    the checkpoint (the FlowKit build at scale 300: 906 MB of WAL, ~3 CPU-s). A build
    killed before its next checkpoint leaves the file as that checkpoint left it: the last
    good tables with their state, never a half-written table. A WAL another command left
    is replayed on ATTACH and checkpointed at once.

    `duckdb.connect` shares one instance per file in a process, and an attached file
    cannot be opened twice: when this process already has the file open, that instance
    (and its settings) is used instead."""
    alias = path.stem
    if alias.lower() in _RESERVED:
        return duckdb.connect(str(path), config=config)
    options = [] if wal else ["RECOVERY_MODE no_wal_writes"]
    if row_group_size:
        options.append(f"ROW_GROUP_SIZE {int(row_group_size)}")
    con = duckdb.connect(":memory:", config={**config, "temp_directory": f"{path}.tmp"})
    try:
        con.execute(f"ATTACH {literal(str(path))} AS {quote(alias)} ({', '.join(options)})")
        con.execute(f"USE {quote(alias)}")
        con.execute("DETACH memory")  # so cursors (new connections) default to the file
        if not wal and Path(f"{path}.wal").exists():
            con.execute("CHECKPOINT")  # replayed commits of an earlier run: into the file
    except duckdb.Error as exc:
        con.close()
        if "unique file handle conflict" in str(exc).lower():
            return duckdb.connect(str(path), config=config)
        raise
    return con


class DeferredCheckpoint:
    """Checkpoint once, at the end of a run that writes many tables.

    DuckDB checkpoints after any commit that leaves more than 16 MiB of WAL, and a
    checkpoint rewrites a table's growing last row group: a model appended in batches, or
    a build's many tables, pay for the same rows again and again (the FlowKit build at
    scale 300: 44 -> 34 CPU-s, bench/README.md). The WAL keeps every commit durable meanwhile, and
    the rows not yet checkpointed stay in DuckDB's buffer pool, which spills under
    `memory_limit`. The setting is the database's; the run holds the only connection.

    On a connection without WAL (`connect(wal=False)`) a commit is durable only at the
    next checkpoint: `due()` checkpoints between nodes once `every` seconds have passed
    (DuckDB refuses while another node's write is open: the runner then tries again after
    the next node), so a killed long build loses little, at the price of one more write of
    a table still being appended to (at most one per span)."""

    THRESHOLD = "1TB"
    EVERY = 60.0  # seconds of work a killed build may lose (profile: checkpoint_every)

    def __init__(self, con: duckdb.DuckDBPyConnection, every: float | None = None) -> None:
        self.con = con
        self.every = self.EVERY if every is None else every
        self.last = time.monotonic()
        row = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        self.previous = str(row[0]) if row else None
        con.execute(f"SET checkpoint_threshold = '{self.THRESHOLD}'")

    def due(self) -> bool:
        """Checkpoint when `every` seconds passed since the last one; whether it did."""
        if time.monotonic() - self.last < self.every:
            return False
        try:
            self.con.execute("CHECKPOINT")
        except duckdb.TransactionException:
            return False  # another writer's transaction is open: after the next node
        except duckdb.Error:
            self.last = time.monotonic()  # failed: the run's end tries again
            raise
        self.last = time.monotonic()
        return True

    def finish(self) -> float:
        """Restore the threshold and write the WAL into the file; seconds it took."""
        started = time.monotonic()
        if self.previous:
            self.con.execute(f"SET checkpoint_threshold = {literal(self.previous)}")
        else:
            self.con.execute("RESET checkpoint_threshold")
        self.con.execute("CHECKPOINT")
        return time.monotonic() - started


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def size_bytes(text: str) -> float | None:
    """A DuckDB memory size ('4GB', '512MiB', '200 MB') in bytes; None when unreadable."""
    m = _SIZE.match(str(text))
    if not m:
        return None
    unit = m.group(2).lower()
    scale = _UNITS[unit[:1]] if unit[:1] in _UNITS else 1
    if "i" in unit:  # KiB, MiB, ...: powers of 1024
        scale = 1024 ** ("bkmgt".index(unit[0]))
    return float(m.group(1)) * scale


def smaller_limit(configured: str | None, cap: str) -> str:
    """The configured memory_limit when it is below `cap`, else `cap`."""
    mine, theirs = size_bytes(cap), size_bytes(configured) if configured else None
    return str(configured) if theirs is not None and mine is not None and theirs < mine else cap


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


class LoggedCursor:
    """A DuckDB cursor that logs every statement (for `target/logs/elt.log`) and keeps the
    ones a node ran, so the build can write them to `target/compiled/` and map a DuckDB
    error's `LINE n` back to the model file. Everything else is the wrapped cursor's."""

    def __init__(self, cur: duckdb.DuckDBPyConnection, node: str) -> None:
        self._cur = cur
        self.node = node
        self.statements: list[str] = []
        self.failed_sql: str | None = None

    def execute(self, query: str, parameters: Any = None) -> Any:
        self.statements.append(query)
        sql_log.debug("%s: %s", self.node, query, extra={"node": self.node})
        try:
            if parameters is None:
                return self._cur.execute(query)
            return self._cur.execute(query, parameters)
        except duckdb.Error:
            self.failed_sql = query
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def __enter__(self) -> LoggedCursor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._cur.close()
