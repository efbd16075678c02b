"""What publish tells the user and checks before sending: endpoints, dry run, status, debug.

Kept apart from runner.py so the orchestration reads top to bottom; everything here either
only reads the database (opened read-only) or only talks to endpoints without sending data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from elt.core import db
from elt.core.errors import EltError
from elt.core.results import NodeResult, RunResults
from elt.http.auth import jwt_claims
from elt.publish import journal as jr
from elt.publish import ledger, marks, waits
from elt.publish.lock import state_dir
from elt.publish.spec import Publication, downstream
from elt.publish.workspace import Workspace

if TYPE_CHECKING:
    from elt.core.console import Console
    from elt.graph.dag import Graph
    from elt.publish.stream import Tally

STATUS_COLUMNS = ["publication", "model", "endpoint", "total", "acknowledged", "already_there",
                  "failed", "pending", "held", "changed", "orphaned", "refused", "waiting"]
SAMPLE_CHARS = 400


# -- the model graph ------------------------------------------------------------------------
def model_name(pub: Publication) -> str:
    name = pub.model.lower()
    return name[5:] if name.startswith("main.") else name


def relation(pub: Publication) -> tuple[str, str]:
    """(schema, table) of a publication's model."""
    schema, _, table = pub.model.rpartition(".")
    return (schema or "main", table)


def published_readers(ctx: Workspace, pubs: dict[str, Publication], graph: Graph | None = None
                      ) -> dict[str, set[str]]:
    """Publication -> models that (transitively) read `published.<publication>`.

    Loading the graph also checks that every publication names a real model: a project
    whose graph does not load is not published.
    """
    graph = graph or ctx.graph()
    readers: dict[str, set[str]] = {}
    for name in pubs:
        node = f"published.{name}"
        if node in graph.nodes:
            found = {n for n in graph.downstream(node) if graph.nodes[n].kind == "model"}
            if found:
                readers[name] = found
    return readers


def stale_readers(ctx: Workspace, pubs: dict[str, Publication], order: list[str],
                  readers: dict[str, set[str]], graph: Graph | None = None) -> list[str]:
    """Models that read answers recorded after they were built, and that a publication of
    `order` is made from (its model or one upstream of it).

    An earlier run sent the answers but left the reader out (`--exclude`), so its rows
    predate them: FlowKit's scope mappings would name the mdids a PATCH replaced.
    """
    reading = set().union(*readers.values())
    if not reading:
        return []
    graph = graph or ctx.graph()
    wanted: set[str] = set()
    for name in order:
        model = model_name(pubs[name])
        if model in graph.nodes:
            wanted |= ({model} | graph.upstream(model)) & reading
    from elt.transform import nodestate

    con = ctx.connect(read_only=True)
    try:
        if not wanted or not db.table_exists(con, db.STATE_SCHEMA, "nodes"):
            return []
        return [m for m in sorted(wanted) if nodestate.predates_answers(con, graph, m)]
    finally:
        con.close()


def rebuild_stale_readers(ctx: Workspace, pubs: dict[str, Publication], order: list[str],
                          readers: dict[str, set[str]], graph: Graph, *, dry: bool = False
                          ) -> None:
    """Before a run classifies: rebuild the stale readers (their rows go out as they are
    then). A dry run, or `elt status`, only says so: their counts are of the rows now."""
    stale = stale_readers(ctx, pubs, order, readers, graph)
    if stale and dry:
        ctx.console.warn(f"a publish first rebuilds {', '.join(stale)} (answers they read "
                         "were recorded since they were built): these counts are of their "
                         "rows now")
    elif stale:
        ctx.console.info(f"rebuilding {', '.join(stale)} (answers they read were recorded "
                         "since they were built)")
        ctx.build(select=stale)


def effective_deps(pubs: dict[str, Publication],
                   readers: dict[str, set[str]]) -> dict[str, set[str]]:
    """depends_on, plus: a publication whose model reads `published.x` runs after x."""
    deps = {n: set(p.depends_on) for n, p in pubs.items()}
    for name, pub in pubs.items():
        for upstream, models in readers.items():
            if upstream != name and model_name(pub) in models:
                deps[name].add(upstream)
    return deps


