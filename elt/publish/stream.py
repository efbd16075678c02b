"""Streaming one publication's pending set to its endpoint with flat memory.

Pipeline: a reader thread pulls the pending parquet in chunks (its own in-memory DuckDB,
fetchmany), worker threads encode rows into requests (JSON + gzip, the CPU-heavy part, so
both cores work), and `concurrency` async senders push them through the endpoint's keep-alive
Transport. Bounded queues between the stages keep memory flat whatever the table size. Keys
are unique in the pending set and each row is in exactly one request, so no key is ever in
flight twice (FlowKit corrupts a key posted twice at once).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

import duckdb

from elt.core import secrets
from elt.core.console import Progress
from elt.core.errors import EltError
from elt.http.messages import RawJSON, Request
from elt.publish import ledger
from elt.publish.journal import Journal
from elt.publish.paths import row_values
from elt.publish.prereads import PreReads
from elt.publish.sinks.base import (
    ALREADY_THERE,
    CHANGED_MEANWHILE,
    FAILED,
    NOT_RUN,
    NOT_THERE,
    UNRESOLVED,
    Refused,
    Row,
    Sink,
)

# An "already there" error on a row that may have reached the server before (a crashed run's
# in-flight row, or a request the transport had to resend) is proof the row exists: the first
# copy created it. Recording it as failed would resend it forever. Only for such rows: a fresh
# insert hitting a unique violation is a real conflict and stays failed.
ALREADY_EXISTS = ("uniqueviolation", "already exists")
# Rows per fetch from the pending parquet: bodies can be hundreds of KB, so a small chunk
# (and a small DuckDB memory limit for the reader) keeps the process's memory flat.
DELIVERED = ("acknowledged", ALREADY_THERE)
READ_CHUNK = 256
READER_MEMORY = "128MB"


@dataclass
class Tally:
    """Counts for one publication in one run."""

    sent: int = 0
    acknowledged: int = 0
    failed: int = 0          # failed answers plus rows whose answer never came (unknown)
    unknown: int = 0         # of those, rows whose answer never came: held, not failed
    already_there: int = 0   # the endpoint had the key already (kept apart in the ledger)
    requests: int = 0
    bytes: int = 0
    first_failure: str | None = None  # why the first failed row failed (status and answer)
    stopped: str | None = None  # why sending stopped early (the endpoint refused our token)

    @classmethod
    def total(cls, tallies: list[Tally]) -> Tally:
        out = cls()
        for t in tallies:
            for name in ("sent", "acknowledged", "failed", "unknown", "already_there",
                         "requests", "bytes"):
                setattr(out, name, getattr(out, name) + getattr(t, name))
            out.first_failure = out.first_failure or t.first_failure
            out.stopped = out.stopped or t.stopped
        return out


def already_exists(answer: str | None) -> bool:
    text = (answer or "").lower()
    return any(marker in text for marker in ALREADY_EXISTS)


def settle(sink: Sink, request: Request, status: int | None, body: bytes, error: str | None,
           location: str | None = None, reached: bool = True,
           repeated: bool = False, created: str | None = None
           ) -> list[tuple[Row, str, int | None, str | None]]:
    """(row, status, http_status, answer) for every row of a request, whatever the answer."""
    if status is None:  # no answer: unknown if it may have arrived, failed if it never left
        return [(row, "unknown" if reached else "failed", None, error)
                for row in request.rows]
    if location:  # a redirect the sink does not accept: say where it pointed
        return [(row, state, http, f"{answer} (a redirect to {location}, not followed: fix "
                                   "the endpoint url or path)" if state == "failed" else answer)
                for row, state, http, answer in settle(sink, request, status, body, None,
                                                       repeated=repeated)]
    try:
        outcomes = {o.key: o for o in sink.read_reply(request, status, body, created)}
    except Exception as exc:  # a sink bug or a garbled body must not lose the other rows
        text = f"cannot read the answer: {type(exc).__name__}: {exc}"
        return [(row, "failed", status, text) for row in request.rows]
    settled = []
    for row in request.rows:
        out = outcomes.get(row.key)
        if out is None:
            settled.append((row, "failed", status, "the answer has no result for this row"))
            continue
        state, answer = out.status, out.answer
        maybe_ours = row.retry_of_unknown or repeated  # not after a 401, 429 or 503
        if state == NOT_RUN and maybe_ours:  # not run by this copy; an earlier one may have
            state = UNRESOLVED
        if state == "failed" and maybe_ours and already_exists(answer):
            state, answer = "acknowledged", None
        elif state == ALREADY_THERE and maybe_ours and not upserts(sink, row):
            state = "acknowledged"  # the copy that may have arrived earlier made it
        settled.append((row, state, out.http_status, answer))
    return settled


def upserts(sink: Sink, row: Row) -> bool:
    """An insert answered "already there" is followed by an update (verifies the data)."""
    return row.op == "insert" and sink.mode in ("upsert", "mirror") and sink.can("update")


def follow_ups(sink: Sink, settled: list[tuple[Row, str, int | None, str | None]]
               ) -> tuple[list[tuple[Row, str, int | None, str | None]], list[Row]]:
    """(rows to record now, rows to send again alone).

    Unresolved rows go again as they were, flagged as maybe delivered (an "already exists"
    then proves the first copy landed); rows not run go again as they were. An insert
    answered "already there" in upsert or mirror mode goes again as an update: a 303 says a dataset
    with the key exists, not that its data is ours (FlowKit keeps the old data on POST). An
    update answered "not found" goes again as an insert, once: retried as an update it would
    fail in every run.
    """
    final: list[tuple[Row, str, int | None, str | None]] = []
    again: list[Row] = []
    for entry in settled:
        row, state = entry[0], entry[1]
        if state == UNRESOLVED:
            again.append(replace(row, retry_of_unknown=True))
        elif state == NOT_RUN:
            again.append(row)
        elif state == ALREADY_THERE and upserts(sink, row):
            again.append(replace(row, op="update", retry_of_unknown=False))
        elif state == NOT_THERE and not row.reinserted and sink.mode in ("upsert", "mirror"):
            again.append(replace(row, op="insert", retry_of_unknown=False, reinserted=True))
        elif state == CHANGED_MEANWHILE and not row.reread:  # read again once, resent
            again.append(replace(row, reread=True))
        elif state == CHANGED_MEANWHILE:  # changed again since the second read: failed
            final.append((row, FAILED, entry[2], entry[3]))
        elif state == NOT_THERE:  # inserted once already, or no upserts: it failed
            final.append((row, FAILED, entry[2], entry[3]))
        else:
            final.append(entry)
    return final, again


class _Reader:
    """Reads the pending set in chunks; runs in one dedicated thread.

    The keys file (op, hash: small) is held as a dict; the bodies file is streamed and each
    body paired with its key's row; keys without a body (deletes) come last.
    """

    def __init__(self, path: Path, raw: bool = False, wave: Any = None,
                 waved: bool = False, templated: bool = False) -> None:
        self.path = path
        self.templated = templated  # rows carry what their path templates name
        # Only the rows of one wave (`wave IS NOT DISTINCT FROM ?`), when sending in waves.
        self.filter = ("WHERE wave IS NOT DISTINCT FROM ?", [wave]) if waved else ("", [])
        self.raw = raw  # hand bodies over as RawJSON text (the sink does not look inside)
        self.con: duckdb.DuckDBPyConnection | None = None
        self.meta: dict[str, tuple[str, str, str, bool, str | None]] = {}
        self.deletes: list[tuple[str, str, str, str, str, bool, str | None]] = []
        self.answers: dict[str, str | None] = {}  # key -> last answer (templated only)
        self.params = False  # the bodies file has a `params` column

    def _open(self) -> duckdb.DuckDBPyConnection:
        con = duckdb.connect(config={"memory_limit": READER_MEMORY, "threads": "1"})
        where, params = self.filter
        answer = "answer" if self.templated else "NULL"
        for key, key_json, op, hsh, rou, absent, tomb, last in con.execute(
                f"SELECT key, key_json, op, hash, retry_of_unknown, absent, tombstone, {answer} "
                f"FROM read_parquet(?) {where}", [str(self.path), *params]).fetchall():
            if last is not None:
                self.answers[key] = last
            if absent:  # gone from the model: the body is its recorded delete body
                self.deletes.append((key, key_json, op, hsh, tomb, bool(rou), None))
            else:
                self.meta[key] = (key_json, op, hsh, bool(rou), tomb)
        bodies = str(ledger.bodies_path(self.path))
        self.params = self.templated and "params" in {
            r[0] for r in con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [bodies]
                                      ).fetchall()}
        cols = "key, body, params" if self.params else "key, body, NULL"
        if where:
            con.execute(f"SELECT {cols} FROM read_parquet(?) WHERE key IN (SELECT key FROM "
                        f"read_parquet(?) {where})",
                        [str(ledger.bodies_path(self.path)), str(self.path), *params])
        else:
            con.execute(f"SELECT {cols} FROM read_parquet(?)", [bodies])
        return con

    def chunk(self) -> list[tuple[Row, str]]:
        if self.con is None:
            self.con = self._open()
        fetched = self.con.fetchmany(READ_CHUNK)
        extra: dict[str, str | None] = {}
        if fetched:
            rows = []
            for key, body, params in fetched:
                key_json, op, hsh, rou, tomb = self.meta.pop(key)
                if hsh is None:  # a new row: hashed here, not by the classification
                    hsh = hashlib.md5(body.encode()).hexdigest()
                rows.append((key, key_json, op, hsh, body, rou, tomb))
                if params is not None:
                    extra[key] = params
        else:
            rows, self.deletes = self.deletes[:READ_CHUNK], self.deletes[READ_CHUNK:]
        out = []
        for key, key_json, op, hsh, body, rou, tomb in rows:
            if self.raw:
                value: Any = RawJSON(body if body is not None else "null")
            else:
                value = json.loads(body) if body is not None else None
            values = (row_values(key_json, extra.get(key), self.answers.pop(key, None))
                      if self.templated else None)
            out.append((Row(key, op, value, hsh, bool(rou), tomb, values=values), key_json))
        return out

    def close(self) -> None:
        if self.con is not None:
            self.con.close()
            self.con = None


async def stream(
    *,
    publication: str,
    parquet: Path,
    sink: Sink,
    send: Callable[[Request], Any],
    journal: Journal,
    encoder: Executor,
    concurrency: int,
    progress: Progress | None = None,
    export: TextIO | None = None,
    wave: Any = None,
    waved: bool = False,
    readback: Any = None,
    read_send: Callable[[Request], Any] | None = None,
) -> Tally:
    """Send every row of the parquet once; journal in-flight rows and every answer."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    key_json: dict[str, str] = {}
    group = max(sink_batch(sink), (64 // sink_batch(sink)) * sink_batch(sink))
    encoded: asyncio.Queue[asyncio.Future[list[Request]] | None] = asyncio.Queue(2)
    requests: asyncio.Queue[Request | None] = asyncio.Queue(concurrency)
    reader = _Reader(parquet, raw=bool(getattr(sink, "raw_bodies", False)), wave=wave,
                     waved=waved, templated=bool(getattr(sink, "templated", False)))
    read_thread = ThreadPoolExecutor(1, thread_name_prefix=f"read-{publication}")

    pre = PreReads(readback, read_send, sink, key_json)

    def account(final: list[tuple[Row, str, int | None, str | None]], nbytes: int) -> int:
        failed = sum(1 for _, state, _, _ in final if state not in DELIVERED)
        if failed and tally.first_failure is None:
            tally.first_failure = _reason(final)
        tally.sent += len(final)
        tally.failed += failed
        tally.unknown += sum(1 for _, state, _, _ in final if state == "unknown")
        tally.acknowledged += sum(1 for _, state, _, _ in final if state == "acknowledged")
        tally.already_there += sum(1 for _, state, _, _ in final if state == ALREADY_THERE)
        if progress is not None:
            progress.advance(len(final), nbytes=nbytes, errors=failed)
        return failed

    async def read_first(rows: list[Row]) -> list[Row]:
        """The reads before sending (prereads.py): rows they settle are recorded here."""
        rows, done = await pre.before_inserts(rows)
        rows, failed = await pre.before_updates(rows)
        if done or failed:
            _record(publication, done + failed, 0, journal, key_json, export)
            account(done + failed, 0)
        return rows

    async def produce() -> None:
        while tally.stopped is None:
            chunk = await loop.run_in_executor(read_thread, reader.chunk)
            if not chunk:
                break
            rows = []
            for row, kj in chunk:
                key_json[row.key] = kj
                rows.append(row)
            rows = await read_first(rows)
            for start in range(0, len(rows), group):
                await encoded.put(loop.run_in_executor(encoder, sink.encode,
                                                       rows[start:start + group]))
        await encoded.put(None)

    async def distribute() -> None:
        while (future := await encoded.get()) is not None:
            for request in await future:
                await requests.put(request)
        for _ in range(concurrency):
            await requests.put(None)

    async def exchange(request: Request) -> None:
        """Send one request and record its rows; rows the answer leaves open are sent again,
        alone, by this same sender (so a key is never in two requests at once)."""
        journal.write(({"pub": publication, "key": r.key, "op": r.op, "hash": r.hash,
                        "status": "unknown"}, key_json.get(r.key)) for r in request.rows)
        if isinstance(request, Refused):  # its row cannot be sent (a path field is NULL)
            settled = [(row, "failed", None, request.reason) for row in request.rows]
            attempts, status = 0, None
        else:
            reply = await send(request)
            settled = settle(sink, request, reply.status, reply.body, reply.error,
                             reply.location, reply.reached, reply.repeated,
                             getattr(reply, "created", None))
            attempts, status = reply.attempts, reply.status
        final, again = follow_ups(sink, settled)
        _record(publication, final, attempts, journal, key_json, export)
        failed = account(final, len(request.content))
        tally.requests += not isinstance(request, Refused)
        tally.bytes += len(request.content)
        if status == 401 and tally.stopped is None:  # after the transport's one new
            # token: every other request would be refused too (a wrong secret, a missing
            # scope); what is not sent yet stays pending for the next run
            tally.stopped = ("the endpoint refused our credentials ("
                             + (_reason(final, keyed=False) if failed else "HTTP 401") + ")")
        for row in again:
            if row.op == "update" and pre.updates:  # its current state, read (again)
                reread = await read_first([row])
                if not reread:
                    continue
                row = reread[0]
            for follow in await loop.run_in_executor(encoder, sink.encode, [row]):
                await exchange(follow)

    async def sender() -> None:
        while (request := await requests.get()) is not None:
            if tally.stopped is None:  # else drained unsent: never journaled, still pending
                await exchange(request)

    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(produce())
            tasks.create_task(distribute())
            for _ in range(concurrency):
                tasks.create_task(sender())
    except BaseExceptionGroup as group:  # report the cause, not the task group wrapper
        raise _first(group) from None
    finally:
        await loop.run_in_executor(read_thread, reader.close)
        read_thread.shutdown(wait=False)
    return tally


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first user-facing error of a task group (else its first error)."""
    flat: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop(0)
        if isinstance(exc, BaseExceptionGroup):
            stack[:0] = list(exc.exceptions)
        else:
            flat.append(exc)
    return next((e for e in flat if isinstance(e, EltError)), flat[0])


def _reason(settled: list[tuple[Row, str, int | None, str | None]], keyed: bool = True) -> str:
    """One line saying why the first failed row of a request failed, naming its key (the
    answers of another writer's interference, e.g. a 500 on PATCH, point at one key)."""
    row, state, http, answer = next(s for s in settled if s[1] not in DELIVERED)
    text = " ".join(secrets.redact(answer or "").split())[:200]
    if state == "unknown":
        why = f"no answer: {text}" if text else "no answer"
    elif http is None or text.startswith(f"HTTP {http}"):
        why = text or f"HTTP {http}"
    else:
        why = f"HTTP {http}: {text}" if text else f"HTTP {http}"
    return f"key {row.key}: {why}" if keyed else why


def sink_batch(sink: Sink) -> int:
    return max(1, int(getattr(sink, "batch_size", 1) or 1))


def _record(publication: str, settled: list[tuple[Row, str, int | None, str | None]],
            attempts: int, journal: Journal, key_json: dict[str, str],
            export: TextIO | None) -> None:
    """Journal the answers (flushed: they survive kill -9), then the export lines."""
    clean = [(row, state, http, secrets.redact(answer) if answer else answer)
             for row, state, http, answer in settled]
    journal.write(({"pub": publication, "key": row.key, "op": row.op, "hash": row.hash,
                    "status": state, "http": http, "answer": answer, "attempts": attempts,
                    **({"tomb": row.tombstone} if row.tombstone is not None and row.op != "delete"
                       and state in DELIVERED else {})},
                   key_json.pop(row.key, None)) for row, state, http, answer in clean)
    if export is not None:
        export.write("".join(json.dumps({"publication": publication, "key": row.key,
                                         "op": row.op, "status": state, "http_status": http,
                                         "answer": answer}, ensure_ascii=False) + "\n"
                             for row, state, http, answer in clean))
