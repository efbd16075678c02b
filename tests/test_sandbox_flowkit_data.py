"""The sandbox's FlowKit writes over real HTTP: POST/PATCH/DELETE /data, /query, scope
mappings and the concurrency trap, each answering as measured on the real backend."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from sandbox_client import HTTP, LABEL, bearer, dataset, query_body

from elt.sandbox.server import Sandbox


def _map(client: httpx.Client, h: dict[str, str], mdid: int, scope: str = "read:free_data"
         ) -> httpx.Response:
    return client.post("/v1/scope_mapping", json={"scope": scope, "mdid": mdid}, headers=h)


def _mappings(sandbox: Sandbox) -> list[tuple[str, int]]:
    rows = sandbox.store.query("SELECT scope, mdid FROM flowkit_scope_mappings ORDER BY ALL")
    return [(r["scope"], r["mdid"]) for r in rows]


def test_post_201_then_303_keeps_data_even_when_the_body_differs(sandbox: Sandbox,
                                                                 client: httpx.Client) -> None:
    h, admin = bearer(sandbox), bearer(sandbox, "flowkit_admin")
    first = client.post("/v1/data", json=dataset(data=10), headers=h)
    assert first.status_code == 201 and isinstance(first.json(), int)
    again = client.post("/v1/data", json=dataset(data=99), headers=h)
    assert (again.status_code, again.json()) == (303, first.json())
    assert again.headers["content-type"] == "application/json"
    other = client.post("/v1/data", json=dataset(dt="2020-03-01 00:00:00"), headers=h)
    assert other.status_code == 201 and other.json() != first.json()
    r = client.post("/v1/query", json=query_body(), headers=admin)
    assert r.json()["data_by_date"]["2020-02-01"] == {"HT0111-01": 10.0}
    stats = client.get("/_sandbox/stats").json()["flowkit"][LABEL]
    assert (stats["inserted"], stats["duplicates"], stats["received"]) == (1, 1, 2)
    assert _mappings(sandbox) == [("admin", first.json()), ("admin", other.json())]


def test_dt_spellings_and_dropped_offsets_name_the_same_key(sandbox: Sandbox,
                                                            client: httpx.Client) -> None:
    h = bearer(sandbox)
    answers = [client.post("/v1/data", json=dataset(dt=dt), headers=h) for dt in
               ("2020-02-01 00:00:00", "2020-02-01T00:00:00", "2020-02-01T00:00:00Z",
                "2020-02-01T00:00:00+02:00")]
    assert [a.status_code for a in answers] == [201, 303, 303, 303]
    assert len({a.json() for a in answers}) == 1
    assert [str(r["dt"]) for r in sandbox.store.query("SELECT dt FROM flowkit_datasets")] == [
        "2020-02-01 00:00:00"]  # +02:00 dropped, not converted to the day before


def test_missing_or_null_dt_is_stored_as_null_every_time(sandbox: Sandbox,
                                                         client: httpx.Client) -> None:
    h = bearer(sandbox)
    answers = [client.post("/v1/data", json=dataset(dt=dt), headers=h)
               for dt in (None, None, ...)]
    assert [a.status_code for a in answers] == [201, 201, 201]
    assert len({a.json() for a in answers}) == 3
    rows = sandbox.store.query("SELECT dt FROM flowkit_datasets")
    assert [r["dt"] for r in rows] == [None, None, None]


def test_patch_answers_a_new_mdid_and_drops_non_admin_mappings(sandbox: Sandbox,
                                                               client: httpx.Client) -> None:
    h = bearer(sandbox)
    old = client.post("/v1/data", json=dataset(data=1), headers=h).json()
    assert _map(client, h, old).status_code == 201
    assert client.post("/v1/query", json=query_body(), headers=h).json()["max"] == 1
    r = client.patch("/v1/data", json=dataset(data=2), headers=h)
    new = r.json()
    assert r.status_code == 201 and isinstance(new, int) and new != old
    assert sandbox.store.query("SELECT mdid FROM flowkit_datasets") == [{"mdid": new}]
    assert _mappings(sandbox) == [("admin", new)]  # read:free_data went with the old row
    r = client.post("/v1/query", json=query_body(), headers=h)
    assert (r.status_code, r.json()) == (404, "Category not found")  # nothing mapped: unseen
    assert _map(client, h, new).status_code == 201
    assert client.post("/v1/query", json=query_body(), headers=h).json()["max"] == 2
    assert client.get("/_sandbox/stats").json()["flowkit"][LABEL]["patched"] == 1
    r = client.patch("/v1/data", json=dataset(dt="2021-01-01 00:00:00"), headers=h)
    assert r.status_code == 201 and r.json() not in (old, new)  # an unknown key is inserted


def test_delete_needs_the_full_dataset_body(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    _map(client, h, mdid)
    key_only = {"metadata": {k: v for k, v in dataset()["metadata"].items() if k != "revision"}}
    r = client.request("DELETE", "/v1/data", json=key_only, headers=h)
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert sandbox.store.counts()["flowkit_datasets"] == 1
    gone = {**dataset(), "data_input": []}
    r = client.request("DELETE", "/v1/data", json=gone, headers=h)
    assert (r.status_code, r.content) == (204, b"")
    assert sandbox.store.counts()["flowkit_datasets"] == 0 and _mappings(sandbox) == []
    assert client.request("DELETE", "/v1/data", json=gone, headers=h).status_code == 204


def test_query_follows_the_callers_mappings_and_repeats_mdids(sandbox: Sandbox,
                                                              client: httpx.Client) -> None:
    h, admin = bearer(sandbox), bearer(sandbox, "flowkit_admin")
    ids = [client.post("/v1/data", json=dataset(dt=f"2020-{m:02d}-01 00:00:00"), headers=h).json()
           for m in (1, 2, 3, 4, 5)]
    r = client.post("/v1/query", json=query_body(mdids_only=True), headers=h)
    assert (r.status_code, r.json()) == (404, "Category not found")  # nothing mapped yet
    r = client.post("/v1/query", json=query_body(mdids_only=True), headers=admin)
    assert r.json() == {"min": None, "max": None, "data_by_date": None,
                        "mdids": [str(i) for i in ids[1:4]]}
    _map(client, h, ids[1])
    _map(client, h, ids[2])
    _map(client, h, ids[2], "write:data")  # the updater holds both scopes: listed twice
    _map(client, h, ids[3], "someone:else")
    r = client.post("/v1/query", json=query_body(mdids_only=True), headers=h)
    assert r.json()["mdids"] == [str(ids[1]), str(ids[2]), str(ids[2])]
    r = client.post("/v1/query", json=query_body(start_date="2019-01"), headers=admin)
    assert (r.status_code, r.json()) == (404, "No metadata found")


def test_scope_mapping_201_303_and_no_foreign_key(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    first = _map(client, h, mdid)
    assert first.status_code == 201 and isinstance(first.json(), int)
    again = _map(client, h, mdid)
    assert (again.status_code, again.json()) == (303, first.json())
    r = _map(client, h, mdid + 100, "x")
    assert r.status_code == 201 and r.json() != first.json()  # unknown mdid: accepted


def test_concurrent_posts_of_one_key_make_it_ambiguous(sandbox: Sandbox) -> None:
    h = {**bearer(sandbox), "X-Sandbox-Delay": "0.4"}

    def post(i: int) -> httpx.Response:
        time.sleep(i * 0.05)
        return HTTP.post(f"{sandbox.url}/v1/data", json=dataset(data=i), headers=h)

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(post, range(2))
    assert (a.status_code, b.status_code) == (201, 201) and a.json() != b.json()
    plain = bearer(sandbox)
    for method in ("POST", "PATCH", "DELETE"):
        r = HTTP.request(method, f"{sandbox.url}/v1/data", json=dataset(), headers=plain)
        assert (r.status_code, r.json()) == (500, "Ambiguous dataset"), method
    assert sandbox.store.counts()["flowkit_datasets"] == 2
    stats = HTTP.get(f"{sandbox.url}/_sandbox/stats").json()
    assert (stats["races"], stats["ambiguous"], stats["ambiguous_keys"]) == (1, 3, [LABEL])
    entry: dict[str, Any] = stats["flowkit"][LABEL]
    assert (entry["inserted"], entry["races"], entry["ambiguous"]) == (2, 1, 3)
    assert json.loads(json.dumps(entry)) == entry
