"""The publish ledger's tables and the `published.<pub>` views: where build meets publish.

Models may read what endpoints acknowledged (`published.<name>`), so the build creates these
before models run and publish writes them; both stand on this module, neither on the other.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from elt.core.db import PUBLISHED_SCHEMA, STATE_SCHEMA, literal, quote

LEDGER = f"{STATE_SCHEMA}.ledger"
RUNS = f"{STATE_SCHEMA}.publish_runs"
SEQ = f"{STATE_SCHEMA}.ledger_seq"

_LEDGER_DDL = f"""
CREATE TABLE IF NOT EXISTS {LEDGER} (
    publication VARCHAR NOT NULL, key VARCHAR NOT NULL, key_json JSON, hash VARCHAR,
    status VARCHAR, op VARCHAR, http_status INTEGER, answer VARCHAR, attempts INTEGER,
    first_sent TIMESTAMP, last_sent TIMESTAMP, run_id VARCHAR, seq BIGINT, deleted BOOLEAN,
    tombstone VARCHAR, PRIMARY KEY (publication, key))"""
_RUNS_DDL = f"""
CREATE TABLE IF NOT EXISTS {RUNS} (
    run_id VARCHAR PRIMARY KEY, started TIMESTAMP, finished TIMESTAMP, publications VARCHAR[],
    sent BIGINT, acknowledged BIGINT, failed BIGINT, status VARCHAR)"""

def ensure_ledger(con: duckdb.DuckDBPyConnection, publications: dict[str, Sequence[str]]) -> None:
    """Create the ledger, the runs table and one `published.<name>` view per publication.

    Called by the build before models run, so a model may read `published.<name>` (empty
    until the first publish) and by publish before it records anything.
    """
    for schema in (STATE_SCHEMA, PUBLISHED_SCHEMA):
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(_LEDGER_DDL)
    # Ledgers written before a column existed get it (NULL: nothing recorded yet).
    con.execute(f"ALTER TABLE {LEDGER} ADD COLUMN IF NOT EXISTS tombstone VARCHAR")
    con.execute(_RUNS_DDL)
    con.execute(f"CREATE SEQUENCE IF NOT EXISTS {SEQ}")
    ensure_published_views(con, publications)


def ensure_published_views(con: duckdb.DuckDBPyConnection,
                           publications: dict[str, Sequence[str]]) -> None:
    """(Re)create `published.<name>` over the ledger with the publication's key columns."""
    for name, keys in publications.items():
        cols = ", ".join(f"key_json->>{literal(k)} AS {quote(k)}" for k in keys)
        con.execute(
            f"CREATE OR REPLACE VIEW {PUBLISHED_SCHEMA}.{quote(name)} AS "
            f"SELECT {cols}, status, http_status, answer, seq, last_sent FROM {LEDGER} "
            f"WHERE publication = {literal(name)} AND NOT coalesce(deleted, false)"
        )
