"""The log file, progress output and colour: what an unattended run leaves behind."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import elt
from pytest_httpx import HTTPXMock
from test_build import BASE, PROFILE, write

from elt.core import log, secrets
from elt.core.console import Console
from elt.http.messages import Request
from elt.http.transport import Transport

LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (DEBUG|INFO|WARNING|ERROR) +elt\S* ")


@pytest.fixture(autouse=True)
def _detach_log() -> Iterator[None]:
    yield
    log.close()


def test_build_log_has_levels_timestamps_and_the_sql_each_node_ran(tmp_path: Path) -> None:
    write(tmp_path, {**BASE, "profiles.yml": PROFILE,
                     "models/broken.sql": "SELECT nope FROM raw.cities\n"})
    assert elt(tmp_path, "build").code == 1
    text = (tmp_path / "target" / "logs" / "elt.log").read_text()
    starts = [line for line in text.splitlines() if LINE.match(line)]
    assert starts and all(LINE.match(line) for line in starts)
    assert re.search(r" INFO +elt\.sql stg_cities ran:\nSELECT id AS city_id, city FROM "
                     r"raw\.cities\n", text)
    assert re.search(r" ERROR +elt\.console .*models/broken\.sql:1: model broken: Binder Error",
                     text)
    assert " DEBUG " not in text  # info is the default level
    assert elt(tmp_path, "build", "--log-level", "debug", "--log-format", "json").code == 1
    records = [json.loads(line) for line in
               (tmp_path / "target" / "logs" / "elt.log").read_text().splitlines()
               if line.startswith("{")]
    assert {"ts", "level", "logger", "msg", "invocation_id"} <= set(records[0])
    debug_sql = [r for r in records if r["level"] == "debug" and r["logger"] == "elt.sql"]
    assert any("_elt.nodes" in r["msg"] for r in debug_sql)  # bookkeeping too, at debug
    assert elt(tmp_path, "build", "--log-level", "error").code == 1
    tail = (tmp_path / "target" / "logs" / "elt.log").read_text().splitlines()[len(records):]
    assert tail and all(" ERROR " in line for line in tail if LINE.match(line))


def test_http_requests_are_logged_without_bodies_or_secrets(tmp_path: Path,
                                                           httpx_mock: HTTPXMock) -> None:
    secret, body_canary = f"sec-{uuid.uuid4().hex}", f"body-{uuid.uuid4().hex}"
    secrets.register(secret)
    log.configure(tmp_path, fmt="json", level="info")
    httpx_mock.add_response(url="http://api.test/oauth/token", json={
        "access_token": f"tok-{secret}", "expires_in": 3600})
    httpx_mock.add_response(url="http://api.test/v1/data", status_code=201, json={"echo": secret})

    async def go() -> None:
        async with Transport("api", {"url": "http://api.test/v1", "auth": {
                "type": "oauth2_client_credentials", "token_url": "http://api.test/oauth/token",
                "client_id": "me", "client_secret": secret}}) as transport:
            reply = await transport.send(Request("POST", "/data", body_canary.encode(),
                                                 {"Content-Type": "application/json"}, ()))
            assert reply.status == 201

    asyncio.run(go())
    log.close()
    text = (tmp_path / "elt.log").read_text()
    assert secret not in text and body_canary not in text and "tok-" not in text
    http = [json.loads(line) for line in text.splitlines() if '"elt.http"' in line]
    assert [(r["method"], r["path"], r["status"]) for r in http] == [
        ("POST", "/oauth/token", 200), ("POST", "/v1/data", 201)]
    assert all(isinstance(r["ms"], float) and r["endpoint"] == "api" for r in http)


def test_plain_progress_lines_without_a_terminal() -> None:
    out = io.StringIO()
    console = Console(out, io.StringIO(), progress_interval=0)
    assert not console.is_tty
    progress = console.progress("publish things", 40, "rows")
    progress.advance(10)
    progress.advance(10, errors=1)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("publish things: 10/40 rows (25%), ")
    assert re.search(r"rows/s, elapsed \d+s(, ETA \d+[smh])?", lines[0]), lines[0]
    assert "20/40 rows (50%)" in lines[1] and lines[1].endswith(", 1 errors")
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()
    quiet = io.StringIO()
    silent = Console(quiet, io.StringIO(), quiet=True, progress_interval=0).progress("x", 2)
    silent.advance(1)
    silent.close()
    assert quiet.getvalue() == ""


def test_terminal_progress_bars_show_percent_elapsed_and_eta() -> None:
    out = io.StringIO()
    console = Console(out, io.StringIO(), tty=True, color=False)
    progress = console.progress("raw.people", 8, "files")
    progress.advance(2)
    console._bars.refresh()
    console.info("a message while the bar is shown")
    progress.close()
    screen = out.getvalue()
    assert "raw.people" in screen and "25%" in screen and "2/8" in screen
    assert "elapsed" in screen and "ETA" in screen
    assert "a message while the bar is shown\n" in screen
    assert console._bars is None  # the last bar closed the display


def test_no_color_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = io.StringIO()
    console = Console(out, io.StringIO(), tty=True)
    console.node("model", "m", "error", message="boom")
    assert not console.color and "\x1b[" not in out.getvalue()
    monkeypatch.delenv("NO_COLOR")
    assert Console(io.StringIO(), tty=True).color


def test_messages_are_redacted_results_are_not() -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    secrets.register(secret)
    out, err = io.StringIO(), io.StringIO()
    console = Console(out, err)
    console.info(f"login with {secret}")
    console.error(f"refused {secret}")
    console.table(["email"], [(secret,)])
    console.result(secret)
    assert secret not in out.getvalue().splitlines()[0] and "***" in out.getvalue()
    assert secret not in err.getvalue()
    assert out.getvalue().splitlines()[-2:] == [secret, secret]  # table row, result


def test_node_lines_are_numbered_within_a_build_only(tmp_path: Path) -> None:
    from test_build import make_ctx

    ctx, console = make_ctx(tmp_path, BASE)
    assert not ctx.build().failed
    built = console.out.getvalue().splitlines()  # type: ignore[attr-defined]
    assert any(re.match(r"  +1 of 6 START seed +raw\.", line) for line in built), built
    assert any(re.match(r"  +6 of 6 (OK|PASS) ", line) for line in built), built
    console.node("publish", "people_out", "success", rows=3)  # e.g. publish, after a build
    assert console.out.getvalue().splitlines()[-1].split()[:2] == ["publish", "people_out"]


def test_log_file_rotates_at_its_size_with_every_line_whole_and_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler keeps its own byte count (no second format, no stat per line) and
    rereads the file's size now and then, so lines another process appends count too."""
    monkeypatch.setattr(log, "_MAX_BYTES", 4000)
    path = log.configure(tmp_path, level="info")
    handler = next(h for h in log.root.handlers if h.get_name() == log._HANDLER_NAME)
    monkeypatch.setattr(handler, "_RESYNC", 4)
    formats = 0
    real_format = handler.format

    def counting(record: Any) -> str:
        nonlocal formats
        formats += 1
        return real_format(record)

    monkeypatch.setattr(handler, "format", counting)
    for i in range(40):
        log.root.info("line %03d %s", i, "x" * 60)
    assert formats == 40  # each record formatted once
    rotated = path.with_name("elt.log.1")
    assert rotated.is_file() and path.stat().st_size < 4000
    assert all(p.stat().st_size < 4000 for p in (path, rotated))
    numbers = [int(m[1]) for p in sorted(tmp_path.glob("elt.log.*"), reverse=True) + [path]
               for m in re.finditer(r"line (\d{3}) x{60}\n", p.read_text())]
    assert numbers == sorted(numbers) and numbers[-1] == 39 and len(set(numbers)) == len(numbers)
    # another writer appends 5000 bytes: the next resync sees them and rotates first
    with path.open("a") as other:
        other.write("y" * 5000 + "\n")
    for i in range(40, 45):
        log.root.info("line %03d", i)
    assert "y" * 5000 in path.with_name("elt.log.1").read_text()
    assert "line 044" in path.read_text() and path.stat().st_size < 4000
