"""The publish journal: every answer appended to NDJSON the moment it arrives.

Why a journal and not the ledger directly: DuckDB allows one writing process per file, so
holding it for a whole publish would lock out `elt sql`/`elt status` for hours, and a
commit per answer would be slow. An append + flush per answer is cheap and survives
`kill -9` (the data is in the OS page cache); fsync is batched for power loss. The journal
is merged into `_elt.ledger` every few seconds, at the end, and at the start of the next
run when a crash left some behind.

Line format (one JSON object per line; `n` orders lines within a file):
  {"run": run id, "n": line number, "pub": publication, "key": key text, "op": insert|update|
   delete, "hash": content hash, "status": unknown|acknowledged|failed, "http": HTTP status,
   "answer": answer text, "attempts": HTTP attempts, "ts": UTC time, "key_json": {key columns}}
`status: unknown` lines are written before a request goes out ("in flight"): if the process
dies before the answer, the next run knows the row may have arrived and resends it flagged
`retry_of_unknown`.

Files: `journal.ndjson` is being written; rotation renames it to `journal.<k>.ndjson`
(k increasing), which is merged and then deleted: a crash anywhere leaves either an
unmerged file or a merged one that merges again as a no-op.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elt.core import db
from elt.core.errors import DatabaseLockedError
from elt.publish.ledger_merge import merge_journal

CURRENT = "journal.ndjson"
_ROTATED = re.compile(r"^journal\.(\d+)\.ndjson$")


def utc_now() -> str:
    """Naive UTC ISO time (DuckDB TIMESTAMP) with microseconds."""
    return datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")


def rotated_files(directory: Path) -> list[Path]:
    """Journals waiting to be merged, oldest first."""
    found = []
    if directory.is_dir():
        for path in directory.iterdir():
            m = _ROTATED.match(path.name)
            if m:
                found.append((int(m.group(1)), path))
    return [p for _, p in sorted(found)]


def rotate_file(directory: Path) -> Path | None:
    """Rename the current journal to the next rotated name (None when there is none)."""
    current = directory / CURRENT
    if not current.exists():
        return None
    if current.stat().st_size == 0:
        current.unlink()
        return None
    numbers = [int(_ROTATED.match(p.name).group(1)) for p in rotated_files(directory)]
    target = directory / f"journal.{(max(numbers) + 1) if numbers else 1:08d}.ndjson"
    os.replace(current, target)
    _fsync_dir(directory)
    return target


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def merge_files(con: Any, directory: Path) -> int:
    """Merge every rotated journal into the ledger, oldest first, deleting each after."""
    changed = 0
    for path in rotated_files(directory):
        changed += merge_journal(con, path)
        path.unlink()
    return changed


def recover(con: Any, directory: Path) -> int:
    """At the start of a run: fold whatever a crashed run left into the ledger."""
    rotate_file(directory)
    return merge_files(con, directory)


class Journal:
    """Appends lines for one run; thread-safe; rotates on demand for merging."""

    def __init__(self, directory: Path, run_id: str, *, fsync_lines: int = 200,
                 fsync_seconds: float = 1.0) -> None:
        self.directory = directory
        self.run_id = run_id
        self.fsync_lines = fsync_lines
        self.fsync_seconds = fsync_seconds
        self._lock = threading.Lock()
        self._n = 0
        self._unsynced = 0
        self._last_sync = time.monotonic()
        self._dirty = False
        directory.mkdir(parents=True, exist_ok=True)
        self._file = open(directory / CURRENT, "a", encoding="utf-8")

    @property
    def dirty(self) -> bool:
        """Lines were written since the last rotation."""
        return self._dirty

    def write(self, records: Iterable[tuple[dict[str, Any], str | None]]) -> None:
        """Append (fields, key_json text) records as lines, flushed before returning."""
        ts = utc_now()
        with self._lock:
            parts = []
            for fields, key_json in records:
                self._n += 1
                text = json.dumps({"run": self.run_id, "n": self._n, **fields, "ts": ts},
                                  separators=(",", ":"), ensure_ascii=False)
                if key_json is not None:
                    text = f'{text[:-1]},"key_json":{key_json}}}'
                parts.append(text + "\n")
            if not parts:
                return
            self._file.write("".join(parts))
            self._file.flush()
            self._dirty = True
            self._unsynced += len(parts)
            now = time.monotonic()
            if self._unsynced >= self.fsync_lines or now - self._last_sync >= self.fsync_seconds:
                os.fsync(self._file.fileno())
                self._unsynced, self._last_sync = 0, now

    def rotate(self) -> Path | None:
        """Close the current file under a new name and start a fresh one."""
        with self._lock:
            self._sync_close()
            path = rotate_file(self.directory)
            self._file = open(self.directory / CURRENT, "a", encoding="utf-8")
            self._dirty = False
            return path

    def close(self) -> None:
        with self._lock:
            self._sync_close()
            current = self.directory / CURRENT
            if current.exists() and current.stat().st_size == 0:
                current.unlink()

    def _sync_close(self) -> None:
        if not self._file.closed:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
        self._unsynced = 0


def try_merge(db_path: Path, directory: Path, *, wait_seconds: float,
              memory_limit: str | None = None, row_group_size: int | None = None) -> bool:
    """Open the database briefly and merge rotated journals; False when it is locked."""
    if not rotated_files(directory):
        return True
    try:
        con = db.connect(db_path, wait_seconds=wait_seconds, memory_limit=memory_limit,
                         row_group_size=row_group_size)
    except DatabaseLockedError:
        return False
    try:
        merge_files(con, directory)
    finally:
        con.close()
    return True
