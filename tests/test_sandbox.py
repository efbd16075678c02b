"""The sandbox over real HTTP: faults, null sink, stats, persistence, the serve command."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import httpx
import pytest
from helpers import quiet_stats
from sandbox_client import (
    HTTP,
    LABEL,
    USER,
    bearer,
    dataset,
    gql,
    new_id,
    token,
    uois_token,
    user_vars,
)

from elt.core.errors import EltError
from elt.sandbox.server import Sandbox
from elt.sandbox.uois_types import DEMO_EXTERNALIDTYPES, DEMO_GROUPTYPES

# -- faults ------------------------------------------------------------------------------------


def test_header_faults_500_and_429(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_faults(retry_after=7)
    h = bearer(sandbox)
    r = client.post("/v1/data", json=dataset(), headers={**h, "X-Sandbox-Fault": "500"})
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    r = client.post("/v1/data", json=dataset(), headers={**h, "X-Sandbox-Fault": "429"})
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert client.post("/v1/data", json=dataset(), headers=h).status_code == 201  # not stored


def test_reset_fault_drops_the_connection(sandbox: Sandbox, client: httpx.Client) -> None:
    with pytest.raises(httpx.TransportError):
        client.get("/v1/heartbeat", headers={"X-Sandbox-Fault": "reset"})
    sandbox.set_faults(reset_rate=1.0)
    with pytest.raises(httpx.TransportError):
        client.post("/v1/data", json=dataset())
    assert client.get("/_sandbox/stats").json()["faults"] == {"reset": 2}  # control unaffected


def test_reset_after_processing_loses_only_the_answer(sandbox: Sandbox,
                                                      client: httpx.Client) -> None:
    h = bearer(sandbox)
    with pytest.raises(httpx.TransportError):
        client.post("/v1/data", json=dataset(), headers={**h, "X-Sandbox-Fault": "reset_after"})
    assert client.post("/v1/data", json=dataset(), headers=h).status_code == 303


def test_slow_fault(sandbox: Sandbox, client: httpx.Client) -> None:
    sandbox.set_faults(slow_seconds=1.0)
    started = time.monotonic()
    assert client.get("/v1/heartbeat", headers={"X-Sandbox-Fault": "slow"}).status_code == 200
    assert time.monotonic() - started >= 1.0  # held back by the fault
    client.get("/v1/heartbeat")
    assert client.get("/_sandbox/stats").json()["faults"] == {"slow": 1}  # not held back


def test_a_stalled_request_commits_after_the_client_gave_up(sandbox: Sandbox) -> None:
    sandbox.set_faults(slow_rate=1.0, slow_seconds=0.5)
    h = bearer(sandbox)
    with pytest.raises(httpx.ReadTimeout):
        HTTP.post(f"{sandbox.url}/v1/data", json=dataset(), headers=h, timeout=0.1)
    sandbox.set_faults()
    quiet_stats(sandbox)
    assert HTTP.post(f"{sandbox.url}/v1/data", json=dataset(), headers=h).status_code == 303


def test_slow_commit_commits_and_never_answers(sandbox: Sandbox, client: httpx.Client) -> None:
    """"Slow but processing": the write lands after the client gave up, whatever its timeout,
    and a resend while the first copy is held stores the key twice."""
    h = bearer(sandbox)
    sandbox.set_faults(slow_commit_rate=1.0, slow_commit_seconds=0.3)
    with pytest.raises(httpx.TransportError):  # a generous timeout: the answer never comes
        HTTP.post(f"{sandbox.url}/v1/data", json=dataset(), headers=h, timeout=5)
    assert sandbox.store.counts()["flowkit_datasets"] == 1
    sandbox.set_faults(slow_commit_seconds=3.0)  # the resend comes well inside it, busy or not
    body = dataset(dt="2020-03-01 00:00:00")
    with pytest.raises(httpx.ReadTimeout):  # the client gives up after 0.1 s ...
        client.post("/v1/data", json=body, headers={**h, "X-Sandbox-Fault": "slow_commit"},
                    timeout=0.1)
    resend = client.post("/v1/data", json=body, headers=h)  # ... and resends at once
    assert resend.status_code == 201
    quiet_stats(sandbox)
    label = "residents|residents.residents|3|2|2020-03-01 00:00:00"
    stats = client.get("/_sandbox/stats").json()
    assert stats["flowkit"][label]["inserted"] == 2 and stats["flowkit"][label]["races"] == 1
    assert stats["ambiguous_keys"] == [label] and stats["faults"]["slow_commit"] == 2
    r = client.post("/v1/data", json=body, headers=h)
    assert (r.status_code, r.json()) == (500, "Ambiguous dataset")


def test_gateway_answers_504_while_the_write_goes_on(sandbox: Sandbox,
                                                    client: httpx.Client) -> None:
    """A proxy in front gives up: 504 at once, the write lands later, and a resend while it
    is held races it (FlowKit then has the key twice: "Ambiguous dataset")."""
    h = bearer(sandbox)
    sandbox.set_faults(gateway_seconds=3.0)  # the resend comes well inside it, busy or not
    body = dataset(dt="2020-04-01 00:00:00")
    started = time.monotonic()
    r = client.post("/v1/data", json=body, headers={**h, "X-Sandbox-Fault": "gateway"})
    assert (r.status_code, r.text) == (504, "Gateway Timeout")
    assert time.monotonic() - started < 3.0 and sandbox.store.counts()["flowkit_datasets"] == 0
    assert client.post("/v1/data", json=body, headers=h).status_code == 201  # the resend
    quiet_stats(sandbox)
    label = "residents|residents.residents|3|2|2020-04-01 00:00:00"
    stats = client.get("/_sandbox/stats").json()
    assert stats["flowkit"][label]["inserted"] == 2 and stats["flowkit"][label]["races"] == 1
    assert stats["ambiguous_keys"] == [label] and stats["faults"]["gateway"] == 1


def test_slow_commit_on_graphql_holds_the_insert(sandbox: Sandbox) -> None:
    tok, uid = uois_token(sandbox), new_id()
    url, bearer = f"{sandbox.url}/api/gql", {"Authorization": f"Bearer {tok}"}
    body = {"query": USER, "variables": user_vars(uid)}
    with pytest.raises(httpx.ReadTimeout):
        HTTP.post(url, json=body, headers={**bearer, "X-Sandbox-Fault": "slow_commit"},
                  timeout=0.1)
    resend = HTTP.post(url, json=body, headers=bearer).json()
    assert resend["data"]["result"]["msg"] == "ok"  # the resend overtook the held copy
    quiet_stats(sandbox)
    assert sandbox.store.counts()["uois_users"] == 1
    stats = HTTP.get(f"{sandbox.url}/_sandbox/stats").json()["uois"][uid]
    assert (stats["inserted"], stats["duplicates"], stats["races"]) == (1, 1, 1)


def test_outage_window(sandbox: Sandbox, client: httpx.Client) -> None:
    # long enough that a busy machine's pauses stay inside it; the end is polled, not slept
    r = client.post("/_sandbox/faults", json={"outage_seconds": 2.0})
    assert r.status_code == 200 and r.json()["outage_seconds"] == 2.0
    assert client.get("/v1/heartbeat").status_code == 503
    assert client.post("/api/gql", json={}).status_code == 503
    assert client.get("/_sandbox/stats").status_code == 200
    deadline = time.monotonic() + 60
    while client.get("/v1/heartbeat").status_code == 503:
        assert time.monotonic() < deadline, "the outage never ended"
        time.sleep(0.05)
    assert client.get("/_sandbox/faults").json()["outage_remaining"] == 0


def test_seeded_rates_are_reproducible_and_spare_auth(sandbox: Sandbox,
                                                      client: httpx.Client) -> None:
    h = bearer(sandbox)

    def run() -> list[int]:
        client.post("/_sandbox/faults", json={"error_rate": 0.3, "throttle_rate": 0.3, "seed": 7})
        return [client.get("/v1/categories", headers=h).status_code for _ in range(30)]

    first = run()
    assert first == run() and {200, 429, 500} == set(first)
    assert client.get("/v1/heartbeat").status_code == 200  # health checks: outages only
    sandbox.set_faults(error_rate=1.0)
    token(sandbox)  # the token route is exempt ...
    sandbox.set_faults(error_rate=1.0, faults_on_auth=True)
    auth = sandbox.endpoint_config("flowkit")["auth"]
    assert HTTP.post(auth["token_url"], json={}).status_code == 500  # ... unless asked


def test_fault_settings_are_validated(client: httpx.Client) -> None:
    assert client.post("/_sandbox/faults", json={"eror_rate": 0.1}).status_code == 400
    assert client.post("/_sandbox/faults", json={"error_rate": 2}).status_code == 400
    assert client.post("/_sandbox/faults", json={"slow_commit_rate": -1}).status_code == 400
    assert client.get("/v1/heartbeat", headers={"X-Sandbox-Fault": "boom"}).status_code == 400
    assert client.get("/_sandbox/faults").json()["error_rate"] == 0.0


# -- null sink, stats, persistence, CLI hook -----------------------------------------------------


def test_null_sink_accepts_and_discards() -> None:
    with Sandbox(None, null_sink=True) as sb:
        h = {**bearer(sb), "Content-Encoding": "gzip", "Content-Type": "application/json"}
        body = gzip.compress(json.dumps(dataset()).encode())
        answers = [HTTP.post(f"{sb.url}/v1/data", content=body, headers=h) for _ in range(2)]
        assert [a.status_code for a in answers] == [201, 201]
        assert all(isinstance(a.json(), int) for a in answers)
        uid = new_id()
        r = gql(sb, USER, user_vars(uid)).json()
        assert r["data"]["result"]["msg"] == "ok" and r["data"]["result"]["id"] == uid
        assert r["data"]["result"]["result"]["id"] == uid
        assert sb.store.counts()["flowkit_datasets"] == 0 and sb.store.counts()["uois_users"] == 0
        stats = HTTP.get(f"{sb.url}/_sandbox/stats").json()
        assert stats["flowkit"]["residents|residents.residents|3|2|2020-02-01 00:00:00"][
            "accepted"] == 2
        assert stats["uois"][uid]["accepted"] == 1


def test_stats_count_per_key_and_reset(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    client.post("/v1/data", json=dataset(), headers=h)
    client.post("/v1/data", json=dataset(), headers=h)
    client.patch("/v1/data", json=dataset(), headers=h)
    client.post("/v1/data", json=dataset(dt="2020-02-01"), headers=h)
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    gql(sandbox, USER, user_vars(uid), tok)
    stats = client.get("/_sandbox/stats").json()
    assert set(stats) == {"since", "requests", "by_status", "faults", "races", "ambiguous",
                          "ambiguous_keys", "flowkit", "uois", "crud", "in_flight"}
    assert stats["in_flight"] == 0
    assert stats["flowkit"][LABEL] == {
        "received": 3, "accepted": 2, "rejected": 0, "duplicates": 1, "inserted": 1,
        "patched": 1, "deleted": 0, "races": 0, "ambiguous": 0}
    assert stats["flowkit"]["residents|residents.residents|3|2|2020-02-01"]["rejected"] == 1
    assert stats["uois"][uid] == {"received": 2, "accepted": 1, "rejected": 0, "duplicates": 1,
                                  "inserted": 1, "races": 0}
    assert stats["by_status"]["303"] == 1 and stats["requests"] >= 9
    assert (stats["races"], stats["ambiguous"], stats["ambiguous_keys"]) == (0, 0, [])
    assert client.post("/_sandbox/reset").status_code == 204
    stats = client.get("/_sandbox/stats").json()
    assert (stats["requests"], stats["flowkit"], stats["uois"]) == (0, {}, {})


def test_store_in_use_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "sb.duckdb"
    script = ("import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('ready', flush=True);"
              " sys.stdin.read()")  # a DuckDB file lock only conflicts across processes
    holder = subprocess.Popen([sys.executable, "-c", script, str(path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(EltError, match="in use"):
            Sandbox(path).start()
    finally:
        holder.communicate("", timeout=10)


def test_store_survives_restart_and_fresh_clears(tmp_path: Path) -> None:
    path = tmp_path / "target" / "sandbox.duckdb"
    uid = new_id()
    with Sandbox(path) as sb:
        mdid = HTTP.post(f"{sb.url}/v1/data", json=dataset(), headers=bearer(sb)).json()
        gql(sb, USER, user_vars(uid))
    con = duckdb.connect(str(path), read_only=True)
    assert con.execute("SELECT mdid FROM flowkit_datasets").fetchall() == [(mdid,)]
    assert con.execute("SELECT id FROM uois_users").fetchall() == [(uid,)]
    con.close()
    with Sandbox(path) as sb:
        r = HTTP.post(f"{sb.url}/v1/data", json=dataset(), headers=bearer(sb))
        assert (r.status_code, r.json()) == (303, mdid)
        assert "UniqueViolation" in gql(sb, USER, user_vars(uid)).text
    with Sandbox(path, fresh=True) as sb:
        assert sb.store.counts() == {**dict.fromkeys(sb.store.counts(), 0),  # demo types only
                                     "uois_grouptypes": len(DEMO_GROUPTYPES),
                                     "uois_externalidtypes": len(DEMO_EXTERNALIDTYPES)}
        assert HTTP.post(f"{sb.url}/v1/data", json=dataset(), headers=bearer(sb)).status_code == 201


def test_endpoint_configs(sandbox: Sandbox) -> None:
    fk = sandbox.endpoint_config("flowkit")
    assert fk["url"] == f"{sandbox.url}/v1" and fk["heartbeat"] == "/heartbeat"
    assert fk["auth"]["client_id"] == "elt-sandbox-updater"
    assert sandbox.endpoint_config("flowkit_admin")["auth"]["client_id"] == "elt-sandbox-admin"
    uo = sandbox.endpoint_config("uois")
    assert (uo["graphql_path"], uo["heartbeat"], uo["auth"]["type"]) == ("/api/gql", None, "login3")
    with pytest.raises(ValueError):
        sandbox.endpoint_config("nope")
