"""Issue #31: a refused publish changes nothing, honest exit codes, bad files named first.

Real CLI runs against a project built into a real DuckDB file and the sandbox on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from helpers import (
    E2E,
    check_published,
    elt,
    elt_argv,
    elt_process,
    quiet_stats,
    stats,
    write_files,
)

from elt.core import db
from elt.sandbox.server import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(None) as sandbox:
        yield sandbox


def _published(p: E2E, name: str) -> tuple[list[str], list[tuple]]:
    import duckdb

    with duckdb.connect(str(p.db), read_only=True) as con:
        cur = con.execute(f"SELECT * FROM published.{name} ORDER BY ALL")
        return [d[0] for d in cur.description], cur.fetchall()


def test_a_publication_refused_for_a_bad_key_keeps_its_published_view(
        tmp_path: Path, sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=4)
    p.build()
    first = elt(tmp_path, "publish", "-s", "flowkit_data")
    assert first.code == 0, first.output
    before = _published(p, "flowkit_data")
    assert "dt" in before[0] and len(before[1]) == 4
    pubs = tmp_path / "models" / "publications.yml"
    pubs.write_text(pubs.read_text().replace("srid, trid, dt]", "srid, trid, dtx]"))
    refused = elt(tmp_path, "publish", "-s", "flowkit_data", "--exclude", "flowkit_scopes")
    assert refused.code != 0, refused.output
    assert "dtx" in refused.stderr
    assert _published(p, "flowkit_data") == before


def test_export_results_to_a_path_that_cannot_be_written_fails_before_sending(
        tmp_path: Path, sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=3)
    p.build()
    (tmp_path / "afile").write_text("not a folder")
    for target in (tmp_path / "afile" / "out.jsonl", Path("/proc/elt.jsonl")):
        run = elt(tmp_path, "publish", "--export-results", str(target))
        assert run.code == 1, run.output
        assert len(run.error_lines()) == 1 and "--export-results" in run.error_lines()[0]
        assert str(target) in run.error_lines()[0]
        assert "internal error" not in run.output
    assert stats(sb)["requests"] == 0  # nothing was sent
    assert p.sql("SELECT count(*) FROM _elt.ledger")[0][0] == 0


# -- a full disk (a small tmpfs mounted for the test) -------------------------------------------
@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MB filesystem of its own (tmpfs), or a skip saying why there is none."""
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small filesystem needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _fill(mount: Path, leave_kb: int = 0) -> Path:
    """A ballast file taking all but `leave_kb` of the filesystem's free space."""
    ballast = mount / "ballast"
    free_kb = shutil.disk_usage(mount).free // 1024
    with open(ballast, "wb") as out:
        out.truncate(0)
        chunk = b"\0" * 1024 * 64
        for _ in range(max(0, free_kb - leave_kb) // 64):
            try:
                out.write(chunk)
            except OSError:
                break
    return ballast


def test_a_full_disk_during_build_fails_in_one_line_and_the_next_build_converges(
        small_fs: Path) -> None:
    write_files(small_fs, {
        "profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, "
                        "path: target/elt.duckdb}}}\n",
        "models/small.sql": "SELECT range AS id FROM range(1000)"})
    assert elt_process(small_fs, "build").code == 0
    write_files(small_fs, {"models/big.sql": "SELECT range AS id, md5(range::VARCHAR) || "
                                             "md5((range * 7)::VARCHAR) AS s FROM range(100000)"})
    ballast = _fill(small_fs)
    full = elt_process(small_fs, "build")
    assert full.code == 1, full.output
    assert len(full.error_lines()) == 1 and "no space left" in full.error_lines()[0]
    assert "MB needed" in full.error_lines()[0], full.output
    assert "Traceback" not in full.output and "internal error" not in full.output
    ballast.unlink()
    read = elt_process(small_fs, "sql", "--format", "csv", "SELECT count(*) AS n FROM small")
    assert read.code == 0 and read.stdout.split() == ["n", "1000"], read.output
    again = elt_process(small_fs, "build")
    assert again.code == 0, again.output
    read = elt_process(small_fs, "sql", "--format", "csv", "SELECT count(*) AS n FROM big")
    assert read.stdout.split() == ["n", "100000"], read.output


def test_a_checkpoint_that_fails_is_an_error_and_the_last_tables_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only ENOSPC: any failed checkpoint exits 1 in one line naming the database."""
    write_files(tmp_path, {
        "profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, "
                        "path: target/elt.duckdb}}}\n",
        "models/small.sql": "SELECT range AS id FROM range(10)"})
    assert elt(tmp_path, "build").code == 0
    write_files(tmp_path, {"models/small.sql": "SELECT range AS id FROM range(20)"})

    def failing(self: db.DeferredCheckpoint) -> float:
        raise duckdb.IOException("IO Error: could not truncate file: Input/output error")

    monkeypatch.setattr(db.DeferredCheckpoint, "finish", failing)
    broken = elt(tmp_path, "build")
    assert broken.code == 1, broken.output
    assert broken.error_lines() == [line for line in broken.error_lines()
                                    if "checkpoint failed: IO Error" in line]
    assert len(broken.error_lines()) == 1 and "elt.duckdb" in broken.error_lines()[0]
    monkeypatch.undo()
    again = elt(tmp_path, "build")
    assert again.code == 0, again.output
    read = elt(tmp_path, "sql", "--format", "csv", "SELECT count(*) AS n FROM small")
    assert read.stdout.split() == ["n", "20"], read.output


def test_a_full_disk_during_publish_loses_nothing_and_the_next_publish_completes(
        small_fs: Path, sb: Sandbox) -> None:
    p = E2E(small_fs, sb, n=40, users=12)
    p.build()
    ballast = _fill(small_fs)
    full = elt_process(small_fs, "publish")
    assert full.code == 1, full.output
    assert len(full.error_lines()) >= 1, full.output
    assert "Traceback" not in full.output and "internal error" not in full.output
    assert any("no space left" in line for line in full.error_lines()), full.output
    ballast.unlink()
    again = elt_process(small_fs, "publish")
    assert again.code == 0, again.output
    assert "left in the journal" not in again.output  # nothing was left to merge
    check_published(p, sb, complete=True)


# -- inspecting while a writer holds the database ----------------------------------------------
HOLD = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE OR REPLACE TABLE people AS SELECT 1 AS id")
print("holding", flush=True)
sys.stdin.read()  # until the test closes our stdin
con.close()
"""


def test_sql_during_a_write_waits_saying_for_what_then_answers(tmp_path: Path) -> None:
    write_files(tmp_path, {"profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, "
                                           "path: target/elt.duckdb}}}\n",
                           "models/people.sql": "SELECT 1 AS id"})
    assert elt_process(tmp_path, "build").code == 0
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "target/elt.duckdb")],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        query = subprocess.Popen(elt_argv(tmp_path, "sql", "--format", "csv",
                                          "SELECT count(*) AS n FROM people"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert query.stderr is not None
        waiting = query.stderr.readline()
        assert "waiting for process" in waiting and "elt.duckdb" in waiting, waiting
        assert str(holder.pid) in waiting
    finally:
        holder.communicate("", timeout=60)  # release the lock
    out, err = query.communicate(timeout=120)
    assert query.returncode == 0, err
    assert out.split() == ["n", "1"]  # stdout holds only the result


# -- Ctrl-C during publish ---------------------------------------------------------------------
SETTLE = 0.5  # seconds a row whose answer was cut off is held before it is resent


def _answered(sb: Sandbox) -> int:
    return sum(n for code, n in stats(sb)["by_status"].items() if str(code).startswith("2"))


def test_ctrl_c_during_publish_stops_merges_and_the_next_publish_completes(
        tmp_path: Path, sb: Sandbox) -> None:
    """SIGINT ignored on entry (as for a job started with `&` by a script) is honoured too."""
    p = E2E(tmp_path, sb, n=200, users=20, concurrency=2, settle=SETTLE)
    p.build()
    sb.set_faults(slow_rate=1.0, slow_seconds=0.3)  # every answer takes a while
    proc = subprocess.Popen(
        p.cli("publish"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # noqa: PLW1509
    try:
        while _answered(sb) < 10 and proc.poll() is None:  # some rows got their answer
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    assert [line for line in err.splitlines() if line.startswith("error:")] == \
        ["error: interrupted"]
    sent = stats(sb)["requests"]
    assert sent < 100  # it stopped sending: 220 rows were pending
    acknowledged = p.sql("SELECT count(*) FROM _elt.ledger WHERE status = 'acknowledged'")
    assert acknowledged[0][0] >= 3  # the answers received were merged before exiting
    sb.set_faults()
    quiet_stats(sb)  # the requests cut off in flight have been processed by the receiver
    for _ in range(5):  # rows whose answer was cut off are held `settle` s, then resent
        time.sleep(SETTLE)
        again = elt_process(tmp_path, "publish")
        assert "left in the journal" not in again.output  # nothing was left to merge
        if again.code == 0:
            break
    assert again.code == 0, again.output
    check_published(p, sb, complete=True)


# -- a damaged write-ahead log -----------------------------------------------------------------
TORN_WAL = """
import duckdb, os, sys
con = duckdb.connect(sys.argv[1])
con.execute("SET checkpoint_threshold = '10GB'")
con.execute("CREATE TABLE main.late AS SELECT range AS x FROM range(2000)")
os._exit(0)  # killed before any checkpoint: the commit is only in the WAL
"""


def test_a_damaged_wal_is_named_set_aside_by_a_build_and_nothing_crashes(tmp_path: Path) -> None:
    write_files(tmp_path, {"profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, "
                                           "path: target/elt.duckdb}}}\n",
                           "models/people.sql": "SELECT range AS id FROM range(1000)"})
    assert elt_process(tmp_path, "build").code == 0
    db = tmp_path / "target" / "elt.duckdb"
    subprocess.run([sys.executable, "-c", TORN_WAL, str(db)], check=True)
    wal = Path(f"{db}.wal")
    torn = bytearray(wal.read_bytes())
    assert len(torn) > 1000
    torn[100:400] = bytes(range(256)) + bytes(44)  # overwritten in the middle
    wal.write_bytes(bytes(torn))
    for args in (("sql", "SELECT count(*) FROM people"), ("status",), ("ls",)):
        read = elt_process(tmp_path, *args)
        assert read.code == 1, read.output
        assert len(read.error_lines()) == 1 and str(wal) in read.error_lines()[0]
        assert "elt build" in read.error_lines()[0] and "internal error" not in read.output
    built = elt_process(tmp_path, "build", "--full-refresh")
    assert built.code == 0, built.output
    assert "damaged" in built.stderr and "moved it to elt.duckdb.wal.damaged-" in built.stderr
    assert [p.name[:22] for p in db.parent.glob("elt.duckdb.wal.damaged-*")] == \
        ["elt.duckdb.wal.damaged"]  # kept, not deleted
    read = elt_process(tmp_path, "sql", "--format", "csv", "SELECT count(*) AS n FROM people")
    assert read.code == 0 and read.stdout.split() == ["n", "1000"], read.output
