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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt.core.errors import PublishError
from elt.http.gqlschema import about_stub, build_partial, variables_schema
from elt.http.jsonschema import Validator, Violation
from elt.http.messages import Request, encode_json
from elt.http.schemasql import EMPTY, Compiler, lit

SETTINGS = ("openapi", "graphql_schema")


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


def remote(endpoint: dict[str, Any]) -> str | None:
    """The setting of a schema fetched from the endpoint (None: a file, or none)."""
    spec = str(endpoint.get("openapi") or "")
    if spec.startswith("/"):
        return f"openapi: {spec}"
    return "graphql_schema: introspect" if endpoint.get("graphql_schema") == "introspect" \
        else None


def _fetch_remote(name: str, endpoint: dict[str, Any]) -> tuple[bytes, str]:
    if endpoint.get("openapi"):
        spec = str(endpoint["openapi"])
        body = asyncio.run(_fetch(name, endpoint, Request("GET", spec, b"", {})))
        return body, f"{endpoint.get('url', '')}{spec}"
    import graphql

    query = encode_json({"query": graphql.get_introspection_query()})
    body = asyncio.run(_fetch(name, endpoint, Request(
        "POST", "", query, {"Content-Type": "application/json"})))
    return body, f"{endpoint.get('url', '')} (introspection)"


def load(name: str, endpoint: dict[str, Any], root: Path,
         cache: Path | None = None) -> EndpointSchema | None:
    """The schema the endpoint declares (None: it declares none). One fetched from the
    endpoint is kept in `cache` (schemacache.py) for builds that must not ask it."""
    where = f"endpoint {name}"
    setting = remote(endpoint)
    if setting:
        body, origin = _fetch_remote(name, endpoint)
        schema = parse(name, setting, body, origin)
        if cache is not None:
            from elt.http import schemacache

            schemacache.write(cache, name, setting, origin, body)
        return schema
    if endpoint.get("openapi"):
        spec = str(endpoint["openapi"])
        try:
            body = (root / spec).read_bytes()
        except OSError as exc:
            raise PublishError(f"openapi file {spec}: {exc.strerror}", where=where) from None
        return parse(name, "openapi: file", body, spec)
    setting = endpoint.get("graphql_schema")
    if not setting:
        return None
    import graphql

    try:
        partial = build_partial((root / str(setting)).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PublishError(f"graphql_schema file {setting}: {exc.strerror}", where=where) from None
    except (graphql.GraphQLError, TypeError) as exc:
        raise PublishError(f"graphql_schema {setting}: {getattr(exc, 'message', exc)}",
                           where=where) from None
    return EndpointSchema("graphql", partial.schema, str(setting), partial.stubs, partial.notes)


def parse(name: str, setting: str, body: bytes, origin: str) -> EndpointSchema:
    """An OpenAPI document (JSON or YAML) or an introspection answer, as a schema."""
    where = f"endpoint {name}"
    if setting.startswith("openapi"):
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
    import graphql

    try:
        schema = graphql.build_client_schema(json.loads(body)["data"])
    except (ValueError, KeyError, TypeError) as exc:
        raise PublishError(f"introspection answer unusable: {exc}", where=where) from None
    return EndpointSchema("graphql", schema, origin)


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
