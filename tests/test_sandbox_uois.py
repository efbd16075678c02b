"""The sandbox's UOIS GraphQL side over real HTTP: login3, mutations, errors, aliases."""

from __future__ import annotations

import gzip
import json

from sandbox_client import (
    EXTERNALID,
    GROUP,
    HTTP,
    INTERNAL,
    MEMBERSHIP,
    USER,
    gql,
    new_id,
    uois_token,
    user_vars,
)

from elt.sandbox.server import Sandbox

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
