"""Fault matrix over real sockets: 500s, 429 + Retry-After, connection resets before and after
the server processed the request, stalls beyond the client timeout and a short outage, alone
and together. Each scenario publishes FlowKit datasets + UOIS users and re-runs publish until
everything is acknowledged (a bounded number of runs); after every run nothing was accepted
twice, no two copies of a key were ever in flight together, and every acknowledged ledger row
carries what the receiver stored (the mdid of that dataset, the id of that user)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import E2E, LONG_SETTLE, check_published, elt, let_settle, stats

from elt.sandbox.server import Sandbox

DATASETS, USERS = 60, 16
MAX_RUNS = 20  # flowkit_scopes comes along with flowkit_data; writes cut off are held a run
SETTLE = LONG_SETTLE  # unanswered rows are held until the test lets it pass (let_settle)
SELECT = ("publish", "-s", "flowkit_data", "-s", "uois_users")
# Small timeout (stalls go beyond it), few attempts (so some rows fail and a re-run must
# finish them), enough concurrency to keep many requests in flight at once.
ENDPOINT = {"timeout": 0.4, "max_attempts": 3, "concurrency": 16, "settle": SETTLE}
# Stalls of 1 s against a 0.4 s timeout: the client gives up and does NOT resend in that run
# (the first copy may still be processing: a second one in flight would make FlowKit store
# the key twice, which the sandbox counts in `races`); the row's outcome stays unknown, is
# held until it settles (the test's fake tick: let_settle), and a later run resends it,
# finding the first copy stored (303 -> PATCH for FlowKit's upsert, UniqueViolation =
# already there for UOIS).
# slow_commit: the request commits and the answer never comes, whatever the timeout.
# gateway: a proxy answers 504 at once while the write goes on behind it: held like a stall.
STALL = {"slow_rate": 0.1, "slow_seconds": 1.0}
OUTAGE = 1.5  # seconds of 503s, started mid-run

SCENARIOS: dict[str, tuple[dict[str, Any], bool]] = {  # fault settings, outage mid-run
    "500": ({"error_rate": 0.3}, False),
    "429": ({"throttle_rate": 0.2, "retry_after": 1}, False),
    "reset_before": ({"reset_rate": 0.2}, False),
    "reset_after": ({"reset_after_rate": 0.2}, False),
    "stall": (STALL, False),
    "slow_commit": ({"slow_commit_rate": 0.15, "slow_commit_seconds": 0.6}, False),
    "gateway": ({"gateway_rate": 0.15, "gateway_seconds": 0.6}, False),
    "outage": ({}, True),
    "all": ({"error_rate": 0.08, "throttle_rate": 0.08, "retry_after": 1, "reset_rate": 0.08,
             "reset_after_rate": 0.08, **STALL, "slow_rate": 0.06, "slow_commit_rate": 0.06,
             "slow_commit_seconds": 0.6}, True),
}
FAULT_NAMES = {"error_rate": "500", "throttle_rate": "429", "reset_rate": "reset",
               "reset_after_rate": "reset_after", "slow_rate": "slow",
               "slow_commit_rate": "slow_commit", "gateway_rate": "gateway"}


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(None) as sandbox:
        yield sandbox


def _outage_when_busy(sb: Sandbox, settings: dict[str, Any], seed: int,
                      after_requests: int) -> threading.Thread:
    """Start an outage once the sandbox has seen `after_requests` requests (mid-run)."""

    def watch() -> None:
        deadline = time.monotonic() + 60
        while sb.stats.requests < after_requests and time.monotonic() < deadline:
            time.sleep(0.005)
        sb.set_faults(**settings, outage_seconds=OUTAGE, seed=seed + 1)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_fault_matrix(tmp_path: Path, sb: Sandbox, scenario: str) -> None:
    settings, outage = SCENARIOS[scenario]
    seed = 1000 + list(SCENARIOS).index(scenario)
    p = E2E(tmp_path, sb, n=DATASETS, users=USERS, **ENDPOINT)
    p.build()
    sb.set_faults(**settings, seed=seed)
    watcher = _outage_when_busy(sb, settings, seed, after_requests=30) if outage else None
    codes = []
    for _ in range(MAX_RUNS):
        run = elt(p.root, *SELECT)
        assert run.exception is None and "Traceback" not in run.output, run.output
        assert run.code in (0, 1), run.output
        codes.append(run.code)
        check_published(p, sb, complete=False)  # safety holds after every run, done or not
        if run.code == 0:
            break
        # a failed run says which publication failed and why, on stderr, once per publication
        assert run.error_lines(), run.output
        let_settle(p, sb)  # a scheduler's next run comes later: unanswered rows have settled
    else:
        pytest.fail(f"{scenario}: not done after {MAX_RUNS} runs (exit codes {codes})")
    if watcher is not None:
        watcher.join(5)
    check_published(p, sb, complete=True)

    counters = stats(sb)
    fired = counters["faults"]
    for name, label in FAULT_NAMES.items():
        if settings.get(name):
            assert fired.get(label, 0) > 0, f"{label} never injected: {fired}"
    if outage:
        assert fired.get("503", 0) > 0, fired
    # faults off: a re-run sends nothing at all
    sb.set_faults()
    before = stats(sb)
    again = elt(p.root, *SELECT)
    assert again.code == 0 and "up_to_date" in again.stdout, again.output
    assert stats(sb)["requests"] == before["requests"], again.output
    failed = p.sql("SELECT publication, key, status, op, http_status, answer FROM _elt.ledger "
                   "WHERE status NOT IN ('acknowledged', 'already_there')")
    assert failed == []
    assert stats(sb)["races"] == 0 and stats(sb)["ambiguous"] == 0
    status = json.loads(elt(p.root, "status", "--format", "json").stdout)
    for row in status:
        if row["publication"] in ("flowkit_data", "flowkit_scopes", "uois_users"):
            assert (row["failed"], row["pending"], row["held"]) == (0, 0, 0), row


def test_outage_at_start_fails_fast_then_rerun_publishes(tmp_path: Path, sb: Sandbox) -> None:
    """Endpoints that are down when publish starts: one clear error per publication, nothing
    stored, and the next run (after the outage) publishes everything."""
    p = E2E(tmp_path, sb, n=20, users=4, **ENDPOINT)
    p.build()
    sb.set_faults(outage_seconds=3.0)  # longer than the heartbeat's and login's retries
    run = elt(p.root, *SELECT)
    assert run.code == 1 and run.exception is None, run.output
    lines = run.error_lines()  # one per publication, naming its endpoint and the cause
    assert len(lines) == 2 and all("503" in line for line in lines), lines
    assert "endpoint flowkit" in lines[0] and "endpoint uois" in lines[1], lines
    assert "Traceback" not in run.output
    counters = stats(sb)
    assert counters["flowkit"] == {} and counters["uois"] == {}
    # nothing stored; rows that got the outage's 503 (same answer each time) are failed
    assert p.sql("SELECT DISTINCT status FROM _elt.ledger") in ([], [("failed",)])
    while httpx.get(f"{sb.url}/_sandbox/faults").json()["outage_remaining"] > 0:
        time.sleep(0.05)
    p.relax_timeouts()  # the outage is over: healthy answers may be slow on a busy machine
    run = elt(p.root, *SELECT)
    assert run.code == 0, run.output
    check_published(p, sb, complete=True)


def test_long_stall_is_never_resent_while_the_first_copy_processes(tmp_path: Path,
                                                                   sb: Sandbox) -> None:
    """A stall far beyond the timeout (+ the 1 s resend pause): no second copy in flight."""
    p = E2E(tmp_path, sb, n=20, users=4, timeout=0.4, max_attempts=3, concurrency=8,
            settle=LONG_SETTLE)
    p.build()
    sb.set_faults(slow_rate=0.3, slow_seconds=2.5, seed=1)
    run = elt(p.root, "publish", "-s", "flowkit_data")
    assert run.code == 1 and "timed out" in run.output  # the stalled rows' outcome is unknown
    assert stats(sb)["races"] == 0
    sb.set_faults()
    p.relax_timeouts()  # the stall is over: healthy answers may be slow on a busy machine
    again = elt(p.root, "publish", "-s", "flowkit_data")  # at once: they may still process
    assert again.code == 1 and "held" in again.output, again.output
    let_settle(p, sb)  # the stalled copies finish; the next run resends them: 303 -> PATCH
    run = elt(p.root, "publish", "-s", "flowkit_data")
    assert run.code == 0, run.output
    assert stats(sb)["races"] == 0 and stats(sb)["ambiguous"] == 0
    status = json.loads(elt(p.root, "status", "--format", "json").stdout)
    data = next(r for r in status if r["publication"] == "flowkit_data")
    assert (data["failed"], data["pending"], data["held"]) == (0, 0, 0), data
    assert all(v["inserted"] == 1 for v in stats(sb)["flowkit"].values())
