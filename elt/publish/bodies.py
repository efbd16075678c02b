"""A pending set on disk: its keys, then its bodies in parts the sender reads as they land.

Why parquet at all: DuckDB allows one writing process per file, so publish cannot hold the
database for the hours a large publish takes (`elt sql` and `elt status` must work meanwhile).
The pending set is computed once, written beside the journal, and the database is closed.

Why parts: the bodies are most of the bytes (1 GB for the FlowKit datasets at bench scale 1,
2.6 s to copy). Written in slices of the model's row ids, the first slice lands in a fraction
of that and sending starts on it while the rest is copied: the thread that holds the
database writes part after part and the sender's reader waits only for a part it needs. A
model that is a view has no row ids and is copied in one part.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb

from elt.core.db import literal
from elt.core.errors import PublishError
from elt.publish.ledger import (
    PendingQuery,
    bodies_sql,
    classified_sql,
    ledger_knows,
    model_columns,
)

ROWS_PER_PART = 2_500  # model rows per bodies part (a part is read whole by DuckDB)
MAX_PARTS = 16


def bodies_path(path: Path, part: int = 0) -> Path:
    """Where the bodies of the pending keys at `path` go (part 0, 1, ...)."""
    suffix = ".bodies.parquet" if part == 0 else f".bodies.{part}.parquet"
    return path.with_name(path.stem + suffix)


class BodyParts:
    """The parts of one pending set's bodies, announced as each is written; the reader
    iterates them in order, waiting for the next one (or for the copy's failure)."""

    def __init__(self) -> None:
        self._ready: list[Path] = []
        self._done = False
        self._error: str | None = None
        self._changed = threading.Condition()

    @classmethod
    def written(cls, paths: list[Path]) -> BodyParts:
        parts = cls()
        for p in paths:
            parts.add(p)
        parts.finish()
        return parts

    def add(self, path: Path) -> None:
        with self._changed:
            self._ready.append(path)
            self._changed.notify_all()

    def finish(self, error: str | None = None) -> None:
        with self._changed:
            self._done, self._error = True, error
            self._changed.notify_all()

    @property
    def complete(self) -> bool:
        with self._changed:
            return self._done and self._error is None

    @property
    def finished(self) -> bool:
        with self._changed:
            return self._done

    @property
    def error(self) -> str | None:
        with self._changed:
            return self._error

    def all(self) -> list[Path]:
        """Every part; only once the copy has finished."""
        assert self.complete
        return list(self._ready)

    def __iter__(self) -> Iterator[Path]:
        index = 0
        while True:
            with self._changed:
                self._changed.wait_for(lambda i=index: i < len(self._ready) or self._done)
                if index < len(self._ready):
                    path = self._ready[index]
                elif self._error is not None:
                    raise PublishError(f"the bodies to send could not be copied: {self._error}")
                else:
                    return
            yield path
            index += 1


def copy_pending(con: duckdb.DuckDBPyConnection, q: PendingQuery, path: Path,
                 columns: dict[str, str] | None = None, *, defer_bodies: bool = False
                 ) -> tuple[int, int, BodyCopy]:
    """Write the pending keys (with op and hash) to `path`; returns (rows to send, rows held
    while an earlier request of theirs settles, the copy of their bodies).

    The bodies are copied now, in one part, unless `defer_bodies`: then the returned copy
    is run later on the same connection (`BodyCopy.run`), part by part, while the sender
    reads. Bodies are selected by a semi-join on the pending keys: attaching them to the
    keys with a join would make DuckDB hold every body in its hash table (1.3 GB for 1 GB of
    bodies); the semi-join streams them. The sender pairs them up.
    """
    columns = columns or model_columns(con, q.relation)
    path.parent.mkdir(parents=True, exist_ok=True)
    pending = f"_elt_pending_{zlib.crc32(q.publication.encode()):08x}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE {pending} AS SELECT key, key_json, op, hash, "
                f"retry_of_unknown, absent, tombstone, wave, reason FROM "
                f"({classified_sql(q, columns, known=ledger_knows(con, q))}) "
                "WHERE op IS NOT NULL OR reason = 'settling'", [q.publication])
    copy = BodyCopy(con, q, columns, pending, path)
    try:
        con.execute(f"COPY (SELECT * EXCLUDE (reason) FROM {pending} WHERE op IS NOT NULL) "
                    f"TO {literal(str(path))} (FORMAT parquet)")
        (count, held), = con.execute("SELECT count(op), count(*) FILTER (reason = 'settling') "
                                     f"FROM {pending}").fetchall()
        if not defer_bodies:
            copy.run(parts=1)
            if copy.parts.error:
                raise PublishError(f"cannot copy the bodies to send: {copy.parts.error}",
                                   where=f"publication {q.publication!r}")
    except BaseException:
        copy.drop()
        raise
    return int(count), int(held), copy


