"""REST publications to an API of the user's own (#30 points 1-4), published for real: the
sandbox's crud receiver over loopback for what gets stored, pytest-httpx where the exact
request (query string, headers) is the point. Paths built from the row, answers per op, ids
the API assigns used in later paths, headers and their secrets, Idempotency-Key, bodies."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from helpers import find_leaks, quiet_stats
from own_api import KEY_VAR, OwnApi, crud_items, crud_stats, new_statuses, put_upsert
from pytest_httpx import HTTPXMock

import elt.sandbox.crud as crud
from elt.sandbox.server import Sandbox

ENV = {KEY_VAR: crud.API_KEY}


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_VAR, crud.API_KEY)


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def statuses(results) -> dict[str, str]:  # noqa: ANN001
    return {r.name: r.status for r in results.results}


# -- point 1: paths built from the row ------------------------------------------------------
KEYS_MODEL = """SELECT * FROM (VALUES (1, 'a/b c', 'bolt'), (2, 'é ü?&#%', 'nut'),
  (3, NULL, 'washer'), (4, 'plain', 'screw')) t(id, sku, name)"""


def test_path_values_are_url_encoded_and_a_null_one_fails_only_its_row(
        tmp_path: Path, sb: Sandbox) -> None:
    p = OwnApi(tmp_path, f"{sb.url}/crud", KEYS_MODEL, put_upsert("/items/{sku}?upsert=true"))
    p.build()
    results = p.publish()
    assert statuses(results) == {"items": "error"}
    assert results.results[0].message.startswith("3/4 acknowledged"), p.out.getvalue()
    # slash, space, unicode, ?, &, #, % each arrived inside the one path segment
    assert {k: v["name"] for k, v in crud_items(sb).items()} == {
        "a/b c": "bolt", "é ü?&#%": "nut", "plain": "screw"}
    ledger = {key: (status, answer) for key, status, _, _, answer in p.ledger()}
    assert ledger["[3]"] == ("failed", "rest.insert: cannot build /items/{sku}?upsert=true: "
                                       "column 'sku' is NULL or missing")
    assert {k: s for k, (s, _) in ledger.items() if k != "[3]"} == {
        "[1]": "acknowledged", "[2]": "acknowledged", "[4]": "acknowledged"}
    # the failed row fails alone again; the others are not resent
    before = crud_stats(sb)
    p.publish()
    assert crud_stats(sb)["requests"] == before["requests"]


def test_key_values_are_one_encoded_segment_in_every_op(tmp_path: Path, sb: Sandbox) -> None:
    """Keys with a slash, spaces, unicode, `?`, `#`, `%`: PUT creates, PUT replaces and
    DELETE removes the item of exactly that key (mirror)."""
    keys = ["a/b c", "é ü?&#%", "50%/x y"]
    values = ", ".join(f"('{k}', 'v1')" for k in keys)
    p = OwnApi(tmp_path, f"{sb.url}/crud", f"SELECT * FROM (VALUES {values}) t(code, v)", """
key: [code]
mode: mirror
rest:
  insert: {method: PUT, path: "/items/{code}", success: [201]}
  update: {method: PUT, path: "/items/{code}", success: [200]}
  delete: {method: DELETE, path: "/items/{code}", success: [204]}
""")
    p.build()
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    assert sorted(crud_items(sb)) == sorted(keys)
    p.set_model("SELECT * FROM (VALUES ('a/b c', 'v2'), ('50%/x y', 'v1')) t(code, v)")
    p.build()
    before = crud_stats(sb)
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    after = crud_stats(sb)
    assert new_statuses(before, after) == {"200": 1, "204": 1}
    assert after["crud"]["é ü?&#%"]["deleted"] == 1 and after["crud"]["a/b c"]["replaced"] == 1
    assert {k: v["v"] for k, v in crud_items(sb).items()} == {"a/b c": "v2", "50%/x y": "v1"}


def test_a_templated_path_with_batch_size_is_refused_before_anything_is_sent(
        tmp_path: Path, sb: Sandbox) -> None:
    p = OwnApi(tmp_path, f"{sb.url}/crud", KEYS_MODEL, """
