"""API sources: against the sandbox over real sockets (paging, batching, incremental re-runs,
auth, failures), and with pytest-httpx for the exact shape of each request."""

from __future__ import annotations

import io
import json
import socket
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import httpx
import pytest
import yaml
from pytest_httpx import HTTPXMock

from elt.context import start_sandbox
from elt.core.console import Console
from elt.core.errors import ConfigError, EltError
from elt.http.endpoints import Endpoints
from elt.http.graphql import build_batched_document
from elt.project.config import Project, load_project
from elt.sandbox.server import Sandbox
from elt.sandbox.uois_types import DEMO_EXTERNALIDTYPES
from elt.sources.fetch import fetch_source

INTERNAL_ID = ("query ($type_id: UUID!, $outer_id: String!) "
               "{ result: internalId(typeidId: $type_id, outerId: $outer_id) }")
USER_PAGE = ("query ($skip: Int, $limit: Int) "
             "{ result: userPage(skip: $skip, limit: $limit) { id name } }")
USER = ("mutation ($id: UUID!, $name: String!) "
        "{ result: userInsert(user: {id: $id, name: $name}) { msg } }")
EXTID = ("mutation ($i: UUID!, $t: UUID!, $o: String!) { result: externalidInsert("
         "externalid: {innerId: $i, typeidId: $t, outerId: $o}) { msg } }")
TYPE_ID = DEMO_EXTERNALIDTYPES[0][0]  # a fresh sandbox holds it (others fail on the FK)
HTTP = httpx.Client(timeout=10)


# -- helpers -------------------------------------------------------------------------------
@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    sandbox = Sandbox(tmp_path / "sb.duckdb").start()
    yield sandbox
    sandbox.stop()


@pytest.fixture
def seeded(sb: Sandbox) -> list[str]:
    """7 users u0..u6; external ids o0..o3 (type TYPE_ID) for the first four."""
    auth = sb.endpoint_config("uois")["auth"]
    key = HTTP.get(auth["login_url"]).json()["key"]
    tok = HTTP.post(auth["login_url"], json={"key": key, "username": auth["username"],
                                              "password": auth["password"]}).json()["token"]
    users = [str(uuid.UUID(int=i + 1)) for i in range(7)]
    for i, user in enumerate(users):
        calls = [(USER, {"id": user, "name": f"u{i}"})]
        if i < 4:
            calls.append((EXTID, {"i": user, "t": TYPE_ID, "o": f"o{i}"}))
        for query, variables in calls:
            r = HTTP.post(f"{sb.url}/api/gql", json={"query": query, "variables": variables},
                          headers={"Authorization": f"Bearer {tok}"})
            assert "errors" not in r.json(), r.text
    return users


def requests_seen(sb: Sandbox) -> int:
    return int(HTTP.get(f"{sb.url}/_sandbox/stats").json()["requests"])


class Env:
    """A temp project (profiles.yml + models/) and its staging database."""

    def __init__(self, root: Path, endpoints: dict[str, Any]) -> None:
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "models" / "internal_id.gql").write_text(INTERNAL_ID)
        (root / "models" / "user_page.gql").write_text(USER_PAGE)
        output = {"type": "duckdb", "path": "target/elt.duckdb", "endpoints": endpoints}
        (root / "profiles.yml").write_text(yaml.safe_dump(
            {"test": {"target": "dev", "outputs": {"dev": output}}}))
        self.project: Project = load_project(root)
        self.project.target_dir.mkdir(exist_ok=True)
        self.con = duckdb.connect(str(self.project.db_path))
        self.con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        self.out, self.err = io.StringIO(), io.StringIO()
        self.console = Console(self.out, self.err)

    def fetch(self, name: str, full_refresh: bool = False, published: list[str] | None = None,
              **config: Any) -> Any:
        node = SimpleNamespace(name=f"raw.{name}", config=config,
                               path=self.project.models_dir / "sources.yml")
        endpoints = Endpoints(self.project, self.console, start_sandbox)
        return fetch_source(self.con, self.project, node, self.console, endpoints,
                            full_refresh=full_refresh, published=published)

    def rows(self, sql: str) -> list[tuple]:
        return self.con.execute(sql).fetchall()

    def outer_ids(self, *ids: str) -> None:
        self.con.execute("CREATE OR REPLACE TABLE raw.ext (type_id VARCHAR, outer_id VARCHAR)")
        self.con.executemany("INSERT INTO raw.ext VALUES (?, ?)", [(TYPE_ID, o) for o in ids])


