"""FlowKit POST/PATCH/DELETE /data: the writes, each answering as the real backend does.

Imitated behaviour (flowkit-api.md, "Measured on the real backend"):
- POST of a new key: 201 + a new mdid (a JSON integer), and an `admin` scope mapping.
- POST of an existing key: 303 + the existing mdid; the stored data is kept even when the
  body differs (303 means "a dataset with this key exists", not "your data is there").
- PATCH: 201 with a NEW mdid. The old metadata row is deleted with every scope mapping of
  it; only the `admin` mapping is re-created for the new mdid, so non-admin callers no
  longer see the dataset until it is mapped again. PATCH of an unknown key inserts.
- DELETE needs the full Dataset body (the same request model; data_input may be []): a
  key-only body is a validation failure, 500 text/plain. 204 also when nothing matched.
- Body validation, "No data to ingest", unknown data_type and MySQL errors: dataset.py. A
  MySQL error uses up an mdid (the metadata row's auto-increment survives its rollback), so
  mdids are not contiguous; no body at all answers 500 JSON `"Something went wrong:
  'NoneType' object has no attribute 'data_input'"` (second round).
- Concurrency: the backend checks for the key, then inserts, without a lock or a unique
  key. Here the check happens when a request "takes off" (before its in-flight delay from
  the slow faults or X-Sandbox-Delay) and the write when it lands, so two requests for one
  key in flight together both see "no such key" and both insert: two datasets, two 201s
  with distinct mdids. From then on POST, PATCH and DELETE of that key answer 500
  `"Ambiguous dataset"`. Overlapping requests for one key are counted as `races`.
- A request whose client gave up (timed out) while it was in flight still lands and commits.

Per-key counters (see faults.Stats): received, accepted (2xx), rejected, duplicates (303),
inserted (POST 201), patched (PATCH 201), deleted, races, ambiguous ("Ambiguous dataset").
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count
from typing import Any

import elt.sandbox.dataset as dataset
from elt.sandbox.dataset import DATA_TYPES, Key, key_label
from elt.sandbox.store import Store
from elt.sandbox.wire import Reply, Request, Response, json_response, parse_json

ADMIN_SCOPE = "admin"
AMBIGUOUS = "Ambiguous dataset"
KEY_WHERE = "category_id=? AND indicator_id=? AND srid=? AND trid=? AND dt=?"

Counter = Callable[[str, str, str], None]  # (service, key, field) -> None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _Flight:
    """One write of a key between its check (take-off) and its write (landing)."""

    seen: list[int] = field(default_factory=list)  # mdids of the key at take-off


class DataWriter:
    """POST/PATCH/DELETE /data over the store, with the check-then-write race of the real one."""

    def __init__(self, store: Store, counter: Counter, *, null_sink: bool = False) -> None:
        self.store = store
        self.counter = counter
        self.null_sink = null_sink
        self._fake_mdids = count(1)
        self._flights: dict[str, list[_Flight]] = {}
        self._flights_lock = threading.Lock()

    def handle(self, req: Request) -> Response:
        """Answer one /data write and count its outcome for its key."""
        try:
            doc = parse_json(req.body)
        except ValueError:
            doc = None
        label = key_label(doc.get("metadata")) if isinstance(doc, dict) else "<invalid>"
        self.counter("flowkit", label, "received")
        if self.null_sink:
            self.counter("flowkit", label, "accepted")
            return Response(204) if req.method == "DELETE" else json_response(
                201, next(self._fake_mdids))
        try:
            response = self._checked(req, doc, label)
        except Reply as reply:
            response = reply.response
        outcome = {201: "accepted", 204: "accepted", 303: "duplicates"}.get(
            response.status, "rejected")
        self.counter("flowkit", label, outcome)
        if response.status == 500 and response.body == json.dumps(AMBIGUOUS).encode():
            self.counter("flowkit", label, "ambiguous")
        return response

    def _checked(self, req: Request, doc: Any, label: str) -> Response:
        if not req.body.strip():  # no body at all: the handler itself trips over None
            raise dataset.wrong("'NoneType' object has no attribute 'data_input'")
        key, revision, data_type, rows = dataset.body(doc)
        record: tuple[Any, ...] = ()
        if req.method != "DELETE":
            if not rows:
                return json_response(400, "No data to ingest")
            if data_type not in DATA_TYPES:
                return json_response(400, f'Unknown data type "{data_type}"')
            try:
                dataset.check_ids(key)
                stored, lo, hi = dataset.values(rows, data_type)
            except Reply:  # MySQL rolled back the metadata row, its auto-increment stays used
                self.store.next_id("mdid_seq")
                raise
            record = (revision, data_type, json.dumps(stored), len(stored), lo, hi)
        flight = self._take_off(label, key)
        try:
            time.sleep(req.delay)
            if req.method == "DELETE":
                return self._delete(label, flight)
            return self._write(req.method, label, key, record, flight)
        finally:
            self._land(label, flight)

    def _take_off(self, label: str, key: Key) -> _Flight:
        """Check the key now (as the backend's SELECT does); count overlapping writes as races."""
        rows = self.store.query(f"SELECT mdid FROM flowkit_datasets WHERE {KEY_WHERE} "
                                "ORDER BY mdid", key)
        flight = _Flight([r["mdid"] for r in rows])
        with self._flights_lock:
            others = self._flights.setdefault(label, [])
            if others:
                self.counter("flowkit", label, "races")
            others.append(flight)
        return flight

    def _land(self, label: str, flight: _Flight) -> None:
        with self._flights_lock:
            others = self._flights.get(label, [])
            others.remove(flight)
            if not others:
                self._flights.pop(label, None)

    def _write(self, method: str, label: str, key: Key, record: tuple[Any, ...],
               flight: _Flight) -> Response:
        seen = flight.seen
        if len(seen) > 1:
            return json_response(500, AMBIGUOUS)
        if seen and method == "POST":
            return json_response(303, seen[0])
        with self.store.atomic() as st:
            if seen:  # PATCH: the old metadata goes, and every mapping with it
                st.query("DELETE FROM flowkit_scope_mappings WHERE mdid=?", seen)
                st.query("DELETE FROM flowkit_datasets WHERE mdid=?", seen)
            mdid = st.next_id("mdid_seq")
            now = _now()
            st.query("INSERT INTO flowkit_datasets (mdid, category_id, indicator_id, srid, trid,"
                     " dt, revision, data_type, data, n_values, min_value, max_value, date_added)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (mdid, *key, *record, now))
            st.query("INSERT INTO flowkit_scope_mappings VALUES (?, ?, ?, ?)",
                     (st.next_id("scope_mapping_seq"), ADMIN_SCOPE, mdid, now))
        self.counter("flowkit", label, "inserted" if method == "POST" else "patched")
        return json_response(201, mdid)

    def _delete(self, label: str, flight: _Flight) -> Response:
        seen = flight.seen
        if len(seen) > 1:
            return json_response(500, AMBIGUOUS)
        if seen:
            with self.store.atomic() as st:
                st.query("DELETE FROM flowkit_scope_mappings WHERE mdid=?", seen)
                st.query("DELETE FROM flowkit_datasets WHERE mdid=?", seen)
            self.counter("flowkit", label, "deleted")
        return Response(204)

    def ambiguous_keys(self) -> list[str]:
        """Keys stored more than once (every write of them answers "Ambiguous dataset")."""
        rows = self.store.query(
            "SELECT category_id || '|' || indicator_id || '|' || srid || '|' || trid || '|' || "
            "strftime(dt, '%Y-%m-%d %H:%M:%S') AS k FROM flowkit_datasets WHERE dt IS NOT NULL "
            "GROUP BY ALL HAVING count(*) > 1 ORDER BY k")
        return [r["k"] for r in rows]
