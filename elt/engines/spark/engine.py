"""The Spark engine (`type: spark` targets, `elt compile --engine spark`): DuckDB loads,
Spark builds, the one DAG runner (elt/transform/runner.py) schedules both.

Seeds are loaded and API sources fetched by DuckDB into the target's state file (`path:`),
exactly as for a DuckDB target; each raw.* and published.* relation goes to Spark as
parquet (session.stage_table) when the run starts or when DuckDB has (re)loaded it, and
models and data tests run in Spark. After each model the state file gets `main.<model>`
as a view over Spark's parquet and its `_elt.nodes` row, marked `built on Spark` (the mark
the runner requires of an up-to-date node: a DuckDB build's state of the same model on a
shared file does not count). Models are rebuilt whole (no incremental maintenance on
Spark yet); Spark runs one node at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from elt.core.console import Console
from elt.core.db import FAILURES_SCHEMA
from elt.core.errors import EltError, ModelError
from elt.engines.spark import fs as spark_fs
from elt.engines.spark import session as se
from elt.engines.spark import state
from elt.graph.dag import Graph, Node
from elt.project.config import Project
from elt.transform.datatests import TestOutcome, key_columns
from elt.transform.engine import Step
from elt.transform.materialize import Built
from elt.transform.nodestate import NodeState


class SparkEngine:
    """elt.transform.engine.Engine on a Spark session (started when first needed)."""

    name = "spark"
    mark: str | None = state.SPARK_MESSAGE
    workers: int | None = 1  # one Spark job at a time, as the catalog and files expect

    def __init__(self, project: Project, console: Console, graph: Callable[[], Graph],
                 work_dir: Path | None = None) -> None:
        self.project, self.console, self._graph_of = project, console, graph
        self.work_dir = work_dir or project.target_dir / "spark-pending"
        self._spark: Any = None
        self._compiler: se.Compiler | None = None
        self._pending: Any = None
        self.graph: Graph | None = None
        self._idle = False
        self.unrecorded: set[str] = set()  # built this run, state left to a DuckDB target

    # -- the session ------------------------------------------------------------------
    @property
    def spark(self) -> Any:
        if self._spark is None:
            target = self.project.target
            self.console.info(f"starting Spark ({target.remote or target.master or 'local[*]'})"
                              " ...")
            self._spark = se.session(self.project.target)
        return self._spark

    @property
    def compiler(self) -> se.Compiler:
        if self._compiler is None:
            self._compiler = se.Compiler(self.spark, self.project)
        return self._compiler

    def ready(self) -> None:
        """Start Spark (before publish opens the database: its start-up holds no lock)."""
        _ = self.spark

    def start(self, con: duckdb.DuckDBPyConnection, graph: Graph, names: list[str]) -> None:
        """The session, DuckDB's raw.* and published.* relations (but those this run loads
        again) as parquet, the last build's tables registered and the views it does not
        define itself."""
        self.graph = graph
        self._idle = not any(graph.nodes[n].kind in ("model", "test", "api") for n in names)
        if self._idle:  # seeds only: no session; the next run's start stages them
            return
        state.empty_sources(con, self.project, graph)
        loading = {graph.nodes[n].identifier for n in names
                   if graph.nodes[n].kind in ("seed", "api")}
        se.stage_inputs(con, self.spark, self.project.target, skip=loading)
        se.register_built(self.spark, self.project.target, graph)
        for name in graph.order:  # a view not in this run (one that fails: its readers say)
            node = graph.nodes[name]
            if node.kind == "model" and node.materialized == "view" and name not in names:
                try:
                    se.materialize(self.spark, self.project.target, node,
                                   self.compiler.compile(node))
                except EltError:
                    continue

    def fresh(self, node: Node, stored: NodeState) -> bool:
        """Spark's own state (not a DuckDB build's on a shared file), and nothing it reads
        rebuilt this run without a state of its own (a DuckDB table kept that name)."""
        return stored.message == self.mark and not any(
            d in self.unrecorded for d in node.depends_on)

    def exists(self, cur: duckdb.DuckDBPyConnection, node: Node,
               known: Callable[[Node], bool]) -> bool:
        """A table's parquet folder is there (a view is defined in every session)."""
        if node.kind != "model":
            return known(node)
        return node.materialized == "view" or spark_fs.is_dir(
            spark_fs.join(se.warehouse(self.project.target), "main", node.identifier))

    def keep(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """A view lives in the session: an up-to-date one is defined again."""
        if node.kind == "model" and node.materialized == "view":
            self._spark_call(node, lambda: se.materialize(
                self.spark, self.project.target, node, self.compiler.compile(node)))

    def handed(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        if self._idle:
            return
        se.stage_table(cur, self.spark, self.project.target, "raw", node.identifier)

    def before_fetch(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        state.views_for_duckdb(cur, self.project, self.spark, self._graph(), node)

    # -- models and tests -------------------------------------------------------------
    def materialize(self, cur: duckdb.DuckDBPyConnection, step: Step) -> Built:
        node = step.node
        sql = self.compiler.compile(node)
        se.write_compiled(self.project.target_dir, node.name, sql)
        rows = self._spark_call(node, lambda: se.materialize(
            self.spark, self.project.target, node, sql))
        with step.lock:
            if not state.record_model(cur, self.project, self._graph(), node, step, rows):
                self.unrecorded.add(node.name)
        return Built(rows)

    def run_test(self, cur: duckdb.DuckDBPyConnection, step: Step) -> TestOutcome:
        node = step.node
        sql = self.compiler.compile(node)
        se.write_compiled(self.project.target_dir, node.name, sql)

        def run() -> tuple[int, list[str]]:
            failures = se.store_failures(self.spark, self.project.target, node, sql)
            if not failures:
                return 0, []
            columns = self.spark.table(f"`{FAILURES_SCHEMA}`.`{node.identifier}`").columns
            return failures, se.describe_failures(
                self.spark, node, key_columns(columns, node, self._graph()))

        failures, samples = self._spark_call(node, run)
        with step.lock:
            state.failures_view(cur, self.project, node)
        if not failures:
            return TestOutcome("pass", 0)
        more = f" (+{failures - 1:,} more)" if failures > 1 else ""
        return TestOutcome("fail" if node.severity == "error" else "warn", failures,
                           f"test {node.name}: {failures:,} failing row(s), e.g. "
                           f"{samples[0]}{more}; see {FAILURES_SCHEMA}.{node.identifier}",
                           samples)

    def ran(self, cur: Any, node: Node) -> list[str]:
        """Spark's SQL is in target/compiled/spark/ already (written before it ran)."""
        return []

    def compile(self, con: duckdb.DuckDBPyConnection | None, graph: Graph, node: Node
                ) -> Path | None:
        """Spark SQL checked by the analyzer; a model becomes a view (nothing computed) so
        what reads it compiles against its columns."""
        if node.kind not in ("model", "test"):
            return None
        if self.graph is None:  # the first node: what the models read, as a build has it
            if con is None:
                raise EltError("no staging database yet: run `elt build` (it loads the "
                               "seeds) first", where=str(self.project.target.path))
            se.stage_inputs(con, self.spark, self.project.target)
            se.register_built(self.spark, self.project.target, graph)
            self.graph = graph
        sql = self.compiler.compile(node)
        if node.kind == "model":
            se.drop(self.spark, f"main.`{node.identifier}`")
            self.spark.sql(f"CREATE VIEW main.`{node.identifier}` AS {sql}")
        return se.write_compiled(self.project.target_dir, node.name, sql)

    # -- publish ----------------------------------------------------------------------
    def pending(self, con: duckdb.DuckDBPyConnection, query: Any, parquet: Path,
                count_only: bool, say: Callable[[str], None]) -> tuple[int, int] | None:
        """In Spark from Spark's tables (pending.py), or None when a column's JSON text
        Spark cannot spell as DuckDB does (DuckDB computes it over Spark's parquet)."""
        from elt.engines.spark.pending import SparkPending, pending_in_spark

        if self._pending is None:
            self._pending = SparkPending(self._publish_session, self.work_dir)
        return pending_in_spark(self._pending, con, query, parquet, count_only, say)

    def _publish_session(self) -> Any:
        """The models' parquet tables of the last build registered under their names."""
        self.spark.sql("CREATE DATABASE IF NOT EXISTS main")
        se.register_built(self.spark, self.project.target, self._graph())
        return self.spark

    def _graph(self) -> Graph:
        if self.graph is None:
            self.graph = self._graph_of()
        return self.graph

    def _spark_call(self, node: Node, call: Callable[[], Any]) -> Any:
        """A Spark runtime error (ANSI cast, overflow) as one line naming the node."""
        try:
            return call()
        except EltError:
            raise
        except Exception as exc:  # noqa: BLE001 - Py4J / Spark errors of any class
            raise ModelError(f"{node.kind} {node.name}: Spark: {se._first_line(exc)}"
                             ) from None
