"""The `payload_matches_schema` data test: a model's bodies checked against the schema its
publication's endpoint declares (`openapi:` / `graphql_schema:`, elt/http/apischema.py).

It is the one data test that runs in Python: a schema is checked per document, as the
publisher encodes per document. The rows are streamed from DuckDB in batches, never held
at once; the failing ones (key, JSON path, rule, message) go to `test_failures.<test>`.
"""

from __future__ import annotations

from typing import Any

import duckdb

from elt.core.db import FAILURES_SCHEMA, quote
from elt.core.errors import ConfigError
from elt.graph.dag import Graph, Node
from elt.http import apischema
from elt.http.endpoints import Endpoints
from elt.transform.datatests import TestOutcome

KIND = "payload_matches_schema"
BATCH = 500


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
    result = cur.execute(f"SELECT json_array({keys})::VARCHAR, 'insert', {body_sql} "
                         f"FROM {model.qualified} AS m ORDER BY 1")

    def rows() -> Any:
        while batch := result.fetchmany(BATCH):
            yield from batch

    verdict = apischema.check_rows(rows(), checker)
    cur.execute(f"CREATE OR REPLACE TABLE {node.qualified} (key VARCHAR, json_path VARCHAR, "
                "rule VARCHAR, message VARCHAR)")
    if verdict.rows:
        cur.executemany(f"INSERT INTO {node.qualified} VALUES (?, ?, ?, ?)", verdict.rows)
    if not verdict.failing:
        return TestOutcome("pass", 0)
    status = "fail" if node.severity == "error" else "warn"
    more = f" (+{verdict.failing - 1:,} more)" if verdict.failing > 1 else ""
    message = (f"test {node.name}: {verdict.failing:,} failing row(s) against "
               f"{schema.origin}, e.g. {verdict.samples[0]}{more}; see "
               f"{FAILURES_SCHEMA}.{node.identifier}")
    return TestOutcome(status, verdict.failing, message, verdict.samples)


run.__test__ = False  # type: ignore[attr-defined]