@pytest.fixture
def env(tmp_path: Path, sb: Sandbox) -> Iterator[Env]:
    e = Env(tmp_path / "proj", {"uois": {**sb.endpoint_config("uois"), "max_attempts": 1}})
    yield e
    e.con.close()


IDS = {"endpoint": "uois", "kind": "graphql", "document": "internal_id.gql", "result": "result",
       "for_each": {"model": "raw.ext", "columns": ["type_id", "outer_id"]}, "batch_size": 2}


# -- against the sandbox ---------------------------------------------------------------------
def test_graphql_paging_until_a_short_page(env: Env, sb: Sandbox, seeded: list[str]) -> None:
    before = requests_seen(sb)
    out = env.fetch("users", endpoint="uois", kind="graphql", document="user_page.gql",
                    paging={"style": "skip_limit", "size": 3}, result="result")
    assert (out.status, out.rows) == ("success", 7)
    assert requests_seen(sb) - before == 2 + 3  # login3 (GET + POST) and pages of 3, 3, 1
    got = env.rows("SELECT page, item, result->>'name', http_status, error FROM raw.users "
                   "ORDER BY page, item")
    assert got[0] == (1, 1, "u0", 200, None) and got[-1] == (3, 1, "u6", 200, None)
    assert env.fetch("users", endpoint="uois", kind="graphql", document="user_page.gql",
                     paging={"style": "skip_limit", "size": 3}, result="result"
                     ).status == "up_to_date"


def test_batched_aliases_then_incremental_reruns(env: Env, sb: Sandbox,
                                                 seeded: list[str]) -> None:
    env.outer_ids("o0", "o1", "o2", "o3", "o9", "o0")  # 5 distinct tuples
    before = requests_seen(sb)
    out = env.fetch("ids", **IDS)
    assert (out.status, out.rows, out.added) == ("success", 5, 5)
    assert requests_seen(sb) - before == 2 + 3  # login + ceil(5 / 2) batched documents
    got = dict(env.rows("SELECT outer_id, result->>'$' FROM raw.ids"))
    assert got == {"o0": seeded[0], "o1": seeded[1], "o2": seeded[2], "o3": seeded[3],
                   "o9": None}
    first_load = env.rows("SELECT DISTINCT _elt_load_id FROM raw.ids")

    before = requests_seen(sb)  # nothing new: no request at all, not even a login
    assert env.fetch("ids", **IDS).status == "up_to_date"
    assert requests_seen(sb) == before

    env.con.execute(f"INSERT INTO raw.ext VALUES ('{TYPE_ID}', 'o5'), ('{TYPE_ID}', 'o6')")
    out = env.fetch("ids", **IDS)
    assert (out.status, out.rows, out.added) == ("success", 7, 2)
    assert requests_seen(sb) - before == 2 + 1  # the two new tuples in one document
    assert env.rows("SELECT count(*) FROM raw.ids WHERE _elt_load_id = "
                    f"{first_load[0][0]}") == [(5,)]
    env.con.execute("DELETE FROM raw.ext WHERE outer_id = 'o6'")  # gone from for_each: pruned
    out = env.fetch("ids", **IDS)
    assert (out.status, out.rows, out.removed) == ("success", 6, 1)


