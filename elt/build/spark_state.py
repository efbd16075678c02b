"""What a Spark build leaves in the state DuckDB, and what it reads there to skip work.

`record_in_state` makes Spark's tables what `elt publish` and `elt sql` read: in the state
file `main.<model>` and `test_failures.<test>` become views over Spark's parquet, and
`_elt.nodes` says how each model and test fared, with the same fingerprints a DuckDB build
keeps (checksum of SQL + config, and the versions of every input: seeds' load ids, API
sources' and models' build counters, `published.*` max(seq)). `up_to_date` reads them back:
a model whose checksum and input versions are those of its last Spark build, nothing
upstream rebuilt in this run and its parquet still there, is not rebuilt; a passing test of
up-to-date models with an unchanged checksum is not run again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from elt.build import nodestate, spark_fs
from elt.build import spark_engine as se
from elt.core import db
from elt.core.db import FAILURES_SCHEMA
from elt.core.results import RunResults
from elt.graph.dag import Graph, Node
from elt.project.config import Project

SPARK_MESSAGE = "built on Spark"  # what marks a model's state as Spark's (not DuckDB's)


def input_versions(con: duckdb.DuckDBPyConnection, graph: Graph, node: Node
                   ) -> dict[str, int | None]:
    """Current version of everything the node reads, as the DuckDB runner records them."""
    from elt.load.loader import seed_version

    return nodestate.input_versions(con, graph, node,
                                    lambda c, up: seed_version(c, up.spec.name), nodestate.read)


def up_to_date(project: Project, graph: Graph, node: Node, rebuilt: set[str]) -> int | None:
    """The stored rows when `node` (a model or a test) need not run again, else None.
    `rebuilt`: nodes this run built or ran, whose dependents must run. A view is defined
    anew each run whatever this says (it lives in the Spark session); it only tells whether
    the view changed, i.e. whether what reads it must run."""
    if any(d in rebuilt for d in graph.run_after(node.name)):
        return None
    view = node.kind == "model" and node.materialized == "view"
    if node.kind == "model" and not view and not spark_fs.is_dir(
            spark_fs.join(se.warehouse(project.target), "main", node.identifier)):
        return None
    with db.connect(project.target.path, read_only=True) as con:
        if not db.table_exists(con, db.STATE_SCHEMA, "nodes"):
            return None
        stored = nodestate.read(con, node.name)
        if stored is None or stored.status != "success" or stored.checksum != node.checksum \
                or stored.message != SPARK_MESSAGE:
            return None
        if node.kind == "model" and (stored.inputs or {}) != input_versions(con, graph, node):
            return None
    return stored.rows if stored.rows is not None else 0


def _failures_view(con: Any, project: Project, node: Node) -> None:
    """`test_failures.<test>` in the state DuckDB: a view over the Spark test's parquet, so
    `elt sql` shows a Spark build's failing rows as it shows a DuckDB build's (a DuckDB table
    of that name, from a DuckDB target sharing the file, is left alone)."""
    folder = spark_fs.local(spark_fs.join(se.warehouse(project.target), FAILURES_SCHEMA,
                                          node.identifier))
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE "
                       "table_schema = ? AND table_name = ?",
                       [FAILURES_SCHEMA, node.identifier]).fetchone()
    if folder is None or not folder.is_dir() or (kind and kind[0] == "BASE TABLE"):
        return
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {FAILURES_SCHEMA}")
    con.execute(f"CREATE OR REPLACE VIEW {FAILURES_SCHEMA}.{db.quote(node.identifier)} AS "
                f"SELECT * FROM read_parquet('{folder / '*.parquet'}')")


def _is_duckdb_table(con: Any, schema: str, name: str) -> bool:
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE "
                       "table_schema = ? AND table_name = ?", [schema, name]).fetchone()
    return bool(kind and kind[0] == "BASE TABLE")


def record_in_state(project: Project, graph: Graph, results: RunResults) -> int:
    """Make Spark's tables what `elt publish` reads: in the state DuckDB, `main.<model>`
    becomes a view over the model's parquet directory, and `_elt.nodes` says how the model
    and its error-severity tests fared (publish skips a model that failed either), with the
    input versions `up_to_date` compares next time. A model that is a DuckDB table in that
    file (a state file shared with a DuckDB target) is left alone. Up-to-date nodes keep
    their state. Returns the views written."""
    failed_tests = {graph.nodes[r.name].owner for r in results.results
                    if r.kind == "test" and r.status == "error" and r.name in graph.nodes}
    tested = {graph.nodes[r.name].owner for r in results.results
              if r.kind == "test" and r.name in graph.nodes and r.status != "skipped"}
    written = 0
    with project.connect() as con:
        nodestate.ensure(con)
        for r in results.results:
            node = graph.nodes.get(r.name)
            if node is None or r.status == "up_to_date":
                continue
            if node.kind == "test":
                _record_test(con, project, node, r)
                continue
            if node.kind != "model" or _is_duckdb_table(con, "main", node.identifier):
                continue
            if node.materialized == "view":  # Spark's SQL: no DuckDB view, only its state
                if not db.table_exists(con, "main", node.identifier) \
                        or is_view_export(con, project, node):  # else DuckDB's own view
                    _record_view(con, graph, node, r)
                continue
            if r.status != "success":
                nodestate.record_status(con, name=r.name, kind="model", status=r.status,
                                        message=r.message, seconds=r.seconds)
                continue
            files = spark_fs.duckdb_path(spark_fs.join(
                se.warehouse(project.target), "main", node.identifier)) + "/*.parquet"
            con.execute(f"CREATE OR REPLACE VIEW main.{db.quote(node.identifier)} AS "
                        f"SELECT * FROM read_parquet('{files}')")
            stored = nodestate.read(con, r.name)
            nodestate.record_success(
                con, name=r.name, kind="model", checksum=node.checksum,
                version=(stored.version or 0) + 1 if stored else 1,
                inputs=input_versions(con, graph, node), rows=r.rows, seconds=r.seconds,
                message=SPARK_MESSAGE, tests_ok=r.name not in failed_tests)
            written += 1
        for owner in tested:  # an up-to-date model whose tests ran: their verdict now
            if owner and not _is_duckdb_table(con, "main", graph.nodes[owner].identifier):
                nodestate.set_tests_ok(con, owner, owner not in failed_tests)
    return written


def view_export_path(project: Project, node: Node) -> Path:
    """Where a Spark view's rows go when DuckDB must read them (an API source's input):
    a local folder, DuckDB reads it."""
    return Path(spark_fs.duckdb_path(spark_fs.join(se.warehouse(project.target), "views",
                                                   node.identifier)))


def is_view_export(con: Any, project: Project, node: Node) -> bool:
    """The DuckDB view `main.<node>` reads the rows a Spark build exported for it (not a
    DuckDB target's own view on a shared state file)."""
    row = con.execute("SELECT sql FROM duckdb_views() WHERE schema_name = 'main' AND "
                      "view_name = ?", [node.identifier]).fetchone()
    return bool(row and str(view_export_path(project, node)) in row[0])


def _record_view(con: Any, graph: Graph, node: Node, r: Any) -> None:
    """A Spark view's state: a new version only when its SQL or inputs changed (it is
    defined anew every run; what reads it need not be rebuilt for that)."""
    stored = nodestate.read(con, node.name)
    inputs = input_versions(con, graph, node)
    if r.status != "success":
        nodestate.record_status(con, name=node.name, kind="model", status=r.status,
                                message=r.message, seconds=r.seconds)
    elif stored is None or stored.status != "success" or stored.checksum != node.checksum \
            or stored.message != SPARK_MESSAGE or (stored.inputs or {}) != inputs:
        nodestate.record_success(con, name=node.name, kind="model", checksum=node.checksum,
                                 version=(stored.version or 0) + 1 if stored else 1,
                                 inputs=inputs, rows=None, seconds=r.seconds,
                                 message=SPARK_MESSAGE)


def _record_test(con: Any, project: Project, node: Node, r: Any) -> None:
    _failures_view(con, project, node)
    if r.status in ("success", "warn"):  # only a passing test is skipped next time
        nodestate.record_success(con, name=node.name, kind="test", checksum=node.checksum,
                                 version=None, inputs={}, rows=r.rows, seconds=r.seconds,
                                 message=SPARK_MESSAGE if r.status == "success" else r.message)
    else:
        nodestate.record_status(con, name=node.name, kind="test", status=r.status,
                                message=r.message, seconds=r.seconds)
