"""Changed rows of table models that a partitioned model reads (partitions.py).

When such a table is rebuilt, the rows that differ between the old and the new table
(EXCEPT ALL both ways, so a duplicate that comes or goes counts) are kept in
`_elt."changes/<model>"`, and `_elt.changes` says between which two versions. A reader
whose stored version of the table is the `from_version` can redo only the partitions
those rows reach; any other reader rebuilds fully. Kept only for the latest rebuild.
"""

from __future__ import annotations

import duckdb

from elt.core.db import quote
from elt.graph.dag import Graph, Node

DDL = ("CREATE TABLE IF NOT EXISTS _elt.changes (model VARCHAR PRIMARY KEY, "
       "from_version BIGINT, to_version BIGINT, rows BIGINT)")


def table_of(node: Node) -> str:
    return f"_elt.{quote('changes/' + node.name)}"


def wanted(graph: Graph, node: Node) -> bool:
    """A partitioned model reads this model (directly or through views)."""
    todo, seen = list(graph.children.get(node.name, [])), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        child = graph.nodes[name]
        if child.kind != "model":
            continue
        if child.materialized == "incremental" and child.config.get("partition_by"):
            return True
        if child.materialized == "view":
            todo.extend(graph.children.get(name, []))
    return False


def prepare(cur: duckdb.DuckDBPyConnection, node: Node, new_table: str) -> bool:
    """Before the swap: diff the old table against the new one; False if there is no old
    table of the same columns (then readers rebuild fully)."""
    cur.execute(DDL)
    cur.execute("DELETE FROM _elt.changes WHERE model = ?", [node.name])  # before its rows go
    cur.execute(f"DROP TABLE IF EXISTS {table_of(node)}")
    old = _columns(cur, node.schema, node.identifier)
    if not old or old != _columns(cur, node.schema, new_table):
        return False
    new = f"{quote(node.schema)}.{quote(new_table)}"
    cur.execute(f"CREATE TABLE {table_of(node)} AS (SELECT * FROM {new} EXCEPT ALL "
                f"SELECT * FROM {node.qualified}) UNION ALL (SELECT * FROM {node.qualified} "
                f"EXCEPT ALL SELECT * FROM {new})")
    return True


def record(cur: duckdb.DuckDBPyConnection, node: Node, ok: bool, from_version: int | None,
           to_version: int) -> None:
    """In the swap's transaction: which versions the kept rows lie between."""
    cur.execute("DELETE FROM _elt.changes WHERE model = ?", [node.name])
    if ok and from_version is not None:
        cur.execute(f"INSERT INTO _elt.changes SELECT ?, ?, ?, count(*) FROM {table_of(node)}",
                    [node.name, from_version, to_version])


def delta_sql(cur: duckdb.DuckDBPyConnection, node: Node, from_version: int | None,
              to_version: int | None) -> str | None:
    """SQL of the rows that changed between the two versions, if they were kept."""
    try:
        row = cur.execute("SELECT from_version, to_version FROM _elt.changes WHERE model = ?",
                          [node.name]).fetchone()
    except duckdb.CatalogException:
        return None
    if not row or from_version is None or (row[0], row[1]) != (from_version, to_version):
        return None
    return f"SELECT * FROM {table_of(node)}"


def _columns(cur: duckdb.DuckDBPyConnection, schema: str, name: str) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall()]
