"""Fault settings and publish counters of the sandbox (see server.py for where they apply).

Faults make the publisher's retry, back-off and exactly-once logic testable on demand; the
counters say afterwards what the receiver really saw per dataset key / entity id.

The faults imitate what a client meets in production: a 500 (transient, indistinguishable
from a validation 500), 429 with Retry-After, a reset before processing (nothing stored), a
reset after processing (stored, answer lost), a stall (`slow`: held `slow_seconds` in flight,
then processed and answered; a client that timed out meanwhile never sees the answer, but the
write still lands), `slow_commit` ("slow but processing": held `slow_commit_seconds` in
flight inside the write, committed, and then the connection is reset, so the client never
learns that its request committed, whatever its timeout; a resend while it is held races
it, which on FlowKit stores the key twice), `gateway` (a proxy in front gives up: 504 at
once, while the request goes on behind it, held `gateway_seconds` in flight and then
processed; a resend meanwhile races it) and an outage (every request 503 for a while).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any


@dataclass
class Faults:
    """Server-wide fault injection; rates are probabilities per request (one draw each)."""

    error_rate: float = 0.0  # 500 text/plain Internal Server Error
    throttle_rate: float = 0.0  # 429 with Retry-After: retry_after
    retry_after: int = 1
    reset_rate: float = 0.0  # connection reset before processing, no answer
    reset_after_rate: float = 0.0  # processed, then the connection is reset (answer lost)
    slow_rate: float = 0.0  # answer after slow_seconds more (held "in flight")
    slow_seconds: float = 1.0
    slow_commit_rate: float = 0.0  # held in flight, committed, then reset (answer never comes)
    slow_commit_seconds: float = 1.0
    gateway_rate: float = 0.0  # 504 at once; the request is processed behind it, later
    gateway_seconds: float = 1.0
    outage_seconds: float = 0.0  # every request answers 503 for this long from now
    seed: int | None = None  # reproducible draws
    faults_on_auth: bool = False  # also fault /oauth/token and /oauth/login3
    # The backend's HEAD on a freshly provisioned database: POST /setup answers 500
    # "Unknown column 'id' in 'SET'" (a bug of its migration), whatever the config.
    setup_head_bug: bool = False

    @classmethod
    def parse(cls, values: dict[str, Any]) -> Faults:
        """Validate a settings mapping (from JSON or keyword arguments); ValueError on bad input."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        out = cls()
        for name, value in values.items():
            if name in ("faults_on_auth", "setup_head_bug"):
                ok = isinstance(value, bool)
            elif name == "seed":
                ok = value is None or (isinstance(value, int) and not isinstance(value, bool))
            else:
                ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
                ok = ok and (not name.endswith("_rate") or value <= 1)
            if not ok:
                raise ValueError(f"bad value for {name}: {value!r}")
            setattr(out, name, value)
        return out


class Stats:
    """Counters for measuring a publish: per dataset key / entity id, per status, per fault.

    Per FlowKit key: received, accepted (any 2xx), rejected, duplicates (303s), inserted
    (POST 201: a new dataset), patched (PATCH 201), deleted, races (requests arriving while
    another for the key was in flight), ambiguous ("Ambiguous dataset" answers). Per UOIS
    entity: received, accepted, rejected, duplicates (UniqueViolation / msg "fail"),
    inserted, races. Exactly-once for a POST-only publish: inserted == 1 and races == 0.
    """

    FIELDS = {
        "flowkit": ("received", "accepted", "rejected", "duplicates", "inserted", "patched",
                    "deleted", "races", "ambiguous"),
        "uois": ("received", "accepted", "rejected", "duplicates", "inserted", "races"),
        "crud": ("received", "inserted", "replaced", "patched", "deleted", "replayed",
                 "rejected"),
    }

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.since = datetime.now(UTC).isoformat()
            self.requests = 0
            self.by_status: dict[str, int] = {}
            self.faults: dict[str, int] = {}
            self.keys: dict[str, dict[str, dict[str, int]]] = {"flowkit": {}, "uois": {},
                                                                "crud": {}}

    def count(self, service: str, key: str, field: str) -> None:
        with self._lock:
            entry = self.keys[service].setdefault(key, dict.fromkeys(self.FIELDS[service], 0))
            entry[field] = entry.get(field, 0) + 1

    def bump(self, table: str, name: str) -> None:
        with self._lock:
            if table == "requests":
                self.requests += 1
                return
            counts = self.by_status if table == "status" else self.faults
            counts[name] = counts.get(name, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            entries = [e for section in self.keys.values() for e in section.values()]
            return {
                "since": self.since, "requests": self.requests,
                "by_status": dict(self.by_status), "faults": dict(self.faults),
                "races": sum(e.get("races", 0) for e in entries),
                "ambiguous": sum(e.get("ambiguous", 0) for e in entries),
                "flowkit": {k: dict(v) for k, v in self.keys["flowkit"].items()},
                "uois": {k: dict(v) for k, v in self.keys["uois"].items()},
                "crud": {k: dict(v) for k, v in self.keys["crud"].items()},
            }
