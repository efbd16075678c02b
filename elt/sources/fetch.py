"""Fetching API sources into `raw.<name>` (YAML format and table columns: elt.sources.spec).

The set to ask is computed in SQL: the distinct variable tuples of `for_each` that have no
answer yet, or whose answer errored or is older than `max_age`, so a re-run with nothing
new sends no request at all. Answers are collected in memory and written in batches with
set-based SQL (one DELETE + INSERT from column arrays per batch), each batch committed on
its own: when an endpoint fails half-way, what was answered stays and the next run asks
only the rest. Requests go through the publisher's Transport (client.py).

A publication can make answers stale whatever their age: registering an external id
changes what the lookup of that id answers. An answer fetched before the last
acknowledgement of a publication the source depends on, or names in `stale_after:`
(`published_inputs`), is asked again.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from elt.core.console import Console
from elt.core.db import quote
from elt.core.errors import EltError
from elt.graph.dag import Graph
from elt.http.endpoints import Endpoints
from elt.load.loader import LoadOutcome
from elt.project.config import Project
from elt.project.modelfile import relative
from elt.sources.client import fetch_all
from elt.sources.spec import Answer, Key, SourceSpec, Tally, parse_source

__all__ = ["due_at", "fetch_source", "load_spec", "published_inputs"]

FLUSH_EVERY = 2000  # answered tuples per write transaction
MARK = "elt-api:"  # table comment prefix holding the checksum of the request settings


def load_spec(project: Project, node: Any, check: bool = True) -> SourceSpec:
    """The validated spec of a build node (needs only `.name`, `.config`, `.path`);
    check=False leaves the GraphQL document unparsed (spec.check_document())."""
    name = getattr(node, "identifier", None) or str(node.name).removeprefix("raw.")
    return parse_source(name, node.config, node.path, relative(node.path, project.root),
                        check)


def published_inputs(graph: Graph, node: Any) -> list[str]:
    """The `published.<pub>` views whose acknowledgements make the source's answers stale:
    those of publications sending its for_each model's rows (the very rows it asks about,
    e.g. external ids it looks up and publish registers) or a model built on its answers (the
    lookup-then-write pattern: uois_externalids_to_send), any the for_each model reads, and
    those `stale_after:` names (what the endpoint answers depends on them: FlowKit lists an
    indicator once its datasets and scope mappings are published)."""
    models = set(node.depends_on) | set(graph.downstream(node.name))
    found = {n for n in graph.upstream(node.name) if graph.nodes[n].kind == "published"}
    stale_after = node.config.get("stale_after") or []
    for pub in [stale_after] if isinstance(stale_after, str) else stale_after:
        if f"published.{str(pub).lower()}" in graph.nodes:  # discover checked the names
            found.add(f"published.{str(pub).lower()}")
    for name, pub in graph.nodes.items():
        target = str(pub.config.get("model") or "").lower() if pub.kind == "published" else ""
        schema, _, table = target.rpartition(".")
        if target and graph.resolve_table(schema, table) in models:
            found.add(name)
    return sorted(graph.nodes[n].qualified for n in found)


def fetch_source(con: duckdb.DuckDBPyConnection, project: Project, node: Any,
                 console: Console, endpoints: Endpoints, *,
                 full_refresh: bool = False, published: list[str] | None = None) -> LoadOutcome:
    """Ask what is not answered yet, or was answered before one of the `published` views
    (qualified relations) acknowledged rows; EltError names source, endpoint, status.
    The GraphQL document is parsed only when the table is (re)made or there is something
    to ask: an unchanged document was valid when its answers were fetched."""
    spec = load_spec(project, node, check=False)
    table = f"raw.{quote(spec.name)}"
    with _labelled(spec):  # a bad endpoint name fails even when there is nothing to ask
        endpoints.resolve([spec.endpoint])
    try:
        created = _ensure_table(con, spec, table)
        full = full_refresh or created
        removed = _prune(con, spec, table)
        todo = _pending(con, spec, table, full, _acknowledged_at(con, published or []))
    except duckdb.Error as exc:
        raise EltError(f"api source {spec.label}: {str(exc).splitlines()[0]}",
                       where=spec.where) from None
    if not todo:
        status = "success" if created or removed else "up_to_date"
        return LoadOutcome(status, _count(con, table), 0, 0, removed, None)
    spec.check_document()
    load_id = int(con.execute("SELECT nextval('_elt.load_seq')").fetchone()[0])  # type: ignore
    writer = _Writer(con, spec, table, load_id, {key for key, _, had in todo if had})
    tally = Tally()
    with _labelled(spec), endpoints.open([spec.endpoint]) as configs:
        progress = console.progress(f"api source {spec.label}", None, "requests")
        try:
            asyncio.run(fetch_all(spec, configs[spec.endpoint], todo, writer, tally,
                                  progress))
        finally:
            progress.close()
            writer.flush()
    if tally.failed:
        raise EltError(tally.summary(spec, writer.answered))
    message = f"asked {len(todo)} in {tally.sent} requests"
    if tally.field_errors:
        message += f"; {tally.field_errors} answered with errors (see column error)"
        console.warn(f"api source {spec.label}: {message}")
    return LoadOutcome("success", _count(con, table), writer.answered, 0, removed, message)


def due_at(con: duckdb.DuckDBPyConnection, project: Project, graph: Graph, node: Any
           ) -> float | None:
    """When the next build would ask this source anything, in epoch seconds: now if
    something is to ask already, else when its oldest answer reaches max_age; None when
    only a change of its inputs would (the up-to-date stamp keeps this)."""
    spec = load_spec(project, node, check=False)
    table = f"raw.{quote(spec.name)}"
    stale_before = _acknowledged_at(con, published_inputs(graph, node))
    if _pending(con, spec, table, False, stale_before):
        return 0.0
    if spec.max_age is None:
        return None
    row = con.execute(f"SELECT min(fetched_at) FROM {table} WHERE error IS NULL").fetchone()
    if not row or row[0] is None:
        return None
    return row[0].replace(tzinfo=UTC).timestamp() + spec.max_age


@contextmanager
def _labelled(spec: SourceSpec) -> Iterator[None]:
    """Errors of the endpoint layer name the source too: the build prints one line."""
    try:
        yield
    except EltError as exc:
        if str(exc).startswith(f"api source {spec.label}"):
            raise
        raise EltError(f"api source {spec.label}: {exc}") from None


# -- SQL -----------------------------------------------------------------------------------
def _ensure_table(con: duckdb.DuckDBPyConnection, spec: SourceSpec, table: str) -> bool:
    """Create raw.<name>; recreate it when the request settings changed. True if created."""
    con.execute("CREATE SCHEMA IF NOT EXISTS raw; CREATE SCHEMA IF NOT EXISTS _elt; "
                "CREATE SEQUENCE IF NOT EXISTS _elt.load_seq START 1")
    row = con.execute("SELECT comment FROM duckdb_tables() WHERE schema_name = 'raw' "
                      "AND table_name = ?", [spec.name]).fetchone()
    mark = MARK + spec.checksum
    if row is not None and row[0] == mark:
        return False
    spec.check_document()  # a changed (or first) document is checked before the table goes
    con.execute("BEGIN")
    try:
        con.execute(f"DROP TABLE IF EXISTS {table}")
        cols = ", ".join(f"{quote(c)} {t}" for c, t in spec.columns)
        con.execute(f"CREATE TABLE {table} ({cols})")
        con.execute(f"COMMENT ON TABLE {table} IS '{mark}'")
        con.execute("COMMIT")
    except duckdb.Error:
        con.execute("ROLLBACK")
        raise
    return True


def _source_sql(spec: SourceSpec) -> str:
    """The for_each tuples: variable columns as VARCHAR, plus their native values as JSON."""
    schema, _, name = str(spec.model).rpartition(".")
    relation = f"{quote(schema)}.{quote(name)}" if schema else quote(name)
    keys = ", ".join(f"CAST({quote(c)} AS VARCHAR) AS {quote(v)}" for v, c in spec.variables)
    struct = ", ".join(f"{quote(v)} := {quote(c)}" for v, c in spec.variables)
    return f"SELECT {keys}, to_json(struct_pack({struct})) AS _vars FROM {relation}"


def _match(a: str, b: str, names: list[str]) -> str:
    return " AND ".join(f"{a}.{quote(n)} IS NOT DISTINCT FROM {b}.{quote(n)}" for n in names)


def _prune(con: duckdb.DuckDBPyConnection, spec: SourceSpec, table: str) -> int:
    """Drop answers whose tuple left the for_each relation: raw.<name> mirrors the current set."""
    if not spec.variables:
        return 0
    row = con.execute(f"DELETE FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM "
                      f"({_source_sql(spec)}) s WHERE {_match('s', 't', spec.var_names)})"
                      ).fetchone()
    return int(row[0]) if row else 0


def _acknowledged_at(con: duckdb.DuckDBPyConnection, views: list[str]) -> datetime | None:
    """When the latest acknowledgement of any of these `published.<pub>` views arrived."""
    if not views:
        return None
    union = " UNION ALL ".join(f"SELECT max(last_sent) AS t FROM {v} WHERE status = "
                               "'acknowledged'" for v in views)
    row = con.execute(f"SELECT max(t) FROM ({union})").fetchone()
    return row[0] if row else None


def _pending(con: duckdb.DuckDBPyConnection, spec: SourceSpec, table: str,
             full: bool, stale_before: datetime | None = None
             ) -> list[tuple[Key, dict[str, Any], bool]]:
    """Distinct tuples without a good, fresh answer (all on a full refresh), and whether
    the table has rows for them already (only those need a DELETE when answered).

    Fresh: no error, younger than max_age, and fetched after `stale_before` (the last
    acknowledgement of a publication the answers depend on)."""
    fresh = "error IS NULL"
    params: list[Any] = []
    if spec.max_age is not None:
        fresh += " AND fetched_at >= ?"
        params.append(_now() - timedelta(seconds=spec.max_age))
    if stale_before is not None:
        fresh += " AND fetched_at > ?"
        params.append(stale_before)
    if not spec.variables:
        done = not full and _count(con, f"{table} WHERE {fresh}", params)
        return [] if done else [((), {}, _count(con, table) > 0)]
    names = ", ".join(f"s.{quote(v)}" for v in spec.var_names)
    cols = ", ".join(map(quote, spec.var_names))
    sql = f"SELECT {names}, any_value(s._vars), bool_or(e._had) FROM ({_source_sql(spec)}) s"
    if not full:
        sql += (f" ANTI JOIN (SELECT DISTINCT {cols} FROM {table} WHERE {fresh}) d "
                f"ON {_match('s', 'd', spec.var_names)}")
    sql += (f" LEFT JOIN (SELECT DISTINCT {cols}, TRUE AS _had FROM {table}) e "
            f"ON {_match('s', 'e', spec.var_names)}")
    order = ", ".join(str(i + 1) for i in range(len(spec.variables)))
    rows = con.execute(f"{sql} GROUP BY {names} ORDER BY {order}", [] if full else params
                       ).fetchall()
    return [(tuple(r[:-2]), json.loads(r[-2]), bool(r[-1])) for r in rows]


def _count(con: duckdb.DuckDBPyConnection, relation: str, params: list[Any] | None = None) -> int:
    row = con.execute(f"SELECT count(*) FROM {relation}", params or []).fetchone()
    return int(row[0]) if row else 0


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class _Writer:
    """Buffers answers; each flush replaces the answered tuples' rows in one transaction."""

    def __init__(self, con: duckdb.DuckDBPyConnection, spec: SourceSpec, table: str,
                 load_id: int, had_rows: set[Key]) -> None:
        self.con, self.spec, self.table, self.load_id = con, spec, table, load_id
        self.had_rows = had_rows  # tuples with rows in the table before this run
        self.buffer: list[Answer] = []
        self.answered = 0

    def add(self, answers: list[Answer]) -> None:
        self.buffer.extend(answers)
        if len(self.buffer) >= FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        good = [a for a in self.buffer if a.error is None]
        bad = [a for a in self.buffer if a.error is not None]
        con, self.buffer = self.con, []
        con.execute("BEGIN")
        try:
            self._delete([a for a in good if a.key in self.had_rows], "TRUE")
            new = good + [a for a in bad if a.key not in self.had_rows]
            if new:  # a new answer replaces whatever the tuple had
                con.execute(f"INSERT INTO {self.table} {self._values()}", self._arrays(new))
            bad = [a for a in bad if a.key in self.had_rows]
            if bad:  # an error replaces only an earlier error, never a good (stale) answer
                self._delete(bad, "t.error IS NOT NULL")
                cond = _match("x", "n", self.spec.var_names) or "TRUE"
                con.execute(f"INSERT INTO {self.table} SELECT * FROM ({self._values()}) n "
                            f"WHERE NOT EXISTS (SELECT 1 FROM {self.table} x WHERE {cond})",
                            self._arrays(bad))
            con.execute("COMMIT")
        except duckdb.Error:
            con.execute("ROLLBACK")
            raise
        self.answered += len(good)

    def _delete(self, answers: list[Answer], extra: str) -> None:
        names = self.spec.var_names
        if not answers:
            return
        if not names:
            self.con.execute(f"DELETE FROM {self.table} t WHERE {extra}")
            return
        keys = ", ".join(f"unnest(?::VARCHAR[]) AS {quote(n)}" for n in names)
        self.con.execute(f"DELETE FROM {self.table} t USING (SELECT {keys}) b "
                         f"WHERE {_match('t', 'b', names)} AND {extra}",
                         [[a.key[i] for a in answers] for i in range(len(names))])

    def _values(self) -> str:
        return "SELECT " + ", ".join(f"unnest(?::{t}[]) AS {quote(c)}"
                                     for c, t in self.spec.columns)

    def _arrays(self, answers: list[Answer]) -> list[list[Any]]:
        out: list[list[Any]] = [[] for _ in self.spec.columns]
        now = _now()
        for a in answers:
            for page, item, result in a.rows or [(None, None, None)]:
                values: list[Any] = list(a.key)
                if self.spec.paging:
                    values += [page, item]
                values += [result, a.http_status, a.error, now, self.load_id]
                for column, value in zip(out, values, strict=True):
                    column.append(value)
        return out
