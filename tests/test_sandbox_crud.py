"""The sandbox's plain CRUD receiver (elt/sandbox/crud.py) over loopback: each op and its
answers, the API key, Idempotency-Key, and the server's faults applied to it."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from own_api import crud_items, crud_stats

from elt.sandbox.crud import API_KEY, API_KEY_HEADER
from elt.sandbox.server import Sandbox

KEY = {API_KEY_HEADER: API_KEY}


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: Sandbox) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"{sb.url}/crud", headers=KEY, timeout=30) as client:
        yield client


def test_each_op_and_its_answers(sb: Sandbox, api: httpx.Client) -> None:
    made = api.post("/items", json={"name": "bolt"})  # no id: one is assigned
    assert made.status_code == 201
    new_id = made.json()["id"]
    assert made.headers["location"] == f"/crud/items/{new_id}"
    given = api.post("/items", json={"id": 7, "name": "nut"})
    assert (given.status_code, given.json()) == (201, {"id": 7, "name": "nut"})
    assert api.post("/items", json={"id": 7, "name": "again"}).status_code == 409
    assert api.put("/items/a%2Fb c", json={"name": "odd"}).status_code == 201  # created
    replaced = api.put("/items/7", json={"id": 7, "name": "nut2"})
    assert (replaced.status_code, replaced.json()) == (200, {"id": 7, "name": "nut2"})
    patched = api.patch("/items/7", json={"price": 0.05})
    assert (patched.status_code, patched.json()) == (200, {"id": 7, "name": "nut2",
                                                          "price": 0.05})
    assert api.patch("/items/99", json={"price": 1}).status_code == 404
    assert api.get("/items/7").json() == {"id": 7, "name": "nut2", "price": 0.05}
    assert api.get("/items/a%2Fb%20c").json() == {"id": "a/b c", "name": "odd"}
    deleted = api.delete(f"/items/{new_id}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert api.delete(f"/items/{new_id}").status_code == 404
    assert api.get(f"/items/{new_id}").status_code == 404
    assert [i["id"] for i in api.get("/items").json()] == [7, "a/b c"]
    assert api.get("/other").json() == []  # any collection name serves, each its own
    counters = crud_stats(sb)["crud"]["7"]
    assert {k: counters[k] for k in ("inserted", "replaced", "patched", "rejected")} == {
        "inserted": 1, "replaced": 1, "patched": 1, "rejected": 1}


def test_refusals(api: httpx.Client, sb: Sandbox) -> None:
    no_key = httpx.post(f"{sb.url}/crud/items", json={"id": 1})
    assert no_key.status_code == 401 and API_KEY_HEADER in no_key.json()["detail"]
    wrong = httpx.post(f"{sb.url}/crud/items", json={"id": 1},
                       headers={API_KEY_HEADER: "nope"})
    assert wrong.status_code == 401
    assert api.post("/items", content=b"[1, 2]").status_code == 422  # no JSON object
    assert api.put("/items/1", content=b"not json").status_code == 422
    assert api.put("/items", json={}).status_code == 405
    assert api.post("/items/1", json={}).status_code == 405
    assert api.get("/a/b/c").status_code == 404
    plain_gzip = api.post("/items", content=gzip.compress(b'{"id": 2}'))  # no header
    assert plain_gzip.status_code == 400
    zipped = api.post("/items", content=gzip.compress(b'{"id": 3}'),
                      headers={"Content-Encoding": "gzip"})
    assert zipped.status_code == 201
    assert crud_items(sb) == {"3": {"id": 3}}


def test_idempotency_key_replays_the_first_answer(sb: Sandbox, api: httpx.Client) -> None:
    first = api.post("/items", json={"name": "bolt"}, headers={"Idempotency-Key": "k1"})
    again = api.post("/items", json={"name": "bolt"}, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert len(crud_items(sb)) == 1  # the repeat changed nothing
    other = api.post("/items", json={"name": "nut"}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 422  # the same key for another request
    deleted = api.delete(first.headers["location"].removeprefix("/crud"),
                         headers={"Idempotency-Key": "k2"})
    assert deleted.status_code == 204
    replayed = api.delete(first.headers["location"].removeprefix("/crud"),
                          headers={"Idempotency-Key": "k2"})
    assert replayed.status_code == 204  # not 404: the first answer, replayed
    assert api.delete(first.headers["location"].removeprefix("/crud")).status_code == 404


def test_faults_apply_as_to_the_other_services(sb: Sandbox, api: httpx.Client) -> None:
    failed = api.put("/items/1", json={"name": "a"}, headers={"X-Sandbox-Fault": "500"})
    assert failed.status_code == 500 and not crud_items(sb)
    with pytest.raises(httpx.TransportError):  # reset before processing: nothing stored
        api.put("/items/1", json={"name": "a"}, headers={"X-Sandbox-Fault": "reset"})
    assert not crud_items(sb)
    # reset after processing: stored, the answer lost; the resend with its key replays
    idem = {"Idempotency-Key": "k-lost"}
    with pytest.raises(httpx.TransportError):
        api.post("/items", json={"name": "a"}, headers={**idem, "X-Sandbox-Fault": "reset_after"})
    assert [i["name"] for i in crud_items(sb).values()] == ["a"]
    resent = api.post("/items", json={"name": "a"}, headers=idem)
    assert resent.status_code == 201 and resent.headers["idempotent-replayed"] == "true"
    assert len(crud_items(sb)) == 1
    throttled = api.get("/items", headers={"X-Sandbox-Fault": "429"})
    assert throttled.status_code == 429 and "retry-after" in throttled.headers
    sb.set_faults(outage_seconds=3600)
    assert api.get("/items").status_code == 503
    sb.set_faults()
    stats = crud_stats(sb)
    assert stats["faults"] == {"500": 1, "reset": 1, "reset_after": 1, "429": 1, "503": 1}


def test_a_key_still_being_processed_is_409(sb: Sandbox, api: httpx.Client) -> None:
    """A resend while the first copy is still inside its write (a client that timed out)
    must not write twice: 409 until the first answer exists, then that answer."""
    idem = {"Idempotency-Key": "k-slow"}
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(api.put, "/items/1", json={"name": "a"},
                           headers={**idem, "X-Sandbox-Delay": "5"})
        deadline = time.monotonic() + 60
        while not crud_stats(sb)["in_flight"]:
            assert time.monotonic() < deadline, "the slow request never arrived"
            time.sleep(0.01)
        busy = api.put("/items/1", json={"name": "a"}, headers=idem)
        assert busy.status_code == 409 and "still being processed" in busy.json()["detail"]
        assert slow.result().status_code == 201
    assert api.put("/items/1", json={"name": "a"}, headers=idem).status_code == 201
    assert crud_stats(sb)["crud"]["1"]["inserted"] == 1
