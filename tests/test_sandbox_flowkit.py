"""The sandbox's FlowKit REST side over real HTTP: heartbeat, auth, validation, gzip, /setup
and read visibility, each answering as measured on the real backend."""

from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

import httpx
import pytest
from sandbox_client import (
    HTTP,
    bearer,
    config,
    dataset,
    forged,
    token,
)

from elt.sandbox.flowkit import AUDIENCE
from elt.sandbox.server import Sandbox

PARSE_ERROR = {"detail": "There was an error parsing the body"}
NO_WRITE = "Invalid token: Required permissions ['write:data'] not present"


def test_heartbeat_has_config_and_no_version(client: httpx.Client) -> None:
    r = client.get("/v1/heartbeat")
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"datetime", "python_version", "config"}
    assert {"db_host", "db_user", "db_port", "auth0_domain", "auth0_client_id"} <= set(
        body["config"])


# -- auth --------------------------------------------------------------------------------------


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
    assert (r.status_code, r.json()) == (401, NO_WRITE)
    r = client.post("/v1/setup", json=config(), headers=bearer(sandbox))
    assert r.json() == "Invalid token: Required permissions ['admin'] not present"


def test_only_the_scope_claim_grants(client: httpx.Client) -> None:
    perms_only = forged(scope="read:free_data", permissions=["write:data"], aud=AUDIENCE)
    r = client.post("/v1/data", json=dataset(), headers=perms_only)
    assert (r.status_code, r.json()) == (401, NO_WRITE)
    assert client.post("/v1/data", json=dataset(), headers=forged(scope="write:data")
                       ).status_code == 201


def test_expired_and_foreign_audience_tokens_are_accepted_unless_strict() -> None:
    expired = forged(scope="write:data", aud=AUDIENCE, exp=int(time.time()) - 3600)
    foreign = forged(scope="write:data", aud="https://elsewhere", exp=int(time.time()) + 3600)
    with Sandbox(None) as sb:
        answers = [HTTP.post(f"{sb.url}/v1/data", json=dataset(dt=dt), headers=h).status_code
                   for h, dt in ((expired, "2020-01-01 00:00:00"),
                                 (foreign, "2020-02-01 00:00:00"))]
        assert answers == [201, 201]
    with Sandbox(None, strict_tokens=True) as sb:
        r = HTTP.post(f"{sb.url}/v1/data", json=dataset(), headers=expired)
        assert (r.status_code, r.json()) == (401, "Token has expired")
        r = HTTP.post(f"{sb.url}/v1/data", json=dataset(), headers=foreign)
        assert (r.status_code, r.json()) == (401, "Could not decode token")
        assert HTTP.post(f"{sb.url}/v1/data", json=dataset(), headers=bearer(sb)
                         ).status_code == 201


# -- validation --------------------------------------------------------------------------------


def test_data_400_answers(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    r = client.post("/v1/data", json={**dataset(), "data_input": []}, headers=h)
    assert (r.status_code, r.json()) == (400, "No data to ingest")
    r = client.post("/v1/data", json={**dataset(), "data_type": "bogus"}, headers=h)
    assert (r.status_code, r.json()) == (400, 'Unknown data type "bogus"')


@pytest.mark.parametrize("body", [
    dataset(dt="2020-02-01"),
    dataset(data=None),
    dataset(data="abc"),
    dataset(revision=...),
    dataset(srid="three"),
    dataset(date_added=None),
    {k: v for k, v in dataset().items() if k != "data_type"},
], ids=["bare-date", "null", "not-a-number", "no-revision", "srid", "date_added-null",
        "no-data_type"])
def test_validation_failures_are_plain_500(sandbox: Sandbox, client: httpx.Client,
                                           body: dict[str, Any]) -> None:
    r = client.post("/v1/data", json=body, headers=bearer(sandbox))
    assert (r.status_code, r.text) == (500, "Internal Server Error")
    assert r.headers["content-type"].startswith("text/plain")
    assert client.post("/v1/data", json=body, headers=bearer(sandbox)).text == r.text
    assert sandbox.store.counts()["flowkit_datasets"] == 0


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"metadata": {}}'])
def test_request_validation_failure_is_plain_500(sandbox: Sandbox, client: httpx.Client,
                                                 body: bytes) -> None:
    r = client.post("/v1/data", content=body, headers=bearer(sandbox))
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def _two(a: int, b: int) -> dict[str, Any]:
    body = dataset(data=a)
    body["data_input"].append({"spatial_unit_ids": ["HT0111-02"], "data": b})
    return body


