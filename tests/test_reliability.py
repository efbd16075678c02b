"""Issue #31: a refused publish changes nothing, honest exit codes, bad files named first.

Real CLI runs against a project built into a real DuckDB file and the sandbox on loopback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import E2E, check_published, elt, elt_argv, elt_process, stats, write_files

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
    assert "Traceback" not in full.output and "internal error" not in full.output
    ballast.unlink()
    read = elt_process(small_fs, "sql", "--format", "csv", "SELECT count(*) AS n FROM small")
    assert read.code == 0 and read.stdout.split() == ["n", "1000"], read.output
    again = elt_process(small_fs, "build")
    assert again.code == 0, again.output
    read = elt_process(small_fs, "sql", "--format", "csv", "SELECT count(*) AS n FROM big")
    assert read.stdout.split() == ["n", "100000"], read.output


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
