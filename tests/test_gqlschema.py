"""A partial SDL file (the UOIS contract's uois.graphql) made buildable (elt/http/
gqlschema.py), and a document's variables checked as a JSON Schema."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pytest
from helpers import E2E, USERS, elt, sandbox_endpoints, stats, write_profile

from elt.core.errors import PublishError
from elt.http.apischema import BodyChecker, EndpointSchema
from elt.http.bodycheck import check_relation
from elt.http.gqlschema import build_partial
from elt.sandbox.server import Sandbox

CONTRACT = Path(__file__).resolve().parents[2] / "shared" / "contracts" / "uois.graphql"
MODELS = Path(__file__).resolve().parents[1] / "models" / "uois"
needs_contract = pytest.mark.skipif(not CONTRACT.exists(), reason=f"{CONTRACT} is not here")


def _schema() -> EndpointSchema:
    partial = build_partial(CONTRACT.read_text())
    return EndpointSchema("graphql", partial.schema, "uois.graphql", partial.stubs,
                          partial.notes)


@needs_contract
def test_the_contracts_partial_schema_is_built_and_says_what_it_added(tmp_path: Path) -> None:
    schema = _schema()
    assert schema.notes == [
        "merged repeated types Mutation, Query", "added scalars DateTime, UUID",
        "inputs not in the file, any value accepted: GroupInputWhereFilter, "
        "MembershipInputWhereFilter, UserInputWhereFilter",
        "types not in the file, selections on them not checked: ExternalIdGQLModel, "
        "GroupGQLModel, MembershipGQLModel, UserGQLModel"]
    mutations = schema.document.mutation_type.fields
    assert {"groupInsert", "userInsert", "membershipInsert", "externalidInsert"} <= set(mutations)
    for doc in ("user_insert", "group_insert", "membership_insert", "externalid_insert"):
        BodyChecker(schema, "graphql", {"document": f"{doc}.gql"}, MODELS, doc)  # all valid
    # a document the file does contradict is refused, saying what the file lacked
    (tmp_path / "bad.gql").write_text(
        "mutation ($id: UUID!) { userInsert(usr: {id: $id}) { id } }")
    with pytest.raises(PublishError, match=r"document bad.gql does not match uois.graphql \("
                       r"merged repeated types .*\): Unknown argument 'usr' on field "
                       r"'Mutation.userInsert'"):
        BodyChecker(schema, "graphql", {"document": "bad.gql"}, tmp_path, "bad")


@needs_contract
def test_variables_are_checked_against_the_partial_schema_in_duckdb() -> None:
    checker = BodyChecker(_schema(), "graphql", {"document": "membership_insert.gql"},
                          MODELS, "m")
    con = duckdb.connect()
    con.execute("""CREATE TABLE t AS SELECT * FROM (VALUES
        ('1', 'insert', '{"id": "0b7e4f5c-1d2e-4f60-8a9b-0c1d2e3f4a5b", "user_id":
          "1b7e4f5c-1d2e-4f60-8a9b-0c1d2e3f4a5b", "group_id":
          "2b7e4f5c-1d2e-4f60-8a9b-0c1d2e3f4a5b", "valid": true}'),
        ('2', 'insert', '{"id": "nope", "group_id": "2b7e4f5c-1d2e-4f60-8a9b-0c1d2e3f4a5b",
          "valid": "yes"}')) v(key, op, body)""")
    verdict = check_relation(con, "SELECT * FROM t", [], checker)
    assert (verdict.checked, verdict.failing) == (2, 1)
    assert verdict.samples == [
        "key 2 (GraphQL membership_insert.gql): $.user_id: required: missing; "
        '$.id: format: "nope" is not a valid uuid; '
        '$.valid: type: expected boolean, got string "yes"']


@needs_contract
def test_dry_run_with_the_contract_file_catches_a_bad_user_and_sends_nothing(
        tmp_path: Path, sandbox: Sandbox) -> None:
    p = E2E(tmp_path, sandbox, n=2, users=3)
    shutil.copy(CONTRACT, tmp_path / "uois.graphql")
    endpoints = sandbox_endpoints(sandbox)
    endpoints["uois"]["graphql_schema"] = "uois.graphql"
    write_profile(tmp_path, endpoints)
    (tmp_path / "models" / "uois_users.sql").write_text(
        USERS.format(n=3).replace("'Name' || i AS name",
                                  "CASE WHEN i = 1 THEN NULL ELSE 'Name' || i END AS name"))
    p.build()
    before = stats(sandbox)
    run = elt(tmp_path, "publish", "--dry-run", "-s", "uois_users")
    assert run.code == 1, run.output
    assert ("1 of 3 pending bodies break the schema of uois.graphql; first: key "
            in run.output) and "$.name: type: expected string, got null" in run.output
    after = stats(sandbox)
    assert after["uois"] == before["uois"] == {}    # no user written
