"""Fault settings and publish counters of the sandbox (see server.py for where they apply).

Faults make the publisher's retry, back-off and exactly-once logic testable on demand; the
counters say afterwards what the receiver really saw per dataset key / entity id.
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
    outage_seconds: float = 0.0  # every request answers 503 for this long from now
    seed: int | None = None  # reproducible draws
    faults_on_auth: bool = False  # also fault /oauth/token and /oauth/login3

    @classmethod
    def parse(cls, values: dict[str, Any]) -> Faults:
        """Validate a settings mapping (from JSON or keyword arguments); ValueError on bad input."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown fault setting(s): {', '.join(unknown)}")
        out = cls()
        for name, value in values.items():
            if name == "faults_on_auth":
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
    """Counters for measuring a publish: per dataset key / entity id, per status, per fault."""

    FIELDS = ("received", "accepted", "rejected", "duplicates")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.since = datetime.now(UTC).isoformat()
            self.requests = 0
            self.by_status: dict[str, int] = {}
            self.faults: dict[str, int] = {}
            self.keys: dict[str, dict[str, dict[str, int]]] = {"flowkit": {}, "uois": {}}

    def count(self, service: str, key: str, field: str) -> None:
        with self._lock:
            entry = self.keys[service].setdefault(key, dict.fromkeys(self.FIELDS, 0))
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
            races = sum(e.get("races", 0) for e in self.keys["flowkit"].values())
            return {
                "since": self.since, "requests": self.requests,
                "by_status": dict(self.by_status), "faults": dict(self.faults), "races": races,
                "flowkit": {k: dict(v) for k, v in self.keys["flowkit"].items()},
                "uois": {k: dict(v) for k, v in self.keys["uois"].items()},
            }
