"""`elt sandbox serve` as a real process: it stops cleanly on SIGTERM and on SIGINT, also when
started in the background from a script (SIGINT inherited as ignored), and checkpoints its
store so no `.wal` file is left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from sandbox_client import HTTP, bearer_from, dataset, forged

from elt.sandbox.flowkit import AUDIENCE
from elt.sandbox.serve import serve

LISTENING = re.compile(r"listening on (http://127\.0\.0\.1:\d+)")


def test_serve_prints_urls_and_credentials(tmp_path: Path) -> None:
    lines: list[str] = []
    stop = threading.Event()
    stop.set()
    serve("127.0.0.1", 0, tmp_path / "sb.duckdb", True, lines.append, stop=stop)
    text = "\n".join(lines)
    for expected in ("http://127.0.0.1:", "elt-sandbox-updater", "elt-sandbox-admin",
                     "sandbox-secret", "john.newbie@world.com", "/oauth/login3", "/api/gql",
                     "store checkpointed"):
        assert expected in text


def test_serve_strict_tokens_option(tmp_path: Path) -> None:
    """--strict-tokens reaches the FlowKit auth: an expired token is refused."""
    lines: list[str] = []
    stop, started = threading.Event(), threading.Event()

    def echo(line: str) -> None:
        lines.append(line)
        started.set()

    thread = threading.Thread(target=serve, args=("127.0.0.1", 0, tmp_path / "sb.duckdb", True,
                                                  echo), kwargs={"stop": stop,
                                                                 "strict_tokens": True})
    thread.start()
    try:
        assert started.wait(10)
        match = LISTENING.search(lines[0])
        assert match is not None
        expired = forged(scope="write:data", aud=AUDIENCE, exp=int(time.time()) - 60)
        r = HTTP.post(f"{match.group(1)}/v1/data", json=dataset(), headers=expired)
        assert (r.status_code, r.json()) == (401, "Token has expired")
    finally:
        stop.set()
        thread.join(10)
    assert "expiry and audience checked" in "\n".join(lines)


def _ignore_sigint() -> None:
    """What a non-interactive shell does to a job started with `&`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_on_signals_and_leaves_no_wal(tmp_path: Path, sig: signal.Signals) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "elt.cli", "sandbox", "serve", "--port", "0", "--project-dir",
         str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        preexec_fn=_ignore_sigint)
    try:
        assert proc.stdout is not None
        lines = []
        while not (match := LISTENING.search(line := proc.stdout.readline())):
            assert line, "".join(lines)
            lines.append(line)
        url = match.group(1)
        store = tmp_path / "target" / "sandbox.duckdb"
        h = bearer_from(url)
        mdid = HTTP.post(f"{url}/v1/data", json=dataset(), headers=h).json()
        assert store.with_name("sandbox.duckdb.wal").exists()  # the write sits in the WAL
        proc.send_signal(sig)
        proc.wait(timeout=30)
        out = "".join(lines) + line + proc.stdout.read()  # what readline() buffered included
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out
    assert f"stopping sandbox ({sig.name})" in out and "Traceback" not in out
    assert not store.with_name("sandbox.duckdb.wal").exists()
    assert "sandbox-secret" in out  # shown to whoever runs it, but kept out of the log
    logged = (tmp_path / "target" / "logs" / "elt.log").read_text()
    assert "listening on" in logged and "sandbox-secret" not in logged
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT mdid FROM flowkit_datasets").fetchall() == [(mdid,)]
