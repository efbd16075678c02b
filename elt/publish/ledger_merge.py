"""Answers into the ledger: a journal file folded in one transaction, and the run records.

The journal (journal.py) is append-only NDJSON, written while sending without the database
lock; this merges it into `_elt.ledger` (the newest line per key wins, attempts add up,
a merge repeated after a crash changes nothing) and keeps `_elt.publish_runs`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from elt.core.state import LEDGER, RUNS, SEQ, ensure_ledger

# Journal line fields (see elt/publish/journal.py); explicit so an empty file still has a schema.
JOURNAL_COLUMNS = (
    "{run: 'VARCHAR', n: 'BIGINT', pub: 'VARCHAR', key: 'VARCHAR', key_json: 'JSON', "
    "op: 'VARCHAR', hash: 'VARCHAR', status: 'VARCHAR', http: 'INTEGER', answer: 'VARCHAR', "
    "attempts: 'INTEGER', ts: 'TIMESTAMP', tomb: 'VARCHAR'}"
)
_MERGE = f"""
INSERT INTO {LEDGER} (publication, key, key_json, hash, status, op, http_status, answer,
                      attempts, first_sent, last_sent, run_id, seq, deleted, tombstone)
SELECT pub, key, key_json, hash, status, op, http, answer, total_attempts, first_ts, ts, run,
       nextval('{SEQ}'), status = 'acknowledged' AND op = 'delete', tomb
FROM (SELECT *, row_number() OVER w AS rn,
             sum(coalesce(attempts, 0)) OVER (PARTITION BY pub, key) AS total_attempts,
             min(ts) OVER (PARTITION BY pub, key) AS first_ts
      FROM _elt_journal WINDOW w AS (PARTITION BY pub, key ORDER BY n DESC)) j
WHERE rn = 1 AND NOT EXISTS (
    SELECT 1 FROM {LEDGER} x WHERE x.publication = j.pub AND x.key = j.key
      AND x.run_id IS NOT DISTINCT FROM j.run AND x.last_sent IS NOT DISTINCT FROM j.ts
      AND x.status = j.status)
ON CONFLICT (publication, key) DO UPDATE SET
    key_json = coalesce(excluded.key_json, key_json),
    hash = coalesce(excluded.hash, hash),
    status = excluded.status,
    op = coalesce(excluded.op, op),
    http_status = CASE WHEN excluded.status = 'unknown' THEN http_status
                       ELSE excluded.http_status END,
    answer = CASE WHEN excluded.status = 'unknown' THEN answer ELSE excluded.answer END,
    attempts = coalesce(attempts, 0) + excluded.attempts,
    first_sent = coalesce(first_sent, excluded.first_sent),
    last_sent = excluded.last_sent,
    run_id = excluded.run_id,
    seq = excluded.seq,
    deleted = CASE WHEN excluded.status = 'acknowledged' THEN excluded.op = 'delete'
                   ELSE coalesce(deleted, false) END,
    tombstone = coalesce(excluded.tombstone, tombstone)
"""


def merge_journal(con: duckdb.DuckDBPyConnection, path: Path) -> int:
    """Fold one journal file into the ledger in one transaction; returns ledger rows changed.

    Per key the last line wins (lines are numbered by the writer), attempts add up, and an
    `unknown` (in-flight) line keeps the previous answer. A key whose last line is already the
    ledger's state (same run, time and status) is skipped, so merging a file twice changes
    nothing: a crash between merge and delete is harmless. A torn last line is ignored.
    """
    ensure_ledger(con, {})
    con.execute("BEGIN")
    try:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _elt_journal AS SELECT * FROM read_json(?, "
            f"format='newline_delimited', columns={JOURNAL_COLUMNS}, ignore_errors=true) "
            "WHERE pub IS NOT NULL AND key IS NOT NULL AND status IS NOT NULL AND n IS NOT NULL",
            [str(path)],
        )
        changed = con.execute(_MERGE).fetchall()
        con.execute("DROP TABLE _elt_journal")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return int(changed[0][0]) if changed else 0


# -- runs -----------------------------------------------------------------------------------
def start_run(con: duckdb.DuckDBPyConnection, run_id: str, started: str,
              publications: Sequence[str]) -> None:
    """Record a run as running; runs left `running` by a crashed process become `crashed`."""
    ensure_ledger(con, {})
    con.execute(f"UPDATE {RUNS} SET status = 'crashed' WHERE status = 'running'")
    con.execute(f"INSERT INTO {RUNS} VALUES (?, ?, NULL, ?, 0, 0, 0, 'running')",
                [run_id, started, list(publications)])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, finished: str, sent: int,
               acknowledged: int, failed: int, status: str) -> None:
    con.execute(f"UPDATE {RUNS} SET finished = ?, sent = ?, acknowledged = ?, failed = ?, "
                "status = ? WHERE run_id = ?",
                [finished, sent, acknowledged, failed, status, run_id])
