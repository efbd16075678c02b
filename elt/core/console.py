"""The one place where elt talks to the user (modelled on SQLMesh's Console).

Every module reports through a Console instead of printing, so output stays consistent,
tests can capture it, and secrets can be redacted in one place.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from typing import TextIO

from elt.core import secrets

_STATUS_STYLE = {
    "success": "\x1b[32m",
    "up_to_date": "\x1b[2m",
    "error": "\x1b[31m",
    "skipped": "\x1b[33m",
    "warn": "\x1b[33m",
    "pass": "\x1b[32m",
    "fail": "\x1b[31m",
}


class Progress:
    """A one-line progress bar redrawn in place; silent when the stream is not a terminal."""

    def __init__(self, console: Console, label: str, total: int | None, unit: str) -> None:
        self.console, self.label, self.total, self.unit = console, label, total, unit
        self.done = 0
        self.errors = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, n: int = 1, *, nbytes: int = 0, errors: int = 0) -> None:
        self.done += n
        self.bytes += nbytes
        self.errors += errors
        now = time.monotonic()
        if now - self._last_draw > 0.1:
            self._last_draw = now
            self.console._draw(self._render())

    def _render(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        mbps = self.bytes / elapsed / 1e6
        if self.total:
            frac = min(self.done / self.total, 1.0)
            bar = "#" * int(frac * 24)
            head = f"{self.label} [{bar:<24}] {self.done}/{self.total} {self.unit}"
        else:
            head = f"{self.label} {self.done} {self.unit}"
        tail = f" {rate:,.0f} {self.unit}/s"
        if self.bytes:
            tail += f" {mbps:.1f} MB/s"
        if self.errors:
            tail += f" {self.errors} errors"
        return head + tail

    def close(self) -> None:
        self.console._draw("")


class Console:
    """Writes node lines, summaries, warnings and errors; redacts registered secrets."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        quiet: bool = False,
        color: bool | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.quiet = quiet
        self.is_tty = bool(getattr(self.out, "isatty", lambda: False)())
        self.color = self.is_tty if color is None else color
        self._lock = threading.Lock()
        self._bar_visible = False

    # -- secrets ---------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return secrets.redact(text)

    # -- output ----------------------------------------------------------------------
    def _write(self, stream: TextIO, text: str) -> None:
        with self._lock:
            if self._bar_visible:
                stream.write("\r\x1b[2K")
                self._bar_visible = False
            stream.write(self.redact(text) + "\n")
            stream.flush()

    def _draw(self, text: str) -> None:
        if not self.is_tty or self.quiet:
            return
        with self._lock:
            self.out.write("\r\x1b[2K" + self.redact(text))
            self.out.flush()
            self._bar_visible = bool(text)

    def info(self, text: str) -> None:
        if not self.quiet:
            self._write(self.out, text)

    def result(self, text: str) -> None:
        """Output that is the command's answer (SQL results, JSON): printed even when quiet."""
        self._write(self.out, text)

    def warn(self, text: str) -> None:
        self._write(self.err, f"warning: {text}")

    def error(self, text: str) -> None:
        self._write(self.err, f"error: {text}")

    def _style(self, status: str, text: str) -> str:
        if not self.color or status not in _STATUS_STYLE:
            return text
        return f"{_STATUS_STYLE[status]}{text}\x1b[0m"

    def node(
        self,
        kind: str,
        name: str,
        status: str,
        *,
        rows: int | None = None,
        seconds: float | None = None,
        message: str | None = None,
    ) -> None:
        """One line per node as it finishes: kind, name, status, rows, seconds, message."""
        if self.quiet and status not in ("error", "fail"):
            return
        parts = [f"{kind:<8}", f"{name:<40}", self._style(status, f"{status:<10}")]
        parts.append(f"{rows:>10,} rows" if rows is not None else " " * 15)
        parts.append(f"{seconds:6.2f}s" if seconds is not None else "")
        line = "  " + " ".join(parts).rstrip()
        if message:
            line += f"  {message}"
        self._write(self.out, line)

    def table(self, columns: list[str], rows: Iterable[tuple], *, max_width: int = 60) -> None:
        """An aligned text table (for `elt sql`, `elt show`, `elt ls`, `elt status`)."""
        cells = [[_cell(v, max_width) for v in row] for row in rows]
        widths = [len(c) for c in columns]
        for row in cells:
            for i, value in enumerate(row):
                widths[i] = max(widths[i], len(value))
        sep = "  "
        self.result(sep.join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
        self.result(sep.join("-" * w for w in widths))
        for row in cells:
            self.result(sep.join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())

    def progress(self, label: str, total: int | None = None, unit: str = "rows") -> Progress:
        return Progress(self, label, total, unit)


def _cell(value: object, max_width: int) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
