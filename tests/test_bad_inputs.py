"""A corpus of malformed inputs, one test each, through the real CLI.

Every case starts from a copy of one project that had a good build and a good publish (to a
sandbox), breaks one thing, runs one command and asserts: exit code 1, exactly one `error:`
line that names the file and line (or model, or endpoint) at fault, no traceback, and the
previous good tables and ledger intact. A header-only CSV or a JSON export without its key
fails too, unless its seed says `allow_empty: true`.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    DATASETS,
    FLOWKIT_REST,
    GQL,
    db_query,
    elt,
    sandbox_endpoints,
    snapshot,
    write_files,
    write_profile,
)
from peer import Peer

from elt.sandbox.server import Sandbox

PEOPLE = 'id,name,age,city_id\n1,ann,31,10\n2,"bob, jr",42,20\n3,cid,27,10\n4,dan,55,30\n'
SYSTEM = {"users": [{"id": f"00000000-0000-4000-8000-00000000000{i}", "name": f"N{i}",
                     "surname": f"S{i}", "email": f"u{i}@x.test"} for i in range(1, 4)],
          "groups": [{"id": "g1"}]}
GRAPHQL = ("{document: uois/user.gql, result: result.msg, success: ok, already_there: [fail], "
           "answer: result.id}")
GOOD = {
    "seeds/seeds.yml": """
        seeds:
          people: {path: people.csv, columns: {age: INTEGER}}
          events: {path: events.json, format: json}
          users: {path: system.json, json_key: users}
        """,
    "seeds/people.csv": PEOPLE,
    "seeds/cities.csv": "id,city\n10,Oslo\n20,Rome\n30,Lima\n",
    "seeds/events.json": json.dumps([{"id": 1, "kind": "a"}, {"id": 2, "kind": "b"}]),
    "seeds/system.json": json.dumps(SYSTEM),
    "models/staging/stg_people.sql": """
        /* elt
        description: people, cleaned
        columns:
          id: {tests: [not_null]}
        tests:
          - unique: [id]
        */
        SELECT id, upper(name) AS name, age, city_id FROM raw.people
        """,
    "models/marts/people_cities.sql": """
        SELECT p.id, p.name, p.age, c.city
        FROM stg_people AS p JOIN raw.cities AS c ON c.id = p.city_id
        """,
    "models/marts/events_clean.sql": "SELECT id, kind FROM raw.events\n",
    "models/uois/users_out.sql": "SELECT id, name, surname, email FROM raw.users\n",
    "models/uois/extra_users.sql": (
        "SELECT md5('extra' || i)::UUID::VARCHAR AS id, 'X' || i AS name, 'Y' AS surname, "
        "'x' || i || '@x.test' AS email FROM range(2) t(i)\n"),
    "models/flowkit/datasets.sql": DATASETS.format(n=4, value="i + 1", start="2020-01-01"),
    "models/flowkit/extra_datasets.sql": DATASETS.format(n=3, value="i + 1", start="2021-01-01"),
    "models/uois/user.gql": GQL["user"],
    "models/publications.yml": f"""
        publications:
          data:
            {{model: datasets, endpoint: flowkit, kind: rest, body: payload,
             key: [category_id, indicator_id, srid, trid, dt], rest: {FLOWKIT_REST}}}
          extra:
            {{model: extra_datasets, endpoint: extra, kind: rest, body: payload,
             key: [category_id, indicator_id, srid, trid, dt], rest: {FLOWKIT_REST}}}
          users:
            {{model: users_out, endpoint: uois, kind: graphql, key: [id], batch_size: 2,
             graphql: {GRAPHQL}}}
          extra_users:
            {{model: extra_users, endpoint: uois, kind: graphql, key: [id],
             graphql: {GRAPHQL}}}
        """,
}
# `extra` and `extra_users` are never published by the good run: they still have rows to
# send, so the endpoint cases reach the network.
FAST = {"timeout": 2, "max_attempts": 2}


@dataclass
class World:
    """What cases may point endpoints at."""

    sandbox: Sandbox
    peer: Peer

    def endpoints(self, **extra: Any) -> dict[str, Any]:
        found = sandbox_endpoints(self.sandbox, ("flowkit", "uois"), **FAST)
        found["extra"] = {**self.sandbox.endpoint_config("flowkit"), **FAST}
        for name, value in extra.items():
            found[name] = value(self) if callable(value) else value
        return found


def _peer_routes() -> dict[tuple[str, str], Any]:
    json_ct = {"Content-Type": "application/json"}
    return {
        ("POST", "/r401/data"): (401, json_ct, b'"Invalid token: Required permissions '
                                               b'[\'write:data\'] not present"'),
        ("POST", "/r403/data"): (403, json_ct, b'{"detail": "Forbidden: scope mismatch"}'),
        ("POST", "/r422/data"): (422, json_ct, b'{"detail": "metadata.dt: invalid datetime"}'),
        ("POST", "/loop/data"): (307, {"Location": "/loop/data"}, b""),
        ("GET", "/beatloop/heartbeat"): (302, {"Location": "/beatloop/heartbeat"}, b""),
        ("GET", "/gone/heartbeat"): (404, json_ct, b'{"detail": "Not Found"}'),
        ("POST", "/token401"): (401, json_ct, b'{"error": "access_denied", '
                                              b'"error_description": "Unauthorized"}'),
    }


def _peer_endpoint(prefix: str, **auth: Any) -> Callable[[World], dict[str, Any]]:
    def make(world: World) -> dict[str, Any]:
        return {"url": f"{world.peer.url}/{prefix}", "heartbeat": "/heartbeat", **FAST,
                "auth": auth or {"type": "bearer", "token": "t0k3n-for-the-peer"}}
    return make


@dataclass
class Case:
    files: dict[str, str | bytes | None] = field(default_factory=dict)
    expect: tuple[str, ...] = ()  # each must appear in the one error line
    command: tuple[str, ...] = ("build",)
    endpoints: dict[str, Any] | None = None  # replace these endpoints in profiles.yml
    profile: str | None = None  # replace profiles.yml entirely
    changed: tuple[str, ...] = ()  # tables a failing run may legitimately change
    ok: str | None = None  # the run succeeds, and its output matches this regex


def _truncate(text: str, at: str) -> bytes:
    return text[: text.index(at) + len(at)].encode()


CASES: dict[str, Case] = {
    # -- raw files ------------------------------------------------------------------------
    "csv_truncated_mid_row": Case(
        {"seeds/people.csv": _truncate(PEOPLE, "4,dan")}, ("seeds/people.csv",)),
    "csv_truncated_mid_quote": Case(
        {"seeds/people.csv": _truncate(PEOPLE, '2,"bob')}, ("seeds/people.csv", "quote")),
    "csv_ragged_row": Case(
        {"seeds/people.csv": PEOPLE + "5,eve,33,10,extra,cells\n"}, ("seeds/people.csv:6",)),
    "csv_wrong_delimiter": Case(
        {"seeds/people.csv": PEOPLE.replace(",", ";")}, ("seeds/people.csv", "delimiter")),
    "csv_not_utf8": Case(
        {"seeds/people.csv": PEOPLE.encode() + "5,Ren\xe9e,40,10\n".encode("latin-1")},
        ("seeds/people.csv", "UTF-8")),
    "csv_empty_file": Case({"seeds/cities.csv": b""}, ("seeds/cities.csv", "empty")),
    "csv_text_in_typed_column": Case(
        {"seeds/people.csv": PEOPLE + "5,eve,thirty,10\n"},
        ("seeds/people.csv", "'age'", "thirty")),
    "csv_missing_column_used_by_model": Case(
        {"seeds/cities.csv": "id,town\n10,Oslo\n"}, ("people_cities", "city"),
        changed=('"raw"."cities"',)),
    "csv_header_only": Case(  # an empty export would empty raw.cities and the join over it
        {"seeds/cities.csv": "id,city\n"}, ("seeds/cities.csv", "only a header", "allow_empty")),
    "csv_header_only_allowed": Case(  # declared: 0 rows, and the downstream join is empty
        {"seeds/cities.csv": "id,city\n", "seeds/seeds.yml": GOOD["seeds/seeds.yml"]
         + "  cities: {allow_empty: true}\n"}, ok=r"raw\.cities +success +0 rows",
        changed=('"raw"."cities"', '"main"."people_cities"')),
    "csv_gzip_corrupt": Case(
        {"seeds/cities.csv": None, "seeds/cities.csv.gz": b"\x1f\x8bnot really gzip"},
        ("seeds/cities.csv.gz",)),
    "json_not_a_list": Case(
        {"seeds/events.json": '"just a string"'}, ("seeds/events.json", "list of objects")),
    "json_single_object_is_one_row": Case(  # DuckDB reads one object as one record: sane
        {"seeds/events.json": '{"id": 7, "kind": "z"}'}, ok=r"raw\.events +success +1 rows",
        changed=('"raw"."events"', '"main"."events_clean"')),
    "json_items_not_objects": Case(
        {"seeds/events.json": "[1, 2, 3]"}, ("seeds/events.json", "item 0")),
    "json_syntax_error": Case(
        {"seeds/events.json": '[{"id": 1, "kind": "a"}, {"id": 2,'}, ("seeds/events.json",)),
    "json_key_not_a_list": Case(
        {"seeds/system.json": json.dumps({"users": {"id": 1}})},
        ("seeds/system.json", "'users'")),
    "json_key_missing": Case(  # raw.users and every model over it would have 0 rows
        {"seeds/system.json": json.dumps({"groups": SYSTEM["groups"]})},
        ("seeds/system.json", "key 'users' is missing", "allow_empty")),
    "json_key_item_not_object": Case(
        {"seeds/system.json": json.dumps({"users": [SYSTEM["users"][0], "bob"]})},
        ("seeds/system.json", "item 1")),
    # -- configuration --------------------------------------------------------------------
    "seeds_yml_bad_yaml": Case(
        {"seeds/seeds.yml": "seeds:\n  people: {path: people.csv\n  events: x\n"},
        ("seeds/seeds.yml:",)),
    "seeds_yml_unknown_option": Case(
        {"seeds/seeds.yml": "seeds:\n  people: {path: people.csv, delimeter: ';'}\n"},
        ("seeds/seeds.yml", "delimeter")),
    "seeds_yml_glob_matches_nothing": Case(
        {"seeds/seeds.yml": "seeds:\n  people: {path: nobody/*.csv}\n"},
        ("seeds/seeds.yml", "nobody/*.csv")),
    "profiles_bad_yaml": Case(profile="elt:\n  target: local\n  outputs: [\n",
                              expect=("profiles.yml:",)),
    "profiles_unknown_target": Case(
        profile="elt: {target: nope, outputs: {local: {type: duckdb}}}\n",
        expect=("profiles.yml", "nope")),
    "profiles_unknown_env_var": Case(
        profile="elt:\n  target: local\n  outputs:\n    local:\n      type: duckdb\n"
                "      path: \"{{ env_var('ELT_TEST_SURELY_UNSET') }}\"\n",
        expect=("profiles.yml", "ELT_TEST_SURELY_UNSET")),
    # -- models ---------------------------------------------------------------------------
    "model_syntax_error": Case(
        {"models/marts/events_clean.sql": "SELECT id, kind FROM raw.events WHERE (\n"},
        ("models/marts/events_clean.sql:", "events_clean")),
    "model_not_a_select": Case(
        {"models/marts/events_clean.sql": "DELETE FROM raw.events\n"},
        ("events_clean", "SELECT")),
    "model_cycle": Case(
        {"models/marts/a.sql": "SELECT * FROM b\n", "models/marts/b.sql": "SELECT * FROM a\n"},
        ("cycle", "a", "b")),
    "model_unknown_table": Case(
        {"models/marts/events_clean.sql": "SELECT id FROM raw.evnts\n"},
        ("events_clean", "raw.evnts")),
    "model_unknown_column": Case(
        {"models/marts/events_clean.sql": "SELECT id, knd FROM raw.events\n"},
        ("events_clean", "knd")),
    "model_duplicate_name": Case(
        {"models/other/events_clean.sql": "SELECT 1 AS id\n"}, ("events_clean", "models/")),
    "model_header_bad_yaml": Case(
        {"models/marts/events_clean.sql": "/* elt\nmaterialized: [table\n*/\n"
                                          "SELECT id, kind FROM raw.events\n"},
        ("models/marts/events_clean.sql:",)),
    "model_header_unterminated": Case(
        {"models/marts/events_clean.sql": "/* elt\nmaterialized: table\n"
                                          "SELECT id, kind FROM raw.events\n"},
        ("models/marts/events_clean.sql:", "*/")),
    "model_header_unknown_materialization": Case(
        {"models/marts/events_clean.sql": "/* elt\nmaterialized: tabel\n*/\n"
                                          "SELECT id, kind FROM raw.events\n"},
        ("events_clean", "tabel")),
    "data_test_duplicate_keys": Case(
        {"seeds/people.csv": PEOPLE + "4,dan again,56,30\n"}, ("stg_people", "unique"),
        changed=('"raw"."people"', '"main"."stg_people"')),
    "data_test_unknown_column": Case(
        {"models/staging/stg_people.yml": None, "models/staging/stg_people.sql":
         "/* elt\ntests:\n  - unique: [idd]\n*/\n"
         "SELECT id, upper(name) AS name, age, city_id FROM raw.people\n"},
        ("stg_people", "idd")),
    # -- publish --------------------------------------------------------------------------
    "publications_bad_yaml": Case(
        {"models/publications.yml": "publications:\n  data: {model: datasets\n"},
        ("models/publications.yml:",), command=("publish",)),
    "publication_unknown_endpoint": Case(
        {"models/more.yml": "publications:\n  more: {model: datasets, endpoint: nowhere, "
                            "key: [dt], body: payload}\n"},
        ("models/more.yml", "nowhere"), command=("publish",)),
    "publication_unknown_key_column": Case(
        {"models/more.yml": "publications:\n  more: {model: datasets, endpoint: extra, "
                            f"key: [dtt], body: payload, rest: {FLOWKIT_REST}}}\n"},
        ("more", "dtt"), command=("publish", "-s", "more")),
    "graphql_document_broken": Case(
        {"models/uois/user.gql": "mutation ($id: UUID!) { result: userInsert(user: {id: $id}"},
        ("user.gql", "GraphQL syntax error"), command=("publish", "-s", "extra_users")),
    "endpoint_unreachable": Case(
        endpoints={"extra": {"url": "http://127.0.0.1:9/v1", "heartbeat": "/heartbeat", **FAST}},
        expect=("endpoint extra", "127.0.0.1:9", "cannot connect"),
        command=("publish", "-s", "extra")),
    "endpoint_wrong_client_secret": Case(
        endpoints={"extra": lambda w: {**w.sandbox.endpoint_config("flowkit"), **FAST, "auth": {
            **w.sandbox.endpoint_config("flowkit")["auth"], "client_secret": "wrong-secret"}}},
        expect=("endpoint extra", "401"), command=("publish", "-s", "extra")),
    "endpoint_wrong_audience_403": Case(
        endpoints={"extra": lambda w: {**w.sandbox.endpoint_config("flowkit"), **FAST, "auth": {
            **w.sandbox.endpoint_config("flowkit")["auth"], "audience": "https://elsewhere"}}},
        expect=("endpoint extra", "403"), command=("publish", "-s", "extra")),
    "endpoint_unknown_uois_user": Case(  # the real login takes any password, not any user
        endpoints={"uois": lambda w: {**w.sandbox.endpoint_config("uois"), **FAST, "auth": {
            **w.sandbox.endpoint_config("uois")["auth"], "username": "nobody@nowhere"}}},
        expect=("endpoint uois", "login to", "HTTP 500"), command=("publish", "-s", "extra_users")),
    "endpoint_token_url_401_peer": Case(
        endpoints={"extra": lambda w: {**_peer_endpoint("x")(w), "auth": {
            "type": "oauth2_client_credentials", "token_url": f"{w.peer.url}/token401",
            "client_id": "me", "client_secret": "wrong-secret"}}},
        expect=("endpoint extra", "401", "access_denied"), command=("publish", "-s", "extra")),
    "data_route_401": Case(endpoints={"extra": _peer_endpoint("r401")},
                           expect=("extra", "401", "Invalid token"),
                           command=("publish", "-s", "extra")),
    "data_route_403": Case(endpoints={"extra": _peer_endpoint("r403")},
                           expect=("extra", "403", "Forbidden"),
                           command=("publish", "-s", "extra")),
    "data_route_4xx_with_body": Case(endpoints={"extra": _peer_endpoint("r422")},
                                     expect=("extra", "422", "invalid datetime"),
                                     command=("publish", "-s", "extra")),
    "data_route_redirect_loop": Case(endpoints={"extra": _peer_endpoint("loop")},
                                     expect=("extra", "307", "redirect to /loop/data"),
                                     command=("publish", "-s", "extra")),
    "heartbeat_redirect_loop": Case(endpoints={"extra": _peer_endpoint("beatloop")},
                                    expect=("endpoint extra", "302", "/beatloop/heartbeat"),
                                    command=("publish", "-s", "extra")),
    "heartbeat_404": Case(endpoints={"extra": _peer_endpoint("gone")},
                          expect=("endpoint extra", "heartbeat", "404"),
                          command=("publish", "-s", "extra")),
    "data_route_404_wrong_path": Case(endpoints={"extra": _peer_endpoint("nothing")},
                                      expect=("extra", "404", "Not Found"),
                                      command=("publish", "-s", "extra")),
}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with Sandbox(None) as sandbox, Peer(_peer_routes()) as peer:
        yield World(sandbox, peer)


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory, world: World) -> Path:
    """One good project: built, and `data` + `users` published to the sandbox."""
    root = tmp_path_factory.mktemp("golden")
    write_files(root, GOOD)
    write_profile(root, world.endpoints())
    build = elt(root, "build")
    assert build.code == 0, build.output
    publish = elt(root, "publish", "-s", "data", "-s", "users")
    assert publish.code == 0, publish.output
    ledger = db_query(root / "target" / "elt.duckdb", "SELECT publication, status, count(*) "
                      "FROM _elt.ledger GROUP BY ALL ORDER BY ALL")
    assert ledger == [("data", "acknowledged", 4), ("users", "acknowledged", 3)]
    return root


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, golden: Path, world: World, tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> None:
    case = CASES[name]
    root = tmp_path / "project"
    shutil.copytree(golden, root)
    db = root / "target" / "elt.duckdb"
    before = snapshot(db)
    write_files(root, case.files)
    if case.endpoints is not None:
        write_profile(root, world.endpoints(**case.endpoints))
    if case.profile is not None:
        (root / "profiles.yml").write_text(case.profile, encoding="utf-8")
    monkeypatch.delenv("ELT_TEST_SURELY_UNSET", raising=False)
    monkeypatch.delenv("ELT_TARGET", raising=False)

    run = elt(root, *case.command)
    print(run.output)
    assert run.exception is None, repr(run.exception)
    assert "Traceback" not in run.output
    if case.ok:
        assert run.code == 0 and not run.error_lines(), run.output
        assert re.search(case.ok, run.stdout), run.output
    else:
        assert run.code == 1, run.output
        (line,) = run.error_lines()
        for fragment in case.expect:
            assert fragment in line, f"{fragment!r} not in {line!r}"
        assert len(line) < 400, line
    after = snapshot(db)
    for table, rows in before.items():
        if table in case.changed:
            continue
        if table == "_elt.ledger":  # rows that failed to send may be added, never changed
            done = [r for r in after[table] if r[4] == "acknowledged"]
            assert done == rows, "acknowledged ledger rows changed"
            continue
        assert after.get(table) == rows, f"{table} changed"
