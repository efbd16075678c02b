"""The sandbox's UOIS GraphQL side over real HTTP: login3, mutations, errors per service
(gql_ug vs gql_externalids), aliases, gzip, each answering as measured on the real services."""

from __future__ import annotations

import base64
import gzip
import json

import pytest
from sandbox_client import (
    EXTERNALID,
    EXTTYPE,
    GROUP,
    GROUPTYPE,
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
from elt.sandbox.uois_types import DEMO_GROUPTYPES

PARSE_ERROR = {"detail": "There was an error parsing the body"}


def test_login3_answers_like_the_mock_oauth_server(sandbox: Sandbox) -> None:
    auth = sandbox.endpoint_config("uois")["auth"]
    url = auth["login_url"]
    key = HTTP.get(url).json()["key"]
    r = HTTP.post(url, json={"key": key, "username": auth["username"], "password": "anything"})
    assert r.status_code == 200  # any password for a known user
    claims = json.loads(base64.urlsafe_b64decode(r.json()["token"].split(".")[1] + "=="))
    assert set(claims) == {"token_type", "access_token", "expires_in", "refresh_token",
                           "user_id"}
    assert claims["expires_in"] == 3600  # and no `exp`
    r = HTTP.post(url, json={"key": key, "username": auth["username"], "password": "x"})
    assert (r.status_code, r.headers["location"]) == (303, "./login3")  # a used key
    r = HTTP.post(url, json={"key": "never-issued", "username": auth["username"]})
    assert (r.status_code, r.headers["location"]) == (303, "./login3")
    key = HTTP.get(url).json()["key"]
    r = HTTP.post(url, json={"key": key, "username": "nobody@world.com", "password": "x"})
    assert (r.status_code, r.text) == (500, "Internal Server Error")


def test_unauthenticated_echoes_query_and_variables(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/api/gql"
    uid = "5b0e3f5e-93aa-4bd3-a8bd-0c4fdc53f0a1"
    body = {"query": "{ userPage { id } }",
            "variables": {"email": "a@b.c", "id_0": uid, "n": None, "ok": True}}
    for headers in ({}, {"Cookie": "authorization=junk"}, {"Authorization": "Bearer junk"}):
        r = HTTP.post(url, json=body, headers=headers)
        assert (r.status_code, r.json()) == (401, {"data": None, "errors": [  # a Python repr
            "Unauthenticated", "{ userPage { id } }",
            f"{{'email': 'a@b.c', 'id_0': UUID('{uid}'), 'n': None, 'ok': True}}"]})
    tok = uois_token(sandbox)
    r = HTTP.post(url, json=body, headers={"Authorization": f"Bearer {tok}"})
    assert (r.status_code, r.json()) == (200, {"data": {"userPage": []}})
    # the front end forwards only Authorization: a token sent only as a cookie never arrives
    r = HTTP.post(url, json=body, headers={"Cookie": f"authorization={tok}"})
    assert r.status_code == 401


def test_gzip_bodies_answer_400(sandbox: Sandbox) -> None:
    raw = json.dumps({"query": "{ userPage { id } }"}).encode()
    for auth in ({}, {"Authorization": f"Bearer {uois_token(sandbox)}"}):
        r = HTTP.post(f"{sandbox.url}/api/gql", content=gzip.compress(raw), headers={
            "Content-Encoding": "gzip", "Content-Type": "application/json", **auth})
        assert (r.status_code, r.json()) == (400, PARSE_ERROR)


def test_inserts_and_reads(sandbox: Sandbox) -> None:
    tok = uois_token(sandbox)
    uid, gid, mid = new_id(), new_id(), new_id()
    r = gql(sandbox, USER, user_vars(uid), tok).json()
    assert r["data"]["result"]["msg"] == "ok" and r["data"]["result"]["result"]["id"] == uid
    r = gql(sandbox, GROUP, {"id": gid, "name": "G", "grouptype_id": GROUPTYPE}, tok).json()
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


def test_duplicate_id_is_a_bare_ug_error_on_http_200(sandbox: Sandbox) -> None:
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    r = gql(sandbox, USER, user_vars(uid), tok)
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None and len(body["errors"]) == 1
    (error,) = body["errors"]
    assert set(error) == {"msg"}  # no path, no locations, no message
    assert "UniqueViolationError" in error["msg"]
    assert f"Key (id)=({uid}) already exists" in error["msg"]
    assert "j@n.org" in error["msg"]  # the SQL parameters, as the real text carries them


def test_membership_of_missing_group_is_fk_violation(sandbox: Sandbox) -> None:
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    r = gql(sandbox, MEMBERSHIP, {"id": new_id(), "user_id": uid, "group_id": new_id()}, tok)
    assert r.status_code == 200 and r.json()["data"] is None
    assert "ForeignKeyViolationError" in r.json()["errors"][0]["msg"]
    assert sandbox.store.counts()["uois_memberships"] == 0


def test_group_valid_and_mastergroup_parent_first(sandbox: Sandbox) -> None:
    tok, parent, child, gtype = uois_token(sandbox), new_id(), new_id(), GROUPTYPE
    doc = """mutation ($id: UUID!, $name: String!, $t: UUID!, $m: UUID, $v: Boolean) {
      result: groupInsert(group: {id: $id, name: $name, grouptypeId: $t, mastergroupId: $m,
                                  valid: $v}) { id msg } }"""
    r = gql(sandbox, doc, {"id": child, "name": "C", "t": gtype, "m": parent, "v": True}, tok)
    assert r.json()["data"] is None
    assert 'Key (mastergroup_id)=(' in r.json()["errors"][0]["msg"]
    for gid, master in ((parent, None), (child, parent)):
        r = gql(sandbox, doc, {"id": gid, "name": "G", "t": gtype, "m": master, "v": False}, tok)
        assert r.json()["data"]["result"]["msg"] == "ok", r.text
    rows = sandbox.store.query("SELECT id, mastergroup_id, valid FROM uois_groups ORDER BY seq")
    assert rows == [{"id": parent, "mastergroup_id": None, "valid": False},
                    {"id": child, "mastergroup_id": parent, "valid": False}]


def test_ug_aliases_run_in_order_and_stop_at_the_first_failure(sandbox: Sandbox) -> None:
    tok, uid, gid, mid, other = uois_token(sandbox), new_id(), new_id(), new_id(), new_id()
    doc = """mutation ($u: UUID!, $g: UUID!, $t: UUID!, $m: UUID!, $o: UUID!) {
      a: userInsert(user: {id: $u, name: "A"}) { id msg }
      b: userInsert(user: {id: $m, name: "B"}) { id msg }
      c: groupInsert(group: {id: $g, name: "G", grouptypeId: $t}) { id msg }
      d: userInsert(user: {id: $o, name: "D"}) { id msg } }"""
    r = gql(sandbox, doc, {"u": uid, "g": gid, "t": GROUPTYPE, "m": uid, "o": other}, tok)
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None and [set(e) for e in body["errors"]] == [{"msg"}]
    assert f"Key (id)=({uid}) already exists" in body["errors"][0]["msg"]
    assert [u["id"] for u in sandbox.store.query("SELECT id FROM uois_users")] == [uid]  # a
    assert sandbox.store.counts()["uois_groups"] == 0  # c was not run
    stats = HTTP.get(f"{sandbox.url}/_sandbox/stats").json()["uois"]
    assert stats[uid] == {"received": 2, "accepted": 1, "rejected": 0, "duplicates": 1,
                          "inserted": 1, "races": 0}
    assert gid not in stats and other not in stats
    ok = gql(sandbox, doc, {"u": new_id(), "g": gid, "t": GROUPTYPE, "m": mid, "o": other},
             tok).json()
    assert [ok["data"][k]["msg"] for k in "abcd"] == ["ok"] * 4 and "errors" not in ok


def test_externalids_errors_keep_path_and_per_field_nulls(sandbox: Sandbox) -> None:
    tok, eid, type_id = uois_token(sandbox), new_id(), EXTTYPE
    doc = """mutation ($e: UUID!, $t: UUID!, $i1: UUID!, $i2: UUID!) {
      a: externalidInsert(externalid: {id: $e, innerId: $i1, typeidId: $t, outerId: "1"}) {
        id msg }
      b: externalidInsert(externalid: {id: $e, innerId: $i2, typeidId: $t, outerId: "2"}) {
        id msg }
      c: externalidInsert(externalid: {innerId: $i2, typeidId: $t, outerId: "3"}) { msg } }"""
    r = gql(sandbox, doc, {"e": eid, "t": type_id, "i1": new_id(), "i2": new_id()}, tok)
    body = r.json()
    assert r.status_code == 200
    assert body["data"] == {"a": {"id": eid, "msg": "ok"}, "b": None, "c": {"msg": "ok"}}
    (error,) = body["errors"]
    assert error["path"] == ["b"] and "UniqueViolationError" in error["msg"]
    assert "message" not in error and error["locations"] == [[4, 7]]  # [line, column] pairs
    assert {"nodes", "source", "original_error", "msg_e"} <= set(error)


def test_externalid_fail_on_exact_triple_and_other_inner_accepted(sandbox: Sandbox) -> None:
    tok, inner, other, type_id = uois_token(sandbox), new_id(), new_id(), EXTTYPE
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


# -- second round (uois-graphql.md, "Measured on the real services, second round") -------------

GROUPTYPE_INSERT = """mutation ($id: UUID!, $name: String!, $name_en: String) {
  result: groupTypeInsert(groupType: {id: $id, name: $name, nameEn: $name_en}) {
    id msg result: groupType { id name } } }"""
EXTTYPE_INSERT = """mutation ($id: UUID!, $name: String!, $urlformat: String) {
  result: externaltypeidInsert(externaltypeid: {id: $id, name: $name, urlformat: $urlformat}) {
    id msg result: externaltypeid { id name } } }"""


def test_group_of_an_unknown_group_type_is_a_fk_error_and_stores_nothing(
        sandbox: Sandbox) -> None:
    tok, gid, gtype = uois_token(sandbox), new_id(), new_id()
    r = gql(sandbox, GROUP, {"id": gid, "name": "G", "grouptype_id": gtype}, tok)
    assert r.status_code == 200
    body = r.json()
    assert body["data"] is None and [set(e) for e in body["errors"]] == [{"msg"}]
    msg = body["errors"][0]["msg"]
    assert 'violates foreign key constraint "groups_grouptype_id_fkey"' in msg
    assert f'Key (grouptype_id)=({gtype}) is not present in table "grouptypes"' in msg
    assert sandbox.store.counts()["uois_groups"] == 0
    # a fresh installation has only its demo types; once the type exists the group goes in
    made = gql(sandbox, GROUPTYPE_INSERT, {"id": gtype, "name": "katedra"}, tok).json()
    assert made["data"]["result"] == {"id": gtype, "msg": "ok",
                                      "result": {"id": gtype, "name": "katedra"}}
    again = gql(sandbox, GROUPTYPE_INSERT, {"id": gtype, "name": "katedra"}, tok).json()
    assert again["data"] is None and "UniqueViolationError" in again["errors"][0]["msg"]
    r = gql(sandbox, GROUP, {"id": gid, "name": "G", "grouptype_id": gtype}, tok).json()
    assert r["data"]["result"]["msg"] == "ok"
    q = "query ($id: UUID!) { groupTypeById(id: $id) { name } groupTypePage(limit: 10) { id } }"
    read = gql(sandbox, q, {"id": gtype}, tok).json()["data"]
    assert read["groupTypeById"] == {"name": "katedra"}
    assert {t["id"] for t in read["groupTypePage"]} == {gtype, *(t[0] for t in DEMO_GROUPTYPES)}


def test_membership_of_an_unknown_group_or_user_keeps_the_fields_before_it(
        sandbox: Sandbox) -> None:
    tok, uid, gid, first = uois_token(sandbox), new_id(), new_id(), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    gql(sandbox, GROUP, {"id": gid, "name": "G", "grouptype_id": GROUPTYPE}, tok)
    doc = """mutation ($a: UUID!, $u: UUID!, $g: UUID!, $x: UUID!, $ng: UUID!) {
      a: membershipInsert(membership: {id: $a, userId: $u, groupId: $g}) { id msg }
      b: membershipInsert(membership: {userId: $u, groupId: $ng}) { id msg }
      c: membershipInsert(membership: {id: $x, userId: $u, groupId: $g}) { id msg } }"""
    unknown_group = new_id()
    r = gql(sandbox, doc, {"a": first, "u": uid, "g": gid, "x": new_id(), "ng": unknown_group},
            tok).json()
    assert r["data"] is None and [set(e) for e in r["errors"]] == [{"msg"}]
    assert f"Key (group_id)=({unknown_group}) is not present" in r["errors"][0]["msg"]
    assert [m["id"] for m in sandbox.store.query("SELECT id FROM uois_memberships")] == [first]
    unknown_user = new_id()
    r = gql(sandbox, MEMBERSHIP, {"id": new_id(), "user_id": unknown_user, "group_id": gid},
            tok).json()
    assert r["data"] is None
    assert f'Key (user_id)=({unknown_user}) is not present in table "users"' in r["errors"][0][
        "msg"]


def test_externalid_of_an_unknown_type_is_null_with_path_and_the_others_run(
        sandbox: Sandbox) -> None:
    tok, inner, unknown = uois_token(sandbox), new_id(), new_id()
    doc = ("mutation ($i: UUID!, $t: UUID!, $u: UUID!) {\n"
           "  r0: externalidInsert(externalid: {innerId: $i, typeidId: $t, outerId: \"1\"}) "
           "{ msg }\n"
           "  r1: externalidInsert(externalid: {innerId: $i, typeidId: $u, outerId: \"2\"}) "
           "{ msg }\n"
           "  r2: externalidInsert(externalid: {innerId: $i, typeidId: $t, outerId: \"3\"}) "
           "{ msg } }")
    r = gql(sandbox, doc, {"i": inner, "t": EXTTYPE, "u": unknown}, tok)
    body = r.json()
    assert r.status_code == 200
    assert body["data"] == {"r0": {"msg": "ok"}, "r1": None, "r2": {"msg": "ok"}}
    (error,) = body["errors"]
    assert (error["path"], error["locations"]) == (["r1"], [[3, 3]])
    assert "ForeignKeyViolationError" in error["msg"] and "externalids_typeid_id_fkey" in error[
        "msg"]
    stored = sandbox.store.query("SELECT outer_id FROM uois_externalids ORDER BY outer_id")
    assert [row["outer_id"] for row in stored] == ["1", "3"]
    made = gql(sandbox, EXTTYPE_INSERT, {"id": unknown, "name": "ORCID"}, tok).json()
    assert made["data"]["result"]["msg"] == "ok"
    assert gql(sandbox, EXTERNALID, {"type_id": unknown, "inner_id": inner, "outer_id": "2"},
               tok).json()["data"]["result"]["msg"] == "ok"
    q = "query ($id: UUID!) { externalidtypeById(id: $id) { name } }"
    assert gql(sandbox, q, {"id": unknown}, tok).json()["data"] == {
        "externalidtypeById": {"name": "ORCID"}}


def test_database_error_text_carries_python_values_and_a_graphql_excerpt(
        sandbox: Sandbox) -> None:
    tok, uid = uois_token(sandbox), new_id()
    gql(sandbox, USER, user_vars(uid), tok)
    msg = gql(sandbox, USER, user_vars(uid), tok).json()["errors"][0]["msg"]
    assert f"Key (id)=({uid}) already exists" in msg
    assert f"[parameters: (UUID('{uid}'), 'John', 'Newbie', 'j@n.org'" in msg
    assert "\n\nGraphQL request:2:3\n" in msg and "result: userInsert(" in msg
    doc = """mutation ($id: UUID!, $t: UUID!) {
      result: groupInsert(group: {id: $id, name: "G", grouptypeId: $t}) { msg } }"""
    msg = gql(sandbox, doc, {"id": new_id(), "t": new_id()}, tok).json()["errors"][0]["msg"]
    assert ", None, " in msg or ", None)" in msg  # the unset nameEn etc. as Python None


@pytest.mark.parametrize(("doc", "variables", "text"), [
    ("mutation { result: userInsert(user: {id: 1 }", {}, "Syntax Error: Expected Name"),
    ("{ userPage { nosuchfield } }", {}, "Cannot query field 'nosuchfield'"),
    (USER, {"name": "A", "surname": "B", "email": "c@d.e"},
     "Variable '$id' of required type 'UUID!' was not provided."),
], ids=["syntax", "validation", "missing-variable"])
def test_ug_request_errors_are_bare_msg_with_the_excerpt(sandbox: Sandbox, doc: str,
                                                         variables: dict[str, str],
                                                         text: str) -> None:
    r = gql(sandbox, doc, variables)
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"errors"}  # no data
    assert all(set(e) == {"msg"} for e in body["errors"])  # no message, no locations
    assert text in body["errors"][0]["msg"]
    assert "\n\nGraphQL request:1:" in body["errors"][0]["msg"]


def test_bodies_that_are_not_json_answer_fastapis_422(sandbox: Sandbox) -> None:
    auth = {"Authorization": f"Bearer {uois_token(sandbox)}", "Content-Type": "application/json"}
    for headers in (auth, {"Content-Type": "application/json"}):  # before any auth check
        r = HTTP.post(f"{sandbox.url}/api/gql", content=b"{not json", headers=headers)
        assert r.status_code == 422
        (detail,) = r.json()["detail"]
        assert (detail["type"], detail["loc"], detail["msg"]) == (
            "json_invalid", ["body", 1], "JSON decode error")
    login = sandbox.endpoint_config("uois")["auth"]["login_url"]
    key = HTTP.get(login).json()["key"]
    r = HTTP.post(login, data={"key": key, "username": "john.newbie@world.com", "password": "x"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["type"] == "model_attributes_type"
    r = HTTP.post(login, content=b"key=", headers={"Content-Type": "application/json"})
    assert (r.status_code, r.json()["detail"][0]["type"]) == (422, "json_invalid")


def test_get_on_the_graphql_endpoint_is_a_plain_405(sandbox: Sandbox) -> None:
    r = HTTP.get(f"{sandbox.url}/api/gql")
    assert r.status_code == 405 and r.headers["content-type"].startswith("text/plain")
