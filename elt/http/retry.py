"""When to try a request again, and how long to wait: one policy for data, heartbeat and
token requests alike.

Connection errors, 429 and 5xx are retried up to `max_attempts` with exponential backoff and
full jitter (429/503 honour Retry-After). A 5xx that comes back with the same body is a
deterministic answer (FlowKit answers a validation failure with 500 `Internal Server Error`
every time): it is retried `same_error_retries` times (default 2), then given up on.
"""

from __future__ import annotations

import email.utils
import random
import time
from dataclasses import dataclass, field
from datetime import UTC

from elt.http.clock import Clock

BACKOFF_BASE = 0.5  # seconds; ceilings 0.5, 1, 2, 4, ... before jitter
BACKOFF_CAP = 30.0
RETRY_AFTER_CAP = 300.0


def retry_after_seconds(value: str | None, wall_now: float | None = None) -> float | None:
    """Retry-After as seconds: a number, or an HTTP-date relative to the wall clock."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - (time.time() if wall_now is None else wall_now))


def retryable_status(status: int | None) -> bool:
    return status is not None and (status == 429 or status >= 500)


@dataclass
class RetryPolicy:
    """Backoff on an injectable clock and random source (both fakes in tests)."""

    clock: Clock
    rng: random.Random = field(default_factory=random.Random)
    max_attempts: int = 5
    same_error_retries: int = 2

    def backoff(self, tries: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(tries-1)))."""
        return self.rng.random() * min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (tries - 1))

    def delay(self, tries: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, RETRY_AFTER_CAP)
        return self.backoff(tries)

    def tracker(self) -> RepeatTracker:
        return RepeatTracker(self.same_error_retries)


@dataclass
class RepeatTracker:
    """Counts how often one request got the very same 5xx answer in a row."""

    limit: int
    last: tuple[int, bytes] | None = None
    repeats: int = 0

    def exhausted(self, status: int | None, body: bytes) -> bool:
        """Record an answer; True when the same 5xx has now been retried `limit` times."""
        if status is None or status < 500:
            self.last, self.repeats = None, 0
            return False
        if self.last == (status, body):
            self.repeats += 1
        else:
            self.last, self.repeats = (status, body), 0
        return self.repeats >= self.limit