def test_max_age_and_full_refresh(env: Env, sb: Sandbox, seeded: list[str]) -> None:
    env.outer_ids("o0", "o1", "o2")
    env.fetch("ids", **IDS, max_age="1h")
    env.con.execute("UPDATE raw.ids SET fetched_at = fetched_at - INTERVAL 2 HOUR "
                    "WHERE outer_id = 'o1'")
    before = requests_seen(sb)
    assert env.fetch("ids", **IDS, max_age="1h").added == 1
    assert requests_seen(sb) - before == 2 + 1
    assert env.fetch("ids", **IDS, max_age="1h").status == "up_to_date"
    out = env.fetch("ids", full_refresh=True, **IDS)
    assert (out.status, out.added, out.rows) == ("success", 3, 3)


def test_an_acknowledgement_since_the_fetch_makes_answers_stale(env: Env, sb: Sandbox,
                                                                seeded: list[str]) -> None:
    """A publication the answers depend on acknowledged rows after they were fetched: they
    are asked again however young they are (max_age 1h); failures acknowledge nothing."""
    env.outer_ids("o0", "o1", "o9")
    env.con.execute("CREATE SCHEMA published; CREATE TABLE published.ext (outer_id VARCHAR, "
                    "status VARCHAR, seq BIGINT, last_sent TIMESTAMP)")
    aged = {**IDS, "max_age": "1h", "published": ["published.ext"]}
    assert env.fetch("ids", **aged).added == 3
    assert env.fetch("ids", **aged).status == "up_to_date"
    env.con.execute("INSERT INTO published.ext VALUES ('o9', 'failed', 1, "
                    "now()::TIMESTAMP + INTERVAL 1 SECOND)")  # UTC or later: after the fetch
    assert env.fetch("ids", **aged).status == "up_to_date"
    env.con.execute("INSERT INTO published.ext VALUES ('o9', 'acknowledged', 2, "
                    "(now() AT TIME ZONE 'UTC') + INTERVAL 1 SECOND)")
    before = requests_seen(sb)
    out = env.fetch("ids", **aged)
    assert (out.status, out.added) == ("success", 3)
    assert requests_seen(sb) - before == 2 + 2  # login + 2 batches of 2
    # fetched after the acknowledgement: fresh until the next one
    env.con.execute("UPDATE raw.ids SET fetched_at = fetched_at + INTERVAL 2 SECOND")
    assert env.fetch("ids", **aged).status == "up_to_date"
    assert env.fetch("ids", **{**aged, "published": None}).status == "up_to_date"


def test_changed_settings_ask_again(env: Env, seeded: list[str]) -> None:
    env.outer_ids("o0")
    env.fetch("ids", **IDS)
    out = env.fetch("ids", **{**IDS, "for_each": {"model": "raw.ext", "columns": [
        "outer_id", {"type_id": "type_id"}]}})
    assert (out.status, out.added) == ("success", 1)
    assert env.rows("SELECT column_name FROM information_schema.columns WHERE table_name = "
                    "'ids' ORDER BY ordinal_position")[:2] == [("outer_id",), ("type_id",)]


def test_wrong_credentials(tmp_path: Path, sb: Sandbox) -> None:
    """The real UOIS login takes any password but not an unknown user (HTTP 500)."""
    cfg = sb.endpoint_config("uois")
    env = Env(tmp_path / "p", {"uois": {**cfg, "max_attempts": 2,
                                        "auth": {**cfg["auth"], "username": "nobody@x"}}})
    env.outer_ids("o0")
    with pytest.raises(EltError, match=r"api source raw.ids: endpoint uois: login .* HTTP 500"):
        env.fetch("ids", **IDS)


