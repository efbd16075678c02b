"""Opening the staging database: read-only waits, and a lock names its holder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
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


def _wal_bytes(path: Path) -> int:
    wal = Path(f"{path}.wal")
    return wal.stat().st_size if wal.exists() else 0


def test_deferred_checkpoint_keeps_commits_in_the_wal_until_finish(tmp_path: Path) -> None:
    """Batches appended to one table are checkpointed once, at the end, not per commit;
    every commit is durable in the WAL meanwhile, and the default threshold comes back."""
    path = tmp_path / "x.duckdb"
    con = db.connect(path)
    default = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0]
    con.execute("CREATE TABLE t (s VARCHAR)")
    deferred = db.DeferredCheckpoint(con)
    for _ in range(3):  # each commit writes ~10 MB of WAL: 30 MB is past the 16 MiB default
        con.execute("INSERT INTO t SELECT repeat('x', 1000) || i FROM range(10000) r(i)")
    assert _wal_bytes(path) > 25_000_000
    assert deferred.finish() >= 0
    assert _wal_bytes(path) == 0
    assert con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()[0] == default
    con.close()
    with db.connect(path, read_only=True) as again:
        assert again.execute("SELECT count(*) FROM t").fetchone() == (30000,)


def test_without_deferral_duckdb_checkpoints_as_it_goes(tmp_path: Path) -> None:
    """The control for the test above: the same commits leave a small WAL by default."""
    path = tmp_path / "x.duckdb"
    with db.connect(path) as con:
        con.execute("CREATE TABLE t (s VARCHAR)")
        for _ in range(3):
            con.execute("INSERT INTO t SELECT repeat('x', 1000) || i FROM range(10000) r(i)")
        assert _wal_bytes(path) < 25_000_000


CRASH = """
import os, sys
from pathlib import Path
from elt.core import db
con = db.connect(Path(sys.argv[1]))
con.execute("CREATE TABLE t AS SELECT repeat('x', 1000) || i AS s FROM range(30000) r(i)")
db.DeferredCheckpoint(con)
con.execute("INSERT INTO t SELECT repeat('y', 1000) || i FROM range(30000) r(i)")
os._exit(0)  # killed before the run's checkpoint
"""


def test_deferred_commits_survive_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "x.duckdb"
    subprocess.run([sys.executable, "-c", CRASH, str(path)], check=True, timeout=60)
    assert _wal_bytes(path) > 25_000_000
    with db.connect(path) as con:
        assert con.execute("SELECT count(*), count_if(s LIKE 'y%') FROM t").fetchone() == (
            60000, 30000)


BUILD_CRASH = """
import os, sys
from pathlib import Path
from elt.core import db
con = db.connect(Path(sys.argv[1]), wal=False)
con.execute("CREATE TABLE t AS SELECT repeat('x', 1000) || i AS s FROM range(30000) r(i)")
deferred = db.DeferredCheckpoint(con, every=0)
assert deferred.due()  # a checkpoint between nodes: t is in the file now
con.execute("INSERT INTO t SELECT repeat('y', 1000) || i FROM range(30000) r(i)")
con.cursor().execute("CREATE TABLE u AS SELECT 1 AS x")  # a worker's cursor, same file
print(os.path.exists(sys.argv[1] + ".wal"), flush=True)
os._exit(0)  # killed before the next checkpoint
"""


def test_a_build_connection_writes_no_wal_and_a_crash_keeps_the_last_checkpoint(
        tmp_path: Path) -> None:
    """wal=False (builds): commits skip the WAL; a killed build leaves the file as its
    last checkpoint wrote it, whole tables only, never a half-appended one."""
    path = tmp_path / "x.duckdb"
    out = subprocess.run([sys.executable, "-c", BUILD_CRASH, str(path)], check=True,
                         timeout=60, capture_output=True, text=True).stdout
    assert out.strip() == "False"  # 60 MB were committed, not a byte of WAL
    with db.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*), count_if(s LIKE 'y%') FROM t").fetchone() == (
            30000, 0)
        assert not db.table_exists(con, "main", "u")


def test_a_build_connection_replays_a_wal_another_command_left(tmp_path: Path) -> None:
    """A publish killed before its checkpoint leaves its commits in the WAL: a build opening
    the file without WAL replays them and writes them into the file at once."""
    path = tmp_path / "x.duckdb"
    subprocess.run([sys.executable, "-c", CRASH, str(path)], check=True, timeout=60)
    assert _wal_bytes(path) > 25_000_000
    con = db.connect(path, wal=False)
    assert _wal_bytes(path) == 0
    assert con.cursor().execute("SELECT count(*) FROM t").fetchone() == (60000,)
    assert db.storage_version(con) == f"{db.STORAGE_VERSION}+"
    con.close()
    with db.connect(path, read_only=True) as again:
        assert again.execute("SELECT count(*) FROM t").fetchone() == (60000,)


def test_a_build_connection_shares_a_file_this_process_has_open(tmp_path: Path) -> None:
    """DuckDB refuses to attach a file twice in one process: the build then uses the
    instance already open (with its WAL) instead of failing."""
    path = tmp_path / "x.duckdb"
    with db.connect(path) as first:
        first.execute("CREATE TABLE t AS SELECT 1 AS x")
        with db.connect(path, wal=False) as second:
            assert second.cursor().execute("SELECT x FROM t").fetchone() == (1,)


def test_checkpoint_between_nodes_waits_for_its_interval(tmp_path: Path) -> None:
    with db.connect(tmp_path / "x.duckdb", wal=False) as con:
        assert not db.DeferredCheckpoint(con, every=3600).due()
        assert db.DeferredCheckpoint(con, every=0).due()


def test_writers_keep_the_configured_row_group_size(tmp_path: Path) -> None:
    """Smaller row groups than DuckDB's 122,880 (scans prune and parallelise by row group).
    Every writer passes the size: a checkpoint by a writer with the default merges them."""
    def groups(con: duckdb.DuckDBPyConnection, table: str) -> int:
        return con.execute(f"SELECT count(DISTINCT row_group_id) FROM "
                           f"pragma_storage_info('{table}')").fetchone()[0]

    path = tmp_path / "x.duckdb"
    with db.connect(path, wal=False, row_group_size=2048) as con:  # a build
        con.execute("CREATE TABLE small AS SELECT range AS i FROM range(10000)")
        con.execute("CHECKPOINT")
        assert groups(con, "small") == 5
    with db.connect(path, row_group_size=2048) as con:  # publish: the same size, a WAL
        con.execute("SET checkpoint_threshold = '1TB'")
        con.execute("CREATE TABLE other AS SELECT range AS i FROM range(10000)")
        assert _wal_bytes(path) > 0
        con.execute("CHECKPOINT")
        assert groups(con, "small") == 5 and groups(con, "other") == 5
    with db.connect(path) as con:  # the control: DuckDB's default size
        con.execute("CREATE TABLE third AS SELECT 1 AS i")
        con.execute("CHECKPOINT")
        assert groups(con, "small") < 5
