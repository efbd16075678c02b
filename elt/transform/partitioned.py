"""Building a partitioned incremental model: redo the changed partitions, or all of it.

The plan (which partitions, or why a full build) is partitions.py. Here the partitions'
keys and their new rows are computed outside the lock, then the old rows of those
partitions are deleted and the new ones inserted in one transaction with the state row,
so a failure leaves the table and its state as they were.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import duckdb

from elt.core.db import quote
from elt.core.errors import ModelError
from elt.graph.dag import Graph, Node
from elt.transform import changes, partitions
from elt.transform.materialize import (
    TMP_PREFIX,
    Built,
    check_keys,
    columns_of,
    count_rows,
    full,
    relation_type,
    transaction,
)

BATCH = 1000  # partitions per batch of a full build


def build_partitioned(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node, stored: Any,
                      full_refresh: bool, lock: threading.Lock,
                      record: Callable[..., None]) -> Built:
    exists = relation_type(cur, node.schema, node.identifier) == "BASE TABLE"
    plan = partitions.plan(cur, graph, node, stored, full_refresh, exists)
    if plan.reason is None:
        old = stored.version if stored else None  # tests may then check these partitions only
        plan.state["partial"] = [old, (old or 0) + 1]
        built = _replace(cur, node, plan, lock, record)
        if built is not None:
            return built
        plan.reason = "output columns changed"
        plan.state.pop("partial")
    note = f"full build ({plan.reason})"
    built = _batched(cur, node, plan, lock, record, note)
    return built or full(cur, node, lock, record, watermark=plan.state, note=note)


def _batched(cur: duckdb.DuckDBPyConnection, node: Node, plan: partitions.Plan,
             lock: threading.Lock, record: Callable[..., None], note: str) -> Built | None:
    """A full build in batches of BATCH partitions (in partition_by order), so memory is
    bounded by a batch, not by the table; None when one batch would do."""
    columns = partitions.partition_by(node)
    cols = ", ".join(quote(c) for c in columns)
    tmp_name, keys_name = TMP_PREFIX + node.identifier, TMP_PREFIX + "keys/" + node.identifier
    tmp = f"{quote(node.schema)}.{quote(tmp_name)}"
    keys = f"{quote(node.schema)}.{quote(keys_name)}"
    every = f"{quote(node.schema)}.{quote(TMP_PREFIX + 'all/' + node.identifier)}"
    cur.execute(f"DROP TABLE IF EXISTS {tmp}; DROP TABLE IF EXISTS {keys}; "
                f"DROP TABLE IF EXISTS {every}")
    output = {d[0].lower() for d in cur.execute(
        f"SELECT * FROM ({plan.tree.sql('duckdb')}) AS m LIMIT 0").description or []}
    for key in columns:
        if key.lower() not in output:
            raise ModelError(f"model {node.name}: partition_by column {key} is not in its "
                             "output")
    try:
        # the model's other columns are not needed: DuckDB leaves their aggregates out
        cur.execute(f"CREATE TABLE {every} AS SELECT DISTINCT {cols} "
                    f"FROM ({plan.tree.sql('duckdb')}) AS m")
        batches = -(-count_rows(cur, every) // BATCH)
        if batches <= 1:
            return None
        cur.execute(f"CREATE OR REPLACE TABLE {every} AS SELECT *, ntile({batches}) OVER "
                    f"(ORDER BY {cols}) AS __elt_batch FROM {every}")
        batch_sql = partitions.BatchSQL(plan.tree, columns, keys)
        for batch in range(1, batches + 1):
            cur.execute(f"CREATE OR REPLACE TABLE {keys} AS SELECT {cols} FROM {every} "
                        f"WHERE __elt_batch = {batch}")
            select = batch_sql(partitions.bounds(cur, columns, keys))
            cur.execute(f"INSERT INTO {tmp} BY NAME {select}" if batch > 1
                        else f"CREATE TABLE {tmp} AS {select}")
        check_keys(cur, node, tmp_name)
        rows = count_rows(cur, tmp)
        note = f"{note[:-1]}, {batches} batches)"
        with lock, transaction(cur):
            existing = relation_type(cur, node.schema, node.identifier)
            if existing:
                cur.execute(f"DROP {'VIEW' if existing == 'VIEW' else 'TABLE'} "
                            f"{node.qualified}")
            cur.execute(f"ALTER TABLE {tmp} RENAME TO {quote(node.identifier)}")
            record(rows, plan.state, note)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}; DROP TABLE IF EXISTS {keys}; "
                    f"DROP TABLE IF EXISTS {every}")
    return Built(rows, note)


def _replace(cur: duckdb.DuckDBPyConnection, node: Node, plan: partitions.Plan,
             lock: threading.Lock, record: Callable[..., None]) -> Built | None:
    """DELETE the changed partitions and INSERT their new rows; None: build fully."""
    columns = partitions.partition_by(node)
    tmp_name, keys_name = TMP_PREFIX + node.identifier, TMP_PREFIX + "keys/" + node.identifier
    tmp = f"{quote(node.schema)}.{quote(tmp_name)}"
    keys = f"{quote(node.schema)}.{quote(keys_name)}"
    cur.execute(f"DROP TABLE IF EXISTS {tmp}; DROP TABLE IF EXISTS {keys}")
    try:
        cur.execute(f"CREATE TABLE {keys} AS\n{plan.keys_sql}")
        ranges = partitions.bounds(cur, columns, keys)
        cur.execute(f"CREATE TABLE {tmp} AS\n"
                    f"{partitions.recompute_sql(plan.tree, columns, keys, ranges)}")
        wanted = {c.lower() for c in columns_of(cur, node.schema, tmp_name)}
        if wanted != {c.lower() for c in columns_of(cur, node.schema, node.identifier)}:
            return None
        check_keys(cur, node, tmp_name)
        batch, changed = count_rows(cur, tmp), count_rows(cur, keys)
        on = " AND ".join(f"t.{quote(c)} IS NOT DISTINCT FROM s.{quote(c)}" for c in columns)
        note = f"incremental: {changed:,} partitions rebuilt, {batch:,} rows"
        with lock, transaction(cur):
            if changed:
                cur.execute(f"DELETE FROM {node.qualified} AS t USING {keys} AS s WHERE {on}")
                cur.execute(f"INSERT INTO {node.qualified} BY NAME SELECT * FROM {tmp}")
            cur.execute(f"CREATE OR REPLACE TABLE {changes.partitions_table(node)} AS "
                        f"SELECT * FROM {keys}")
            record(count_rows(cur, node.qualified), plan.state, note)
    finally:
        cur.execute(f"DROP TABLE IF EXISTS {tmp}; DROP TABLE IF EXISTS {keys}")
    return Built(batch, note)