def test_unreachable_endpoint(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = Env(tmp_path / "p", {"uois": {"url": f"http://127.0.0.1:{port}",
                                        "graphql_path": "/api/gql", "max_attempts": 1}})
    env.outer_ids("o0", "o1", "o2")
    with pytest.raises(EltError, match=r"^api source raw.ids: endpoint uois gave no answer for "
                                       r"2 of 2 requests \(first: .*cannot connect"):
        env.fetch("ids", **IDS)
    assert env.rows("SELECT count(*), count(error), max(http_status) FROM raw.ids") == [
        (3, 3, None)]


def test_server_errors_keep_what_succeeded(env: Env, sb: Sandbox, seeded: list[str]) -> None:
    aged = {**IDS, "max_age": "1h"}
    env.outer_ids("o0", "o1")
    env.fetch("ids", **aged)
    env.con.execute("UPDATE raw.ids SET fetched_at = fetched_at - INTERVAL 2 HOUR "
                    "WHERE outer_id = 'o0'")  # stale: asked again, kept if that fails
    env.con.execute(f"INSERT INTO raw.ext VALUES ('{TYPE_ID}', 'o2'), ('{TYPE_ID}', 'o3'), "
                    f"('{TYPE_ID}', 'o4')")
    sb.set_faults(error_rate=1.0)
    with pytest.raises(EltError, match=r"^api source raw.ids: endpoint uois answered 500 for 2 "
                                       r"of 2 requests \(first: .*Internal Server Error"):
        env.fetch("ids", **aged)
    assert env.rows("SELECT outer_id, http_status, error IS NULL FROM raw.ids ORDER BY 1") == [
        ("o0", 200, True), ("o1", 200, True), ("o2", 500, False), ("o3", 500, False),
        ("o4", 500, False)]
    sb.set_faults()
    before = requests_seen(sb)
    out = env.fetch("ids", **aged)  # asks only the stale one and the three that failed
    assert (out.added, requests_seen(sb) - before) == (4, 2 + 2)
    assert env.rows("SELECT count(*), count(error) FROM raw.ids") == [(5, 0)]


def test_embedded_sandbox_endpoint(tmp_path: Path) -> None:
    env = Env(tmp_path / "p", {"uois": {"sandbox": "uois"}})
    env.outer_ids("o0")
    assert env.fetch("ids", **IDS).rows == 1
    assert "sandbox started at http://127.0.0.1:" in env.out.getvalue()
    assert (env.project.target_dir / "sandbox.duckdb").exists()


def test_config_errors_name_the_source(env: Env) -> None:
    env.outer_ids("o0")
    with pytest.raises(EltError, match=r"^api source raw.ids: profiles.yml: unknown endpoint "
                                       r"'nope'; target dev defines: uois"):
        env.fetch("ids", **{**IDS, "endpoint": "nope"})
    with pytest.raises(ConfigError, match=r"api source raw.ids: .*does not declare \$outer"):
        env.fetch("ids", **{**IDS, "for_each": {"model": "raw.ext", "columns": ["outer"]}})
    (env.project.models_dir / "internal_id.gql").write_text("query {\n  result(\n}")
    with pytest.raises(ConfigError, match=r"internal_id\.gql:3:1: GraphQL syntax error"):
        env.fetch("ids", **IDS)


def test_through_context_build(tmp_path: Path, sb: Sandbox, seeded: list[str]) -> None:
    from elt.context import Context

    env = Env(tmp_path / "p", {"uois": {**sb.endpoint_config("uois"), "max_attempts": 1}})
    env.con.close()
    root = env.project.root
    (root / "seeds").mkdir()
    (root / "seeds" / "ext.csv").write_text(f"type_id,outer_id\n{TYPE_ID},o0\n{TYPE_ID},o9\n")
    (root / "models" / "sources.yml").write_text(yaml.safe_dump({"api_sources": {"ids": {
        **IDS, "for_each": {"model": "raw.ext", "columns": ["type_id", "outer_id"]}}}}))
    (root / "models" / "known.sql").write_text(
        "SELECT outer_id, result ->> '$' AS inner_id FROM raw.ids WHERE result IS NOT NULL")
    ctx = Context(root, console=env.console)

    def statuses(**kw: Any) -> dict[str, str]:
        return {r.name: r.status for r in ctx.build(**kw).results}

    assert statuses() == {"raw.ext": "success", "raw.ids": "success", "known": "success"}
    assert statuses()["raw.ids"] == "up_to_date"
    assert "raw.ids" not in statuses(exclude=["kind:api"])
    sb.set_faults(error_rate=1.0)
    (root / "seeds" / "ext.csv").write_text(f"type_id,outer_id\n{TYPE_ID},o1\n")
    [failed] = [r for r in ctx.build().results if r.status == "error"]
    assert failed.name == "raw.ids" and failed.message.startswith(
        "api source raw.ids: endpoint uois answered 500 for 1 of 1 requests (first: ")


# -- exact request shapes (pytest-httpx) -------------------------------------------------------
@pytest.fixture
def mock_env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path / "m", {"api": {"url": "http://api.test/v1", "graphql_path": "/gql",
                                     "max_attempts": 1}})
    e.con.execute("CREATE TABLE raw.cats AS SELECT * FROM (VALUES ('residents', 1), "
                  "('a b/c', 2)) t(category_id, n)")
    yield e
    e.con.close()