key: [id]
batch_size: 3
rest:
  insert: {method: PUT, path: "/items/{sku}"}
""")
    assert p.cli("build").code == 0
    before = crud_stats(sb)
    for args in (("publish",), ("publish", "--dry-run")):
        run = p.cli(*args)
        assert run.code == 1, run.output
        assert run.error_lines() == [
            "error: publication items: rest.insert names row columns (sku): such ops go one "
            "row per request, so batch_size must be 1 or absent, not 3"], run.output
        assert "Traceback" not in run.output
    assert crud_stats(sb)["requests"] == before["requests"]


# -- point 2: answers per op, ids the API assigns --------------------------------------------
SKUS = "SELECT * FROM (VALUES ('A-1', 'bolt'), ('B-2', 'nut'), ('C-3', 'washer')) t(sku, name)"


@pytest.mark.parametrize("answer", ["id", "location"])
def test_an_id_the_api_assigns_is_recorded_and_names_the_row_in_later_paths(
        tmp_path: Path, sb: Sandbox, answer: str) -> None:
    """POST /items without an id: the receiver assigns one (in its answer's `id` and in its
    `Location` header); PATCH and DELETE then go to /items/<that id>."""
    p = OwnApi(tmp_path, f"{sb.url}/crud", SKUS, f"""
key: [sku]
mode: mirror
rest:
  insert: {{method: POST, path: /items, success: [201], answer: {answer}}}
  update: {{method: PATCH, path: "/items/{{answer}}", success: [200]}}
  delete: {{method: DELETE, path: "/items/{{answer}}", success: [204]}}
""")
    p.build()
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    stored = crud_items(sb)
    assigned = {item["sku"]: item_id for item_id, item in stored.items()}
    assert sorted(assigned) == ["A-1", "B-2", "C-3"] and len(set(assigned.values())) == 3
    assert dict(p.sql("SELECT sku, answer FROM published.items")) == assigned

    p.set_model(SKUS.replace("'nut'", "'hex nut'").replace(", ('C-3', 'washer')", ""))
    p.build()
    before = crud_stats(sb)
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    after = crud_stats(sb)
    assert new_statuses(before, after) == {"200": 1, "204": 1}
    assert after["crud"][assigned["B-2"]]["patched"] == 1
    assert after["crud"][assigned["C-3"]]["deleted"] == 1
    assert {k: v["name"] for k, v in crud_items(sb).items()} == {
        assigned["A-1"]: "bolt", assigned["B-2"]: "hex nut"}
    # a PATCH answer without a Location (or with the id) keeps the id recorded
    assert p.sql("SELECT answer FROM published.items WHERE sku = 'B-2'") == [
        (assigned["B-2"],)]


ITEMS = "SELECT * FROM (VALUES (1, 'bolt'), (2, 'nut'), (3, 'washer')) t(id, name)"
PER_OP = """
key: [id]
mode: mirror
rest:
  success: [202]            # nothing answers 202: only the ops' own codes acknowledge
  insert: {method: POST, path: /items, success: [201], already_there: [409]}
  update: {method: PATCH, path: "/items/{id}", success: [200], not_found: [404]}
  delete: {method: DELETE, path: "/items/{id}", success: [204], not_found: [404]}
