"""Pending bodies checked against the endpoint's own schema before anything is sent.

`elt publish --dry-run` asks each endpoint that names a schema (`openapi:` or
`graphql_schema:`, elt/http/apischema.py) for it once, then reads the publication's pending
bodies in batches (the publisher streams; so does this) and names the first failing rows by
key, with the JSON path and the rule they break.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from elt.core.errors import EltError
from elt.http import apischema, bodycheck
from elt.publish import ledger
from elt.publish.spec import Publication
from elt.publish.workspace import Workspace

BATCH = 500


def load_checkers(ctx: Workspace, pubs: dict[str, Publication], names: Iterable[str]
                  ) -> dict[str, apischema.BodyChecker | str]:
    """A checker per publication whose endpoint names a schema (a str: why there is none)."""
    wanted = [n for n in names if apischema.declared(_raw(ctx, pubs[n].endpoint))]
    if not wanted:
        return {}
    out: dict[str, apischema.BodyChecker | str] = {}
    endpoints = sorted({pubs[n].endpoint for n in wanted})
    schemas: dict[str, apischema.EndpointSchema | str] = {}
    try:
        with ctx.endpoints.open(endpoints) as opened:
            for name, cfg in opened.items():
                try:
                    found = apischema.load(name, cfg, ctx.project.root,
                                           ctx.project.target_dir / "schemas")
                    if found is not None:
                        schemas[name] = found
                except EltError as exc:
                    schemas[name] = ctx.console.failure(exc)
    except EltError as exc:
        return dict.fromkeys(wanted, ctx.console.failure(exc))
    for name in wanted:
        pub = pubs[name]
        schema = schemas.get(pub.endpoint)
        if schema is None or isinstance(schema, str):
            out[name] = schema or f"endpoint {pub.endpoint} named no schema"
            continue
        try:
            out[name] = apischema.BodyChecker(schema, pub.kind, pub.config, pub.base_dir, name)
        except EltError as exc:
            out[name] = ctx.console.failure(exc)
    return out


def _raw(ctx: Workspace, endpoint: str) -> dict[str, Any]:
    raw = (ctx.project.target.endpoints or {}).get(endpoint)
    return raw if isinstance(raw, dict) else {}


def check_pending(con: Any, query: ledger.PendingQuery, checker: apischema.BodyChecker
                  ) -> bodycheck.Verdict:
    """Every pending body of the publication (deletes included), read in batches."""
    pending = ledger.pending_sql(query, ledger.model_columns(con, query.relation),
                                 ledger.ledger_relation(con))
    return bodycheck.check_relation(con, f"SELECT key, op, body FROM ({pending})",
                                    [query.publication], checker, batch=BATCH)


def message(verdict: bodycheck.Verdict, checker: apischema.BodyChecker) -> str | None:
    if not verdict.failing:
        return None
    return (f"{verdict.failing:,} of {verdict.checked:,} pending bodies break the schema of "
            f"{checker.schema.origin}; first: " + " | ".join(verdict.samples))