def test_rest_path_template_and_query(mock_env: Env, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(json={"indicators": [{"indicator_id": "x"}]}, is_reusable=True)
    out = mock_env.fetch("inds", endpoint="api", kind="rest", result="indicators",
                         path="/indicators_for_category/{category_id}", params={"lang": "en"},
                         for_each={"model": "raw.cats", "columns": ["category_id", "n"]})
    assert out.rows == 2
    urls = sorted(str(r.url) for r in httpx_mock.get_requests())
    assert urls == ["http://api.test/v1/indicators_for_category/a%20b%2Fc?lang=en&n=2",
                    "http://api.test/v1/indicators_for_category/residents?lang=en&n=1"]
    assert mock_env.rows("SELECT DISTINCT result FROM raw.inds") == [('[{"indicator_id":"x"}]',)]


def test_rest_post_body_carries_the_variables(mock_env: Env, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", json={"ok": True}, is_reusable=True)
    mock_env.fetch("q", endpoint="api", kind="rest", method="POST", path="/query",
                   body={"srid": 3}, for_each={"model": "raw.cats", "columns": [
                       {"cat": "category_id"}]})
    bodies = sorted((json.loads(r.content) for r in httpx_mock.get_requests()), key=str)
    assert bodies[0] == {"srid": 3, "cat": "a b/c"}
    assert mock_env.rows("SELECT cat, result FROM raw.q ORDER BY 1")[1] == (
        "residents", '{"ok":true}')


def test_rest_offset_paging(mock_env: Env, httpx_mock: HTTPXMock) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        offset = int(request.url.params["start"])
        return httpx.Response(200, json={"items": list(range(offset, min(offset + 2, 5)))})

    httpx_mock.add_callback(answer, is_reusable=True)
    out = mock_env.fetch("p", endpoint="api", kind="rest", path="/items", result="items",
                         paging={"style": "offset", "size": 2, "offset_param": "start",
                                 "limit_param": "n"})
    assert out.rows == 5
    assert [str(r.url) for r in httpx_mock.get_requests()] == [
        f"http://api.test/v1/items?n=2&start={o}" for o in (0, 2, 4)]
    assert mock_env.rows("SELECT page, item, result FROM raw.p ORDER BY page, item")[-1] == (
        3, 1, "4")


def test_rest_cursor_paging(mock_env: Env, httpx_mock: HTTPXMock) -> None:
    pages = {None: (["a", "b"], "c2"), "c2": (["c"], "c3"), "c3": ([], None)}

    def answer(request: httpx.Request) -> httpx.Response:
        items, nxt = pages[request.url.params.get("after")]
        return httpx.Response(200, json={"data": items, "meta": {"next": nxt}})

    httpx_mock.add_callback(answer, is_reusable=True)
    out = mock_env.fetch("c", endpoint="api", kind="rest", path="/things", result="data",
                         paging={"style": "cursor", "cursor_param": "after", "next": "meta.next"})
    assert out.rows == 3
    assert [r.url.params.get("after") for r in httpx_mock.get_requests()] == [None, "c2", "c3"]


def test_batched_graphql_document_and_field_errors(mock_env: Env, httpx_mock: HTTPXMock) -> None:
    mock_env.con.execute("INSERT INTO raw.cats VALUES ('presence', 3)")
    doc = ("query ($category_id: String!, $lang: String) "
           "{ result: label(id: $category_id, lang: $lang) }")
    (mock_env.project.models_dir / "label.gql").write_text(doc)

    def answer(request: httpx.Request) -> httpx.Response:
        variables = json.loads(request.content)["variables"]
        if "category_id_1" in variables:
            return httpx.Response(200, json={"data": {"r0": "A", "r1": None}, "errors": [
                {"message": "no label", "path": ["r1"]}]})
        return httpx.Response(200, json={"data": {"r0": {"text": "P"}}})

    httpx_mock.add_callback(answer, is_reusable=True)
    out = mock_env.fetch("labels", endpoint="api", kind="graphql", document="label.gql",
                         batch_size=2, variables={"lang": "fr"},
                         for_each={"model": "raw.cats", "columns": ["category_id"]})
    assert out.status == "success" and "1 answered with errors" in out.message
    first, second = (json.loads(r.content) for r in httpx_mock.get_requests())
    assert str(httpx_mock.get_requests()[0].url) == "http://api.test/v1/gql"
    assert first == {"query": build_batched_document(doc, 2)[0], "variables": {
        "category_id_0": "a b/c", "lang_0": "fr", "category_id_1": "presence", "lang_1": "fr"}}
    assert second == {"query": build_batched_document(doc, 1)[0], "variables": {
        "category_id_0": "residents", "lang_0": "fr"}}
    assert mock_env.rows("SELECT category_id, result, error FROM raw.labels ORDER BY 1") == [
        ("a b/c", '"A"', None), ("presence", None, "no label"),
        ("residents", '{"text":"P"}', None)]
    assert "warning: api source raw.labels" in mock_env.err.getvalue()


def test_stale_after_names_publications_whose_sends_outdate_the_answers(tmp_path: Path) -> None:
    """What an endpoint lists can depend on what we publish (FlowKit lists an indicator once
    its datasets are published): `stale_after:` adds those publications' acknowledgements to
    what makes answers stale; an unknown name is an error naming the file, with a hint."""
    from elt.context import Context
    from elt.graph.discover import discover_graph
    from elt.sources.fetch import published_inputs
    from elt.sources.spec import parse_source

    def graph(stale: str) -> Any:
        files = {
            "profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, "
                            "path: target/elt.duckdb, endpoints: {api: {sandbox: flowkit}}}}}\n",
            "seeds/cats.csv": "category_id\nc1\n",
            "models/sent.sql": "SELECT * FROM raw.cats",
            "models/src.yml": f"""
                api_sources:
                  lists:
                    endpoint: api
                    kind: rest
                    path: /indicators_for_category/{{category_id}}
                    for_each: {{model: raw.cats, columns: [category_id]}}
                    stale_after: {stale}
                publications:
                  sent_out: {{model: sent, key: [category_id], endpoint: api}}
                  other: {{model: sent, key: [category_id], endpoint: api}}
                """,
        }
        for rel, text in files.items():
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_text(textwrap.dedent(text))
        return discover_graph(Context(tmp_path).project)

    g = graph("[sent_out]")
    assert published_inputs(g, g.nodes["raw.lists"]) == ['"published"."sent_out"']
    g = graph("other")
    assert published_inputs(g, g.nodes["raw.lists"]) == ['"published"."other"']
    with pytest.raises(ConfigError, match=r"api source lists: stale_after names no publication "
                                          r"'sent_ot' \(did you mean published.sent_out\?\)"):
        graph("[sent_ot]")
    with pytest.raises(ConfigError, match="stale_after:` must be a publication name or a list"):
        node = graph("[sent_out]").nodes["raw.lists"]
        parse_source("lists", {**node.config, "stale_after": {"x": 1}}, node.path,
                     "models/src.yml")