def pending_files(con: duckdb.DuckDBPyConnection, q: PendingQuery, path: Path,
                  columns: dict[str, str], later: LaterCopies | None
                  ) -> tuple[int, int, BodyParts]:
    """copy_pending with the bodies copied now, or queued on `later` (when given); returns
    (rows to send, rows held, the bodies' parts)."""
    count, held, copy = copy_pending(con, q, path, columns, defer_bodies=later is not None)
    if later is not None and count:
        later.add(copy)
    elif later is not None:  # nothing to send: no bodies to copy
        copy.drop()
        copy.parts.finish()
    return count, held, copy.parts


class BodyCopy:
    """The bodies of one pending set, to be written (to parts of `bodies_path`)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, q: PendingQuery,
                 columns: dict[str, str], pending: str, path: Path) -> None:
        self.con, self.q, self.columns, self.pending, self.path = con, q, columns, pending, path
        self.parts = BodyParts()

    def run(self, parts: int | None = None) -> None:
        """Write the parts (announcing each), then drop the pending table. Never raises:
        a failure is announced to the reader, which reports it for its publication."""
        try:
            for i, rows in enumerate(self._slices(parts)):
                target = bodies_path(self.path, i)
                self._copy(rows, target)
                self.parts.add(target)
            self.parts.finish()
        except Exception as exc:  # noqa: BLE001 - reported by the reader, per publication
            self.parts.finish(str(exc).splitlines()[0] or type(exc).__name__)
        finally:
            self.drop()

    def drop(self) -> None:
        try:
            self.con.execute(f"DROP TABLE IF EXISTS {self.pending}")
        except duckdb.Error:
            pass  # the connection is closing (interrupted): the temp table goes with it

    def _slices(self, parts: int | None) -> list[tuple[int, int] | None]:
        """Row id ranges of the model, or [None] (everything in one part)."""
        if parts == 1:
            return [None]
        try:
            (last,), = self.con.execute(f"SELECT max(rowid) FROM {self.q.relation}").fetchall()
        except duckdb.Error:  # a view: no row ids
            return [None]
        if last is None:
            return [None]
        count = min(MAX_PARTS, max(1, (int(last) + 1) // ROWS_PER_PART))
        step = -(-(int(last) + 1) // count)
        return [(start, start + step) for start in range(0, int(last) + 1, step)]

    def _copy(self, rows: tuple[int, int] | None, target: Path) -> None:
        # Bodies in any order (the sender pairs them with their keys): DuckDB then cuts row
        # groups by bytes and does not buffer each thread's output to keep it in order, so
        # the copy's memory stays a few row groups whatever the bodies' sizes. Small row
        # groups: the sender reads one at a time. Neither compressed nor dictionary-encoded
        # (bodies are unique and the file lives for one run): -30% of the copy's CPU.
        con = self.con
        (order,), = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
        con.execute("SET preserve_insertion_order = false")
        try:
            con.execute(
                f"COPY ({bodies_sql(self.q, self.columns, self.pending, rows)}) "
                f"TO {literal(str(target))} "
                "(FORMAT parquet, ROW_GROUP_SIZE 256, ROW_GROUP_SIZE_BYTES '4MB', "
                "COMPRESSION uncompressed, DICTIONARY_SIZE_LIMIT 1)")
        finally:
            con.execute(f"SET preserve_insertion_order = {'true' if order else 'false'}")


class LaterCopies:
    """Body copies that run once sending has begun, on the connection that computed their
    pending sets (their pending tables are its temp tables). It holds the database until
    the last part is written: seconds, during which the run's other openers of the
    database (journal merges, rebuilds) wait for it (runner.py)."""

    def __init__(self) -> None:
        self.copies: list[BodyCopy] = []
        self.con: duckdb.DuckDBPyConnection | None = None
        self._stopped = False

    def add(self, copy: BodyCopy) -> None:
        self.copies.append(copy)

    def hold(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Keep `con` open for the copies (True), or leave it to the caller (none to run)."""
        if not self.copies:
            return False
        self.con = con
        return True

    def run(self) -> None:
        """Write every part of every copy, in order (in a worker thread), then close."""
        try:
            for copy in self.copies:
                if self._stopped:
                    copy.parts.finish("the publish run stopped before they were copied")
                    continue
                copy.run()
        finally:
            self.close()

    def stop(self) -> None:
        """No more parts are needed: interrupt the copy running now (thread-safe)."""
        self._stopped = True
        if self.con is not None:
            self.con.interrupt()

    def close(self) -> None:
        """Close the connection; a copy not yet written tells its reader so."""
        for copy in self.copies:
            if not copy.parts.finished:
                copy.parts.finish("the publish run ended before they were copied")
        if self.con is not None:
            con, self.con = self.con, None
            con.close()
