"""A full disk, told as one line: which file could not be written, and how much space is left.

DuckDB reports ENOSPC in several shapes ("Could not write file ...: No space left on
device", "Async write failed", "database has been invalidated because of a previous fatal
error" with the first as its cause), Python as OSError errno 28. All of them mean the same
to the operator: free space and run again. Builds checkpoint nothing half-written (the last
checkpoint's tables stay) and publish journals every answer before it is acknowledged, so
the message can say that nothing good was lost.
"""

from __future__ import annotations

import errno
import re
import shutil
from pathlib import Path

_NO_SPACE = re.compile(r"no space left on device|disk is full|ENOSPC|async write failed",
                       re.IGNORECASE)
_FILE = re.compile(r'(?:write|open|create)(?: to)? file \\?"([^"\\]+)\\?"', re.IGNORECASE)
_SIZE = re.compile(r"\bsize=(\d+)")  # DuckDB's "Async write failed for range [offset=0, size=N]"
BLOCK = 256 * 1024  # DuckDB's block: the least one more write of the database needs


def _chain(exc: BaseException | None):  # noqa: ANN202 - a generator of exceptions
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def written_file(exc: BaseException) -> str | None:
    """The file a disk-full error names ('' when it names none), None if not a full disk."""
    names: list[str] = []
    for link in _chain(exc):
        if isinstance(link, OSError) and link.errno == errno.ENOSPC:
            names.append(str(link.filename or ""))
        elif _NO_SPACE.search(str(link)):
            found = _FILE.search(str(link))
            names.append(found.group(1) if found else "")
    if not names:
        return None
    return next((n for n in names if n), "")  # the file named, wherever in the chain


def free_mb(path: Path) -> float | None:
    """Megabytes free on the filesystem holding `path` (its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free / 1e6
    except OSError:
        return None


def needed_mb(exc: BaseException, where: Path) -> float:
    """At least how many MB the command needs to finish: the write that failed (DuckDB names
    its size in an async write's range, else one block) plus every write-ahead log beside
    the file, which the next checkpoint must copy into its database file."""
    failed = max((int(m.group(1)) for link in _chain(exc)
                  for m in _SIZE.finditer(str(link))), default=BLOCK)
    folder = where if where.is_dir() else where.parent
    try:
        logs = sum(wal.stat().st_size for wal in folder.glob("*.wal") if wal.is_file())
    except OSError:
        logs = 0
    return (failed + logs) / 1e6


def describe(exc: BaseException, fallback: Path) -> str | None:
    """One line for a disk-full error (None when `exc` is something else)."""
    name = written_file(exc)
    if name is None:
        return None
    where = Path(name) if name else fallback
    free = free_mb(where)
    left = f"{free:,.1f} MB free there, " if free is not None else ""
    need = max(needed_mb(exc, where), 0.1)
    return (f"no space left on device writing {where} ({left}at least {need:,.1f} MB needed): "
            "free space and run the command again (the last checkpointed tables and every "
            "acknowledged answer are kept)")
