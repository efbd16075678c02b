"""A publication's clean mark: a no-op publish that reads no bodies.

Classifying a publication hashes the body of every model row the ledger knows (at scale 1,
19,870 FlowKit bodies, 1 GB: ~5 s) only to find, on a re-run, that nothing changed. When a
full classification finds nothing to send and nothing held, the run records the
publication's mark: the model's version and build time in `_elt.nodes`, a digest of the
pending query (relation, key, mode, body ...) and a digest of the publication's ledger rows.
A later run whose mark is the same has nothing to send either, and skips the classification:

- the model's rows are those of that version: a base table changes only through `elt build`,
  which moves the version whenever it rebuilds the model (`elt sql` is read-only). Views
  have no mark (their version does not move with their inputs); neither has a Spark target;
- every ledger row is as it was (status, hash, op, sequence), so none became failed,
  unknown or deleted since.

Anything else (a rebuild, an answer merged, a changed publications.yml) changes the mark,
and the run classifies in full, as without marks. The assumption: no other tool rewrites a
model's table in the file.

A send that left nothing to send records the mark too (`after_send`): every row it sent was
acknowledged and the model is still the version it classified, so the classification that
would follow could only find every row unchanged. `elt status` and `elt publish --dry-run`
read a clean mark instead of classifying (`clean`).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from elt.core import db
from elt.core.db import STATE_SCHEMA
from elt.core.state import LEDGER

TABLE = f"{STATE_SCHEMA}.publish_marks"


def current(con: Any, query: Any, model: str, schema: str, table: str) -> str | None:
    """The publication's mark now, or None when it cannot have one (a view, a relation
    elt did not build, a model not built successfully)."""
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE "
                       "table_schema = ? AND table_name = ?", [schema, table]).fetchall()
    if [r[0] for r in kind] != ["BASE TABLE"] or not db.table_exists(con, STATE_SCHEMA,
                                                                         "nodes"):
        return None
    node = con.execute("SELECT version, built_at::VARCHAR, status FROM _elt.nodes "
                       "WHERE name = ? AND kind = 'model'", [model]).fetchall()
    if len(node) != 1 or node[0][0] is None or node[0][2] not in ("success", "up_to_date"):
        return None
    (rows, last, digest), = con.execute(
        f"SELECT count(*), max(seq), sum(hash(key, hash, status, op, deleted, last_sent))"
        f"::VARCHAR FROM {LEDGER} WHERE publication = ?", [query.publication]).fetchall()
    spec = hashlib.sha256(repr(query).encode()).hexdigest()[:16]
    return json.dumps({"version": node[0][0], "built_at": node[0][1], "query": spec,
                       "ledger": [rows, last, digest]})


def clean(con: Any, query: Any, model: str, schema: str, table: str) -> bool:
    """Nothing to send and nothing held, as the mark recorded says (no body read)."""
    mark = current(con, query, model, schema, table)
    return mark is not None and mark == recorded(con, query.publication)


def after_send(con: Any, query: Any, model: str, schema: str, table: str, before: str) -> None:
    """Record the mark after a send whose rows were all acknowledged.

    `before` is the mark taken when the run classified. The model must still be that version
    (a build during the publish moves it), and every ledger row of the publication
    acknowledged or already there (a failed, unknown or held row is sent again): then every
    model row is acknowledged with the hash of its body, and a classification finds nothing.
    """
    now = current(con, query, model, schema, table)
    if now is None or _model_part(now) != _model_part(before):
        return
    (open_rows,), = con.execute(
        f"SELECT count(*) FROM {LEDGER} WHERE publication = ? AND status NOT IN "
        "('acknowledged', 'already_there')", [query.publication]).fetchall()
    if not open_rows:
        record(con, query.publication, now)


def _model_part(mark: str) -> dict[str, Any]:
    return {k: v for k, v in json.loads(mark).items() if k != "ledger"}


def recorded(con: Any, publication: str) -> str | None:
    if not db.table_exists(con, STATE_SCHEMA, "publish_marks"):
        return None
    rows = con.execute(f"SELECT mark FROM {TABLE} WHERE publication = ?",
                       [publication]).fetchall()
    return rows[0][0] if rows else None


def record(con: Any, publication: str, mark: str | None) -> None:
    """Keep the mark of a classification that found nothing to send; forget it otherwise."""
    if mark is None:
        if db.table_exists(con, STATE_SCHEMA, "publish_marks"):
            con.execute(f"DELETE FROM {TABLE} WHERE publication = ?", [publication])
        return
    con.execute(f"CREATE TABLE IF NOT EXISTS {TABLE} (publication VARCHAR PRIMARY KEY, "
                "mark VARCHAR)")
    con.execute(f"INSERT OR REPLACE INTO {TABLE} VALUES (?, ?)", [publication, mark])
