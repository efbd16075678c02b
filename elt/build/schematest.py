"""The `payload_matches_schema` data test: a model's bodies checked against the schema its
publication's endpoint declares (`openapi:` / `graphql_schema:`, elt/http/apischema.py).

The schema is compiled into one DuckDB query over the model's bodies (elt/http/
schemasql.py); the failing rows (key, JSON path, rule, message, every violation) go to
`test_failures.<test>`. Only rules SQL cannot express are checked in Python, streamed.
"""

from __future__ import annotations

from typing import Any

import duckdb

from elt.build.datatests import TestOutcome
from elt.core.db import FAILURES_SCHEMA, quote
from elt.core.errors import ConfigError
from elt.graph.dag import Graph, Node
from elt.http import apischema
from elt.http.endpoints import Endpoints

KIND = "payload_matches_schema"


def run(cur: duckdb.DuckDBPyConnection, node: Node, graph: Graph, endpoints: Endpoints,
        root: Any) -> TestOutcome:
    name = str(node.config.get("publication") or "")
    pub = graph.nodes.get(f"published.{name.lower()}")
    where = f"test {node.name}"
    if pub is None:
        raise ConfigError(f"{where}: unknown publication {name!r}{graph.suggest(name)}")
    spec = pub.config
    kind, endpoint = str(spec.get("kind") or ""), str(spec.get("endpoint") or "")
    with endpoints.open([endpoint]) as opened:
        schema = apischema.load(endpoint, opened[endpoint], root)
    if schema is None:
        raise ConfigError(f"{where}: endpoint {endpoint} names no schema (set `openapi:` or "
                          "`graphql_schema:` in profiles.yml)")
    sub = spec.get(kind) if isinstance(spec.get(kind), dict) else {}
    checker = apischema.BodyChecker(schema, kind, sub, pub.path.parent, pub.identifier)
    model = graph.nodes[node.owner or ""]
    key = spec.get("key")
    keys = ", ".join(quote(k) for k in ([key] if isinstance(key, str) else key or []))
    body = spec.get("body")
    body_sql = f"{quote(body)}::VARCHAR" if body else "to_json(m)::VARCHAR"
    source = (f"SELECT json_array({keys})::VARCHAR AS key, 'insert' AS op, {body_sql} AS body "
              f"FROM {model.qualified} AS m")
    verdict = apischema.check_relation(cur, source, [], checker, into=node.qualified)
    if not verdict.failing:
        return TestOutcome("pass", 0)
    status = "fail" if node.severity == "error" else "warn"
    more = f" (+{verdict.failing - 1:,} more)" if verdict.failing > 1 else ""
    message = (f"test {node.name}: {verdict.failing:,} failing row(s) against "
               f"{schema.origin}, e.g. {verdict.samples[0]}{more}; see "
               f"{FAILURES_SCHEMA}.{node.identifier}")
    return TestOutcome(status, verdict.failing, message, verdict.samples)


run.__test__ = False  # type: ignore[attr-defined]
