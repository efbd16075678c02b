"""Canary secrets read from the environment (`{{ env_var(...) }}` in profiles.yml) never leave
the process: not in stdout/stderr, not in any file under the project (journal, parquet,
run_results.json, manifest.json, the export-results file), not in the ledger, not in any
table of the staging database, after a good build + publish, a publish that fails (500s and a
peer that echoes the request, credentials included, into its answers), a publish with a wrong
secret, and `elt debug` against a token endpoint that echoes the secret back."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import E2E, CliRun, Watched, elt_argv, elt_process, find_leaks, write_files
from peer import Peer

import elt.sandbox.flowkit as flowkit
import elt.sandbox.uois as uois
from elt.sandbox.server import Sandbox

# a server echoing a secret inside JSON escapes `"`, `\` and non-ASCII characters: the
# secrets sent in bodies carry them (a bearer token must stay a plain header value)
CANARIES = {name: f"canary-{name.lower()}-{uuid.uuid4().hex}" + ("" if name == "TOKEN"
                                                                else '-"q\\ü')
            for name in ("SECRET", "PASSWORD", "TOKEN", "WRONG")}
ENV = {"ELT_CANARY_SECRET": CANARIES["SECRET"], "ELT_CANARY_PASSWORD": CANARIES["PASSWORD"],
       "ELT_CANARY_TOKEN": CANARIES["TOKEN"],
       "ELT_LOG_LEVEL": "debug"}  # the log file (target/logs/elt.log) at its most detailed
KEY = "[category_id, indicator_id, srid, trid, dt]"
ECHO_REST = ("{insert: {method: POST, path: /echo}, update: {method: PATCH, path: /echo}, "
             "success: [201], compression: gzip}")


def _echo(status: int, delay: float = 0.0) -> Any:
    """A peer route answering `status` with the credentials it received (bearer token, client
    secret), over and over: however an answer is shortened, the cut falls inside a secret."""
    def answer(method: str, path: str, headers: dict[str, str], body: bytes) -> Any:
        try:
            sent = json.loads(body or b"{}")
        except ValueError:  # a gzip-compressed data body
            sent = {}
        secret = sent.get("client_secret") if isinstance(sent, dict) else None
        time.sleep(delay)
        words = [w for w in (headers.get("Authorization", "").partition(" ")[2], secret) if w]
        return status, {"Content-Type": "application/json"}, json.dumps(
            " ".join(words * 40)).encode()
    return answer


@pytest.fixture
def sb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A sandbox whose FlowKit client secret and UOIS password are the canaries."""
    monkeypatch.setattr(flowkit, "SECRET", CANARIES["SECRET"])
    monkeypatch.setattr(uois, "PASSWORD", CANARIES["PASSWORD"])
    with Sandbox(None) as sandbox:
        yield sandbox


def _profile(sb: Sandbox, peer: Peer) -> str:
    fk, admin, uo = (sb.endpoint_config(n) for n in ("flowkit", "flowkit_admin", "uois"))
    secret = "{{ env_var('ELT_CANARY_SECRET') }}"
    endpoints = {
        "flowkit": {**fk, "max_attempts": 2, "auth": {**fk["auth"], "client_secret": secret}},
        "flowkit_admin": {**admin, "auth": {**admin["auth"], "client_secret": secret}},
        "uois": {**uo, "auth": {**uo["auth"],
                                "password": "{{ env_var('ELT_CANARY_PASSWORD') }}"}},
        "echo": {"url": peer.url, "heartbeat": "/heartbeat", "max_attempts": 1,
                 "auth": {"type": "bearer", "token": "{{ env_var('ELT_CANARY_TOKEN') }}"}},
        "echo_oauth": {"url": peer.url, "heartbeat": "/heartbeat", "auth": {
            "type": "oauth2_client_credentials", "token_url": f"{peer.url}/token",
            "client_id": "me", "client_secret": secret}},
    }
    return json.dumps({"elt": {"target": "local", "outputs": {"local": {
        "type": "duckdb", "path": "target/elt.duckdb", "endpoints": endpoints}}}}, indent=1)