def followers(pubs: dict[str, Publication], readers: dict[str, set[str]], order: list[str],
              excluded: set[str]) -> set[str]:
    """Publications not selected whose model reads the answers of selected ones.

    FlowKit answers a PATCH with a new mdid and drops the old one's scope mappings: a run of
    `-s flowkit_data` alone must also send the mappings of the new mdids, or leave the data
    invisible. So they come along (and can be left out with --exclude).
    """
    found: set[str] = set()
    frontier = set(order)
    while frontier:
        new = {n for n, pub in pubs.items()
               if n not in order and n not in found and n not in excluded
               and any(model_name(pub) in readers.get(x, ()) for x in frontier)}
        found |= new
        frontier = new
    return found


# -- per publication checks ------------------------------------------------------------------
DEFAULT_SETTLE = 120.0  # seconds an unanswered row waits before it may be sent again


def settle_seconds(endpoint: Any) -> float:
    """The endpoint's `settle:` (how long it may go on processing a request whose answer
    never came); the default suits services that answer within their timeout."""
    value = endpoint.get("settle", DEFAULT_SETTLE) if isinstance(endpoint, dict) else None
    try:
        return max(0.0, float(value if value is not None else DEFAULT_SETTLE))
    except (TypeError, ValueError):
        raise EltError(f"settle must be a number of seconds, not {value!r}") from None


def pending_query(pub: Publication, endpoint: Any = None) -> ledger.PendingQuery:
    schema, table = relation(pub)
    return ledger.PendingQuery(pub.name, f"{db.quote(schema)}.{db.quote(table)}", pub.key,
                               pub.mode, pub.body, pub.delete_body,
                               settle_seconds(endpoint or {}), pub.wave,
                               can_update=bool(pub.config.get("update")), refuse=pub.refuse,
                               waits=pub.waits_on)


def changed_message(pub: Publication, n: int) -> str:
    """What publish says of rows changed since acknowledged that it cannot send."""
    return (f"{n:,} rows of {pub.name} changed since sent; {pub.name} declares no update "
            f"(add `{pub.kind}.update`, or `on_change: warn|ignore`)")


def refused_message(pub: Publication, n: int, first: str | None) -> str:
    """What publish says of rows its model marks as never to be sent (`refuse:`)."""
    return (f"publication {pub.name}: {n:,} row(s) refused by column {pub.refuse!r} of "
            f"{pub.model}, never sent (first: {first})")


def undeletable_message(pub: Publication, n: int, first: str | None) -> str:
    """Rows gone from a mirror model that were acknowledged before delete bodies were kept."""
    return (f"{n:,} row(s) gone from {pub.model} (first: {first}) were acknowledged before "
            f"{pub.name} recorded delete bodies (`delete_body: {pub.delete_body}`, e.g. before "
            "the switch to mode mirror), so elt cannot send their full DELETE: put them back "
            "in the model for one publish (their delete bodies are then recorded), or delete "
            f"them at the endpoint and run `elt ledger forget -s {pub.name} --where ...`")


def unpublishable(con: Any, pub: Publication) -> str | None:
    """Why a publication must not be sent now (missing table, failed build or tests)."""
    schema, table = relation(pub)
    if not db.table_exists(con, schema, table):
        return f"model {pub.model} does not exist yet (run `elt build`)"
    if not db.table_exists(con, db.STATE_SCHEMA, "nodes"):
        return None
    rows = con.execute("SELECT status, tests_ok, message FROM _elt.nodes WHERE name = ?",
                       [model_name(pub)]).fetchall()
    if not rows:
        return None
    status, tests_ok, message = rows[0]
    if status not in (None, "success", "up_to_date"):
        return f"model {pub.model}: last build {status}" + (f" ({message})" if message else "")
    if tests_ok is False:
        return f"model {pub.model} failed data tests of severity error; fix them and rebuild"
    return None


