"""One publisher per staging database: the lock and the journal live beside the database file.

Two checkouts (or two targets) pointing at one DuckDB file would otherwise both send every
pending key and overwrite each other's ledger merges. So the publish state directory is
`<database file>.publish/` (e.g. `target/elt.duckdb.publish/`) whoever publishes, and an OS
lock on a file inside it (released when the holder dies, even by kill -9) admits one
publisher; a second one gets a one-line error naming the holder.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from elt.core.errors import PublishError

LOCK_FILE = "publish.lock"


def state_dir(db_path: Path) -> Path:
    """Where the journal, the pending files and the lock of a database's publishes live."""
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.name + ".publish")


@contextlib.contextmanager
def publish_lock(db_path: Path, project_root: Path) -> Iterator[Path]:
    """Hold the database's publish lock; yields the state directory."""
    directory = state_dir(db_path)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_FILE
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            import fcntl
        except ImportError:  # not POSIX: no cross-process guard
            fcntl = None  # type: ignore[assignment]
        if fcntl is not None:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PublishError(f"another `elt publish` ({_holder(path)}) is publishing "
                                   f"from {db_path}; wait for it to finish") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                 "project": str(project_root)}))
        handle.flush()
        yield directory
    finally:
        handle.close()


def _holder(path: Path) -> str:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']}, project {info['project']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "process ?"
