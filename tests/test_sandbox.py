"""The sandbox receiver over real HTTP: each point of the FlowKit and UOIS contracts, faults,
null sink, stats and persistence."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from elt.errors import EltError
from elt.sandbox import Sandbox
from elt.sandbox.server import serve

# -- helpers -----------------------------------------------------------------------------------

HTTP = httpx.Client(timeout=10)  # one client for the module: creating one costs ~50 ms


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    HTTP.base_url = httpx.URL(sandbox.url)
    yield HTTP


def token(sb: Sandbox, name: str = "flowkit") -> str:
    auth = sb.endpoint_config(name)["auth"]
    body = {k: auth[k] for k in ("client_id", "client_secret", "audience")}
    r = HTTP.post(auth["token_url"], json={**body, "grant_type": "client_credentials"})
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


def bearer(sb: Sandbox, name: str = "flowkit") -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sb, name)}"}


def dataset(dt: str = "2020-02-01 00:00:00", data: Any = 544650, **meta: Any) -> dict[str, Any]:
    metadata = {"revision": "v0.1-demo", "category_id": "residents",
                "indicator_id": "residents.residents", "srid": 3, "trid": 2, "dt": dt, **meta}
    return {"metadata": {k: v for k, v in metadata.items() if v is not ...},
            "data_type": "single_location",
            "data_input": [{"spatial_unit_ids": ["HT0111-01"], "data": data}]}


def query_body(**kw: Any) -> dict[str, Any]:
    return {"category_id": "residents", "indicator_id": "residents.residents", "srid": 3,
            "trid": 2, "start_date": "2020-02", "duration": 3, **kw}


def uois_token(sb: Sandbox) -> str:
    auth = sb.endpoint_config("uois")["auth"]
    key = HTTP.get(auth["login_url"]).json()["key"]
    r = HTTP.post(auth["login_url"], json={"key": key, "username": auth["username"],
                                            "password": auth["password"]})
    assert r.status_code == 200, r.text
    return r.json()["token"]


def gql(sb: Sandbox, query: str, variables: dict[str, Any] | None = None,
        tok: str | None = None) -> httpx.Response:
    cookie = {"Cookie": f"authorization={tok or uois_token(sb)}"}
    return HTTP.post(f"{sb.url}/api/gql", json={"query": query, "variables": variables or {}},
                     headers=cookie)


USER = """mutation ($id: UUID!, $name: String!, $surname: String!, $email: String!) {
  result: userInsert(user: {id: $id, name: $name, surname: $surname, email: $email}) {
    id msg result: user { id lastchange } } }"""
GROUP = """mutation ($id: UUID!, $name: String!, $grouptype_id: UUID!) {
  result: groupInsert(group: {id: $id, name: $name, grouptypeId: $grouptype_id}) {
    id msg result: group { id lastchange } } }"""
MEMBERSHIP = """mutation ($id: UUID!, $user_id: UUID!, $group_id: UUID!, $valid: Boolean) {
  result: membershipInsert(membership: {id: $id, userId: $user_id, groupId: $group_id,
                                        valid: $valid}) {
    id msg result: membership { id lastchange } } }"""
EXTERNALID = """mutation ($type_id: UUID!, $inner_id: UUID!, $outer_id: String!) {
  result: externalidInsert(externalid: {innerId: $inner_id, typeidId: $type_id,
                                        outerId: $outer_id}) {
    id msg result: externalid { id } } }"""
INTERNAL = """query ($type_id: UUID!, $outer_id: String!) {
  result: internalId(typeidId: $type_id, outerId: $outer_id) }"""


def new_id() -> str:
    return str(uuid.uuid4())


def user_vars(uid: str | None = None) -> dict[str, str]:
    return {"id": uid or new_id(), "name": "John", "surname": "Newbie", "email": "j@n.org"}


def config(srid: bool = True) -> dict[str, Any]:
    spatial = {"label": "Communal section", "label_fr": "Section", "index": 3,
               "description": "", "boundaries": {}}
    return {
        "languages": [{"code": "en", "name": "English", "flag": "", "default": True}],
        "data_providers": [{"name": "Flowminder", "logo": "", "url": ""}],
        "categories": [{"category_id": c, "type": t} for c, t in
                       (("residents", "single_location"), ("relocations", "flow"))],
        "indicators": [{"category_id": "residents", "indicator_id": "residents.residents"},
                       {"category_id": "residents", "indicator_id": "residents.arrived"},
                       {"category_id": "relocations",
                        "indicator_id": "relocations.relocations"}],
        "temporal_resolutions": [{"trid": 2, "label": "Month"}, {"trid": 4, "label": "Day"}],
        "spatial_resolutions": [{**spatial, "srid": 3}] if srid else [spatial],
    }


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


# -- UOIS --------------------------------------------------------------------------------------


def test_login3_and_unauthenticated(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/api/gql"
    r = HTTP.post(url, json={"query": "{ userPage { id } }"})
    assert (r.status_code, r.json()) == (401, {"data": None, "errors": ["Unauthenticated"]})
    assert HTTP.post(url, json={"query": "{ userPage { id } }"},
                     headers={"Cookie": "authorization=junk"}).status_code == 401
    auth = sandbox.endpoint_config("uois")["auth"]
    key = HTTP.get(auth["login_url"]).json()["key"]
    bad = {"key": key, "username": auth["username"], "password": "nope"}
    assert HTTP.post(auth["login_url"], json=bad).status_code == 401
    reused = {**bad, "password": auth["password"]}
    assert HTTP.post(auth["login_url"], json=reused).status_code == 401  # keys are single-use
    tok = uois_token(sandbox)
    r = HTTP.post(url, json={"query": "{ userPage { id } }"},
                   headers={"Authorization": f"Bearer {tok}"})
    assert r.status_code == 200 and r.json() == {"data": {"userPage": []}}


def test_inserts_and_reads(sandbox: Sandbox) -> None:
    tok = uois_token(sandbox)
    uid, gid, mid = new_id(), new_id(), new_id()
    r = gql(sandbox, USER, user_vars(uid), tok).json()
    assert r["data"]["result"]["msg"] == "ok" and r["data"]["result"]["result"]["id"] == uid
    r = gql(sandbox, GROUP, {"id": gid, "name": "G", "grouptype_id": new_id()}, tok).json()
    assert r["data"]["result"] == {"id": gid, "msg": "ok", "result": {
        "id": gid, "lastchange": r["data"]["result"]["result"]["lastchange"]}}
    r = gql(sandbox, MEMBERSHIP, {"id": mid, "user_id": uid, "group_id": gid, "valid": True},
            tok).json()
    assert r["data"]["result"]["msg"] == "ok"
    q = """query ($id: UUID!) { userById(id: $id) { email memberships { group { name } } }
             membershipPage(where: {userId: {_eq: $id}}) { id valid } }"""
    assert gql(sandbox, q, {"id": uid}, tok).json()["data"] == {
        "userById": {"email": "j@n.org", "memberships": [{"group": {"name": "G"}}]},
        "membershipPage": [{"id": mid, "valid": True}]}


def test_user_page_skip_limit(sandbox: Sandbox) -> None:
    tok = uois_token(sandbox)
    ids = [new_id() for _ in range(5)]
    for uid in ids:
        gql(sandbox, USER, user_vars(uid), tok)
    r = gql(sandbox, "{ userPage(skip: 2, limit: 2) { id } }", tok=tok).json()
    assert [u["id"] for u in r["data"]["userPage"]] == ids[2:4]
    r = gql(sandbox, "{ groupPage { id } }", tok=tok).json()
    assert r == {"data": {"groupPage": []}}


def test_duplicate_id_is_unique_violation_on_http_200(sandbox: Sandbox) -> None:
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    r = gql(sandbox, USER, user_vars(uid), tok)
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None
    assert "UniqueViolation" in body["errors"][0]["message"]
    assert body["errors"][0]["path"] == ["result"]


def test_membership_of_missing_group_is_fk_violation(sandbox: Sandbox) -> None:
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    r = gql(sandbox, MEMBERSHIP, {"id": new_id(), "user_id": uid, "group_id": new_id()}, tok)
    assert r.status_code == 200 and "ForeignKeyViolation" in r.json()["errors"][0]["message"]
    assert sandbox.store.counts()["uois_memberships"] == 0


def test_externalid_fail_on_exact_triple_and_other_inner_accepted(sandbox: Sandbox) -> None:
    tok, inner, other, type_id = uois_token(sandbox), new_id(), new_id(), new_id()
    v = {"type_id": type_id, "inner_id": inner, "outer_id": "12345"}
    first = gql(sandbox, EXTERNALID, v, tok).json()["data"]["result"]
    assert first["msg"] == "ok"
    again = gql(sandbox, EXTERNALID, v, tok).json()["data"]["result"]
    assert (again["msg"], again["id"]) == ("fail", first["id"])
    moved = gql(sandbox, EXTERNALID, {**v, "inner_id": other}, tok).json()["data"]["result"]
    assert moved["msg"] == "ok" and moved["id"] != first["id"]
    r = gql(sandbox, INTERNAL, {"type_id": type_id, "outer_id": "12345"}, tok).json()
    assert r["data"]["result"] == inner
    r = gql(sandbox, INTERNAL, {"type_id": type_id, "outer_id": "nope"}, tok).json()
    assert r["data"]["result"] is None
    q = "query ($i: UUID!) { externalIds(innerId: $i) { outerId typeidId } }"
    assert gql(sandbox, q, {"i": other}, tok).json()["data"]["externalIds"] == [
        {"outerId": "12345", "typeidId": type_id}]


def test_aliased_fields_run_in_order_each_with_its_outcome(sandbox: Sandbox) -> None:
    tok, uid, gid = uois_token(sandbox), new_id(), new_id()
    doc = """mutation ($u: UUID!, $g: UUID!, $t: UUID!, $m: UUID!) {
      a: userInsert(user: {id: $u, name: "A"}) { id msg }
      b: userInsert(user: {id: $u, name: "B"}) { id msg }
      c: groupInsert(group: {id: $g, name: "G", grouptypeId: $t}) { id msg }
      d: membershipInsert(membership: {id: $m, userId: $u, groupId: $g}) { id msg } }"""
    r = gql(sandbox, doc, {"u": uid, "g": gid, "t": new_id(), "m": new_id()}, tok)
    body = r.json()
    assert r.status_code == 200
    assert body["data"]["a"] == {"id": uid, "msg": "ok"} and body["data"]["b"] is None
    assert body["data"]["c"]["msg"] == "ok" and body["data"]["d"]["msg"] == "ok"
    assert [e["path"] for e in body["errors"]] == [["b"]]
    assert "UniqueViolation" in body["errors"][0]["message"]


def test_gql_refuses_gzip_bodies(sandbox: Sandbox) -> None:
    raw = json.dumps({"query": "{ userPage { id } }"}).encode()
    r = HTTP.post(f"{sandbox.url}/api/gql", content=gzip.compress(raw), headers={
        "Content-Encoding": "gzip", "Content-Type": "application/json",
        "Cookie": f"authorization={uois_token(sandbox)}"})
    assert r.status_code == 400 and "JSON" in r.json()["errors"][0]["message"]


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
    sandbox.set_faults(slow_seconds=0.25)
    started = time.monotonic()
    assert client.get("/v1/heartbeat", headers={"X-Sandbox-Fault": "slow"}).status_code == 200
    assert time.monotonic() - started >= 0.25
    started = time.monotonic()
    client.get("/v1/heartbeat")
    assert time.monotonic() - started < 0.2


def test_outage_window(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post("/_sandbox/faults", json={"outage_seconds": 0.3})
    assert r.status_code == 200 and r.json()["outage_seconds"] == 0.3
    assert client.get("/v1/heartbeat").status_code == 503
    assert client.post("/api/gql", json={}).status_code == 503
    assert client.get("/_sandbox/stats").status_code == 200
    time.sleep(0.35)
    assert client.get("/v1/heartbeat").status_code == 200


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
    client.post("/v1/data", json=dataset(dt="2020-02-01"), headers=h)
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    gql(sandbox, USER, user_vars(uid), tok)
    stats = client.get("/_sandbox/stats").json()
    assert stats["flowkit"]["residents|residents.residents|3|2|2020-02-01 00:00:00"] == {
        "received": 2, "accepted": 1, "rejected": 0, "duplicates": 1}
    assert stats["flowkit"]["residents|residents.residents|3|2|2020-02-01"]["rejected"] == 1
    assert stats["uois"][uid] == {"received": 2, "accepted": 1, "rejected": 0, "duplicates": 1}
    assert stats["by_status"]["303"] == 1 and stats["requests"] >= 8
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
        assert sb.store.counts() == dict.fromkeys(sb.store.counts(), 0)
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


def test_serve_prints_urls_and_credentials(tmp_path: Path) -> None:
    lines: list[str] = []
    stop = threading.Event()
    stop.set()
    serve("127.0.0.1", 0, tmp_path / "sb.duckdb", True, lines.append, stop=stop)
    text = "\n".join(lines)
    for expected in ("http://127.0.0.1:", "elt-sandbox-updater", "elt-sandbox-admin",
                     "sandbox-secret", "john.newbie@world.com", "/oauth/login3", "/api/gql"):
        assert expected in text