def test_canary_secrets_leave_no_trace(tmp_path: Path, sb: Sandbox) -> None:
    root = tmp_path / "project"
    with Peer({("POST", "/echo"): _echo(201), ("POST", "/token"): _echo(401)}) as peer:
        p = E2E(root, sb, n=8, users=4)
        write_files(root, {
            "profiles.yml": _profile(sb, peer),
            "models/echo.yml": f"publications:\n  echo_data: {{model: flowkit_datasets, "
                               f"endpoint: echo, kind: rest, mode: upsert, body: payload, "
                               f"key: {KEY}, rest: {ECHO_REST}}}\n"})
        runs = [elt_process(root, "build", env=ENV), elt_process(root, "publish", env=ENV)]
        assert runs[0].code == 0, runs[0].output
        assert runs[1].code == 0, runs[1].output
        assert "echo_data" in runs[1].stdout and "8/8 acknowledged" in runs[1].stdout
        # the echo peer really did receive the canary: the redaction below is not vacuous
        assert any(CANARIES["TOKEN"] in h.get("Authorization", "") for _, _, h, _ in peer.seen)
        answers = p.sql("SELECT answer FROM published.echo_data")
        assert answers and all("***" in a for (a,) in answers), answers

        # changed rows, then a publish that fails: 500s from the sandbox, and the echo peer
        # answers 400 with the request (Authorization header included) in its body
        p.set_datasets("i + 100")
        runs.append(elt_process(root, "build", env=ENV))
        sb.set_faults(error_rate=1.0)
        peer.routes[("POST", "/echo")] = _echo(400)
        peer.routes[("PATCH", "/echo")] = _echo(400)
        export = root / "target" / "export.jsonl"
        failed = elt_process(root, "publish", "--export-results", str(export), env=ENV)
        runs.append(failed)
        assert failed.code == 1, failed.output
        assert export.stat().st_size > 0
        assert p.sql("SELECT count(*) FROM _elt.ledger WHERE status = 'failed'")[0][0] >= 8
        sb.set_faults()
        # a wrong secret (itself a canary), then `elt debug` against an echoing token endpoint
        wrong = elt_process(root, "publish", env={**ENV, "ELT_CANARY_SECRET": CANARIES["WRONG"]})
        runs.append(wrong)
        assert wrong.code == 1 and "401" in wrong.stderr, wrong.output
        debug = elt_process(root, "debug", env=ENV)
        runs.append(debug)
        assert debug.code == 1 and "endpoint echo_oauth" in debug.stderr, debug.output
        assert "***" in debug.stderr  # the echoed secret was there, redacted
        runs += [elt_process(root, "status", env=ENV),
                 elt_process(root, "sql", "SELECT * FROM _elt.ledger", "--format", "json",
                             env=ENV)]
        assert runs[-1].code == 0 and CANARIES["TOKEN"] not in runs[-1].stdout
        # last, a publish killed mid-run: its journal and pending parquet stay on disk
        p.set_datasets("i + 200")
        runs.append(elt_process(root, "build", env=ENV))
        peer.routes[("PATCH", "/echo")] = _echo(201, delay=0.1)
        journal = root / "target" / "elt.duckdb.publish" / "journal.ndjson"
        proc = Watched(elt_argv(root, "publish", "-s", "echo_data"), env={**os.environ, **ENV})
        proc.wait_for(lambda: journal.exists() and b"acknowledged" in journal.read_bytes())
        assert proc.kill(), proc.output()
        runs.append(CliRun(proc.proc.returncode, proc.output(), ""))
        assert list((root / "target" / "elt.duckdb.publish").glob("*/echo_data.parquet"))

    log_text = (root / "target" / "logs" / "elt.log").read_text()
    assert " elt.http echo POST /echo 201 " in log_text  # requests were logged: not vacuous
    leaks = find_leaks(root, [r.output for r in runs])
    assert not leaks, "\n".join(leaks)


def test_a_heartbeat_leaking_secrets_leaves_no_trace(tmp_path: Path, sb: Sandbox) -> None:
    """The real heartbeat's `config` carries secrets (flowkit-api.md, second round); `elt debug`
    and a publish read it, and neither their output nor the log at its most detailed may
    repeat its body."""
    root = tmp_path / "project"
    E2E(root, sb, n=2, users=1)
    health = httpx.get(f"{sb.endpoint_config('flowkit')['url']}/heartbeat").json()
    leaked = list(flowkit.HEARTBEAT_SECRETS.values())
    assert all(s in health["config"].values() for s in leaked)  # the heartbeat leaks them
    runs = [elt_process(root, "debug", env=ENV), elt_process(root, "build", env=ENV),
            elt_process(root, "publish", "-s", "flowkit_setup", env=ENV)]
    assert all(run.code == 0 for run in runs), [run.output for run in runs]
    assert "endpoint flowkit:" in runs[0].output
    log_text = (root / "target" / "logs" / "elt.log").read_text()
    for text in [*(run.output for run in runs), log_text]:
        assert not [s for s in leaked if s in text]
        assert "db_host" not in text and "flowkit-ui-backend-db" not in text
