"""The time source of the HTTP layer: backoff, Retry-After, rate limits, token expiry.

A protocol so tests can drive time with a fake clock instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """Time source for backoff, Retry-After, rate limits and token expiry (fake in tests)."""

    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock: monotonic seconds and asyncio.sleep."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
