"""The publish ledger: what each endpoint acknowledged, per publication and key, in SQL.

The ledger lives in the staging database so models can read the answers (`published.<name>`)
and so the pending set (new, changed, failed, unknown, deleted keys) is one set-based query
over the model and the ledger instead of a Python loop over rows. Answers arrive first in an
append-only NDJSON journal (cheap, crash-safe, needs no database lock) and are merged here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb

from elt.core.db import STATE_SCHEMA, literal, quote, table_exists
from elt.core.errors import PublishError
from elt.core.state import LEDGER, RUNS, SEQ, ensure_ledger  # noqa: F401  (re-exported)
from elt.publish.waits import FIRST as WAIT_FIRST
from elt.publish.waits import Wait, waiting_sql

# An empty relation shaped like the ledger, for read-only opens before any publish.
_EMPTY_LEDGER = ("(SELECT NULL::VARCHAR AS publication, NULL::VARCHAR AS key, NULL::JSON AS "
                 "key_json, NULL::VARCHAR AS hash, NULL::VARCHAR AS status, NULL::VARCHAR AS op, "
                 "NULL::BOOLEAN AS deleted, NULL::VARCHAR AS tombstone, NULL::VARCHAR AS answer, "
                 "NULL::TIMESTAMP AS last_sent WHERE false)")

REASONS = ("new", "changed", "unchanged", "delete", "failed", "unknown", "settling", "orphaned",
           "refused", "undeletable", "waiting")



# -- pending set --------------------------------------------------------------------------
@dataclass(frozen=True)
class PendingQuery:
    """What the pending-set SQL needs to know about one publication."""

    publication: str
    relation: str            # quoted model relation, e.g. main."flowkit_datasets"
    key: tuple[str, ...]
    mode: str                # append | upsert | mirror
    body: str | None = None  # JSON column sent as the body; None -> the row as an object
    delete_body: str | None = None  # column kept in the ledger, sent when the row is deleted
    settle: float = 0.0      # seconds an unanswered (unknown) row is held before a resend
    wave: str | None = None  # column ordering the sending in waves (parents before children)
    # non-key columns a REST path or header template names (carried beside the bodies)
    params: tuple[str, ...] = field(default=(), repr=False)  # (the mark ignores them)
    full_refresh: bool = False  # every acknowledged row counts as changed (sent again)
    can_update: bool = False  # append only: True sends a changed row as an update, False
    # reports it (reason changed, no op); upsert and mirror always update
    refuse: str | None = None  # column: a non-NULL text is why the row must never be sent
    # row-level depends_on (waits.py): rows whose upstream row is not acknowledged wait
    waits: tuple[Wait, ...] = field(default=(), repr=False)


def model_columns(con: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Column name -> DuckDB type of a relation."""
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE {relation}").fetchall()}


def _body_expr(q: PendingQuery, columns: dict[str, str]) -> str:
    """The body text exactly as it will be sent; its md5 is the content hash. Not re-parsed:
    the bytes a model produces are what the endpoint gets, and parsing every body again
    costs several times their size in memory."""
    if q.body is not None:
        ctype = columns[q.body].upper()
        raw = quote(q.body) if ctype in ("JSON", "VARCHAR") else f"to_json({quote(q.body)})"
        return f"coalesce({raw}::VARCHAR, 'null')"
    # The row as an object; elt's lineage columns (_elt_load_id ...) and the refusal
    # column are not data.
    fields = ", ".join(f"{quote(c)} := {quote(c)}" for c in columns
                       if not c.startswith("_elt_") and c != q.refuse)
    return f"to_json(struct_pack({fields}))::VARCHAR"


