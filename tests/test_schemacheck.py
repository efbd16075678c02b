"""Bodies checked against the endpoint's own schema (elt/http/apischema.py,
elt/publish/schemacheck.py): the sandbox's OpenAPI document for FlowKit, GraphQL
introspection for UOIS; `elt publish --dry-run` names the failing rows, nothing is sent."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from helpers import E2E, USERS, elt, sandbox_endpoints, stats, write_profile

from elt.http import bodycheck
from elt.http.jsonschema import Validator
from elt.sandbox.flowkit_openapi import OPENAPI
from elt.sandbox.server import Sandbox

GOOD = {"metadata": {"revision": "v1", "category_id": "residents",
                     "indicator_id": "residents.residents", "srid": 3, "trid": 2,
                     "dt": "2020-02-01 00:00:00"},
        "data_type": "single_location",
        "data_input": [{"spatial_unit_ids": ["HT0111-01"], "data": 544650}]}


def _dataset_errors(body: dict) -> list[str]:
    schema = OPENAPI["paths"]["/data"]["post"]["requestBody"]["content"]["application/json"]
    return [str(v) for v in Validator(OPENAPI).errors(body, schema["schema"])]


def test_openapi_dataset_rules_follow_the_contract() -> None:
    assert _dataset_errors(GOOD) == []
    bad = {**GOOD, "metadata": {**GOOD["metadata"], "srid": "three"}}
    assert _dataset_errors(bad) == ['$.metadata.srid: type: expected integer, got string "three"']
    no_rev = {**GOOD, "metadata": {k: v for k, v in GOOD["metadata"].items() if k != "revision"}}
    assert _dataset_errors(no_rev) == ["$.metadata.revision: required: missing"]
    assert _dataset_errors({**GOOD, "data_type": "bogus"}) == [
        '$.data_type: enum: "bogus" is not one of "single_location", "flow"']
    assert _dataset_errors({**GOOD, "data_input": []}) == [
        "$.data_input: minItems: 0 item(s), at least 1"]
    bare = {**GOOD, "metadata": {**GOOD["metadata"], "dt": "2020-02-01"}}
    assert [e.split(":")[1] for e in _dataset_errors(bare)] == [" pattern"]
    null = {**GOOD, "data_input": [{"spatial_unit_ids": ["HT0111-01"], "data": None}]}
    assert _dataset_errors(null)[0].startswith("$.data_input[0].data: anyOf:")


def test_sandbox_serves_openapi_and_introspection(sandbox: Sandbox) -> None:
    doc = httpx.get(f"{sandbox.url}/v1/openapi.json", timeout=10).json()
    assert doc == OPENAPI and doc["openapi"].startswith("3.")
    import graphql

    from elt.http import apischema

    cfg = sandbox.endpoint_config("uois")
    schema = apischema.load("uois", {**cfg, "graphql_schema": "introspect"}, Path("."))
    assert schema is not None and schema.kind == "graphql"
    contract = Path(__file__).resolve().parents[2] / "shared" / "contracts" / "uois.graphql"
    if contract.exists():  # every mutation field of the contract is served as declared
        ast = graphql.parse(contract.read_text())  # a part of the schema: read, not built
        mutations = [d for d in ast.definitions if getattr(d, "name", None)
                     and d.name.value == "Mutation"]
        served = schema.document.mutation_type.fields
        assert mutations
        for field in (f for m in mutations for f in m.fields):
            name = field.name.value
            assert name in served, name
            assert {a.name.value for a in field.arguments} == set(served[name].args), name


def _project(tmp_path: Path, sandbox: Sandbox) -> E2E:
    p = E2E(tmp_path, sandbox, n=4, users=3)
    endpoints = sandbox_endpoints(sandbox)
    endpoints["flowkit"]["openapi"] = "/openapi.json"
    endpoints["uois"]["graphql_schema"] = "introspect"
    write_profile(tmp_path, endpoints)
    p.build()
    return p


def test_dry_run_passes_good_bodies(tmp_path: Path, sandbox: Sandbox) -> None:
    _project(tmp_path, sandbox)
    run = elt(tmp_path, "publish", "--dry-run", "-s", "flowkit_data", "-s", "uois_users")
    assert run.code == 0, run.output
    assert "break the schema" not in run.output


def test_dry_run_names_the_failing_rows_and_sends_nothing(tmp_path: Path,
                                                         sandbox: Sandbox) -> None:
    p = _project(tmp_path, sandbox)
    p.set_datasets(value="CASE WHEN i = 2 THEN NULL ELSE i END")
    (tmp_path / "models" / "uois_users.sql").write_text(
        USERS.format(n=3).replace("'Name' || i AS name",
                                  "CASE WHEN i = 1 THEN NULL ELSE 'Name' || i END AS name"))
    p.build()
    before = stats(sandbox)["requests"]
    run = elt(tmp_path, "publish", "--dry-run", "-s", "flowkit_data", "-s", "uois_users")
    assert run.code == 1, run.output
    assert ("1 of 4 pending bodies break the schema of "
            f"{sandbox.url}/v1/openapi.json; first: key "
            '["residents","residents.residents",3,2,"2020-01-03 00:00:00"] (POST /data): '
            "$.data_input[0].data: anyOf: null matches none of number, string") in run.output
    assert "1 of 3 pending bodies break the schema" in run.output
    assert "(GraphQL user.gql): $.name: type: expected string, got null" in run.output
    after = stats(sandbox)  # the schemas only: token + openapi, login (2) + introspection
    assert after["requests"] - before == 5
    assert after["flowkit"] == {} and after["uois"] == {}  # no dataset, no user arrived


def test_payload_matches_schema_data_test(tmp_path: Path, sandbox: Sandbox) -> None:
    p = _project(tmp_path, sandbox)
    header = "/* elt\ntests:\n  - payload_matches_schema: {publication: flowkit_data}\n*/\n"
    model = tmp_path / "models" / "flowkit_datasets.sql"
    model.write_text(header + model.read_text())
    run = elt(tmp_path, "build")
    assert run.code == 0, run.output
    assert "payload_matches_schema_flowkit_datasets_flowkit_data" in run.output
    p.set_datasets(value="CASE WHEN i = 2 THEN NULL ELSE i END")
    model.write_text(header + model.read_text())
    before = stats(sandbox)
    run = elt(tmp_path, "build")
    assert run.code == 1, run.output
    assert ("test payload_matches_schema_flowkit_datasets_flowkit_data: 1 failing row(s) "
            f"against {sandbox.url}/v1/openapi.json (cached ") in run.output  # the first build's
    assert ("min ago), e.g. key "
            '["residents","residents.residents",3,2,"2020-01-03 00:00:00"] (POST /data): '
            "$.data_input[0].data: anyOf:") in run.output
    assert p.sql("SELECT json_path, rule FROM test_failures."
                 "payload_matches_schema_flowkit_datasets_flowkit_data") == [
        ("$.data_input[0].data", "anyOf")]
    assert stats(sandbox)["flowkit"] == before["flowkit"] == {}  # nothing was sent
    run = elt(tmp_path, "publish", "-s", "flowkit_data")  # the model failed its test:
    assert run.code == 1 and stats(sandbox)["flowkit"] == {}  # publish refuses it


def test_a_publication_without_schema_is_a_clear_error(tmp_path: Path, sandbox: Sandbox) -> None:
    p = E2E(tmp_path, sandbox, n=2, users=1)
    model = tmp_path / "models" / "flowkit_datasets.sql"
    model.write_text("/* elt\ntests: [{payload_matches_schema: flowkit_data}]\n*/\n"
                     + model.read_text())
    run = elt(tmp_path, "build", "-s", "flowkit_datasets+")
    assert run.code == 1
    assert "endpoint flowkit names no schema (set `openapi:` or `graphql_schema:`" in run.output
    assert "Traceback" not in run.output and p.db.exists()


def _no_python_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    """The build path checks bodies in DuckDB: the per-row Python validator must not run."""
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a body was checked in Python")

    monkeypatch.setattr(bodycheck, "check_rows", refuse)
    monkeypatch.setattr(Validator, "errors", refuse)


def _failing_data_test(tmp_path: Path, sandbox: Sandbox) -> tuple[E2E, Path]:
    p = _project(tmp_path, sandbox)
    header = "/* elt\ntests:\n  - payload_matches_schema: {publication: flowkit_data}\n*/\n"
    p.set_datasets(value="CASE WHEN i = 2 THEN NULL WHEN i = 3 THEN 'x' ELSE i::VARCHAR END")
    model = tmp_path / "models" / "flowkit_datasets.sql"
    model.write_text(header + model.read_text())
    return p, tmp_path / "target" / "schemas" / "flowkit.json"


TEST = "payload_matches_schema_flowkit_datasets_flowkit_data"


def test_data_test_runs_in_duckdb_and_keeps_every_violation(
        tmp_path: Path, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    p, _ = _failing_data_test(tmp_path, sandbox)
    _no_python_per_row(monkeypatch)
    run = elt(tmp_path, "build")
    assert run.code == 1, run.output
    assert f"test {TEST}: 2 failing row(s)" in run.output
    assert p.sql(f"SELECT key, json_path, rule, message, len(violations) FROM test_failures.{TEST} "
                 "ORDER BY key") == [
        ('["residents","residents.residents",3,2,"2020-01-03 00:00:00"]',
         "$.data_input[0].data", "anyOf", "null matches none of number, string", 1),
        ('["residents","residents.residents",3,2,"2020-01-04 00:00:00"]',
         "$.data_input[0].data", "anyOf", '"x" matches none of number, string', 1)]


def test_offline_build_uses_the_cached_schema_and_says_when_there_is_none(
        tmp_path: Path, sandbox: Sandbox) -> None:
    p, cached = _failing_data_test(tmp_path, sandbox)
    assert not cached.exists()  # _project's build had no schema test
    (tmp_path / "models" / "uois" / "probe.gql").write_text(
        "query ($typeidId: UUID!, $outerId: String!) "
        "{ result: internalId(typeidId: $typeidId, outerId: $outerId) }")
    (tmp_path / "models" / "no_ids.sql").write_text(
        "SELECT gen_random_uuid()::VARCHAR AS type_id, 'x' AS outer_id WHERE false")
    (tmp_path / "models" / "sources.yml").write_text(  # an API source to leave out
        "api_sources:\n  lookups: {endpoint: uois, kind: graphql, document: uois/probe.gql, "
        "for_each: {model: no_ids, columns: [type_id, outer_id]}, result: result}\n")
    run = elt(tmp_path, "build")  # online: fetched and cached
    assert run.code == 1 and cached.exists(), run.output
    assert json.loads(cached.read_text())["setting"] == "openapi: /openapi.json"
    before = stats(sandbox)["requests"]
    run = elt(tmp_path, "build", "--exclude", "kind:api")
    assert run.code == 1, run.output  # checked against the cache: the same 2 rows fail
    assert f"test {TEST}: 2 failing row(s) against {sandbox.url}/v1/openapi.json (cached " \
        in run.output
    cached.unlink()
    run = elt(tmp_path, "build", "--exclude", "kind:api")
    assert run.code == 0, run.output  # not checked, said: the build goes on
    assert (f"test {TEST}: not checked: the build is offline (--exclude kind:api) and no "
            f"schema of endpoint flowkit is cached ({cached} is missing)") in run.output
    assert stats(sandbox)["requests"] == before  # the offline builds asked nothing
    assert p.sql(f"SELECT count(*) FROM test_failures.{TEST}") == [(2,)]  # last result kept


def test_unreachable_endpoint_falls_back_to_the_cache(tmp_path: Path, sandbox: Sandbox) -> None:
    _, cached = _failing_data_test(tmp_path, sandbox)
    run = elt(tmp_path, "build")
    assert run.code == 1 and cached.exists()
    doc = json.loads(cached.read_text())  # a day and more old: the build asks again ...
    doc["fetched_at"] = "2020-01-01T00:00:00+00:00"
    cached.write_text(json.dumps(doc))
    endpoints = sandbox_endpoints(sandbox)
    endpoints["flowkit"].update(openapi="/openapi.json", url=f"http://127.0.0.1:{_closed_port()}/v1",
                                max_attempts=1)
    endpoints["uois"]["graphql_schema"] = "introspect"
    write_profile(tmp_path, endpoints)
    run = elt(tmp_path, "build")  # ... which does not answer: the old schema, said stale
    assert run.code == 1, run.output
    assert "(cached 2020-01-01 00:00 UTC, " in run.output and ", stale; endpoint unreachable: " \
        in run.output
    cached.unlink()
    run = elt(tmp_path, "build")
    assert run.code == 0, run.output
    assert (f"test {TEST}: not checked: the schema of endpoint flowkit could not be fetched ("
            in run.output) and "and no schema of endpoint flowkit is cached" in run.output
    assert "Traceback" not in run.output


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
