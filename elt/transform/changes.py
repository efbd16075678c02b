"""Changed rows of table models that a partitioned model reads (partitions.py), and the
partitions a partitioned model rebuilt last, which its data tests then check alone.

When such a table is rebuilt, the rows that differ between the old and the new table
(EXCEPT ALL both ways, so a duplicate that comes or goes counts) are kept in
`_elt."changes/<model>"`, and `_elt.changes` says between which two versions. A reader
whose stored version of the table is the `from_version` can redo only the partitions
those rows reach; any other reader rebuilds fully. Kept only for the latest rebuild.
"""

from __future__ import annotations

from typing import Any

import duckdb

from elt.core.db import quote
from elt.graph.dag import Graph, Node
from elt.transform.nodestate import NodeState, read

# tests whose failing rows each lie in one partition: they may check the rebuilt ones only
_ROW_TESTS = ("not_null", "accepted_values", "expression", "relationships")

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


def prepare(cur: duckdb.DuckDBPyConnection, node: Node, new_table: str,
            old: str | None = None) -> bool:
    """Before the swap: diff the old table against the new one; False if there is no old
    table of the same columns (then readers rebuild fully). `old`: only these rows of the
    old table are replaced by `new_table` (an incremental build's keys); the rest stay."""
    cur.execute("DELETE FROM _elt.changes WHERE model = ?", [node.name])  # before its rows go
    cur.execute(f"DROP TABLE IF EXISTS {table_of(node)}")
    before = _columns(cur, node.schema, node.identifier)
    if not before or sorted(before) != sorted(_columns(cur, node.schema, new_table)):
        return False
    cols = ", ".join(quote(c) for c, _ in before)  # the old table's order on both sides
    new = f"(SELECT {cols} FROM {quote(node.schema)}.{quote(new_table)})"
    old = f"(SELECT {cols} FROM {old or node.qualified})"
    cur.execute(f"CREATE TABLE {table_of(node)} AS (SELECT * FROM {new} EXCEPT ALL "
                f"SELECT * FROM {old}) UNION ALL (SELECT * FROM {old} "
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


def partitions_table(node: Node) -> str:
    """The keys of the partitions (or unique_key keys) the last partial build of `node`
    rebuilt."""
    return f"_elt.{quote('partitions/' + node.name)}"


def restricted_test_sql(cur: duckdb.DuckDBPyConnection, graph: Graph, test: Node,
                        stored: NodeState | None, inputs: dict[str, Any]) -> str | None:
    """The test's SQL over the partitions its model just rebuilt, or None (test all rows)."""
    rebuilt = restricted_relation(cur, graph, test, stored, inputs)
    if rebuilt is None:
        return None
    owner = graph.nodes[test.owner or ""]
    return test.sql.replace(f"FROM {owner.qualified}", f"FROM {rebuilt}", 1)


def restricted_relation(cur: duckdb.DuckDBPyConnection, graph: Graph, test: Node,
                        stored: NodeState | None, inputs: dict[str, Any]) -> str | None:
    """The rows of the partitions the test's model just rebuilt, or None (test all rows).

    Only when the test passed with no failing row on the model's version before that
    partial build and nothing else it reads changed: the other partitions are the rows it
    passed on. Only for tests whose failing rows lie in one partition each (row tests, and
    unique over columns that include the partition columns)."""
    owner = graph.nodes.get(test.owner or "")
    columns = list(owner.config.get("partition_by") or []) if owner else []
    if owner and not columns and owner.materialized == "incremental":
        columns = list(owner.unique_key)  # the keys an incremental build recomputed
    if not owner or not columns or stored is None or stored.status != "success" \
            or stored.rows or stored.checksum != test.checksum:
        return None
    kind = test.config.get("test")
    unique_ok = kind == "unique" and {c.lower() for c in columns} <= {
        c.lower() for c in test.config.get("columns") or []}
    source = f"FROM {owner.qualified}"
    if (kind not in _ROW_TESTS and not unique_ok) or test.sql.count(owner.qualified) != 1 \
            or source not in test.sql:
        return None
    state = read(cur, owner.name)
    partial = (state.watermark or {}).get("partial") if state else None
    before = stored.inputs or {}
    if not partial or before.get(owner.name) != partial[0] or inputs.get(owner.name) != partial[1]:
        return None
    if any(before.get(k) != v for k, v in inputs.items() if k != owner.name):
        return None
    on = " AND ".join(f"__elt_m.{quote(c)} IS NOT DISTINCT FROM __elt_p.{quote(c)}"
                      for c in columns)
    return (f"(SELECT __elt_m.* FROM {owner.qualified} AS __elt_m SEMI JOIN "
            f"{partitions_table(owner)} AS __elt_p ON {on})")
