"""Reads a publication sends before its writes (its `read:`, readback.py), batched per chunk.

Two uses while streaming (stream.py): an update takes what it needs of the row's current
state (`read.provides`, e.g. gql_ug's lastchange) from a read just before it is sent; and,
with `read.before_insert` (the default when `read:` exists), a row about to be inserted is
looked up first, so rows another checkout, another tool or a lost ledger already put there
are recorded `already_there` without a write. A read that finds the key twice or more never
leads to a write: the row fails naming the count (a second writer duplicated it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from elt.http.messages import Request
from elt.publish.readback import Found, ReadBack
from elt.publish.sinks.base import ALREADY_THERE, FAILED, Row, Sink

Settled = tuple[Row, str, int | None, str | None]


def held_rows(row: Row, found: Found) -> str:
    """Why a row whose key the endpoint holds more than once is not written."""
    return (f"the endpoint holds {found.n} rows for key {row.key} (another writer duplicated "
            "it; remove the extra ones by hand, `elt verify` lists them)")


class PreReads:
    """The reads one publication's stream makes before sending (none without `read:`)."""

    def __init__(self, readback: ReadBack | None, send: Callable[[Request], Any] | None,
                 sink: Sink, key_json: dict[str, str]) -> None:
        self.readback = readback if send is not None else None
        self.send = send
        self.sink = sink
        self.key_json = key_json  # key -> key object of the rows being streamed

    @property
    def updates(self) -> bool:
        return self.readback is not None and bool(self.readback.provides)

    @property
    def inserts(self) -> bool:
        return self.readback is not None and self.readback.before_insert

    async def _read(self, rows: list[Row]) -> list[Found]:
        assert self.readback is not None and self.send is not None
        return await self.readback.read(self.send, [
            self.readback.row_values(self.key_json.get(r.key), r.body) for r in rows])

    async def before_updates(self, rows: list[Row]) -> tuple[list[Row], list[Settled]]:
        """(rows to send, rows settled here). Updates get `read.provides` merged into their
        body; one the read does not find, or cannot read, fails here with that answer."""
        updates = [r for r in rows if r.op == "update"]
        if not self.updates or not updates:
            return rows, []
        assert self.readback is not None
        merged: dict[str, Row] = {}
        final: list[Settled] = []
        for row, f in zip(updates, await self._read(updates), strict=True):
            if f.error or f.n != 1 or not isinstance(row.body, dict):
                why = f.error or ("not at the endpoint (read found none)" if f.n == 0 else
                                  f"the endpoint holds {f.n} rows for this key")
                final.append((row, FAILED, None, f"read before update: {why}"))
                continue
            merged[row.key] = replace(row, body={**row.body, **self.readback.provided(f)})
        return [merged.get(r.key, r) if r.op == "update" else r for r in rows
                if r.op != "update" or r.key in merged], final

    async def before_inserts(self, rows: list[Row]) -> tuple[list[Row], list[Settled]]:
        """(rows to send, rows settled here). An insert whose key the endpoint holds once is
        `already_there` (answer per `read.answer`), or goes as an update when the held row
        differs and the publication can update; held twice or more, or unreadable, it fails.
        Only keys the endpoint does not hold are inserted."""
        inserts = [r for r in rows if r.op == "insert"]
        if not self.inserts or not inserts:
            return rows, []
        assert self.readback is not None
        rb = self.readback
        keep: dict[str, Row] = {}
        final: list[Settled] = []
        for row, f in zip(inserts, await self._read(inserts), strict=True):
            if f.error:
                final.append((row, FAILED, None, f"read before insert: {f.error}"))
            elif f.n == 0:
                keep[row.key] = row
            elif f.n > 1:
                final.append((row, FAILED, None, held_rows(row, f)))
            elif not (differs := rb.differs(rb.row_values(self.key_json.get(row.key),
                                                          row.body), f)):
                final.append((row, ALREADY_THERE, None, rb.answer(f)))
            elif self.sink.can("update"):
                body = {**row.body, **rb.provided(f)} if isinstance(row.body, dict) else row.body
                keep[row.key] = replace(row, op="update", body=body)
            else:
                final.append((row, FAILED, None, "the endpoint holds another version of key "
                              f"{row.key} ({', '.join(differs)} differ) and the publication "
                              "declares no update"))
        return [keep[r.key] if r.op == "insert" else r for r in rows
                if r.op != "insert" or r.key in keep], final