def _model_cte(q: PendingQuery, columns: dict[str, str], *, with_body: bool,
               ledger: str | None = None, known: bool = True) -> str:
    """Key, key object and content hash of every model row (and the body when asked: the
    classification carries only hashes, so memory stays flat however big the bodies are).

    With `ledger`, only rows whose key the ledger knows are hashed (to compare with the
    recorded hash); a new row's hash is NULL here and the sender takes the md5 of the body
    it sends (stream.py), so a first publish reads and hashes each body once, not twice.
    `known=False` (the ledger has no row of the publication): no body is read at all, as
    DuckDB would scan the body columns for the CASE anyway (1.1 s of 1 GB at scale 300)."""
    keys = ", ".join(quote(k) for k in q.key)
    obj = ", ".join(f"{literal(k)}, {quote(k)}" for k in q.key)
    body = _body_expr(q, columns)
    if with_body:
        last = f"{body} AS body"
        if q.params:  # what the row's path templates name beyond its key (paths.py)
            fields = ", ".join(f"{literal(c)}, {quote(c)}" for c in q.params)
            last += f", json_object({fields})::VARCHAR AS params"
    elif ledger and not known:
        last = "NULL::VARCHAR AS hash"
    elif ledger:
        last = (f"CASE WHEN json_array({keys})::VARCHAR IN (SELECT key FROM {ledger} WHERE "
                f"publication = $1) THEN md5({body}) END AS hash")
    else:
        last = f"md5({body}) AS hash"
    tomb = f"{quote(q.delete_body)}::VARCHAR" if q.delete_body else "NULL::VARCHAR"
    wave = quote(q.wave) if q.wave else "NULL"
    refusal = f"{quote(q.refuse)}::VARCHAR" if q.refuse else "NULL::VARCHAR"
    waiting = waiting_sql(q.waits, ledger) if ledger else "NULL::VARCHAR"
    return (f"SELECT json_array({keys})::VARCHAR AS key, json_object({obj})::VARCHAR AS key_json, "
            f"{last}, {tomb} AS tombstone, {wave} AS wave, {refusal} AS refusal, "
            f"{waiting} AS waiting FROM {q.relation}")


def model_rows_sql(q: PendingQuery, columns: dict[str, str]) -> str:
    """key, key_json, body (as sent) and the row's other columns as an object (a read may
    name any of them) of every model row a publish would send (refused rows left out):
    what `elt verify` compares with what the endpoint holds. One scan, no join."""
    keys = ", ".join(quote(k) for k in q.key)
    obj = ", ".join(f"{literal(k)}, {quote(k)}" for k in q.key)
    fields = ", ".join(f"{quote(c)} := {quote(c)}" for c in columns
                       if c != q.body and not c.startswith("_elt_")) or "_ := NULL"
    refused = f" WHERE {quote(q.refuse)} IS NULL" if q.refuse else ""
    return (f"SELECT json_array({keys})::VARCHAR AS key, json_object({obj})::VARCHAR AS "
            f"key_json, {_body_expr(q, columns)} AS body, to_json(struct_pack({fields}))"
            f"::VARCHAR AS row FROM {q.relation}{refused}")


def _settled_before(q: PendingQuery) -> str:
    """SQL condition on the ledger's `last_sent`: an unknown row sent since may still be
    processing.

    The endpoint may still be working on a request whose answer never came (a timeout, a
    killed run); a resend before it settles can store the key twice (FlowKit: "Ambiguous
    dataset"). The cut-off is a literal: the ledger's times are naive UTC.
    """
    if q.settle <= 0:
        return "false"
    cutoff = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=q.settle)
    return f"last_sent > TIMESTAMP {literal(cutoff.isoformat(timespec='microseconds'))}"


def check_model(con: duckdb.DuckDBPyConnection, q: PendingQuery) -> dict[str, str]:
    """Key and body columns exist, keys are unique and not NULL: else one clear error."""
    columns = model_columns(con, q.relation)
    where = f"publication {q.publication!r} (model {q.relation})"
    for col in (*q.key, *([q.body] if q.body else []), *q.params,
                *([q.refuse] if q.refuse else [])):
        if col not in columns:
            raise PublishError(f"column {col!r} not in the model (columns: "
                               f"{', '.join(columns)})", where=where)
    nulls = " OR ".join(f"{quote(k)} IS NULL" for k in q.key)
    (nnull,), = con.execute(f"SELECT count(*) FROM {q.relation} WHERE {nulls}").fetchall()
    if nnull:
        raise PublishError(f"{nnull} row(s) have a NULL key column {list(q.key)}", where=where)
    keys = ", ".join(quote(k) for k in q.key)
    dups = con.execute(f"SELECT json_array({keys})::VARCHAR, count(*) FROM {q.relation} "
                       f"GROUP BY ALL HAVING count(*) > 1 LIMIT 1").fetchall()
    if dups:
        raise PublishError(f"key {dups[0][0]} appears {dups[0][1]} times; keys must be unique",
                           where=where)
    return columns


