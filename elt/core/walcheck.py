"""A damaged write-ahead log (`<db>.wal`): named, set aside, never fatal.

DuckDB replays `<db>.wal` when it opens the file. A torn or overwritten log fails that
replay ("Corrupt WAL file: ... checksum", "Failure while replaying WAL file"), and every
command would fail the same way until someone deletes the file by hand. The file itself
holds the tables of its last checkpoint, intact: a writer (build, publish) moves the log
aside as `<db>.wal.damaged-<time>` (kept for a post-mortem, never deleted) and goes on
from that checkpoint; a reader (sql, show, status) does not move files and says what to do.
"""

from __future__ import annotations

import time
from pathlib import Path

_DAMAGED = ("replaying wal", "corrupt wal", "wal file", "write-ahead log")


def is_damaged_wal(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _DAMAGED) and "lock" not in text


def wal_path(path: Path) -> Path:
    return Path(f"{path}.wal")


def first_line(exc: BaseException) -> str:
    return next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)


def set_aside(path: Path) -> Path:
    """Move the database's WAL to `<wal>.damaged-<UTC time>`; its new path."""
    wal = wal_path(path)
    target = wal.with_name(f"{wal.name}.damaged-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}")
    while target.exists():  # set aside twice in one second: keep both
        target = target.with_name(target.name + "+")
    wal.rename(target)
    return target


def reader_message(path: Path, exc: BaseException) -> str:
    return (f"the write-ahead log {wal_path(path)} is damaged ({first_line(exc)[:120]}); "
            f"the tables of the last checkpoint in {path.name} are intact: run `elt build` "
            "(it sets the log aside and redoes what it held) or move the log away")


def writer_message(path: Path, moved: Path, exc: BaseException) -> str:
    return (f"the write-ahead log of {path.name} was damaged ({first_line(exc)[:120]}); "
            f"moved it to {moved.name} and went on from the last checkpoint: its commits "
            "since then are redone by this run (a publish re-checks their rows)")
