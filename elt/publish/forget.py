"""`elt ledger forget -s PUB [--where SQL]`: the ledger forgets rows, so they are sent again.

For an endpoint that lost some rows, or a row someone deleted by hand: without this the only
way was editing `_elt.ledger`, and `elt sql` is read-only. `--where` is one SQL condition
over the columns of `published.<pub>` (the key columns, status, http_status, answer, seq,
last_sent) plus `op` and `deleted`; it is checked to be one expression (no statement can
ride along) before it runs. Forgotten rows are new to the next publish (an insert; an
endpoint that still has one answers "already there", which upsert follows with the update).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import duckdb

from elt.core.db import literal, quote
from elt.core.errors import PublishError
from elt.core.state import LEDGER, ensure_ledger
from elt.publish.spec import Publication, load_publications
from elt.publish.spec import select as select_pubs
from elt.publish.workspace import Workspace


def check_where(where: str) -> str:
    """The condition, parenthesised, after checking it is a single SQL expression."""
    import sqlglot
    from sqlglot import exp

    text = where.strip()
    if not text:
        raise PublishError("--where is empty")
    wrapped = "SELECT 1 WHERE "
    try:
        parsed = sqlglot.parse(wrapped + text, read="duckdb")
    except sqlglot.errors.ParseError as exc:
        first = str(exc).strip().splitlines()[0]
        # the column in the user's text, not in the statement it was wrapped in
        first = re.sub(r"Line 1, Col: (\d+)",
                       lambda m: f"col {max(1, int(m.group(1)) - len(wrapped))}", first)
        raise PublishError(f"--where {text!r} is not an SQL condition: {first}") from None
    if len(parsed) != 1 or not isinstance(parsed[0], exp.Select) or any(
            isinstance(node, exp.Query) and node is not parsed[0] for node in parsed[0].walk()):
        raise PublishError(f"--where {text!r}: one condition on the ledger's columns, no "
                           "statements or subqueries")
    return f"({text})"


def rows_sql(pub: Publication) -> str:
    """The publication's ledger rows with the columns --where may name."""
    cols = ", ".join(f"key_json->>{literal(k)} AS {quote(k)}" for k in pub.key)
    return (f"SELECT key, {cols}, status, http_status, answer, seq, last_sent, op, "
            f"coalesce(deleted, false) AS deleted FROM {LEDGER} WHERE publication = "
            f"{literal(pub.name)}")


def forget(con: duckdb.DuckDBPyConnection, pub: Publication, where: str | None = None,
           dry_run: bool = False) -> int:
    """Delete the publication's ledger rows (those matching `where`); returns how many."""
    condition = check_where(where) if where is not None else "true"
    chosen = f"SELECT key FROM ({rows_sql(pub)}) WHERE {condition}"
    try:
        (n,), = con.execute(f"SELECT count(*) FROM ({chosen})").fetchall()
        if n and not dry_run:
            con.execute(f"DELETE FROM {LEDGER} WHERE publication = ? AND key IN ({chosen})",
                        [pub.name])
    except duckdb.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise PublishError(f"--where {where!r}: {first}",
                           where=f"publication {pub.name}") from None
    return int(n)


def forget_rows(ctx: Workspace, select: Sequence[str], where: str | None = None,
                dry_run: bool = False) -> dict[str, int]:
    """Forget the selected publications' rows (under the publish lock, after merging any
    journal a crashed run left: its answers would otherwise come back); name -> count."""
    from elt.publish import journal
    from elt.publish.lock import publish_lock, state_dir

    if not select:
        raise PublishError("say which publication's rows to forget: -s PUB (or tag:x, a glob)")
    if where is not None:
        check_where(where)  # before the lock and the database: a typo fails at once
    pubs = load_publications(ctx.project)
    names = select_pubs(pubs, select)
    target = ctx.project.target
    forgotten: dict[str, int] = {}
    with publish_lock(target.path, ctx.project.root):
        con = ctx.connect()
        try:
            journal.recover(con, state_dir(target.path))
            ensure_ledger(con, {})
            for name in names:
                forgotten[name] = forget(con, pubs[name], where, dry_run)
        finally:
            con.close()
    return forgotten