def classified_sql(q: PendingQuery, columns: dict[str, str], ledger: str = LEDGER,
                   known: bool = True) -> str:
    """Every key of the model or the ledger with its reason and the op to send (NULL: none).

    reason: new | changed | unchanged | delete | failed | unknown | settling | gone. Failed
    rows are sent again with their op; `unknown` rows (sent, the answer never recorded) are
    resent flagged retry_of_unknown once they have settled (`settling` until then: no op);
    acknowledged, unchanged rows never go out again. `tombstone` is what to record for a row
    being sent (its delete_body), and for a row gone from the model the body of its delete.
    Parameter $1 is the publication name; `known=False`: the ledger has none of its rows.
    """
    model = _model_cte(q, columns, with_body=False, ledger=ledger, known=known)
    return (f"WITH mh AS ({model}),\n"
            f"l AS ({ledger_rows_sql(q, ledger)}),\n{classify_sql(q)}")


def ledger_rows_sql(q: PendingQuery, ledger: str = LEDGER, publication: str = "$1") -> str:
    """The ledger rows of one publication as the classification reads them (`settling`
    worked out here, already_there counted as acknowledged). A Spark target gets them as a
    parquet snapshot of this SELECT (publication given as a literal)."""
    return (f"SELECT key, key_json::VARCHAR AS key_json, hash, op, tombstone, answer, "
            f"status = 'unknown' AND {_settled_before(q)} AS settling, "
            "CASE WHEN status = 'already_there' THEN 'acknowledged' ELSE status END AS status, "
            f"coalesce(deleted, false) AS deleted FROM {ledger} WHERE publication = "
            f"{publication}")


def classify_sql(q: PendingQuery) -> str:
    """The classification over CTEs `mh` (key, key_json, hash, tombstone, wave, refusal of
    every model row) and `l` (ledger_rows_sql): plain SQL that DuckDB and Spark both run, so a
    Spark target classifies exactly as DuckDB does."""
    append = "true" if q.mode == "append" else "false"
    update = "true" if q.can_update or q.mode != "append" else "false"
    mirror = "true" if q.mode == "mirror" else "false"
    # rows acknowledged before `delete_body` was recorded for them (a switch to mirror)
    bodiless = "true" if q.mode == "mirror" and q.delete_body else "false"
    upsert = "true" if q.mode == "upsert" else "false"
    refresh = "true" if q.full_refresh else "false"
    return f"""c AS (
  SELECT coalesce(mh.key, l.key) AS key, coalesce(mh.key_json, l.key_json) AS key_json,
         coalesce(mh.hash, l.hash) AS hash, l.op AS last_op, mh.key IS NULL AS absent,
         CASE WHEN mh.key IS NULL THEN coalesce(l.tombstone, l.key_json) ELSE mh.tombstone END
             AS tombstone, mh.wave, l.answer, mh.refusal, mh.waiting,
         CASE
           WHEN l.settling THEN 'settling'
           WHEN mh.key IS NULL THEN CASE
               WHEN l.deleted THEN 'gone'
               WHEN {upsert} AND l.status = 'acknowledged' THEN 'orphaned'
               WHEN NOT {mirror} THEN 'gone'
               WHEN l.status = 'acknowledged' AND {bodiless} AND l.tombstone IS NULL
                   THEN 'undeletable'
               WHEN l.status = 'acknowledged' THEN 'delete'
               WHEN l.status = 'unknown' THEN 'unknown' ELSE 'failed' END
           WHEN mh.refusal IS NOT NULL AND (l.key IS NULL OR l.deleted
                                            OR l.status <> 'acknowledged') THEN 'refused'
           WHEN mh.waiting IS NOT NULL AND (l.key IS NULL OR l.deleted
                                            OR l.status <> 'acknowledged'
                                            OR ({update} AND ({refresh} OR l.hash <> mh.hash)))
               THEN 'waiting'
           WHEN l.key IS NULL OR (l.deleted AND l.status = 'acknowledged') THEN 'new'
           WHEN l.status = 'acknowledged' THEN
               CASE WHEN {refresh} THEN 'changed'
                    WHEN l.hash = mh.hash OR (l.hash IS NULL AND {append}) THEN 'unchanged'
                    ELSE 'changed' END
           WHEN l.status = 'unknown' THEN 'unknown'
           ELSE 'failed' END AS reason
  FROM mh FULL OUTER JOIN l ON mh.key = l.key)
SELECT key, key_json, reason,
       CASE WHEN reason = 'new' THEN 'insert'
            WHEN reason = 'changed' AND {update} THEN 'update'
            WHEN reason = 'changed' AND {refresh} THEN 'insert'
            WHEN reason = 'delete' THEN 'delete'
            WHEN reason IN ('failed', 'unknown') THEN CASE
                WHEN absent THEN 'delete'
                WHEN last_op = 'delete' AND reason = 'failed' AND NOT {append} THEN 'update'
                WHEN last_op = 'delete' THEN 'insert'
                ELSE coalesce(last_op, 'insert') END
       END AS op,
       hash, absent, reason = 'unknown' AS retry_of_unknown, tombstone, wave, answer, refusal,
       waiting
FROM c"""