"""


def test_each_op_reads_its_own_success_already_there_and_not_found(
        tmp_path: Path, sb: Sandbox) -> None:
    headers = {crud.API_KEY_HEADER: crud.API_KEY}
    # the API has item 1 already (someone else's copy): POST answers 409
    assert httpx.put(f"{sb.url}/crud/items/1", json={"id": 1, "name": "old"},
                     headers=headers).status_code == 201
    p = OwnApi(tmp_path, f"{sb.url}/crud", ITEMS, PER_OP)
    p.build()
    before = crud_stats(sb)
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    # 409 is already_there: followed by the update, so the API holds the model's row
    assert new_statuses(before, crud_stats(sb)) == {"201": 2, "409": 1, "200": 1}
    assert crud_items(sb) == {"1": {"id": 1, "name": "bolt"}, "2": {"id": 2, "name": "nut"},
                              "3": {"id": 3, "name": "washer"}}

    # items 2 and 3 vanish at the API; row 2 changes (PATCH: 404, not_found: sent again as
    # an insert), row 3 leaves the model (DELETE: 404, not_found: gone already, as wanted)
    for item in ("2", "3"):
        assert httpx.delete(f"{sb.url}/crud/items/{item}", headers=headers).status_code == 204
    p.set_model("SELECT * FROM (VALUES (1, 'bolt'), (2, 'hex nut')) t(id, name)")
    p.build()
    before = crud_stats(sb)
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    assert new_statuses(before, crud_stats(sb)) == {"404": 2, "201": 1}
    assert crud_items(sb) == {"1": {"id": 1, "name": "bolt"}, "2": {"id": 2, "name": "hex nut"}}
    assert p.sql("SELECT key, status, op, coalesce(deleted, false) FROM _elt.ledger "
                 "ORDER BY key") == [("[1]", "acknowledged", "update", False),
                                     ("[2]", "acknowledged", "insert", False),
                                     ("[3]", "acknowledged", "delete", True)]
    before = crud_stats(sb)
    assert statuses(p.publish()) == {"items": "up_to_date"}
    assert crud_stats(sb)["requests"] == before["requests"]


# -- points 1-4 on the wire: exact requests (pytest-httpx) -----------------------------------
WIRE_MODEL = """SELECT * FROM (VALUES
  (1, 'a b/ü', DATE '2024-01-05', 1.50::DECIMAL(5, 2), NULL::VARCHAR, [1, 2],
   {'w': 2.5, 'unit': 'cm'}),
  (2, 'x', DATE '2024-02-29', 0.05::DECIMAL(5, 2), 'fragile', [], {'w': 1.0, 'unit': 'mm'})
) t(id, sku, added, price, note, tags, size)"""
WIRE = """
key: [id]
mode: upsert
rest:
  headers: {X-Tenant: acme}
  answer: data.id
  idempotency_key: true
  insert: {method: POST, path: "/items/{sku}?upsert=true&src=elt", success: [201],
           headers: {X-Row: "{id}"}}
  update: {method: PUT, path: "/things/{answer}", success: [200]}
