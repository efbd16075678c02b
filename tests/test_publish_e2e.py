"""Publish over real sockets against the sandbox: FlowKit REST and UOIS GraphQL, re-runs,
kill -9 mid-publish and resume (exactly once per sandbox stats), `elt sql` during a publish,
and the embedded `sandbox:` endpoints."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from helpers import E2E, FLOWKIT_LABEL, LONG_SETTLE, let_settle, stats, statuses

from elt.sandbox.server import Sandbox


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def test_flowkit_and_uois_publish_rerun_and_patch(tmp_path: Path, sb: Sandbox) -> None:
    p = E2E(tmp_path, sb)
    p.build()
    results = p.publish()
    assert set(statuses(results).values()) == {"success"}, p.out.getvalue()
    store = sb.store
    assert store.scalar("SELECT count(*) FROM flowkit_datasets") == 12
    assert store.scalar("SELECT count(*) FROM flowkit_config WHERE section = 'categories'") == 1
    mdids = {r["mdid"] for r in store.query("SELECT mdid FROM flowkit_datasets")}
    assert {r["mdid"] for r in store.query("SELECT mdid FROM flowkit_scope_mappings")} == mdids
    assert [store.scalar(f"SELECT count(*) FROM uois_{t}") for t in
            ("users", "groups", "memberships")] == [6, 3, 6]
    assert p.sql("SELECT count(*) FROM published.uois_users WHERE answer = id") == [(6,)]

    before = stats(sb)
    results = p.publish()
    assert set(statuses(results).values()) == {"up_to_date"}
    assert stats(sb) == before  # nothing sent, not even a heartbeat

    p.set_datasets("CASE WHEN i = 4 THEN 999 ELSE i + 1 END")
    p.build()
    results = p.publish()
    assert statuses(results)["flowkit_data"] == "success"
    after = stats(sb)
    changed = {k for k, v in after["flowkit"].items() if v != before["flowkit"].get(k)}
    assert changed == {FLOWKIT_LABEL.format(5)}
    fifth = after["flowkit"][FLOWKIT_LABEL.format(5)]
    assert (fifth["inserted"], fifth["patched"]) == (1, 1)
    assert store.scalar("SELECT data->'$[0].data' FROM flowkit_datasets WHERE dt = "
                        "'2020-01-05'") == "999"
    # the PATCH made a new mdid and dropped the old one's non-admin mappings: the new mdid's
    # mapping is sent in the same run (PATCH 201 + scope mapping 201), and it is visible again
    assert after["by_status"].get("201", 0) == before["by_status"]["201"] + 2
    new = store.scalar("SELECT mdid FROM flowkit_datasets WHERE dt = '2020-01-05'")
    assert new not in mdids
    assert store.scalar("SELECT count(*) FROM flowkit_scope_mappings WHERE mdid = ? AND "
                        "scope <> 'admin'", [new]) == 1


def _acknowledged(directory: Path) -> int:
    total = 0
    for path in directory.glob("journal*.ndjson"):
        try:
            total += path.read_bytes().count(b'"status":"acknowledged"')
        except FileNotFoundError:
            pass
    return total


def test_kill_9_mid_publish_then_resume_exactly_once(tmp_path: Path, sb: Sandbox) -> None:
    n = 360
    p = E2E(tmp_path, sb, n=n, settle=LONG_SETTLE)  # rows in flight at the kill are held
    p.build()
    sb.set_faults(slow_rate=1.0, slow_seconds=0.03)
    journal_dir = tmp_path / "target" / "elt.duckdb.publish"
    seed = random.randrange(1 << 30)
    kill_after = random.Random(seed).randrange(40, 200)
    proc = subprocess.Popen(p.cli("publish", "--select", "flowkit_setup+"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while _acknowledged(journal_dir) < 10 and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # a reader works while the publish runs: the database is closed between merges
        sql = subprocess.run(p.cli("sql", "SELECT count(*) AS n FROM _elt.publish_runs"),
                             capture_output=True, text=True, timeout=30)
        assert sql.returncode == 0, sql.stderr
        while _acknowledged(journal_dir) < kill_after and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        out = proc.communicate(timeout=10)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL, f"finished before the kill (seed {seed}): {out}"
    sb.set_faults()
    let_settle(p, sb)  # the in-flight rows have settled
    results = p.publish(select=["flowkit_setup+"])
    assert not results.failed, p.out.getvalue()
    assert "left in the journal by an interrupted run" in p.out.getvalue()

    counters = stats(sb)
    assert counters["races"] == 0
    labels = {FLOWKIT_LABEL.format(d) for d in range(1, 32)}
    per_key = {k: v for k, v in counters["flowkit"].items() if k.startswith("residents|")}
    assert len(per_key) == n and labels <= set(per_key)
    assert {v["inserted"] for v in per_key.values()} == {1}, f"seed {seed}"
    assert sb.store.scalar("SELECT count(*) FROM flowkit_datasets") == n
    store = {r["k"]: str(r["mdid"]) for r in sb.store.query(
        "SELECT strftime(dt, '%Y-%m-%d %H:%M:%S') AS k, mdid FROM flowkit_datasets")}
    ledger = dict(p.sql("SELECT dt, answer FROM published.flowkit_data "
                        "WHERE status = 'acknowledged'"))
    assert ledger == store
    assert sb.store.scalar("SELECT count(DISTINCT mdid) FROM flowkit_scope_mappings") == n
    assert [r[0] for r in p.sql("SELECT status FROM _elt.publish_runs ORDER BY started")] == [
        "crashed", "success"]


def test_embedded_sandbox_endpoints(tmp_path: Path) -> None:
    p = E2E(tmp_path, None, n=4, users=2)
    p.build()
    results = p.publish("embedded", dry_run=True)
    assert "sandbox started" not in p.out.getvalue()
    assert statuses(results)["flowkit_data"] == "success"  # counted, nothing sent
    results = p.publish("embedded")
    assert set(statuses(results).values()) == {"success"}, p.out.getvalue()
    out = p.out.getvalue()
    assert "sandbox started at http://127.0.0.1:" in out and "stopped" in out
    assert "endpoint flowkit: http://127.0.0.1:" in out
    with duckdb.connect(str(tmp_path / "target" / "sandbox.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM flowkit_datasets").fetchall() == [(4,)]
        assert con.execute("SELECT count(*) FROM uois_memberships").fetchall() == [(2,)]
    assert set(statuses(p.publish("embedded")).values()) == {"up_to_date"}
    assert p.ctx("embedded").debug()
