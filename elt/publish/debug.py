"""`elt debug`: profile, database, and for every endpoint what a publish would need of it,
checked without sending data.

It tells the truth rather than "ok": the heartbeat's version only when the server names one
(FlowKit's has none), the token's scopes against the ones the publications declare (a token
is issued to any known client; FlowKit refuses POST /data without `write:data`), and the
GraphQL path with a harmless `{ __typename }` query.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from elt.core import secrets
from elt.core.console import Console
from elt.core.errors import EltError
from elt.http.messages import Request
from elt.publish.report import missing_scopes, scope_needs
from elt.publish.spec import Publication, load_publications
from elt.publish.workspace import Workspace

PROBE = b'{"query":"{ __typename }"}'


def debug(ctx: Workspace) -> bool:
    """One line per check; False when anything failed."""
    console = ctx.console
    ok = True
    project = ctx.project
    console.info(f"profile {project.profile_name}, target {project.target.name}: ok")
    path = project.db_path
    console.info(f"database {path}: " + ("exists" if path.exists() else "not built yet"))
    pubs: dict[str, Publication] = {}
    try:
        pubs = load_publications(project)
        console.info(f"publications: {len(pubs)} ok")
    except EltError as exc:
        console.error(f"publications: {exc}")
        ok = False
    names = set(project.target.endpoints)
    if not names:
        console.info("endpoints: none configured")
        return ok
    for name in sorted(names):  # an unset variable fails its endpoint, not the others
        try:
            ctx.endpoints.resolve([name])
        except EltError as exc:
            console.error(f"endpoint {name}: {exc}")
            names.discard(name)
            ok = False
    needs = scope_needs(pubs.values())
    try:
        with ctx.endpoints.open(names) as endpoints:
            return asyncio.run(_check_all(console, endpoints, needs)) and ok
    except EltError as exc:
        console.error(str(exc))
        return False


async def _check_all(console: Console, endpoints: dict[str, dict[str, Any]],
                     needs: dict[str, set[str]]) -> bool:
    from elt.http.transport import Transport

    ok = True
    for name, cfg in endpoints.items():
        try:
            async with Transport(name, cfg) as transport:
                if transport.heartbeat_path:
                    version = await transport.heartbeat()
                    said = [f"{cfg.get('url')} up",
                            version if version.startswith("ok") else f"version {version}"]
                else:  # nothing to ask: whatever answers the base url shows a server there
                    said = [f"{cfg.get('url')} answers (HTTP {await transport.probe()}; no "
                            "heartbeat configured)"]
                await transport.check_auth()
                said.append("credentials accepted" if transport.auth.fetches else
                            "no credentials" if transport.auth.kind == "none" else
                            f"{transport.auth.kind} credentials not checked (nothing to ask "
                            "before a request)")
                missing = missing_scopes(transport, needs.get(name, set()))
                if missing is not None:
                    said.append("token scopes cover the publications" if not missing else "")
                if transport.graphql_path:
                    said.append(await _graphql_probe(transport))
            if missing:
                raise EltError(f"the token lacks scope(s) {', '.join(sorted(missing))} that "
                               "its publications need", where=f"endpoint {name}")
            console.info(f"endpoint {name}: " + ", ".join(s for s in said if s))
        except EltError as exc:
            console.error(str(exc))
            ok = False
    return ok


async def _graphql_probe(transport: Any) -> str:
    reply = await transport.send(Request("POST", "", PROBE,
                                         {"Content-Type": "application/json"}))
    if reply.status is None:
        raise EltError(f"GraphQL path {transport.graphql_path}: {reply.error}",
                       where=transport.where)
    try:
        data = json.loads(reply.body)
    except ValueError:
        data = None
    if reply.status != 200 or not isinstance(data, dict) or "data" not in data:
        text = secrets.redact(reply.body.decode("utf-8", "replace"))[:200]  # then cut
        raise EltError(f"GraphQL path {transport.graphql_path} answered HTTP {reply.status}: "
                       f"{text}", where=transport.where)
    return f"GraphQL {transport.graphql_path} answers queries"