def summary(tally: Tally, seconds: float) -> str:
    there = getattr(tally, "already_there", 0)
    done = tally.acknowledged + there  # a row found at the endpoint is as done as a sent one
    pct = 100.0 * done / tally.sent if tally.sent else 100.0
    text = (f"{tally.acknowledged:,}/{tally.sent:,} acknowledged ({pct:.0f}%)" if not there
            else f"{tally.acknowledged:,}/{tally.sent:,} acknowledged, {there:,} already there "
                 f"({pct:.0f}% done)")
    text += f" in {seconds:.1f} s, {tally.failed - getattr(tally, 'unknown', 0):,} failed"
    if getattr(tally, "unknown", 0):  # may have arrived: held until they settle, resent
        text += f", {tally.unknown:,} unanswered (held until they settle)"
    first = getattr(tally, "first_failure", None)
    text = f"{text} (first: {first})" if tally.failed and first else text
    stopped = getattr(tally, "stopped", None)
    return f"{text}; stopped: {stopped}, the rest stays pending" if stopped else text


def token_scopes(token: str | None) -> set[str] | None:
    """The `scope` claim of a JWT (unverified): empty when a JWT has none, None when the
    token is not a JWT (nothing to read)."""
    claims = jwt_claims(token)
    if claims is None:
        return None
    scope = claims.get("scope")
    return set(str(scope).split()) if scope is not None else set()


def scope_needs(pubs: Iterable[Publication]) -> dict[str, set[str]]:
    """Endpoint -> the token scopes its publications declare (`scopes:`)."""
    needs: dict[str, set[str]] = {}
    for pub in pubs:
        needs.setdefault(pub.endpoint, set()).update(pub.scopes)
    return needs


def missing_scopes(transport: Any, needed: set[str]) -> set[str] | None:
    """Needed scopes the token lacks; None when nothing is needed or the token is opaque.
    FlowKit authorises by the `scope` claim alone: a token without it, or granting them as
    `permissions`, is refused (401 "Required permissions ... not present")."""
    if not needed:
        return None
    have = token_scopes(getattr(transport.auth, "current_token", None))
    return None if have is None else needed - have


async def check_transports(console: Console, transports: dict[str, Any],
                           endpoints: dict[str, dict[str, Any]], *, auth: bool,
                           needs: dict[str, set[str]] | None = None) -> dict[str, str]:
    """Heartbeat (and credentials, and the token's scopes against `needs`: endpoint ->
    scopes its publications declare) of every endpoint before the first row goes out.

    Returns {endpoint: why it is unusable}: one endpoint down fails only the publications
    that use it (and their dependents), not the others.
    """
    down: dict[str, str] = {}
    for name, transport in transports.items():
        try:
            version = await transport.heartbeat()
            if auth:
                await transport.check_auth()
                missing = missing_scopes(transport, (needs or {}).get(name, set()))
                if missing:
                    raise EltError(f"the token lacks scope(s) {', '.join(sorted(missing))} "
                                   "that its publications need", where=f"endpoint {name}")
        except EltError as exc:  # said once per publication that needed it (runner)
            down[name] = str(exc)
            continue
        shown = version if version.startswith("ok") else f"version {version}"
        console.info(f"endpoint {name}: {endpoints[name].get('url')} up, {shown}")
    return down


