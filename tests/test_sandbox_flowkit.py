"""The sandbox's FlowKit REST side over real HTTP: auth, /data, /query, /setup, scopes."""

from __future__ import annotations

import base64
import gzip
import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sandbox_client import (
    HTTP,
    bearer,
    config,
    dataset,
    query_body,
    token,
)

from elt.sandbox.server import Sandbox

# -- FlowKit: auth -----------------------------------------------------------------------------


def test_heartbeat_needs_no_token(client: httpx.Client) -> None:
    r = client.get("/v1/heartbeat")
    assert r.status_code == 200
    assert {"datetime", "version", "commit", "build_date"} <= set(r.json())


def test_token_carries_scopes_and_bad_credentials_fail(sandbox: Sandbox) -> None:
    claims = json.loads(base64.urlsafe_b64decode(token(sandbox).split(".")[1] + "=="))
    assert claims["scope"] == "write:data read:free_data"
    assert claims["permissions"] == ["write:data", "read:free_data"]
    assert claims["sub"] == "elt-sandbox-updater@clients" and claims["exp"] > time.time()
    auth = sandbox.endpoint_config("flowkit")["auth"]
    base = {"client_id": auth["client_id"], "audience": auth["audience"],
            "grant_type": "client_credentials"}
    assert HTTP.post(auth["token_url"], json={**base, "client_secret": "x"}).status_code == 401
    wrong_aud = {**base, "client_secret": auth["client_secret"], "audience": "other"}
    assert HTTP.post(auth["token_url"], json=wrong_aud).status_code == 403


def test_missing_authorization_header_is_plain_500(client: httpx.Client) -> None:
    r = client.post("/v1/data", json=dataset())
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert r.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("value", ["Bearer not-a-jwt", "Basic abc", "Bearer a.b.c"])
def test_undecodable_token_is_401(client: httpx.Client, value: str) -> None:
    r = client.get("/v1/categories", headers={"Authorization": value})
    assert r.status_code == 401 and r.json() == "Could not decode token"


def test_forged_token_is_rejected(sandbox: Sandbox, client: httpx.Client) -> None:
    head, payload, _sig = token(sandbox, "flowkit_admin").split(".")
    r = client.get("/v1/categories", headers={"Authorization": f"Bearer {head}.{payload}.AAAA"})
    assert r.status_code == 401


