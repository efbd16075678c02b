"""Exactly once under real conditions (issue: timeouts, shared databases, pre-existing rows,
changing ids, GraphQL errors without a path), against the faithful sandbox over loopback.

Each test names the failure it guards against; most were seen on the real services.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import E2E, db_query, elt, stats, write_files

from elt.publish.lock import publish_lock
from elt.sandbox.server import Sandbox


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path / "sandbox.duckdb").start()
    try:
        yield sandbox
    finally:
        sandbox.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def flowkit_keys(counters: dict) -> dict[str, dict]:
    return {k: v for k, v in counters["flowkit"].items() if k.startswith("residents|")}


# -- 2. one publisher per database file ------------------------------------------------------
def test_a_second_checkout_on_the_same_database_is_refused(tmp_path: Path, sb: Sandbox) -> None:
    shared = tmp_path / "shared" / "elt.duckdb"
    a, b = E2E(tmp_path / "a", sb, n=3), E2E(tmp_path / "b", sb, n=3)
    for p in (a, b):
        doc = json.loads((p.root / "profiles.yml").read_text())
        doc["elt"]["outputs"]["local"]["path"] = str(shared)
        (p.root / "profiles.yml").write_text(json.dumps(doc))
    a.build()
    with publish_lock(shared, a.root):  # checkout a is publishing
        run = elt(b.root, "publish", "-t", "local")
    assert run.code == 1
    [line] = run.error_lines()
    assert "another `elt publish` (process" in line and str(a.root) in line
    assert str(shared) in line
    assert flowkit_keys(stats(sb)) == {}  # b sent nothing
    assert (shared.parent / "elt.duckdb.publish" / "publish.lock").exists()


# -- 8. independent endpoints ---------------------------------------------------------------
def test_an_unreachable_endpoint_fails_only_its_publications(tmp_path: Path,
                                                             sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=4, users=3)
    doc = json.loads((p.root / "profiles.yml").read_text())
    dead = f"http://127.0.0.1:{free_port()}"
    uois = doc["elt"]["outputs"]["local"]["endpoints"]["uois"]
    uois.update(url=dead, max_attempts=2)
    uois["auth"]["login_url"] = f"{dead}/oauth/login3"
    (p.root / "profiles.yml").write_text(json.dumps(doc))
    p.build()
    run = elt(p.root, "publish", "-t", "local")
    assert run.code == 1
    assert "endpoint uois" in run.output and "cannot connect" in run.output
    done = dict(p.sql("SELECT publication, count(*) FILTER (status = 'acknowledged') "
                      "FROM _elt.ledger GROUP BY ALL"))
    assert done.get("flowkit_data") == 4 and "uois_users" not in done  # nothing sent there
    assert len(flowkit_keys(stats(sb))) == 4


def test_rows_that_never_left_are_failed_not_held(tmp_path: Path, sb: Sandbox) -> None:
    """A connection refused means the request never reached the server: nothing to wait for."""
    p = E2E(tmp_path, sb, n=2, users=3)
    doc = json.loads((p.root / "profiles.yml").read_text())
    doc["elt"]["outputs"]["local"]["endpoints"]["uois"].update(
        url=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    (p.root / "profiles.yml").write_text(json.dumps(doc))
    p.build()
    assert p.publish(select=["uois_users"]).failed
    assert {s for s, _ in ledger(p, "uois_users").values()} == {"failed"}


# -- 9. exit codes ----------------------------------------------------------------------------
def test_selectors_matching_nothing_and_unknown_models_exit_non_zero(tmp_path: Path,
                                                                      sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=2)
    p.build()
    for command in ("build", "publish"):
        run = elt(p.root, command, "-t", "local", "-s", "tag:no_such_tag")
        assert run.code == 1, run.output
        assert "tag:no_such_tag" in run.error_lines()[0]
    pubs = (p.root / "models" / "publications.yml").read_text()
    write_files(p.root, {"models/publications.yml": pubs.replace(
        "model: uois_users,", "model: uois_userz,")})
    run = elt(p.root, "publish", "-t", "local")
    assert run.code == 1 and "unknown model uois_userz" in run.error_lines()[0]
    assert flowkit_keys(stats(sb)) == {}


def test_a_publication_that_fails_validation_leaves_its_answers(tmp_path: Path,
                                                                sb: Sandbox) -> None:
    p = E2E(tmp_path, sb, n=3)
    p.build()
    assert not p.publish().failed
    before = p.sql("SELECT * FROM published.flowkit_data ORDER BY ALL")
    model = p.root / "models" / "flowkit_datasets.sql"
    model.write_text(model.read_text().replace(  # one key twice: the publication is invalid
        "FROM range(3) t(i)", "FROM (SELECT * FROM range(3) UNION ALL SELECT 0) t(i)"))
    p.ctx().build()
    results = p.publish(select=["flowkit_data"])
    assert results.failed
    assert p.sql("SELECT * FROM published.flowkit_data ORDER BY ALL") == before


# -- helpers for the ledger --------------------------------------------------------------------
def ledger(p: E2E, publication: str) -> dict[str, tuple]:
    return {k: (s, a) for k, s, a in db_query(
        p.db, "SELECT key, status, answer FROM _elt.ledger WHERE publication = ?",
        [publication])}


def wait_until(condition, timeout: float = 10.0) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.05)
