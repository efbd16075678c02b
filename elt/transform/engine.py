"""What the DAG runner and publish need of an engine: the one seam between DuckDB and Spark.

The runner (runner.py) owns the DAG: order, threads, skips, up-to-date checks and the
`_elt.nodes` state, which always lives in the staging DuckDB. An engine does what differs
from one engine to the other (as SQLMesh's engine adapters and dbt's adapters do): build a
model, run a data test, say whether a built relation is there, compile a node's SQL, hand a
table DuckDB loaded (a seed, an API source's answers) to where models read it, and compute
publish's pending sets. The implementations live in `elt/engines/` (duckdb.py, spark/);
the Context picks one per target and passes it down, so no stage below imports an engine.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import duckdb

from elt.graph.dag import Graph, Node
from elt.transform.datatests import TestOutcome
from elt.transform.materialize import Built
from elt.transform.nodestate import NodeState


@dataclass
class Step:
    """One model or test the runner asks the engine to run, with what it decided."""

    node: Node
    stored: NodeState | None          # its state at the last run
    inputs: dict[str, int | None]     # the versions of what it reads now (to record)
    full_refresh: bool
    lock: threading.Lock              # held while writing shared state
    started: float                    # time.monotonic() when the node started
    command: str = "build"            # build | test


class Engine(Protocol):
    """An engine the runner builds with (elt/engines/duckdb.py, elt/engines/spark/)."""

    name: str
    # recorded as the message of a successful model or passing test, and required of a
    # stored state for the node to be up to date (None: any state of this file will do)
    mark: str | None
    workers: int | None               # at most this many nodes at once (None: threads)

    def start(self, con: duckdb.DuckDBPyConnection, graph: Graph, names: list[str]) -> None:
        """Before the first node of a run: `names` are the nodes it runs, in order."""

    def fresh(self, node: Node, stored: NodeState) -> bool:
        """The engine's part of up to date: `stored` (a success with this checksum and
        these input versions) is this engine's work, and what it read was recorded."""

    def exists(self, cur: duckdb.DuckDBPyConnection, node: Node,
               known: Callable[[Node], bool]) -> bool:
        """The model's built relation is there (`known`: it is in the staging DuckDB)."""

    def keep(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """An up-to-date model stays as it is (a session-scoped view is defined again)."""

    def handed(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """DuckDB (re)loaded a seed or an API source's raw table: models read it next."""

    def before_fetch(self, cur: duckdb.DuckDBPyConnection, node: Node) -> None:
        """An API source is about to be fetched by DuckDB: the models it reads are there."""

    def materialize(self, cur: duckdb.DuckDBPyConnection, step: Step) -> Built:
        """Build one model and record its success in `_elt.nodes` (under step.lock)."""

    def run_test(self, cur: duckdb.DuckDBPyConnection, step: Step) -> TestOutcome:
        """Run one data test, keeping its failing rows in test_failures.<test>."""

    def ran(self, cur: Any, node: Node) -> list[str]:
        """The SELECTs a model or test ran, for target/compiled/ and the SQL log."""

    def compile(self, con: duckdb.DuckDBPyConnection | None, graph: Graph, node: Node
                ) -> Path | None:
        """Write the SQL the next build runs for a model or test; the file written."""

    def ready(self) -> None:
        """Start what takes long before publish opens the staging database."""

    def pending(self, con: duckdb.DuckDBPyConnection, query: Any, parquet: Path,
                count_only: bool, say: Callable[[str], None]) -> tuple[int, int] | None:
        """(pending rows, held rows) of one publication's pending set, written to parquet
        as publish's sender reads it, or None: the ledger's SQL in the staging DuckDB
        computes it (ledger.copy_pending)."""