def record_delete_bodies(con: duckdb.DuckDBPyConnection, q: PendingQuery,
                         columns: dict[str, str]) -> int:
    """Mirror with `delete_body`: acknowledged rows with no delete body recorded (sent before
    the publication switched to mirror) get their model row's, while it is still the row
    acknowledged (same hash); without it a later delete could only send the bare key, which
    an endpoint needing the full body refuses on every run. Cheap once done: only rows
    lacking one are read."""
    if q.mode != "mirror" or not q.delete_body or not table_exists(con, STATE_SCHEMA, "ledger"):
        return 0
    lacking = ("publication = $1 AND tombstone IS NULL AND status IN ('acknowledged', "
               "'already_there') AND NOT coalesce(deleted, false)")
    (n,), = con.execute(f"SELECT count(*) FROM {LEDGER} WHERE {lacking}",
                        [q.publication]).fetchall()
    if not n:
        return 0
    keys = ", ".join(quote(k) for k in q.key)
    (done,), = con.execute(
        f"UPDATE {LEDGER} AS l SET tombstone = m.tomb FROM (SELECT json_array({keys})::VARCHAR "
        f"AS key, {quote(q.delete_body)}::VARCHAR AS tomb, md5({_body_expr(q, columns)}) AS hash "
        f"FROM {q.relation}) AS m WHERE l.key = m.key AND l.hash = m.hash AND "
        f"l.publication = $1 AND l.tombstone IS NULL AND l.status IN ('acknowledged', "
        "'already_there') AND NOT coalesce(l.deleted, false)", [q.publication]).fetchall()
    return int(done)


def _bodies_sql(q: PendingQuery, columns: dict[str, str], pending: str) -> str:
    """key, body of the model rows whose key is pending (a semi-join: bodies stream)."""
    keys = ", ".join(quote(k) for k in q.key)
    extra = ", params" if q.params else ""
    return (f"SELECT key, body{extra} FROM ({_model_cte(q, columns, with_body=True)} WHERE "
            f"json_array({keys})::VARCHAR IN (SELECT key FROM {pending} WHERE NOT absent "
            "AND op IS NOT NULL))")


