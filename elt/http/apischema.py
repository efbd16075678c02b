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
from elt.http.jsonschema import Validator, Violation
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
        schema = graphql.build_schema(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PublishError(f"graphql_schema file {setting}: {exc.strerror}", where=where) from None
    except graphql.GraphQLError as exc:
        raise PublishError(f"graphql_schema {setting}: {exc.message}", where=where) from None
    return EndpointSchema("graphql", schema, str(setting))


class BodyChecker:
    """Checks one publication's bodies: `errors(op, body)` -> the first violations."""

    def __init__(self, schema: EndpointSchema, kind: str, sub_config: dict[str, Any],
                 base_dir: Path, publication: str) -> None:
        self.schema, self.publication = schema, publication
        self.where = f"publication {publication}"
        self._rest: dict[str, tuple[str, dict[str, Any] | None]] = {}
        if kind == "graphql" and schema.kind == "graphql":
            self._graphql(sub_config, base_dir)
        elif kind == "rest" and schema.kind == "openapi":
            self.validator = Validator(schema.document)
            for op in ("insert", "update", "delete"):
                spec = sub_config.get(op)
                if isinstance(spec, dict) and spec.get("path"):
                    method = str(spec.get("method") or "POST").upper()
                    self._rest[op] = (f"{method} {spec['path']}",
                                      self._request_schema(method, str(spec["path"])))
        else:
            raise PublishError(f"a {kind} publication cannot be checked against an "
                               f"{schema.kind} schema ({schema.origin})", where=self.where)

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
        problems = graphql.validate(self.schema.document, document)
        if problems:
            raise PublishError(f"document {path.name} does not match {self.schema.origin}: "
                               f"{problems[0].message}", where=self.where)
        ops = [d for d in document.definitions
               if isinstance(d, graphql.OperationDefinitionNode)]
        self._definitions = ops[0].variable_definitions or ()
        self._names = [d.variable.name.value for d in self._definitions]
        self.operation = f"GraphQL {path.name}"

    def describe(self, op: str) -> str:
        if self._rest:
            return self._rest.get(op, self._rest.get("insert", ("?", None)))[0]
        return self.operation

    def errors(self, op: str, body: Any) -> list[Violation]:
        if self._rest:
            entry = self._rest.get(op)
            if entry is None or entry[1] is None:
                return []
            return self.validator.errors(body, entry[1])
        from graphql.execution.values import get_variable_values

        if not isinstance(body, dict):
            return [Violation("$", "type", "the variables must be a JSON object")]
        values = {k: v for k, v in body.items() if k in self._names}
        found = get_variable_values(self.schema.document, self._definitions, values,
                                    max_errors=5)
        if not isinstance(found, list):  # coerced values: they fit
            return []
        return [Violation(_variable_path(e.message), "graphql", e.message) for e in found]


def _variable_path(message: str) -> str:
    """`Variable '$email' got invalid value ...` -> `$.email` (JSON path of the variable)."""
    if message.startswith("Variable '$"):
        name = message[len("Variable '$"):].split("'", 1)[0]
        return f"$.{name.split('.')[0]}"
    return "$"


@dataclass
class Verdict:
    checked: int = 0
    failing: int = 0
    samples: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # key, path, rule, why


def check_rows(rows: Iterable[tuple[str, str, Any]], checker: BodyChecker) -> Verdict:
    """(key, op, body text) rows -> how many break the schema, the first ones described."""
    verdict = Verdict()
    for key, op, body in rows:
        verdict.checked += 1
        try:
            value = json.loads(body) if isinstance(body, str) else body
        except ValueError as exc:
            problems = [Violation("$", "json", f"not JSON ({exc})")]
        else:
            problems = checker.errors(op, value)
        if not problems:
            continue
        verdict.failing += 1
        if len(verdict.rows) < KEPT:
            first = problems[0]
            verdict.rows.append((key, first.path, first.rule, first.message))
        if len(verdict.samples) < SHOWN:
            verdict.samples.append(f"key {key} ({checker.describe(op)}): "
                                   + "; ".join(str(p) for p in problems[:3]))
    return verdict