@pytest.mark.parametrize(("body", "text"), [
    (dataset(data="NaN"), "nan can not be used with MySQL"),
    (dataset(data="Infinity"), "inf can not be used with MySQL"),
    (_two(0, 2**31), "(1264, \"Out of range value for column 'max_value' at row 1\")"),
    (_two(-(2**31) - 1, 0),
     "(1264, \"Out of range value for column 'min_value' at row 1\")"),
    (dataset(indicator_id="x" * 256),
     "(1406, \"Data too long for column 'indicator_id' at row 1\")"),
    ({**dataset(), "data_type": "flow"}, "list index out of range"),
], ids=["NaN", "inf", "int32-max", "int32-min", "long-id", "flow-one-unit"])
def test_database_errors_are_500_something_went_wrong(sandbox: Sandbox, client: httpx.Client,
                                                      body: dict[str, Any], text: str) -> None:
    r = client.post("/v1/data", json=body, headers=bearer(sandbox))
    assert (r.status_code, r.json()) == (500, f"Something went wrong: {text}")
    assert sandbox.store.counts()["flowkit_datasets"] == 0


def test_lenient_values_are_accepted(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    body = dataset(data="2147483647")
    body["data_input"].append({"spatial_unit_ids": ["HT0111-02"], "data": -(2**31)})
    assert client.post("/v1/data", json=body, headers=h).status_code == 201
    two_units = {**dataset(dt="2020-03-01 00:00:00", data=True), "data_input": [
        {"spatial_unit_ids": ["HT0111-01", "HT0111-02"], "data": True}]}
    assert client.post("/v1/data", json=two_units, headers=h).status_code == 201
    stored = sandbox.store.query("SELECT data FROM flowkit_datasets WHERE dt = '2020-03-01'")
    assert json.loads(stored[0]["data"]) == [{"spatial_unit_ids": ["HT0111-01"], "data": True}]


def test_gzip_mismatches_answer_400(sandbox: Sandbox, client: httpx.Client) -> None:
    h = {**bearer(sandbox), "Content-Type": "application/json"}
    raw = json.dumps(dataset()).encode()
    zipped = {**h, "Content-Encoding": "gzip"}
    r = client.post("/v1/data", content=raw, headers=zipped)
    assert (r.status_code, r.json()) == (400, PARSE_ERROR)
    r = client.post("/v1/data", content=gzip.compress(raw), headers=h)
    assert (r.status_code, r.json()) == (400, PARSE_ERROR)
    assert sandbox.store.counts()["flowkit_datasets"] == 0
    assert client.post("/v1/data", content=gzip.compress(raw), headers=zipped
                       ).status_code == 201


# -- /setup and read visibility ----------------------------------------------------------------


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


def test_read_endpoints_follow_scope_mappings_per_category(sandbox: Sandbox,
                                                           client: httpx.Client) -> None:
    admin, h = bearer(sandbox, "flowkit_admin"), bearer(sandbox)
    client.post("/v1/setup", json=config(), headers=admin)
    assert client.get("/v1/categories", headers=h).json() == {"categories": []}
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    assert client.get("/v1/categories", headers=h).json() == {"categories": []}
    client.post("/v1/scope_mapping", json={"scope": "read:free_data", "mdid": mdid}, headers=h)
    cats = client.get("/v1/categories", headers=h).json()["categories"]
    assert [c["category_id"] for c in cats] == ["residents"]
    inds = client.get("/v1/indicators_for_category/residents", headers=h).json()["indicators"]
    assert [i["indicator_id"] for i in inds] == ["residents.residents", "residents.arrived"]
    assert client.get("/v1/indicators_for_category/relocations", headers=h).json() == {
        "indicators": []}
    both = forged(scope="admin read:free_data")  # admin alone may not read (second round)
    cats = client.get("/v1/categories", headers=both).json()["categories"]
    assert [c["category_id"] for c in cats] == ["residents", "relocations"]


# -- second round (flowkit-api.md, "Measured on the real backend, second round") ---------------

NO_READ = "Invalid token: Required permissions ['read:free_data'] not present"


@pytest.mark.parametrize("path", ["/v1/categories", "/v1/indicators_for_category/residents"])
def test_admin_only_token_may_not_read(sandbox: Sandbox, client: httpx.Client,
                                       path: str) -> None:
    client.post("/v1/setup", json=config(), headers=bearer(sandbox, "flowkit_admin"))
    r = client.get(path, headers=bearer(sandbox, "flowkit_admin"))
    assert (r.status_code, r.json()) == (401, NO_READ)
    assert client.get(path, headers=bearer(sandbox)).status_code == 200  # the updater reads


def test_scope_mapping_takes_the_mdid_as_a_string(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    r = client.post("/v1/scope_mapping", json={"scope": "public", "mdid": str(mdid)}, headers=h)
    assert r.status_code == 201 and isinstance(r.json(), int)
    rows = sandbox.store.query("SELECT mdid FROM flowkit_scope_mappings WHERE scope='public'")
    assert rows == [{"mdid": mdid}]
    again = client.post("/v1/scope_mapping", json={"scope": "public", "mdid": mdid}, headers=h)
    assert (again.status_code, again.json()) == (303, r.json())  # the same mapping


def test_query_lists_only_what_the_tokens_scopes_may_see(sandbox: Sandbox,
                                                         client: httpx.Client) -> None:
    h, admin = bearer(sandbox), bearer(sandbox, "flowkit_admin")
    body = {"category_id": "residents", "indicator_id": "residents.residents", "srid": 3,
            "trid": 2, "start_date": "2020-02", "duration": 3, "mdids_only": True}
    mdid = client.post("/v1/data", json=dataset(), headers=h).json()
    r = client.post("/v1/query", json=body, headers=h)
    assert (r.status_code, r.json()) == (404, "Category not found")  # the updater's scopes
    r = client.post("/v1/query", json=body, headers=admin)  # admin-only: its own mappings
    assert (r.status_code, r.json()["mdids"]) == (200, [str(mdid)])
    client.post("/v1/scope_mapping", json={"scope": "someone:else", "mdid": mdid}, headers=h)
    assert client.post("/v1/query", json=body, headers=admin).json()["mdids"] == [str(mdid)]
    r = client.post("/v1/query", json={**body, "category_id": "presence"}, headers=admin)
    assert (r.status_code, r.json()) == (404, "Category not found")


def test_post_data_without_a_body_is_a_json_500(sandbox: Sandbox, client: httpx.Client) -> None:
    r = client.post("/v1/data", content=b"", headers=bearer(sandbox))
    assert r.status_code == 500 and r.headers["content-type"].startswith("application/json")
    assert r.json() == "Something went wrong: 'NoneType' object has no attribute 'data_input'"


def test_a_rejected_post_uses_up_an_mdid(sandbox: Sandbox, client: httpx.Client) -> None:
    h = bearer(sandbox)
    first = client.post("/v1/data", json=dataset(), headers=h).json()
    r = client.post("/v1/data", json=dataset(dt="2020-03-01 00:00:00", data="NaN"), headers=h)
    assert r.status_code == 500
    later = client.post("/v1/data", json=dataset(dt="2020-04-01 00:00:00"), headers=h).json()
    assert later == first + 2  # mdids are not contiguous


def test_heartbeat_config_carries_many_keys_secrets_among_them(client: httpx.Client) -> None:
    config_keys = client.get("/v1/heartbeat").json()["config"]
    assert len(config_keys) >= 10
    assert {"db_password", "auth0_client_secret"} <= set(config_keys)