def pending_sql(q: PendingQuery, columns: dict[str, str], ledger: str = LEDGER) -> str:
    """Only the rows to send: key, key_json, op, hash, body, retry_of_unknown, reason.

    A delete's body is the delete_body recorded when the row was last acknowledged, else
    the key as an object (the row is gone from the model).
    """
    return f"""
WITH p AS (SELECT * FROM ({classified_sql(q, columns, ledger)}) WHERE op IS NOT NULL),
b AS ({_bodies_sql(q, columns, "p")})
SELECT p.key, p.key_json, p.op, coalesce(p.hash, md5(b.body)) AS hash,
       CASE WHEN p.absent THEN p.tombstone ELSE b.body END AS body, p.retry_of_unknown, p.reason
FROM p LEFT JOIN b ON p.key = b.key ORDER BY p.key"""


def ledger_relation(con: duckdb.DuckDBPyConnection) -> str:
    """The ledger, or an empty stand-in when a read-only open finds none yet."""
    return LEDGER if table_exists(con, STATE_SCHEMA, "ledger") else _EMPTY_LEDGER


def ledger_knows(con: duckdb.DuckDBPyConnection, q: PendingQuery, ledger: str = LEDGER) -> bool:
    """Whether the ledger has any row of the publication (if not, the classification reads
    no body: every key is new)."""
    if ledger != LEDGER:
        return False
    (known,), = con.execute(f"SELECT EXISTS (SELECT 1 FROM {LEDGER} WHERE publication = $1)",
                            [q.publication]).fetchall()
    return bool(known)


def pending_counts(con: duckdb.DuckDBPyConnection, q: PendingQuery,
                   columns: dict[str, str] | None = None) -> dict[str, int]:
    """Keys per reason (new, changed, unchanged, delete, failed, unknown) and `pending`."""
    columns = columns or model_columns(con, q.relation)
    ledger = ledger_relation(con)
    classified = classified_sql(q, columns, ledger, known=ledger_knows(con, q, ledger))
    sql = f"SELECT reason, count(*), count(op) FROM ({classified}) GROUP BY reason"
    counts = dict.fromkeys(REASONS, 0)
    pending = 0
    for reason, n, with_op in con.execute(sql, [q.publication]).fetchall():
        if reason in counts:
            counts[reason] = n
        pending += with_op
    counts["pending"] = pending
    return counts


def count_orphaned(con: duckdb.DuckDBPyConnection, q: PendingQuery) -> int:
    """Keys acknowledged earlier and gone from the model, never deleted (upsert): keys only,
    no body read."""
    keys = ", ".join(quote(k) for k in q.key)
    (n,), = con.execute(
        f"SELECT count(*) FROM {ledger_relation(con)} WHERE publication = ? AND status IN "
        "('acknowledged', 'already_there') AND NOT coalesce(deleted, false) AND key NOT IN "
        f"(SELECT json_array({keys})::VARCHAR FROM {q.relation})", [q.publication]).fetchall()
    return int(n)


def count_status(con: duckdb.DuckDBPyConnection, publication: str, status: str) -> int:
    """Ledger rows of a publication in one status (deleted rows not counted)."""
    (n,), = con.execute(f"SELECT count(*) FROM {ledger_relation(con)} WHERE publication = ? "
                        "AND status = ? AND NOT coalesce(deleted, false)",
                        [publication, status]).fetchall()
    return int(n)


def waves(path: Path) -> list[Any]:
    """The distinct wave values of a pending keys file, in sending order (NULL, e.g. deleted
    rows, last)."""
    with duckdb.connect() as con:
        return [r[0] for r in con.execute(
            "SELECT DISTINCT wave FROM read_parquet(?) ORDER BY wave NULLS LAST",
            [str(path)]).fetchall()]


def bodies_path(path: Path) -> Path:
    """Where copy_pending puts the bodies beside the pending keys."""
    return path.with_name(path.stem + ".bodies.parquet")


