"""JSON Schema compiled into one DuckDB expression (elt/http/schemasql.py): the same
violations (path, rule, message, order) as the Python validator, checked in the database."""

from __future__ import annotations

import json
from typing import Any

import duckdb
import pytest

from elt.http.apischema import BodyChecker, EndpointSchema
from elt.http.bodycheck import check_relation
from elt.http.jsonschema import Validator
from elt.http.schemasql import Compiler
from elt.sandbox.flowkit_openapi import OPENAPI

DATASET = OPENAPI["paths"]["/data"]["post"]["requestBody"]["content"]["application/json"][
    "schema"]
PERSON = {
    "type": "object", "required": ["id", "born"], "additionalProperties": False,
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "email": {"type": "string", "format": "email"},
        "born": {"type": "string", "format": "date"},
        "seen": {"type": "string", "format": "date-time", "nullable": True},
        "age": {"type": "integer", "format": "int32", "minimum": 0, "maximum": 150},
        "code": {"type": "string", "minLength": 2, "maxLength": 3, "pattern": "^[A-Z]+$"},
        "kind": {"enum": ["a", "b"]}, "v": {"const": 1},
        "tags": {"type": "array", "maxItems": 2, "items": {"type": "string"}},
        "extra": {"type": "object", "additionalProperties": {"type": "number"}},
        "one": {"oneOf": [{"type": "boolean"}, {"type": "integer"}]},
        "both": {"allOf": [{"type": "number"}, {"minimum": 10}]},
    }}
GOOD_PERSON = {"id": "0b7e4f5c-1d2e-4f60-8a9b-0c1d2e3f4a5b", "email": "a@b.cd",
               "born": "1990-02-28", "seen": "2020-01-01T10:00:00Z", "age": 30,
               "code": "AB", "kind": "a", "v": 1, "tags": ["x"], "extra": {"k": 1.5},
               "one": True, "both": 12}
BAD_PEOPLE = [
    {"id": "not-a-uuid", "born": "1990-02-30"},
    {"id": 5, "born": "1990-02-28T00:00:00", "email": "nope", "seen": "2020-01-01"},
    {"born": "1990-02-28", "age": 3.5, "code": "abcd", "kind": "c", "v": 2},
    {**GOOD_PERSON, "age": -1, "tags": ["x", 2, "z"], "extra": {"k": "1"}, "zz": 1},
    {**GOOD_PERSON, "age": 2**40, "seen": None, "one": "x", "both": 3},
    {**GOOD_PERSON, "age": 151.0, "code": "A", "tags": "x", "extra": []},
    [GOOD_PERSON], None, "text", 12,
]
GOOD_DATASET = {"metadata": {"revision": "v1", "category_id": "residents",
                             "indicator_id": "residents.residents", "srid": 3, "trid": 2,
                             "dt": "2020-02-01 00:00:00"},
                "data_type": "single_location",
                "data_input": [{"spatial_unit_ids": ["HT0111-01"], "data": 544650}]}
BAD_DATASETS = [
    {**GOOD_DATASET, "metadata": {"srid": "3", "trid": 2.0, "category_id": "x" * 256}},
    {**GOOD_DATASET, "data_type": None, "data_input": [
        {"spatial_unit_ids": [], "data": None}, {"data": "12.5"}, {"spatial_unit_ids": [1],
                                                                   "data": " x "}]},
    {"metadata": {**GOOD_DATASET["metadata"], "dt": "2020-02-01"}, "data_input": []},
]


def _sql_errors(document: dict[str, Any], schema: dict[str, Any],
                bodies: list[Any]) -> list[list[tuple[str, str, str]]]:
    con = duckdb.connect()
    con.execute("CREATE TABLE bodies (i INTEGER, body VARCHAR)")
    con.executemany("INSERT INTO bodies VALUES (?, ?)",
                    [(i, json.dumps(b)) for i, b in enumerate(bodies)])
    compiled = Compiler(document).compile(schema, "json_extract(body, '$')")
    assert compiled.python_only == []
    rows = con.execute(f"SELECT {compiled.sql} FROM bodies ORDER BY i").fetchall()
    return [[(v["path"], v["rule"], v["message"]) for v in r[0]] for r in rows]


RULES = {"format", "required", "type", "enum", "const", "minimum", "maximum", "minLength",
         "maxLength", "pattern", "maxItems", "oneOf", "additionalProperties"}


@pytest.mark.parametrize(("document", "schema", "bodies", "rules"), [
    ({}, PERSON, [GOOD_PERSON, *BAD_PEOPLE], RULES),
    (OPENAPI, DATASET, [GOOD_DATASET, *BAD_DATASETS],
     {"required", "type", "maxLength", "minItems", "anyOf", "pattern"}),
], ids=["formats", "flowkit-dataset"])
def test_sql_finds_what_the_python_validator_finds(document: dict[str, Any],
                                                   schema: dict[str, Any],
                                                   bodies: list[Any], rules: set[str]) -> None:
    python = Validator(document, limit=1000)
    expected = [[(v.path, v.rule, v.message) for v in python.errors(b, schema)]
                for b in bodies]
    assert expected[0] == [] and all(expected[1:])  # the good body passes, each bad one fails
    assert _sql_errors(document, schema, bodies) == expected
    assert {rule for found in expected for _, rule, _ in found} == rules  # all exercised


def test_a_pattern_re2_refuses_is_checked_in_python_and_said() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(?!x)"}}}
    doc = {"openapi": "3.1.0", "paths": {"/p": {"post": {"requestBody": {"content": {
        "application/json": {"schema": schema}}}}}}}
    checker = BodyChecker(EndpointSchema("openapi", doc, "test"), "rest",
                          {"insert": {"path": "/p"}}, None, "pub")  # type: ignore[arg-type]
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT * FROM (VALUES ('1', 'insert', '{\"a\": \"xy\"}'), "
                "('2', 'insert', '{\"a\": \"yx\"}')) v(key, op, body)")
    verdict = check_relation(con, "SELECT * FROM t", [], checker)
    assert checker.python_only == ["pattern ^(?!x) (not an RE2 expression)"]
    assert (verdict.checked, verdict.failing) == (2, 1)
    assert verdict.samples == ['key 1 (POST /p): $.a: pattern: "xy" does not match ^(?!x)']
