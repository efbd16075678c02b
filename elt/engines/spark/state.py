"""What a Spark build leaves in the state DuckDB.

`record_model` (after each model) makes Spark's tables what `elt publish` and `elt sql`
read: in the state file `main.<model>` and `test_failures.<test>` become views over Spark's
parquet, and `_elt.nodes` gets the same fingerprints a DuckDB build keeps (checksum of SQL
+ config, and the versions of every input), marked SPARK_MESSAGE; the runner's up-to-date
check reads them back as it does a DuckDB build's. `record_in_state` does the same for the
results of a whole run at once (a state file filled from another one's results).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import duckdb

from elt.core import db
from elt.core.db import FAILURES_SCHEMA
from elt.core.results import RunResults
from elt.engines.spark import fs as spark_fs
from elt.engines.spark import session as se
from elt.graph.dag import Graph, Node
from elt.project.config import Project
from elt.transform import nodestate
from elt.transform.engine import Step

SPARK_MESSAGE = "built on Spark"  # what marks a model's state as Spark's (not DuckDB's)


def input_versions(con: duckdb.DuckDBPyConnection, graph: Graph, node: Node
                   ) -> dict[str, int | None]:
    """Current version of everything the node reads, as the DuckDB runner records them."""
    from elt.load.loader import seed_version

    return nodestate.input_versions(con, graph, node,
                                    lambda c, up: seed_version(c, up.spec.name), nodestate.read)


def failures_view(con: Any, project: Project, node: Node) -> None:
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


def table_view(con: Any, project: Project, node: Node) -> bool:
    """`main.<model>` in the state DuckDB as a view over the model's parquet folder, what
    publish and `elt sql` read; a DuckDB table of that name (a state file shared with a
    DuckDB target) is left alone (False)."""
    if _is_duckdb_table(con, "main", node.identifier):
        return False
    files = spark_fs.duckdb_path(spark_fs.join(
        se.warehouse(project.target), "main", node.identifier)) + "/*.parquet"
    con.execute(f"CREATE OR REPLACE VIEW main.{db.quote(node.identifier)} AS "
                f"SELECT * FROM read_parquet('{files}')")
    return True


def record_model(con: Any, project: Project, graph: Graph, node: Node, step: Step,
                 rows: int | None) -> bool:
    """After Spark built a model: its DuckDB view (a table's) and its `_elt.nodes` row,
    a new version marked SPARK_MESSAGE with the input versions the runner compares.
    False: a DuckDB table or view of that name (a state file shared with a DuckDB target)
    keeps its name and its state."""
    if node.materialized != "view":
        if not table_view(con, project, node):
            return False
    elif db.table_exists(con, "main", node.identifier) and not is_view_export(con, project,
                                                                                node):
        return False
    stored = step.stored
    nodestate.record_success(
        con, name=node.name, kind="model", checksum=node.checksum,
        version=(stored.version or 0) + 1 if stored else 1, inputs=step.inputs, rows=rows,
        seconds=round(time.monotonic() - step.started, 3), message=SPARK_MESSAGE,
        tests_ok=None if graph.tests_of.get(node.name) else True)
    return True


def record_in_state(project: Project, graph: Graph, results: RunResults) -> int:
    """What record_model leaves, for the successful table models of a whole run's
    results at once (a state file filled from another build); returns the views written."""
    failed_tests = {graph.nodes[r.name].owner for r in results.results
                    if r.kind == "test" and r.status == "error" and r.name in graph.nodes}
    written = 0
    with project.connect() as con:
        nodestate.ensure(con)
        for r in results.results:
            node = graph.nodes.get(r.name)
            if node is None or node.kind != "model" or node.materialized == "view" \
                    or r.status != "success" or not table_view(con, project, node):
                continue
            stored = nodestate.read(con, r.name)
            nodestate.record_success(
                con, name=r.name, kind="model", checksum=node.checksum,
                version=(stored.version or 0) + 1 if stored else 1,
                inputs=input_versions(con, graph, node), rows=r.rows, seconds=r.seconds,
                message=SPARK_MESSAGE, tests_ok=r.name not in failed_tests)
            written += 1
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




def views_for_duckdb(con: Any, project: Project, spark: Any, graph: Graph, node: Node
                     ) -> None:
    """The Spark views an API source reads, as rows DuckDB can read: a view lives only in
    the Spark session, and DuckDB fetches the source. Its rows at this moment go to parquet
    under `<warehouse>/views/` and a DuckDB view of the same name reads them (a DuckDB
    target's own view of that name, on a shared state file, is left as it is)."""
    for dep in node.depends_on:
        up = graph.nodes[dep]
        if up.kind != "model" or up.materialized != "view" or (
                db.table_exists(con, "main", up.identifier)
                and not is_view_export(con, project, up)):
            continue
        path = view_export_path(project, up)
        spark.table(f"main.`{up.identifier}`").write.mode("overwrite").parquet(path.as_uri())
        con.execute(f"CREATE OR REPLACE VIEW main.{db.quote(up.identifier)} AS "
                    f"SELECT * FROM read_parquet('{path / '*.parquet'}')")


def empty_sources(con: Any, project: Project, graph: Graph) -> None:
    """An API source never fetched into the state file gets its empty raw table (as a DuckDB
    build creates before asking): models read it as `not asked yet`, not as an error."""
    from elt.sources.fetch import _ensure_table, load_spec

    for name in graph.order:
        node = graph.nodes[name]
        if node.kind != "api" or db.table_exists(con, "raw", node.identifier):
            continue
        spec = load_spec(project, node)
        _ensure_table(con, spec, f"raw.{db.quote(spec.name)}")