def copy_pending(con: duckdb.DuckDBPyConnection, q: PendingQuery, path: Path,
                 columns: dict[str, str] | None = None,
                 counts: dict[str, Any] | None = None) -> tuple[int, int]:
    """copy_pending_counts; `counts` gets "unsent" (changed rows left unsent), "refused"
    (rows the model's refuse column keeps back) and "refused_first" (key: why, of one),
    "undeletable" (gone from a mirror model with no delete body recorded) and its first."""
    found: dict[str, Any] = {}
    count, held, unsent = copy_pending_counts(con, q, path, columns, found)
    if counts is not None:
        counts.update(found, unsent=unsent)
    return count, held


def copy_pending_counts(con: duckdb.DuckDBPyConnection, q: PendingQuery, path: Path,
                        columns: dict[str, str] | None = None,
                        refused: dict[str, Any] | None = None) -> tuple[int, int, int]:
    """Write the pending set to parquet (so the database can be closed while sending);
    returns (rows to send, rows held while an earlier request of theirs settles).

    Two files: the pending keys with op and hash (`path`, small), and the bodies of those
    still in the model (`bodies_path(path)`), selected by a semi-join. Attaching bodies to
    keys with a join would make DuckDB hold every body in its hash table (1.3 GB for 1 GB
    of bodies); the semi-join streams them. The sender pairs them up.
    """
    columns = columns or model_columns(con, q.relation)
    path.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"CREATE OR REPLACE TEMP TABLE _elt_pending AS SELECT key, key_json, op, hash, "
                f"retry_of_unknown, absent, tombstone, wave, answer, reason, refusal, waiting "
                f"FROM ({classified_sql(q, columns, known=ledger_knows(con, q))}) "
                "WHERE op IS NOT NULL OR reason IN ('settling', 'changed', 'refused', "
                "'undeletable', 'waiting')",
                [q.publication])
    try:
        con.execute("COPY (SELECT * EXCLUDE (reason, refusal, waiting) FROM _elt_pending "
                    "WHERE op IS NOT NULL) "
                    f"TO {literal(str(path))} (FORMAT parquet)")
        # Bodies in any order (the sender pairs them with their keys): DuckDB then cuts row
        # groups by bytes and does not buffer each thread's output to keep it in order, so
        # the copy's memory stays a few row groups whatever the bodies' sizes. Small row
        # groups: the sender reads one at a time. Neither compressed nor dictionary-encoded
        # (bodies are unique and the file lives for one run): -30% of the copy's CPU, the
        # time before the first request, and cheaper reads for the sender.
        (order,), = con.execute("SELECT current_setting('preserve_insertion_order')").fetchall()
        con.execute("SET preserve_insertion_order = false")
        try:
            con.execute(
                f"COPY ({_bodies_sql(q, columns, '_elt_pending')}) "
                f"TO {literal(str(bodies_path(path)))} "
                "(FORMAT parquet, ROW_GROUP_SIZE 256, ROW_GROUP_SIZE_BYTES '4MB', "
                "COMPRESSION uncompressed, DICTIONARY_SIZE_LIMIT 1)")
        finally:
            con.execute(f"SET preserve_insertion_order = {'true' if order else 'false'}")
        (count, held, unsent, n_refused, first, n_undeletable, first_undeletable, n_waiting,
         first_waiting), = con.execute(
            "SELECT count(op), count(*) FILTER (reason = 'settling'), "
            "count(*) FILTER (reason = 'changed' AND op IS NULL), "
            "count(*) FILTER (reason = 'refused'), "
            "min(key || ': ' || refusal) FILTER (reason = 'refused'), "
            "count(*) FILTER (reason = 'undeletable'), min(key) FILTER (reason = 'undeletable'), "
            "count(*) FILTER (reason = 'waiting'), list_slice(list(key || ' needs ' || waiting "
            f"ORDER BY key) FILTER (reason = 'waiting'), 1, {WAIT_FIRST}) "
            "FROM _elt_pending").fetchall()
        if refused is not None:
            refused.update(refused=int(n_refused), refused_first=first,
                           undeletable=int(n_undeletable), undeletable_first=first_undeletable,
                           waiting=int(n_waiting), waiting_first=list(first_waiting or []))
    finally:
        con.execute("DROP TABLE IF EXISTS _elt_pending")
    return int(count), int(held), int(unsent)
