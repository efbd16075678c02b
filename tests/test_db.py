"""Opening the staging database: read-only waits, and a lock names its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from elt.core import db
from elt.core.errors import DatabaseLockedError, EltError

HOLD = """
import duckdb, sys, time
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE IF NOT EXISTS t AS SELECT 1 AS x")
print("ready", flush=True)
sys.stdin.readline()
"""


def test_read_only_before_first_build_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(EltError, match="run `elt build` first"):
        db.connect(tmp_path / "nope.duckdb", read_only=True)


def test_locked_database_names_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(DatabaseLockedError) as info:
            db.connect(path, read_only=True, wait_seconds=0.3)
        assert f"process {holder.pid}" in str(info.value)
        assert str(path) in str(info.value)
    finally:
        holder.communicate("\n", timeout=10)
    # once released, a reader gets in
    with db.connect(path, read_only=True, wait_seconds=2) as con:
        assert con.execute("SELECT x FROM t").fetchone() == (1,)
