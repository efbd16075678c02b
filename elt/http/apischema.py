"""An endpoint's own schema, and request bodies checked against it before they are sent.

An endpoint may name its schema in profiles.yml:
- `openapi: /openapi.json` (a path fetched from the endpoint, as FastAPI services publish
  one) or a file of the project (`openapi: api/openapi.json`): bodies are checked against
  the operation's request schema (jsonschema.py);
- `graphql_schema: introspect` (asks the endpoint, authenticated like any request) or a
  `.graphql` SDL file: the publication's document is validated against the schema and every
  row's variables against the operation's variable definitions (graphql-core).
`elt publish --dry-run` and the `payload_matches_schema` data test use this.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt.core.errors import PublishError
from elt.http.gqlschema import about_stub, build_partial, variables_schema
from elt.http.jsonschema import Validator, Violation
from elt.http.schemasql import EMPTY, Compiler, lit
from elt.http.messages import Request, encode_json

SETTINGS = ("openapi", "graphql_schema")
SHOWN = 3          # rows described in a message
KEPT = 10_000      # failing rows kept for a data test's test_failures table


def declared(endpoint: dict[str, Any]) -> bool:
    return any(endpoint.get(k) for k in SETTINGS)


@dataclass
class EndpointSchema:
    kind: str               # openapi | graphql
    document: Any           # the OpenAPI dict, or a graphql.GraphQLSchema
    origin: str             # where it came from, for messages
    stubs: set[str] = field(default_factory=set)    # types a partial SDL file lacks
    notes: list[str] = field(default_factory=list)  # what was added to make it whole


async def _fetch(name: str, endpoint: dict[str, Any], request: Request) -> bytes:
    from elt.http.transport import Transport

    async with Transport(name, endpoint) as transport:
        reply = await transport.send(request)
    if reply.status != 200:
        raise PublishError(f"schema request {request.method} {request.path or '(graphql)'} "
                           f"answered {reply.status or reply.error}", where=f"endpoint {name}")
    return reply.body


def load(name: str, endpoint: dict[str, Any], root: Path) -> EndpointSchema | None:
    """The schema the endpoint declares (None: it declares none)."""
    where = f"endpoint {name}"
    if endpoint.get("openapi"):
        spec = str(endpoint["openapi"])
        if spec.startswith("/"):
            body = asyncio.run(_fetch(name, endpoint, Request("GET", spec, b"", {})))
            origin = f"{endpoint.get('url', '')}{spec}"
        else:
            path = root / spec
            try:
                body = path.read_bytes()
            except OSError as exc:
                raise PublishError(f"openapi file {spec}: {exc.strerror}", where=where) from None
            origin = spec
        try:
            if origin.endswith((".yml", ".yaml")):
                import yaml

                doc = yaml.safe_load(body)
            else:
                doc = json.loads(body)
        except ValueError as exc:
            raise PublishError(f"openapi document {origin} is not JSON/YAML: {exc}",
                               where=where) from None
        if not isinstance(doc, dict) or "paths" not in doc:
            raise PublishError(f"openapi document {origin} has no `paths`", where=where)
        return EndpointSchema("openapi", doc, origin)
    setting = endpoint.get("graphql_schema")
    if not setting:
        return None
    import graphql

    if str(setting) == "introspect":
        query = encode_json({"query": graphql.get_introspection_query()})
        body = asyncio.run(_fetch(name, endpoint, Request(
            "POST", "", query, {"Content-Type": "application/json"})))
        try:
            answer = json.loads(body)
            schema = graphql.build_client_schema(answer["data"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PublishError(f"introspection answer unusable: {exc}", where=where) from None
        return EndpointSchema("graphql", schema, f"{endpoint.get('url', '')} (introspection)")
    path = root / str(setting)
    try:
        partial = build_partial(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PublishError(f"graphql_schema file {setting}: {exc.strerror}", where=where) from None
    except (graphql.GraphQLError, TypeError) as exc:
        raise PublishError(f"graphql_schema {setting}: {getattr(exc, 'message', exc)}",
                           where=where) from None
    return EndpointSchema("graphql", partial.schema, str(setting), partial.stubs, partial.notes)


class BodyChecker:
    """One publication's request schemas as JSON Schemas, per operation (insert, update,
    delete): an OpenAPI operation's request body, or a GraphQL document's variables.
    `sql(body)` checks them in DuckDB; `errors(op, body)` in Python, only for the rules
    SQL cannot express (`python_only`)."""

    def __init__(self, schema: EndpointSchema, kind: str, sub_config: dict[str, Any],
                 base_dir: Path, publication: str) -> None:
        self.schema, self.publication = schema, publication
        self.where = f"publication {publication}"
        # op -> (what it is called, its JSON Schema or None: not checked)
        self.ops: dict[str, tuple[str, dict[str, Any] | None]] = {}
        self.document: dict[str, Any] = {}
        if kind == "graphql" and schema.kind == "graphql":
            self._graphql(sub_config, base_dir)
        elif kind == "rest" and schema.kind == "openapi":
            self.document = schema.document
            for op in ("insert", "update", "delete"):
                spec = sub_config.get(op)
                if isinstance(spec, dict) and spec.get("path"):
                    method = str(spec.get("method") or "POST").upper()
                    self.ops[op] = (f"{method} {spec['path']}",
                                    self._request_schema(method, str(spec["path"])))
        else:
            raise PublishError(f"a {kind} publication cannot be checked against an "
                               f"{schema.kind} schema ({schema.origin})", where=self.where)
        self.validator = Validator(self.document)
        self.python_only: list[str] = []

    # -- REST ----------------------------------------------------------------------------
    def _request_schema(self, method: str, path: str) -> dict[str, Any] | None:
        paths = self.schema.document.get("paths") or {}
        item = paths.get(path)
        if item is None:  # the document may spell paths with the server's prefix
            item = next((v for k, v in paths.items() if k.endswith(path)), None)
        if item is None or method.lower() not in item:
            raise PublishError(f"{method} {path} is not an operation of {self.schema.origin}",
                               where=self.where)
        content = ((item[method.lower()].get("requestBody") or {}).get("content") or {})
        media = content.get("application/json") or next(iter(content.values()), None)
        return (media or {}).get("schema")

    # -- GraphQL -------------------------------------------------------------------------
    def _graphql(self, sub_config: dict[str, Any], base_dir: Path) -> None:
        import graphql

        path = base_dir / str(sub_config.get("document"))
        try:
            document = graphql.parse(path.read_text(encoding="utf-8"))
        except (OSError, graphql.GraphQLError) as exc:
            raise PublishError(f"document {path.name}: {exc}", where=self.where) from None
        problems = [p for p in graphql.validate(self.schema.document, document)
                    if not about_stub(p, self.schema.stubs)]
        if problems:
            partial = f" ({'; '.join(self.schema.notes)})" if self.schema.notes else ""
            raise PublishError(f"document {path.name} does not match {self.schema.origin}"
                               f"{partial}: {problems[0].message}", where=self.where)
        ops = [d for d in document.definitions
               if isinstance(d, graphql.OperationDefinitionNode)]
        variables = variables_schema(self.schema.document, ops[0].variable_definitions or ())
        self.document = {"$defs": variables.pop("$defs")}
        self.ops["insert"] = (f"GraphQL {path.name}", variables)

    def describe(self, op: str) -> str:
        return self.ops.get(op, self.ops.get("insert", ("?", None)))[0]

    def _schema_of(self, op: str) -> dict[str, Any] | None:
        entry = self.ops.get(op) or (self.ops.get("insert") if self.schema.kind == "graphql"
                                     else None)
        return entry[1] if entry else None

    def sql(self, op: str, body: str, regex_ok: Any = None) -> str:
        """A DuckDB expression: the violations (STRUCT(path, rule, message)[]) of a body
        (a VARCHAR column of JSON text) sent by the operation in column `op`."""
        compiler = Compiler(self.document, regex_ok)
        value = f"json_extract({body}, '$')"
        cases = []
        for name in dict.fromkeys([*self.ops, "insert", "update", "delete"]):
            schema = self._schema_of(name)
            compiled = compiler.compile(schema, value)
            self.python_only += compiled.python_only
            if compiled.sql != EMPTY:
                cases.append(f"WHEN {lit(name)} THEN {compiled.sql}")
        self.python_only = list(dict.fromkeys(self.python_only))
        checked = f"CASE {op} {' '.join(cases)} ELSE {EMPTY} END" if cases else EMPTY
        broken = "[{'path': '$', 'rule': 'json', 'message': 'not JSON'}]"
        return f"CASE WHEN {body} IS NULL THEN {EMPTY} WHEN NOT json_valid({body}) " \
               f"THEN {broken} ELSE {checked} END"

    def errors(self, op: str, body: Any) -> list[Violation]:
        schema = self._schema_of(op)
        return self.validator.errors(body, schema) if schema else []


@dataclass
class Verdict:
    checked: int = 0
    failing: int = 0
    samples: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # key, path, rule, why


def sample(key: str, description: str, problems: Iterable[Any]) -> str:
    """`key K (POST /data): $.path: rule: message; ...` (at most three of the row's)."""
    shown = [p if isinstance(p, Violation) else Violation(p["path"], p["rule"], p["message"])
             for p in list(problems)[:3]]
    return f"key {key} ({description}): " + "; ".join(str(p) for p in shown)


def check_rows(rows: Iterable[tuple[str, str, Any]], checker: BodyChecker) -> Verdict:
    """(key, op, body text) rows checked in Python, streamed: only for a schema with rules
    SQL cannot express (checker.python_only)."""
    verdict = Verdict()
    for key, op, body in rows:
        verdict.checked += 1
        try:
            value = json.loads(body) if isinstance(body, str) else body
        except ValueError:
            problems = [Violation("$", "json", "not JSON")]
        else:
            problems = checker.errors(op, value)
        if not problems:
            continue
        verdict.failing += 1
        if len(verdict.rows) < KEPT:
            first = problems[0]
            verdict.rows.append((key, first.path, first.rule, first.message))
        if len(verdict.samples) < SHOWN:
            verdict.samples.append(sample(key, checker.describe(op), problems))
    return verdict


def re2_accepts(con: Any) -> Any:
    """pattern -> whether DuckDB's regexp (RE2) compiles it."""
    def ok(pattern: str) -> bool:
        try:
            con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
        except Exception:  # noqa: BLE001 - duckdb raises its own error types
            return False
        return True
    return ok


def check_relation(con: Any, source: str, params: list[Any], checker: BodyChecker,
                   into: str | None = None, batch: int = 500) -> Verdict:
    """Every (key, op, body) row of `source` checked in one DuckDB query; with `into`, the
    failing rows (key, json_path, rule, message, violations) land in that table. The rules
    SQL cannot express (checker.python_only) are checked in Python, streamed in batches."""
    violations = checker.sql("op", "body", re2_accepts(con))
    if checker.python_only:
        cur = con.execute(f"SELECT key, op, body FROM ({source}) WHERE body IS NOT NULL "
                          "ORDER BY key", params)

        def rows() -> Iterable[tuple[str, str, Any]]:
            while chunk := cur.fetchmany(batch):
                yield from chunk

        verdict = check_rows(rows(), checker)
        if into:
            con.execute(f"CREATE OR REPLACE TABLE {into} (key VARCHAR, json_path VARCHAR, "
                        "rule VARCHAR, message VARCHAR)")
            if verdict.rows:
                con.executemany(f"INSERT INTO {into} VALUES (?, ?, ?, ?)", verdict.rows)
        return verdict
    checked = (f"SELECT key, op, {violations} AS v FROM (SELECT key, op, "
               f"CAST(body AS VARCHAR) AS body FROM ({source}) WHERE body IS NOT NULL)")
    if into:
        con.execute(f"CREATE OR REPLACE TABLE {into} AS SELECT key, v[1].path AS json_path, "
                    "v[1].rule AS rule, v[1].message AS message, op, v AS violations "
                    f"FROM ({checked}) WHERE len(v) > 0 ORDER BY key", params)
        total = con.execute(f"SELECT count(*) FROM ({source}) WHERE body IS NOT NULL",
                            params).fetchone()[0]
        failing = con.execute(f"SELECT count(*) FROM {into}").fetchone()[0]
        first = con.execute(f"SELECT key, op, violations[1:3] FROM {into} ORDER BY key "
                            f"LIMIT {SHOWN}").fetchall()
    else:
        total, failing, first = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE len(v) > 0), "
            f"arg_min({{'key': key, 'op': op, 'v': v[1:3]}}, key, {SHOWN}) "
            f"FILTER (WHERE len(v) > 0) FROM ({checked})", params).fetchone()
        first = [(r["key"], r["op"], r["v"]) for r in first or ()]
    return Verdict(total, failing, [sample(k, checker.describe(op or "insert"), v)
                                    for k, op, v in first])
