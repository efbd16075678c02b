"""The log file: `target/logs/elt.log`, configured in this one place for every command.

Uses the standard `logging` module: modules log to `elt.*` loggers (the console copies its
messages to `elt.console`, node SQL goes to `elt.sql`, HTTP requests to `elt.http`); this
module attaches one rotating file handler to the `elt` logger. Every record passes through
secret redaction before it is written, so a secret cannot reach the file whatever a caller
logs. Lines are text (`time level logger message`) or JSON objects (`--log-format json`).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import sys
import time
import uuid
from pathlib import Path

from elt.core import diskfull, secrets

LEVELS = ("debug", "info", "warning", "error")
FORMATS = ("text", "json")
LOG_NAME = "elt.log"
_MAX_BYTES = 20_000_000
_BACKUPS = 5
_HANDLER_NAME = "elt-file"

root = logging.getLogger("elt")
root.addHandler(logging.NullHandler())  # used as a library, unconfigured: stay silent
INVOCATION_ID = str(uuid.uuid4())  # one per process: ties log lines to run_results.json


def _iso(created: float) -> str:
    millis = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{millis:03d}Z"


class _Redact(logging.Filter):
    """Render the message once, redacted; drop args so no handler formats them again."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = secrets.redact(record.getMessage())
        record.args = None
        return True


class _SizedRotatingHandler(logging.handlers.RotatingFileHandler):
    """Rotates by a byte count it keeps itself. The stdlib's check formats every record a
    second time and stats the file twice per line, paid once per HTTP request by
    `elt publish`. The count is re-read from the file every `_RESYNC` lines, so lines other
    processes append (an `elt sql` beside a publish) count too."""

    _RESYNC = 512

    def _open(self):  # type: ignore[no-untyped-def]
        stream = super()._open()
        self._size = os.fstat(stream.fileno()).st_size
        self._lines = 0
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
            if self.stream is None:
                self.stream = self._open()
            self._lines += 1
            if self._lines % self._RESYNC == 0:
                self.stream.flush()
                self._size = os.fstat(self.stream.fileno()).st_size
            if self.maxBytes > 0 and self._size and self._size + len(line) >= self.maxBytes:
                self.doRollover()  # reopens the file (and resets the count)
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(line)
            self.stream.flush()
            self._size += len(line)  # characters: near enough to bytes, and resynced
        except Exception:  # noqa: BLE001 - logging must never break the command
            failure = sys.exc_info()[1]
            if failure is None or diskfull.written_file(failure) is None:
                self.handleError(record)  # a full disk is told once, by the command


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = f"{_iso(record.created)} {record.levelname:<7} {record.name} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + secrets.redact(self.formatException(record.exc_info))
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields of a record (e.g. HTTP status) kept apart."""

    FIELDS = ("node", "method", "path", "status", "ms", "endpoint", "attempt")

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, object] = {"ts": _iso(record.created), "level": record.levelname.lower(),
                                  "logger": record.name, "invocation_id": INVOCATION_ID,
                                  "msg": record.getMessage()}
        for key in self.FIELDS:
            if hasattr(record, key):
                doc[key] = getattr(record, key)
        if record.exc_info:
            doc["exc"] = secrets.redact(self.formatException(record.exc_info))
        return json.dumps(doc, default=str, ensure_ascii=False)


def configure(log_dir: Path, *, fmt: str = "text", level: str = "info") -> Path:
    """Send `elt.*` records at `level` and above to log_dir/elt.log (replacing an earlier
    handler, so tests and notebooks can configure it per project)."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}")
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / LOG_NAME
    close()
    handler = _SizedRotatingHandler(path, maxBytes=_MAX_BYTES, backupCount=_BACKUPS,
                                    encoding="utf-8")
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_Redact())
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.setLevel(level.upper())
    root.addHandler(handler)
    root.setLevel(level.upper())
    root.propagate = False
    root.info("elt started: pid %s, invocation %s", os.getpid(), INVOCATION_ID)
    return path


def close() -> None:
    """Detach (and close) the log file handler, if any."""
    for handler in list(root.handlers):
        if handler.get_name() == _HANDLER_NAME:
            root.removeHandler(handler)
            handler.close()