"""


def test_requests_on_the_wire(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    """The query string as written, each value one encoded segment, the endpoint's,
    publication's and op's headers, the whole row as the body, a dotted `answer:` used in
    the next update's path, and the same Idempotency-Key when a failed row goes again."""
    seen: list[httpx.Request] = []
    failing = {"x"}

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST":
            sku = json.loads(request.content)["sku"]
            if sku in failing:
                return httpx.Response(500, text="busy")
            return httpx.Response(201, json={"data": {"id": f"srv-{len(seen)}"}})
        return httpx.Response(200, json={"ok": True})

    httpx_mock.add_callback(answer, is_reusable=True)
    p = OwnApi(tmp_path, "https://api.test/v1", WIRE_MODEL, WIRE, max_attempts=1)
    p.build()
    assert statuses(p.publish()) == {"items": "error"}
    first = {json.loads(r.content)["id"]: r for r in seen}
    one = first[1]
    assert (one.method, str(one.url)) == (
        "POST", "https://api.test/v1/items/a%20b%2F%C3%BC?upsert=true&src=elt")
    assert str(first[2].url) == "https://api.test/v1/items/x?upsert=true&src=elt"
    assert one.headers["x-api-key"] == crud.API_KEY  # the endpoint's, from the env var
    assert one.headers["x-tenant"] == "acme" and one.headers["x-row"] == "1"
    assert one.headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{32}", one.headers["idempotency-key"])
    # no body: declared: the whole row, typed as README's table says
    assert one.content == (b'{"id":1,"sku":"a b/\xc3\xbc","added":"2024-01-05","price":1.5,'
                           b'"note":null,"tags":[1,2],"size":{"w":2.5,"unit":"cm"}}')
    assert p.sql("SELECT id, answer FROM published.items ORDER BY id") == [("1", "srv-1"),
                                                                            ("2", "busy")]
    # the failed row again: the same Idempotency-Key (same row, op and body)
    failing.clear()
    seen.clear()
    assert statuses(p.publish()) == {"items": "success"}
    [again] = seen
    assert again.headers["idempotency-key"] == first[2].headers["idempotency-key"]
    # row 1 changes: PUT to the id its insert was answered with (data.id); a changed body
    # is another request, so another Idempotency-Key
    p.set_model(WIRE_MODEL.replace("'a b/ü'", "'a b/ü 2'"))
    p.build()
    seen.clear()
    assert statuses(p.publish()) == {"items": "success"}
    [put] = seen
    assert (put.method, str(put.url)) == ("PUT", "https://api.test/v1/things/srv-1")
    assert "x-row" not in put.headers and put.headers["x-tenant"] == "acme"
    assert put.headers["idempotency-key"] != one.headers["idempotency-key"]
    assert p.sql("SELECT answer FROM published.items WHERE id = '1'") == [("srv-1",)]