def test_scope_checks_answer_exact_401_texts(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post("/v1/data", json=dataset(), headers=bearer(sandbox, "flowkit_admin"))
    assert r.status_code == 401
    assert r.json() == "Invalid token: Required permissions ['write:data'] not present"
    r = client.post("/v1/setup", json=config(), headers=bearer(sandbox))
    assert r.json() == "Invalid token: Required permissions ['admin'] not present"


# -- FlowKit: /data ----------------------------------------------------------------------------


def test_post_201_then_303_keeps_data(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    first = client.post("/v1/data", json=dataset(data=10), headers=h)
    assert first.status_code == 201 and isinstance(first.json(), int)
    again = client.post("/v1/data", json=dataset(data=99), headers=h)
    assert (again.status_code, again.json()) == (303, first.json())
    other = client.post("/v1/data", json=dataset(dt="2020-03-01 00:00:00"), headers=h)
    assert other.status_code == 201 and other.json() != first.json()
    r = client.post("/v1/query", json=query_body(), headers=h)
    assert r.json()["data_by_date"]["2020-02-01"] == {"HT0111-01": 10.0}


def test_dt_spellings_name_the_same_key(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    answers = [client.post("/v1/data", json=dataset(dt=dt), headers=h) for dt in
               ("2020-02-01 00:00:00", "2020-02-01T00:00:00", "2020-02-01T00:00:00Z")]
    assert [a.status_code for a in answers] == [201, 303, 303]
    assert len({a.json() for a in answers}) == 1


def test_patch_replaces_and_delete_is_always_204(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    mdid = client.post("/v1/data", json=dataset(data=1), headers=h).json()
    r = client.patch("/v1/data", json=dataset(data=2), headers=h)
    assert (r.status_code, r.json()) == (201, mdid)
    assert client.post("/v1/query", json=query_body(), headers=h).json()["max"] == 2
    r = client.patch("/v1/data", json=dataset(dt="2021-01-01 00:00:00"), headers=h)
    assert r.status_code == 201 and r.json() != mdid
    gone = {**dataset(), "data_input": []}
    assert client.request("DELETE", "/v1/data", json=gone, headers=h).status_code == 204
    assert client.post("/v1/query", json=query_body(), headers=h).status_code == 404
    assert client.request("DELETE", "/v1/data", json=gone, headers=h).status_code == 204


def test_data_400_answers(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    r = client.post("/v1/data", json={**dataset(), "data_input": []}, headers=h)
    assert (r.status_code, r.json()) == (400, "No data to ingest")
    r = client.post("/v1/data", json={**dataset(), "data_type": "grid"}, headers=h)
    assert r.status_code == 400


@pytest.mark.parametrize("body", [
    dataset(dt="2020-02-01"),
    dataset(data=None),
    dataset(data="NaN"),
    dataset(data="Infinity"),
    dataset(data=2**31),
    dataset(data=-(2**31) - 1),
    dataset(revision=...),
    dataset(dt=...),
    dataset(srid="three"),
    dataset(indicator_id="x" * 256),
    dataset(date_added=None),
    {**dataset(), "data_input": [{"spatial_unit_ids": ["a", "b"], "data": 1}]},
], ids=["bare-date", "null", "NaN", "inf", "int32-max", "int32-min", "no-revision", "no-dt",
        "srid", "long-id", "date_added-null", "flow-units-on-single"])
def test_data_bad_values_500_something_went_wrong(sandbox: Sandbox, client: httpx.Client,
                                                  body: dict[str, Any]) -> None:
    r = client.post("/v1/data", json=body, headers=bearer(sandbox))
    assert r.status_code == 500 and r.json().startswith("Something went wrong: ")
    assert client.post("/v1/query", json=query_body(), headers=bearer(sandbox)).status_code == 404


def test_numeric_strings_and_int32_edges_are_accepted(sandbox: Sandbox,
                                                      client: httpx.Client) -> None:
    body = dataset(data="2147483647")
    body["data_input"].append({"spatial_unit_ids": ["HT0111-02"], "data": -(2**31)})
    assert client.post("/v1/data", json=body, headers=bearer(sandbox)).status_code == 201


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"metadata": {}}'])
def test_request_validation_failure_is_plain_500(sandbox: Sandbox, client: httpx.Client,
                                                 body: bytes) -> None:
    r = client.post("/v1/data", content=body, headers=bearer(sandbox))
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_gzip_bodies(sandbox: Sandbox, client: httpx.Client) -> None:
    h = {**bearer(sandbox), "Content-Type": "application/json", "Content-Encoding": "gzip"}
    raw = json.dumps(dataset()).encode()
    assert client.post("/v1/data", content=gzip.compress(raw), headers=h).status_code == 201
    assert client.post("/v1/data", content=raw, headers=h).status_code == 400


def test_query_mdids_only_and_404(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    ids = [client.post("/v1/data", json=dataset(dt=f"2020-{m:02d}-01 00:00:00"), headers=h).json()
           for m in (1, 2, 3, 4, 5)]
    r = client.post("/v1/query", json=query_body(mdids_only=True), headers=h)
    assert r.json() == {"min": None, "max": None, "data_by_date": None,
                        "mdids": [str(i) for i in ids[1:4]]}
    r = client.post("/v1/query", json=query_body(start_date="2019-01"), headers=h)
    assert (r.status_code, r.json()) == (404, "No metadata found")


def test_scope_mapping_201_303_and_unknown_mdid(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    first = client.post("/v1/scope_mapping", json={"scope": "read:free_data", "mdid": mdid},
                        headers=h)
    assert first.status_code == 201 and isinstance(first.json(), int)
    again = client.post("/v1/scope_mapping", json={"scope": "read:free_data", "mdid": mdid},
                        headers=h)
    assert (again.status_code, again.json()) == (303, first.json())
    r = client.post("/v1/scope_mapping", json={"scope": "x", "mdid": mdid + 100}, headers=h)
    assert r.status_code == 500


def test_setup_replaces_config_and_numbers_missing_srids(sandbox: Sandbox,
                                                         client: httpx.Client) -> None:
    h = bearer(sandbox, "flowkit_admin")
    incomplete = {k: v for k, v in config().items() if k != "languages"}
    assert client.post("/v1/setup", json=incomplete, headers=h).status_code == 500
    assert client.post("/v1/setup", json=config(), headers=h).status_code == 204
    srids = "SELECT item->>'srid' AS s FROM flowkit_config WHERE section='spatial_resolutions'"
    assert sandbox.store.query(srids) == [{"s": "3"}]
    assert client.post("/v1/setup", json=config(srid=False), headers=h).status_code == 204
    first = sandbox.store.query(srids)
    assert client.post("/v1/setup", json=config(srid=False), headers=h).status_code == 204
    assert sandbox.store.query(srids) != first  # auto-numbered: a second /setup renumbers


def test_read_endpoints_follow_scope_mappings(sandbox: Sandbox, client: httpx.Client) -> None:
    admin, h = bearer(sandbox, "flowkit_admin"), bearer(sandbox)
    client.post("/v1/setup", json=config(), headers=admin)
    assert client.get("/v1/categories", headers=h).json() == {"categories": []}
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    assert client.get("/v1/categories", headers=h).json() == {"categories": []}
    client.post("/v1/scope_mapping", json={"scope": "read:free_data", "mdid": mdid}, headers=h)
    cats = client.get("/v1/categories", headers=h).json()["categories"]
    assert [c["category_id"] for c in cats] == ["residents"]
    inds = client.get("/v1/indicators_for_category/residents", headers=h).json()["indicators"]
    assert [i["indicator_id"] for i in inds] == ["residents.residents"]
    cats = client.get("/v1/categories", headers=admin).json()["categories"]
    assert [c["category_id"] for c in cats] == ["residents", "relocations"]


def test_concurrent_posts_of_one_key_make_it_ambiguous(sandbox: Sandbox) -> None:
    h = {**bearer(sandbox), "X-Sandbox-Delay": "0.4"}

    def post(_: int) -> httpx.Response:
        time.sleep(_ * 0.05)
        return HTTP.post(f"{sandbox.url}/v1/data", json=dataset(), headers=h)

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(post, range(2))
    assert (a.status_code, b.status_code) == (201, 201) and a.json() != b.json()
    plain = bearer(sandbox)
    for method in ("POST", "PATCH", "DELETE"):
        r = HTTP.request(method, f"{sandbox.url}/v1/data", json=dataset(), headers=plain)
        assert (r.status_code, r.json()) == (500, "Ambiguous dataset"), method
    assert HTTP.get(f"{sandbox.url}/_sandbox/stats").json()["races"] == 1