# -- dry run -----------------------------------------------------------------------------
def dry_run(ctx: Workspace, pubs: dict[str, Publication], order: list[str],
            deps: dict[str, set[str]], readers: dict[str, set[str]], graph: Graph,
            refresh: frozenset[str] = frozenset()) -> RunResults:
    """Counts per publication and one sample body; reads only, sends nothing. The same
    gating as a real run: a publication skipped for its model's failed build or tests skips
    the publications downstream of it, and says so."""
    results = RunResults("publish", skips_fail=True)
    console = ctx.console
    _warn_unmerged(ctx)
    rebuild_stale_readers(ctx, pubs, order, readers, graph, dry=True)
    from elt.publish import schemacheck

    checkers = schemacheck.load_checkers(ctx, pubs, order)  # asked before the database opens
    blocked: dict[str, str] = {}
    con = ctx.connect(read_only=True)
    try:
        for name in order:
            pub = pubs[name]
            reason = blocked.get(name) or unpublishable(con, pub)
            if reason:
                results.add(NodeResult(name, "publication", "skipped", 0, 0.0,
                                       f"would be skipped: {reason}"))
                console.node("publish", name, "skipped", message=f"would be skipped: {reason}")
                for down in downstream(name, waits.hard_deps(pubs, deps)):
                    blocked.setdefault(down, f"upstream publication {name} skipped")
                continue
            query = pending_query(pub, ctx.project.target.endpoints.get(pub.endpoint))
            if name in refresh:
                query = replace(query, full_refresh=True)
            c = counts(con, pub, query, check=True)
            message = (f"dry run: {c['new']:,} new, {c['changed']:,} changed, "
                       f"{c['unchanged']:,} unchanged, {c['delete']:,} to delete, "
                       f"{c['failed']:,} failed to retry, {c['unknown']:,} unknown to resend, "
                       f"{c['settling']:,} held until their earlier request settles"
                       + (f", {c['waiting']:,} waiting for rows of "
                          f"{', '.join(u for u, _ in pub.waits_on)}" if c["waiting"] else ""))
            status = "success" if c["pending"] else "up_to_date"
            checker = checkers.get(name)
            if isinstance(checker, str):  # the schema could not be had: say so, fail
                status, message = "error", f"{message}; schema check: {checker}"
            elif checker is not None and c["pending"]:
                broken = schemacheck.message(schemacheck.check_pending(con, query, checker),
                                             checker)
                if broken:
                    status, message = "error", f"{message}; {broken}"
            results.add(NodeResult(name, "publication", status, c["pending"], 0.0, message))
            console.node("publish", name, status, rows=c["pending"], message=message)
            if not c["pending"]:
                continue
            pending = ledger.pending_sql(query, ledger.model_columns(con, query.relation),
                                         ledger.ledger_relation(con))
            sample = con.execute(f"SELECT op, body FROM ({pending}) LIMIT 1",
                                 [pub.name]).fetchall()
            if sample:
                body = sample[0][1] or ""
                if len(body) > SAMPLE_CHARS:
                    body = body[:SAMPLE_CHARS] + "…"
                console.info(f"    sample {sample[0][0]} -> {pub.endpoint}: {body}")
    finally:
        con.close()
    return results


def counts(con: Any, pub: Publication, query: ledger.PendingQuery, check: bool = False
           ) -> dict[str, int]:
    """ledger.pending_counts, or, while the publication's mark is clean (marks.py), every
    model row unchanged without reading a body. `check`: the model's keys are checked first
    (a clean mark's model passed that check when it was recorded)."""
    schema, table = relation(pub)
    if marks.clean(con, query, model_name(pub), schema, table):
        (total,), = con.execute(f"SELECT count(*) FROM {query.relation}").fetchall()
        return {**dict.fromkeys(ledger.REASONS, 0), "unchanged": int(total), "pending": 0}
    columns = ledger.check_model(con, query) if check else None
    return ledger.pending_counts(con, query, columns)


def _warn_unmerged(ctx: Workspace) -> None:
    directory = state_dir(ctx.project.target.path)
    if jr.rotated_files(directory) or (directory / jr.CURRENT).exists():
        ctx.console.warn("a journal of answers is not merged yet (a publish is running or was "
                         "interrupted); counts may include rows already acknowledged")


# -- status and debug ----------------------------------------------------------------------
def status(ctx: Workspace, pubs: dict[str, Publication]) -> tuple[list[str], list[tuple]]:
    """One row per publication; opens the database read-only."""
    _warn_unmerged(ctx)
    graph = ctx.graph()
    rebuild_stale_readers(ctx, pubs, list(pubs), published_readers(ctx, pubs, graph), graph,
                          dry=True)
    rows: list[tuple] = []
    con = ctx.connect(read_only=True)
    try:
        for name, pub in pubs.items():
            schema, table = relation(pub)
            if not db.table_exists(con, schema, table):
                rows.append((name, pub.model, pub.endpoint,
                             *[None] * (len(STATUS_COLUMNS) - 3)))
                continue
            query = pending_query(pub, ctx.project.target.endpoints.get(pub.endpoint))
            c = counts(con, pub, query)
            (total,), = con.execute(f"SELECT count(*) FROM {query.relation}").fetchall()
            there = ledger.count_status(con, name, "already_there")
            rows.append((name, pub.model, pub.endpoint, total, c["unchanged"] - there, there,
                         c["failed"], c["pending"], c["settling"], c["changed"],
                         ledger.count_orphaned(con, query) if pub.mode == "upsert" else 0,
                         c["refused"], c["waiting"]))
    finally:
        con.close()
    return STATUS_COLUMNS, rows
