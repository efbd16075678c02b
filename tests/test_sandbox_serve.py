"""`elt sandbox serve` as a real process: it stops cleanly on SIGTERM and on SIGINT, also when
started in the background from a script (SIGINT inherited as ignored), and checkpoints its
store so no `.wal` file is left behind."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from sandbox_client import HTTP, bearer_from, dataset, forged

from elt.project.config import UnsetEndpoint, load_project
from elt.sandbox.flowkit import AUDIENCE
from elt.sandbox.serve import serve

REPO = Path(__file__).resolve().parents[1]

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
        address = json.loads((tmp_path / "target" / "sandbox.json").read_text())
        assert (address["url"], address["pid"]) == (url, proc.pid)  # sandbox_url() reads it
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
    assert not (tmp_path / "target" / "sandbox.json").exists()
    assert "sandbox-secret" in out  # shown to whoever runs it, but kept out of the log
    logged = (tmp_path / "target" / "logs" / "elt.log").read_text()
    assert "listening on" in logged and "sandbox-secret" not in logged
    with duckdb.connect(str(store), read_only=True) as con:
        assert con.execute("SELECT mdid FROM flowkit_datasets").fetchall() == [(mdid,)]


def test_serve_writes_its_address_and_the_local_target_follows_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`elt sandbox serve` on any port writes target/sandbox.json; the repository's `local`
    target reads it through sandbox_url(), and says what to do when no sandbox serves."""
    for name in ("FLOWKIT_URL", "FLOWKIT_TOKEN_URL", "UOIS_URL", "ELT_TARGET"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "proj"
    root.mkdir()
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    address = root / "target" / "sandbox.json"

    def endpoints() -> dict:
        return load_project(root, target_name="local").target.endpoints

    missing = endpoints()["flowkit"]
    assert isinstance(missing, UnsetEndpoint)  # deferred: `elt build` without one still runs
    assert "sandbox_url(): no sandbox is serving this project (no target/sandbox.json); " \
           "start `elt sandbox serve`" in str(missing.error)
    stop, started = threading.Event(), threading.Event()
    thread = threading.Thread(target=serve, args=("127.0.0.1", 0, root / "target" / "sb.duckdb",
                                                  True, lambda _line: started.set()),
                              kwargs={"stop": stop, "address_file": address})
    thread.start()
    try:
        assert started.wait(30)
        port = json.loads(address.read_text())["port"]
        assert port != 8765
        found = endpoints()
        base = f"http://127.0.0.1:{port}"
        assert found["flowkit"]["url"] == f"{base}/v1"
        assert found["flowkit_admin"]["auth"]["token_url"] == f"{base}/oauth/token"
        assert found["uois"]["url"] == base
        assert found["uois"]["auth"]["login_url"] == f"{base}/oauth/login3"
        assert HTTP.get(f"{found['flowkit']['url']}/heartbeat").status_code == 200
        monkeypatch.setenv("UOIS_URL", "http://uois.example")  # the variable still wins
        assert endpoints()["uois"]["url"] == "http://uois.example"
    finally:
        stop.set()
        thread.join(30)
    assert not address.exists()  # gone with the server
    address.write_text(json.dumps({"url": "http://127.0.0.1:1", "pid": _dead_pid()}))
    stale = endpoints()["flowkit"]
    assert isinstance(stale, UnsetEndpoint) and "is not running" in str(stale.error)


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid
