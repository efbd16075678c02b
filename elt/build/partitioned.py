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

from elt.build import changes, partitions
from elt.build.materialize import (
    TMP_PREFIX,
    Built,
    check_keys,
    columns_of,
    count_rows,
    full,
    relation_type,
    transaction,
)
from elt.core.db import quote
from elt.graph.dag import Graph, Node


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
    return full(cur, node, lock, record, watermark=plan.state,
                note=f"full build ({plan.reason})")


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
        cur.execute(f"CREATE TABLE {tmp} AS\n"
                    f"{partitions.recompute_sql(plan.tree, columns, keys)}")
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
