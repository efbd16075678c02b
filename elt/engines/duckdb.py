"""The DuckDB engine: models, tests and pending sets in the staging database itself.

Everything runs on the runner's cursor: a model is built by materialize.build_model (views,
tables, incremental and partitioned models, swapped in atomically), a test by datatests
(the row tests of one model fused into one scan, only the rebuilt partitions tested when a
partitioned model changed), and publish's pending sets by the ledger's SQL in the same file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from elt.graph.dag import Graph, Node
from elt.http.endpoints import Endpoints
from elt.project.config import Project
from elt.transform import changes, compiled, datatests, materialize, schematest
from elt.transform.datatests import TestOutcome
from elt.transform.engine import Step
from elt.transform.materialize import Built
from elt.transform.nodestate import NodeState


class DuckDBEngine:
    """elt.transform.engine.Engine over the staging DuckDB."""

    name = "duckdb"
    mark: str | None = None
    workers: int | None = None

    def __init__(self, project: Project, endpoints: Endpoints) -> None:
        self.project, self.endpoints = project, endpoints
        self.graph: Graph | None = None
        self.fused: datatests.FusedCounts | None = None

    def start(self, con: duckdb.DuckDBPyConnection, graph: Graph, names: list[str]) -> None:
        self.graph = graph
        self.fused = datatests.FusedCounts(graph, names)

    def fresh(self, node: Node, stored: NodeState) -> bool:
        return True

    def exists(self, cur: duckdb.DuckDBPyConnection, node: Node,
               known: Callable[[Node], bool]) -> bool:
        return known(node)

    def keep(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """A DuckDB relation outlives the run: nothing to do."""

    def handed(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """Models read raw.* where DuckDB loaded it."""

    def before_fetch(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """The models an API source reads are in this database already."""

    def materialize(self, cur: duckdb.DuckDBPyConnection, step: Step) -> Built:
        partitioned = None
        if step.node.config.get("partition_by"):
            from elt.transform.partitioned import build_partitioned as partitioned
        return materialize.build_model(cur, self._graph(), step.node, stored=step.stored,
                                       inputs=step.inputs, full_refresh=step.full_refresh,
                                       lock=step.lock, started=step.started,
                                       partitioned=partitioned)

    def run_test(self, cur: duckdb.DuckDBPyConnection, step: Step) -> TestOutcome:
        graph, node = self._graph(), step.node
        if node.config.get("test") == schematest.KIND:  # bodies against an API's schema
            return schematest.run(cur, node, graph, self.endpoints, self.project.root)
        build = step.command == "build"
        rebuilt = changes.restricted_relation(cur, graph, node, step.stored, step.inputs) \
            if build else None
        only = changes.restricted_test_sql(cur, graph, node, step.stored, step.inputs) \
            if rebuilt else None
        owner = graph.nodes.get(node.owner or "")
        failing = self.fused.failing(cur, node, rebuilt or owner.qualified) \
            if owner and self.fused is not None else None
        tested = datatests.passed(cur, node, only) if failing == 0 else \
            datatests.run_test(cur, node, graph, only)
        if only and tested.status == "pass":
            tested.message = "tested the rebuilt partitions only"
        return tested

    def ready(self) -> None:
        """Nothing to start: the staging database is the engine."""

    def ran(self, cur: Any, node: Node) -> list[str]:
        ran = compiled.selects_run(cur.statements)
        if node.kind == "test" and any(  # the test ran, wrapped (count, LIMIT 0)
                q.startswith("CREATE OR REPLACE TABLE") for q in cur.statements):
            ran = [compiled.compile_node(None, self._graph(), node) or ""]
        return ran

    def compile(self, con: duckdb.DuckDBPyConnection | None, graph: Graph, node: Node
                ) -> Path | None:
        sql = compiled.compile_node(con, graph, node)
        return None if sql is None else compiled.write(self.project.target_dir, node.name, sql)

    def pending(self, con: duckdb.DuckDBPyConnection, query: Any, parquet: Path,
                count_only: bool, say: Callable[[str], None]) -> tuple[int, int] | None:
        """The ledger's SQL runs in this very database (publish/ledger.py)."""
        return None

    def _graph(self) -> Graph:
        if self.graph is None:
            raise RuntimeError("DuckDBEngine.start was not called")
        return self.graph
