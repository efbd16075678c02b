"""The `payload_matches_schema` data test: a model's bodies checked against the schema its
publication's endpoint declares (`openapi:` / `graphql_schema:`, elt/http/apischema.py).

The schema is compiled into one DuckDB query over the model's bodies (elt/http/
schemasql.py); the failing rows (key, JSON path, rule, message, every violation) go to
`test_failures.<test>`. Only rules SQL cannot express are checked in Python, streamed.
"""

from __future__ import annotations

from typing import Any

import duckdb

from elt.core.db import FAILURES_SCHEMA, quote
from elt.core.errors import ConfigError, EltError
from elt.graph.dag import Graph, Node
from elt.http import apischema, bodycheck, schemacache
from elt.http.endpoints import Endpoints
from elt.transform.datatests import TestOutcome

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
    found = _schema(endpoint, endpoints, root, where)
    if isinstance(found, str):  # not checked, and why: said, the build goes on
        return TestOutcome("warn", 0, f"{where}: not checked: {found}")
    schema = found
    sub = spec.get(kind) if isinstance(spec.get(kind), dict) else {}
    checker = apischema.BodyChecker(schema, kind, sub, pub.path.parent, pub.identifier)
    model = graph.nodes[node.owner or ""]
    key = spec.get("key")
    keys = ", ".join(quote(k) for k in ([key] if isinstance(key, str) else key or []))
    body = spec.get("body")
    body_sql = f"{quote(body)}::VARCHAR" if body else "to_json(m)::VARCHAR"
    source = (f"SELECT json_array({keys})::VARCHAR AS key, 'insert' AS op, {body_sql} AS body "
              f"FROM {model.qualified} AS m")
    verdict = bodycheck.check_relation(cur, source, [], checker, into=node.qualified)
    if not verdict.failing:
        return TestOutcome("pass", 0)
    status = "fail" if node.severity == "error" else "warn"
    more = f" (+{verdict.failing - 1:,} more)" if verdict.failing > 1 else ""
    message = (f"test {node.name}: {verdict.failing:,} failing row(s) against "
               f"{schema.origin}, e.g. {verdict.samples[0]}{more}; see "
               f"{FAILURES_SCHEMA}.{node.identifier}")
    return TestOutcome(status, verdict.failing, message, verdict.samples)


def _schema(endpoint: str, endpoints: Endpoints, root: Any,
            where: str) -> apischema.EndpointSchema | str:
    """The endpoint's schema: a file's; a fetched one from target/schemas while fresh (or
    whenever the build is offline or the endpoint does not answer); else fetched now."""
    cfg = endpoints.resolve([endpoint])[endpoint]
    if not apischema.declared(cfg):
        raise ConfigError(f"{where}: endpoint {endpoint} names no schema (set `openapi:` or "
                          "`graphql_schema:` in profiles.yml)")
    setting = apischema.remote(cfg)
    if setting is None:
        found = apischema.load(endpoint, cfg, root)
        assert found is not None
        return found
    cache = endpoints.project.target_dir / "schemas"
    cached, why = schemacache.read(cache, endpoint, setting)
    if cached is not None and (endpoints.offline or cached.age() <= schemacache.MAX_AGE):
        return _from_cache(endpoint, setting, cached, "")
    if endpoints.offline:
        return (f"the build is offline (--exclude kind:api) and {why}; `elt publish "
                f"--dry-run` or a build that may reach endpoint {endpoint} fetches it")
    try:
        with endpoints.open([endpoint]) as opened:
            fetched = apischema.load(endpoint, opened[endpoint], root, cache)
    except EltError as exc:
        if cached is not None:
            return _from_cache(endpoint, setting, cached, f"; endpoint unreachable: {exc}")
        return f"the schema of endpoint {endpoint} could not be fetched ({exc}) and {why}"
    assert fetched is not None
    return fetched


def _from_cache(endpoint: str, setting: str, cached: schemacache.Cached,
                why: str) -> apischema.EndpointSchema:
    schema = apischema.parse(endpoint, setting, cached.body, cached.origin)
    schema.origin = f"{cached.origin} ({cached.describe()}{why})"
    return schema


run.__test__ = False  # type: ignore[attr-defined]