def test_batches_go_as_one_json_array_each(tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    bodies: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(201, json=[{"id": 100 + i["id"]} for i in
                                         json.loads(request.content)])

    httpx_mock.add_callback(answer, is_reusable=True)
    p = OwnApi(tmp_path, "https://api.test/v1", "SELECT range AS id, 'n' || range AS name "
               "FROM range(5)", "key: [id]\nbatch_size: 2\nrest:\n  insert: {method: POST, "
               "path: /items, answer: id}\n")
    p.build()
    assert statuses(p.publish()) == {"items": "success"}
    assert sorted(bodies) == [b'[{"id":0,"name":"n0"},{"id":1,"name":"n1"}]',
                              b'[{"id":2,"name":"n2"},{"id":3,"name":"n3"}]',
                              b'[{"id":4,"name":"n4"}]']
    assert p.sql("SELECT id, answer FROM published.items ORDER BY id") == [
        (str(i), str(100 + i)) for i in range(5)]


# -- point 3: headers and their secrets, Idempotency-Key ------------------------------------
def test_an_api_key_from_env_var_never_reaches_output_logs_ledger_or_database(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "canary-crud-key-0f9e8d7c6b5a"
    monkeypatch.setattr(crud, "API_KEY", canary)  # the only key the receiver accepts
    env = {KEY_VAR: canary, "ELT_LOG_LEVEL": "debug"}
    with Sandbox(None) as sb:
        p = OwnApi(tmp_path / "proj", f"{sb.url}/crud", ITEMS, """
key: [id]
mode: upsert
rest:
  headers: {X-Client: elt-tests}
  insert: {method: PUT, path: "/items/{id}", success: [201]}
  update: {method: PUT, path: "/items/{id}", success: [200], headers: {X-Op: update}}
""")
        runs = [p.cli("build", env=env), p.cli("publish", env=env)]
        assert [r.code for r in runs] == [0, 0], runs[-1].output
        assert len(crud_items(sb)) == 3  # the key was sent: the receiver let them in
        wrong = p.cli("publish", "--full-refresh", "--yes",
                      env={**env, KEY_VAR: "canary-wrong-key"})
        assert wrong.code == 1 and "401" in wrong.output, wrong.output
        runs += [wrong, p.cli("status", env=env),
                 p.cli("sql", "SELECT * FROM _elt.ledger", "--format", "json", env=env)]
    log = (p.root / "target" / "logs" / "elt.log").read_text()
    assert "PUT /crud/items/1" in log  # requests were logged at debug: not vacuous
    assert not find_leaks(p.root, [r.output for r in runs])


def test_idempotency_key_makes_a_resend_after_a_timeout_one_stored_row(
        tmp_path: Path, sb: Sandbox) -> None:
    """POST /items (the receiver assigns ids) times out while the receiver goes on; the
    next publish sends the row again with the same Idempotency-Key, which the receiver
    answers with its first answer: one item per row, not two."""
    p = OwnApi(tmp_path, f"{sb.url}/crud", SKUS, """
key: [sku]
rest:
  insert: {method: POST, path: /items, success: [201], answer: id}
  idempotency_key: true
""", timeout=1)
    p.build()
    sb.set_faults(slow_rate=1.0, slow_seconds=5.0)  # answered long after the client gave up
    results = p.publish()
    assert statuses(results) == {"items": "error"}
    assert "timed out" in p.out.getvalue()
    assert {s for _, s, _, _, _ in p.ledger()} == {"unknown"}
    sb.set_faults()
    quiet_stats(sb, timeout=120)  # the stalled first copies are stored by now
    assert len(crud_items(sb)) == 3
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    after = crud_stats(sb)
    assert len(crud_items(sb)) == 3  # without the key: 6, each resend a new item
    assert sorted(c["replayed"] for c in after["crud"].values()) == [1, 1, 1]
    assert sorted(a for _, _, _, _, a in p.ledger()) == sorted(crud_items(sb))


# -- point 4: bodies ---------------------------------------------------------------------------
def test_one_json_column_is_the_body_as_it_is(tmp_path: Path, sb: Sandbox) -> None:
    """`body: payload`: a JSON column (or JSON text in a VARCHAR) is sent as it is, not
    wrapped in the row; the other columns only name the path."""
    p = OwnApi(tmp_path, f"{sb.url}/crud", """SELECT * FROM (VALUES
  (1, '{"name": "bolt", "dims": {"l": 10}, "tags": ["m3"]}'::JSON),
  (2, '{"name":"nut","price":0.05,"note":null}')) t(id, payload)""", """
key: [id]
body: payload
rest:
  insert: {method: PUT, path: "/items/{id}", success: [201]}
""")
    p.build()
    assert statuses(p.publish()) == {"items": "success"}, p.out.getvalue()
    assert crud_items(sb) == {
        "1": {"name": "bolt", "dims": {"l": 10}, "tags": ["m3"], "id": "1"},
        "2": {"name": "nut", "price": 0.05, "note": None, "id": "2"}}


# -- point 5: upsert and keys the model dropped --------------------------------------------------
def test_keys_an_upsert_model_dropped_are_counted_orphaned_and_named_once(
        tmp_path: Path, sb: Sandbox) -> None:
    p = OwnApi(tmp_path, f"{sb.url}/crud", ITEMS, put_upsert())
    p.build()
    assert not p.publish().failed
    p.set_model("SELECT * FROM (VALUES (1, 'bolt')) t(id, name)")
    p.build()
    status = p.cli("status", "--format", "json")
    assert status.code == 0, status.output
    [row] = json.loads(status.stdout)
    assert (row["publication"], row["orphaned"], row["pending"]) == ("items", 2, 0), row
    before = crud_stats(sb)
    run = p.cli("publish")
    assert run.code == 0, run.output
    hints = [line for line in run.output.splitlines() if "orphan" in line or "mirror" in line]
    assert hints == ["warning: publication items: 2 key(s) acknowledged earlier are no longer "
                     "in the model and stay at the endpoint (mode upsert never deletes; `mode: "
                     "mirror` deletes them)"], run.output
    assert crud_stats(sb)["requests"] == before["requests"]  # upsert never deletes
    assert sorted(crud_items(sb)) == ["1", "2", "3"]
