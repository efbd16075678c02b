"""`elt clean`: drop what the build left of seeds, models and tests that no longer exist.

A deleted seed or model keeps its table and its `_elt.nodes` row forever otherwise (after
removing `elt init`'s example, `raw.people` stays): they show in `elt sql`, take space and
can be read by mistake. Clean compares the database with the project's nodes and drops
the rest, in one transaction: relations in `main`, `raw` and `test_failures`, their
`_elt.nodes`, `_elt.files` and `_elt.changes` rows and the changes/partitions side tables.
The ledger and the `published.*` views are publish's (`elt ledger forget`).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from elt.core.db import FAILURES_SCHEMA, RAW_SCHEMA, STATE_SCHEMA, quote, table_exists
from elt.graph.dag import Graph

BUILT_SCHEMAS = ("main", RAW_SCHEMA, FAILURES_SCHEMA)
SIDE_TABLES = ("changes/", "partitions/")  # _elt."changes/<model>", _elt."partitions/<model>"


@dataclass(frozen=True)
class Leftover:
    """One thing clean drops: a relation (`what` table|view) or a state row."""

    what: str      # table | view | node | files | changes
    name: str      # schema.relation, or the node/seed/model name

    def describe(self) -> str:
        if self.what in ("table", "view"):
            return f"drop {self.what} {self.name}"
        return f"forget {self.what} row(s) of {self.name}"


def leftovers(con: duckdb.DuckDBPyConnection, graph: Graph) -> list[Leftover]:
    """What the database holds for nodes the project no longer has."""
    known = {(n.schema, n.identifier.lower()) for n in graph.nodes.values()
             if getattr(n, "schema", None) and getattr(n, "identifier", None)}
    found: list[Leftover] = []
    for schema, name, kind in con.execute(
            "SELECT table_schema, table_name, table_type FROM information_schema.tables "
            "WHERE table_catalog = current_database() AND table_schema IN "
            f"({', '.join('?' for _ in BUILT_SCHEMAS)}) ORDER BY 1, 2",
            list(BUILT_SCHEMAS)).fetchall():
        if (schema, name.lower()) not in known:
            found.append(Leftover("view" if kind == "VIEW" else "table", f"{schema}.{name}"))
    if table_exists(con, STATE_SCHEMA, "nodes"):
        for (name,) in con.execute(f"SELECT name FROM {STATE_SCHEMA}.nodes ORDER BY name"
                                   ).fetchall():
            if name not in graph.nodes:
                found.append(Leftover("node", name))
    seeds = {n.identifier.lower() for n in graph.nodes.values() if n.kind == "seed"}
    if table_exists(con, STATE_SCHEMA, "files"):
        for (seed,) in con.execute(f"SELECT DISTINCT seed FROM {STATE_SCHEMA}.files ORDER BY 1"
                                   ).fetchall():
            if str(seed).lower() not in seeds:
                found.append(Leftover("files", str(seed)))
    models = {n.name for n in graph.nodes.values() if n.kind == "model"}
    if table_exists(con, STATE_SCHEMA, "changes"):
        for (model,) in con.execute(f"SELECT model FROM {STATE_SCHEMA}.changes ORDER BY 1"
                                    ).fetchall():
            if model not in models:
                found.append(Leftover("changes", model))
    for (name,) in con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_catalog = "
            "current_database() AND table_schema = ? ORDER BY 1", [STATE_SCHEMA]).fetchall():
        side = next((p for p in SIDE_TABLES if name.startswith(p)), None)
        if side and name[len(side):] not in models:
            found.append(Leftover("table", f"{STATE_SCHEMA}.{name}"))
    return found


def drop(con: duckdb.DuckDBPyConnection, found: list[Leftover]) -> None:
    """Drop them all in one transaction (all or nothing)."""
    con.execute("BEGIN")
    try:
        for item in found:
            if item.what in ("table", "view"):
                schema, _, name = item.name.partition(".")
                con.execute(f"DROP {item.what.upper()} IF EXISTS {quote(schema)}.{quote(name)}")
            elif item.what == "node":
                con.execute(f"DELETE FROM {STATE_SCHEMA}.nodes WHERE name = ?", [item.name])
            elif item.what == "files":
                con.execute(f"DELETE FROM {STATE_SCHEMA}.files WHERE seed = ?", [item.name])
            elif item.what == "changes":
                con.execute(f"DELETE FROM {STATE_SCHEMA}.changes WHERE model = ?", [item.name])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
