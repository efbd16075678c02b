"""Recognising a full disk in DuckDB's and Python's shapes, and naming the file."""

from __future__ import annotations

import errno
from pathlib import Path

from elt.core.diskfull import describe, written_file

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
    assert "MB free" in line and "\n" not in line
