"""State read once at the start of a run, so a no-op build costs a few queries, not a
few per node.

Deciding that a node is up to date needs its `_elt.nodes` row, its inputs' versions and
whether its relation exists. These are read in three queries before anything runs. A node
that then does anything but stay up to date is marked dirty: from then on its state is
read from the database again, so its dependents (scheduled only after it finished) see
what it wrote.
"""

from __future__ import annotations

import duckdb

from elt.core import db
from elt.graph.dag import Node
from elt.transform import materialize, nodestate
from elt.transform.nodestate import NodeState


class Snapshot:
    """Cached reads for up-to-date checks; `dirty` names fall through to the database."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.states = nodestate.read_all(con)
        self.relations = {(schema, name) for schema, name in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
        self.seed_versions: dict[str, int] = {}
        if db.table_exists(con, "_elt", "loads"):
            self.seed_versions = {seed: int(v) for seed, v in con.execute(
                "SELECT seed, coalesce(max(load_id), 0) FROM _elt.loads GROUP BY seed"
            ).fetchall()}
        self.dirty: set[str] = set()

    def state(self, cur: duckdb.DuckDBPyConnection, name: str) -> NodeState | None:
        if name in self.dirty:
            return nodestate.read(cur, name)
        return self.states.get(name)

    def exists(self, cur: duckdb.DuckDBPyConnection, node: Node) -> bool:
        if node.name in self.dirty:
            return materialize.relation_type(cur, node.schema, node.identifier) is not None
        return (node.schema, node.identifier) in self.relations

    def seed_version(self, cur: duckdb.DuckDBPyConnection, node: Node) -> int:
        from elt.load import loader as load

        if node.name in self.dirty:
            return load.seed_version(cur, node.spec.name)
        return self.seed_versions.get(node.spec.name, 0)
