"""The one place where elt talks to the user (modelled on SQLMesh's Console).

Every module reports through a Console instead of printing, so output stays consistent,
tests can capture it, and secrets can be redacted in one place. Messages (node lines,
warnings, errors) are redacted and copied to the log; results (`elt sql` rows, JSON) are
data and printed exactly as they are, even when a value equals a secret.

Progress: on a terminal, `rich` bars with %, elapsed and ETA; without one (cron, CI, a
pipe), a plain line every `progress_interval` seconds so a scheduler's log shows the run
is alive and how far it got.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import Iterable
from typing import Any, TextIO

from elt.core import secrets

log = logging.getLogger("elt.console")

_STATUS_STYLE = {
    "success": "\x1b[32m",
    "up_to_date": "\x1b[2m",
    "error": "\x1b[31m",
    "skipped": "\x1b[33m",
    "warn": "\x1b[33m",
    "pass": "\x1b[32m",
    "fail": "\x1b[31m",
}
# dbt-style verdict words in `N of M` lines.
_VERDICT = {"success": "OK", "up_to_date": "OK", "pass": "PASS", "warn": "WARN",
            "error": "ERROR", "fail": "FAIL", "skipped": "SKIP"}


def _no_color() -> bool:
    """https://no-color.org: a non-empty NO_COLOR disables colour."""
    return bool(os.environ.get("NO_COLOR"))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    """Progress of one long piece of work (a seed load, an API source, a publication)."""

    def __init__(self, console: Console, label: str, total: int | None, unit: str) -> None:
        self.console, self.label, self.total, self.unit = console, label, total, unit
        self.done = 0
        self.errors = 0
        self.bytes = 0
        self.started = time.monotonic()
        self._last_line = self.started
        self._lines = 0
        self._task: Any = console._bar_add(label, total) if console._bars_enabled() else None

    def advance(self, n: int = 1, *, nbytes: int = 0, errors: int = 0) -> None:
        self.done += n
        self.bytes += nbytes
        self.errors += errors
        if self._task is not None:
            self.console._bar_update(self._task, self.done, self._suffix())
            return
        now = time.monotonic()
        if now - self._last_line >= self.console.progress_interval:
            self._last_line = now
            self._lines += 1
            self.console.info(self.render())

    def _suffix(self) -> str:
        return f"{self.errors:,} errors" if self.errors else ""

    def render(self) -> str:
        """`label: done/total unit (pct) rate unit/s, ETA` for plain-line progress."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            pct = min(self.done / self.total, 1.0) * 100
            text = f"{self.label}: {self.done:,}/{self.total:,} {self.unit} ({pct:.0f}%)"
        else:
            text = f"{self.label}: {self.done:,} {self.unit}"
        text += f", {rate:,.0f} {self.unit}/s"
        if self.bytes:
            speed = self.bytes / elapsed
            text += f", {speed / 1e6:.1f} MB/s" if speed >= 1e6 else f", {speed / 1e3:.0f} kB/s"
        text += f", elapsed {_duration(elapsed)}"
        if self.total and rate > 0 and self.done < self.total:
            text += f", ETA {_duration((self.total - self.done) / rate)}"
        if self.errors:
            text += f", {self.errors:,} errors"
        return text

    def close(self) -> None:
        if self._task is not None:
            self.console._bar_remove(self._task)
            self._task = None
        elif self._lines:  # long enough to have reported: say where it ended
            self.console.info(self.render())


class Console:
    """Writes node lines, summaries, warnings and errors; redacts registered secrets."""

    def __init__(
        self,
        out: TextIO | None = None,
        err: TextIO | None = None,
        *,
        quiet: bool = False,
        color: bool | None = None,
        tty: bool | None = None,
        progress_interval: float = 5.0,
        debug: bool = False,
    ) -> None:
        self.out = out or sys.stdout
        self.debug = debug  # --debug: tracebacks of errors a run reports and goes past
        self.err = err or sys.stderr
        self.quiet = quiet
        self.is_tty = bool(getattr(self.out, "isatty", lambda: False)()) if tty is None else tty
        self.color = (self.is_tty and not _no_color()) if color is None else color
        self.progress_interval = progress_interval
        self._lock = threading.RLock()
        self._bars: Any = None  # a rich.progress.Progress while any bar is shown
        self._planned = 0
        self._numbers: dict[str, int] = {}

    # -- secrets ---------------------------------------------------------------------
    def redact(self, text: str) -> str:
        return secrets.redact(text)

    # -- output ----------------------------------------------------------------------
    def _write(self, stream: TextIO, text: str, *, redact: bool = True) -> None:
        line = self.redact(text) if redact else text
        with self._lock:
            if self._bars is not None:
                live = self._bars.live
                live.stop()  # clear the bars, print the line above them, redraw
                stream.write(line + "\n")
                stream.flush()
                live.start()
                return
            stream.write(line + "\n")
            stream.flush()

    def info(self, text: str) -> None:
        log.info(text)
        if not self.quiet:
            self._write(self.out, text)

    def note(self, text: str) -> None:
        """About the run, not its result: on stderr, so `elt sql --format csv > f` stays clean."""
        log.info(text)
        if not self.quiet:
            self._write(self.err, text)

    def result(self, text: str) -> None:
        """The command's answer (SQL results, JSON): printed even when quiet, never redacted
        (it is data: an e-mail that doubles as a password is still the row's value)."""
        self._write(self.out, text, redact=False)

    def warn(self, text: str) -> None:
        log.warning(text)
        self._write(self.err, f"warning: {text}")

    def error(self, text: str) -> None:
        log.error(text)
        self._write(self.err, f"error: {text}")

    def failure(self, exc: BaseException) -> str:
        """The one-line text of an error a run reports and goes past (a node, a publication:
        the CLI never sees the exception); with --debug its traceback is printed first."""
        if self.debug:
            text = "".join(traceback.format_exception(exc)).rstrip()
            log.debug(text)
            self._write(self.err, text)
        return str(exc)

    def _style(self, status: str, text: str) -> str:
        if not self.color or status not in _STATUS_STYLE:
            return text
        return f"{_STATUS_STYLE[status]}{text}\x1b[0m"

    # -- node lines ------------------------------------------------------------------
    def plan(self, total: int) -> None:
        """Announce how many nodes follow, so their lines read `N of M` like dbt's."""
        self._planned, self._numbers = total, {}

    def node_start(self, kind: str, name: str) -> None:
        """`N of M START kind name` as a node begins (only after plan())."""
        if not self._planned:
            return
        self._numbers[name] = len(self._numbers) + 1
        line = f"  {self._counter(name)} START {kind:<8} {name}"
        log.info(line.strip())
        if not self.quiet:
            self._write(self.out, line)

    def _counter(self, name: str) -> str:
        number = self._numbers.get(name)
        if number is None:
            self._numbers[name] = number = len(self._numbers) + 1
        width = len(str(self._planned))
        return f"{number:>{width}} of {self._planned}"

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
        parts = [f"{kind:<8}", f"{name:<40}", self._style(status, f"{status:<10}")]
        parts.append(f"{rows:>10,} rows" if rows is not None else " " * 15)
        parts.append(f"{seconds:6.2f}s" if seconds is not None else "")
        line = " ".join(parts).rstrip()
        if self._planned:
            line = f"{self._counter(name)} {_VERDICT.get(status, status.upper()):<5} {line}"
        line = "  " + line
        if message:
            line += f"  {message}"
        level = logging.ERROR if status in ("error", "fail") else logging.INFO
        log.log(level, " ".join(line.split()))
        if self.quiet and status not in ("error", "fail"):
            return
        self._write(self.out, line)

    def table(self, columns: list[str], rows: Iterable[tuple], *, max_width: int = 60) -> None:
        """An aligned text table (for `elt sql`, `elt show`, `elt ls`, `elt status`)."""
        cells = [[_cell(v, max_width) for v in row] for row in rows]
        widths = [len(c) for c in columns]
        for row in cells:
            for i, value in enumerate(row):
                widths[i] = max(widths[i], len(value))
        sep = "  "
        lines = [sep.join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(),
                 sep.join("-" * w for w in widths)]
        lines += [sep.join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
                  for row in cells]
        self.result("\n".join(lines))

    # -- progress --------------------------------------------------------------------
    def progress(self, label: str, total: int | None = None, unit: str = "rows") -> Progress:
        return Progress(self, label, total, unit)

    def _bars_enabled(self) -> bool:
        return self.is_tty and not self.quiet

    def _bar_add(self, label: str, total: int | None) -> Any:
        from rich.console import Console as RichConsole
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as RichProgress

        with self._lock:
            if self._bars is None:
                rich_console = RichConsole(file=self.out, force_terminal=True,
                                           no_color=not self.color, highlight=False)
                self._bars = RichProgress(
                    TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(),
                    TextColumn("{task.fields[extra]}"),
                    console=rich_console, transient=True, redirect_stdout=False,
                    redirect_stderr=False, refresh_per_second=5)
                self._bars.start()
            return self._bars.add_task(self.redact(label), total=total, extra="")

    def _bar_update(self, task: Any, done: int, extra: str) -> None:
        with self._lock:
            if self._bars is not None:
                self._bars.update(task, completed=done, extra=extra)

    def _bar_remove(self, task: Any) -> None:
        with self._lock:
            if self._bars is None:
                return
            self._bars.remove_task(task)
            if not self._bars.tasks:
                self._bars.stop()
                self._bars = None


def _cell(value: object, max_width: int) -> str:
    text = "NULL" if value is None else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
