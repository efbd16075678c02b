"""Recognising a full disk in DuckDB's and Python's shapes, and naming the file."""

from __future__ import annotations

import errno
from pathlib import Path

from elt.core.diskfull import describe, needed_mb, written_file

ASYNC = ('IO Error: Async write failed for range [offset=0, size=2650]: {"exception_message":'
         '"Could not write file \\"/t/elt.duckdb.publish/x.parquet\\": No space left on '
         'device","errno":"28"}')


def test_duckdb_and_python_shapes_are_recognised() -> None:
    assert written_file(Exception(ASYNC)) == "/t/elt.duckdb.publish/x.parquet"
    assert written_file(Exception('Could not write file "/t/e.duckdb": No space left on '
                                  "device")) == "/t/e.duckdb"
    assert written_file(OSError(errno.ENOSPC, "No space left on device", "/t/r.json")) == \
        "/t/r.json"
    assert written_file(OSError(errno.EACCES, "Permission denied", "/t/r.json")) is None
    assert written_file(Exception("Binder Error: column x not found")) is None


def test_the_named_file_wins_over_a_nameless_error_in_the_chain(tmp_path: Path) -> None:
    try:
        try:
            raise Exception('Could not write file "/t/e.duckdb": No space left on device')
        except Exception as inner:
            raise OSError(errno.ENOSPC, "No space left on device") from inner
    except OSError as outer:
        assert written_file(outer) == "/t/e.duckdb"
        line = describe(outer, tmp_path)
    assert line is not None and line.startswith("no space left on device writing /t/e.duckdb")
    assert "MB free" in line and "MB needed" in line and "\n" not in line


def test_needed_counts_the_failed_write_and_the_logs_to_checkpoint(tmp_path: Path) -> None:
    """The floor the operator must free: DuckDB's async write size (2650 bytes here) plus the
    write-ahead log beside the database; without a size, one DuckDB block."""
    (tmp_path / "elt.duckdb").write_bytes(b"")
    (tmp_path / "elt.duckdb.wal").write_bytes(b"x" * 3_000_000)
    spool = tmp_path / "elt.duckdb.publish"
    spool.mkdir()
    with_size = Exception(ASYNC.replace("/t/elt.duckdb.publish/x.parquet", str(spool / "x")))
    assert needed_mb(with_size, tmp_path / "elt.duckdb") == (2650 + 3_000_000) / 1e6
    line = describe(with_size, tmp_path)
    assert line is not None and "at least 0.1 MB needed" in line  # the spool has no log
    database = tmp_path / "elt.duckdb"
    nameless = Exception(f'Could not write file "{database}": No space left on device')
    line = describe(nameless, tmp_path)
    assert line is not None and "at least 3.3 MB needed" in line, line  # 256 KiB + 3 MB
