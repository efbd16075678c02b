"""`elt build` and `elt compile --engine spark` for Spark: DuckDB loads, Spark builds.

Seeds are loaded by the DuckDB runner into the target's state file (`path:`), exactly as
for a DuckDB target; then every raw.* and published.* relation goes to Spark as parquet
(spark_engine.stage_inputs) and models and data tests run there in DAG order. API sources
are fetched by DuckDB into the state file when their turn comes and handed over likewise.
Every model is rebuilt (no up-to-date checks or incremental maintenance
on Spark yet); a failed model skips what depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elt.build import spark_engine as se
from elt.build.datatests import key_columns
from elt.core import db
from elt.core.console import Console
from elt.core.db import FAILURES_SCHEMA
from elt.core.errors import EltError
from elt.core.results import NodeResult, RunResults
from elt.graph.dag import Graph, Node
from elt.project.config import Project


def _start(project: Project, console: Console) -> Any:
    console.info(f"starting Spark ({project.target.master or 'local[*]'}) ...")
    return se.session(project.target)


def _stage(project: Project, spark: Any, graph: Graph) -> None:
    if not project.target.path.exists():
        raise EltError("no staging database yet: run `elt build` (it loads the seeds) first",
                       where=str(project.target.path))
    with db.connect(project.target.path, read_only=True) as con:
        se.stage_inputs(con, spark, project.target)
    se.register_built(spark, project.target, graph)


def publish_session(project: Project, graph: Graph, console: Console) -> Any:
    """The Spark session publish computes pending sets in: the models' parquet tables of
    the last build registered under their names."""
    spark = _start(project, console)
    spark.sql("CREATE DATABASE IF NOT EXISTS main")
    se.register_built(spark, project.target, graph)
    return spark


def compile_spark(project: Project, graph: Graph, names: Sequence[str],
                  console: Console) -> list[Path]:
    """Write target/compiled/spark/<node>.sql for each model and test and check it with
    Spark's analyzer (models registered as views, so nothing is computed)."""
    spark = _start(project, console)
    _stage(project, spark, graph)
    compiler = se.Compiler(spark, project)
    written = []
    for name in names:
        node = graph.nodes[name]
        if node.kind not in ("model", "test"):
            continue
        sql = compiler.compile(node)
        if node.kind == "model":  # a view: downstream nodes compile against its columns
            se.drop(spark, f"main.`{node.identifier}`")
            spark.sql(f"CREATE VIEW main.`{node.identifier}` AS {sql}")
        written.append(se.write_compiled(project.target_dir, name, sql))
    console.info(f"compiled {len(written)} node(s) for Spark into "
                 f"{project.target_dir / se.COMPILED_DIR}")
    return written


def run_spark_build(project: Project, graph: Graph, console: Console, names: list[str],
                    duckdb_build: Any) -> RunResults:
    """Seeds with DuckDB (`duckdb_build(node names)` returns its RunResults), then models
    and tests on Spark in DAG order; an API source is fetched by DuckDB into the state file
    when its turn comes (the models it asks about recorded there first) and handed to Spark
    like a seed. Ends by recording the models in the state file (record_in_state)."""
    results = RunResults(command="build")
    seeds = [n for n in names if graph.nodes[n].kind == "seed"]
    if seeds:
        for r in duckdb_build(seeds).results:
            results.add(r)
    _empty_sources(project, graph, [n for n in graph.order if graph.nodes[n].kind == "api"])
    failed = {r.name for r in results.results if r.status in ("error", "skipped")}
    todo = [n for n in names if graph.nodes[n].kind in ("model", "test", "api")]
    if not todo:
        return results
    spark = _start(project, console)
    _stage(project, spark, graph)
    compiler = se.Compiler(spark, project)
    _views(spark, compiler, graph, set(todo))
    console.plan(len(todo))
    recorded: set[str] = set()
    for name in todo:
        node = graph.nodes[name]
        bad = next((d for d in graph.run_after(name) if d in failed), None)
        if bad is not None:
            failed.add(name)
            result = NodeResult(name, node.kind, "skipped", message=f"upstream {bad} failed")
        elif node.kind == "api":
            result = _fetch(project, graph, spark, results, recorded, node, duckdb_build)
            results.add(result)  # the DuckDB runner printed its line
            if result.status in ("error", "skipped"):
                failed.add(name)
            continue
        else:
            console.node_start(node.kind, name)
            result = _run_node(spark, compiler, project, node, graph)
            if result.status == "error" and node.kind == "model":
                failed.add(name)
        console.node(node.kind, name, result.status, rows=result.rows,
                     seconds=result.seconds, message=result.message)
        results.add(result)
    rest = RunResults(command="build")
    for r in results.results:
        if r.name not in recorded:
            rest.add(r)
    record_in_state(project, graph, rest)
    return results


def _fetch(project: Project, graph: Graph, spark: Any, results: RunResults,
           recorded: set[str], node: Node, duckdb_build: Any) -> NodeResult:
    """Fetch one API source with the DuckDB runner into the state file, as a DuckDB target
    does (the for_each model it reads is Spark's, recorded in the state file first), then
    hand raw.<source> to Spark as parquet."""
    upstream = set(graph.upstream(node.name))
    ready = RunResults(command="build")
    for r in results.results:
        if r.name in upstream and r.kind == "model" and r.name not in recorded:
            ready.add(r)
            recorded.add(r.name)
    record_in_state(project, graph, ready)
    fetched = [r for r in duckdb_build([node.name]).results if r.name == node.name]
    result = fetched[0] if fetched else NodeResult(node.name, "api", "error",
                                                   message="the DuckDB runner did not run it")
    if result.status not in ("error", "skipped"):
        with db.connect(project.target.path, read_only=True) as con:
            se.stage_table(con, spark, project.target, "raw", node.identifier)
    return result


def _views(spark: Any, compiler: se.Compiler, graph: Graph, todo: set[str]) -> None:
    """Views live in the Spark session: define those this run does not build, so selected
    models can read them (one that does not compile is left out: its readers will say)."""
    for name in graph.order:
        node = graph.nodes[name]
        if node.kind == "model" and node.materialized == "view" and name not in todo:
            try:
                se.materialize(spark, compiler.project.target, node, compiler.compile(node))
            except EltError:
                continue


def _empty_sources(project: Project, graph: Graph, names: list[str]) -> None:
    """An API source never fetched into the state file gets its empty raw table (as a DuckDB
    build creates before asking): models read it as `not asked yet`, not as an error."""
    from elt.sources.fetch import _ensure_table, load_spec

    with db.connect(project.target.path) as con:
        for name in names:
            node = graph.nodes[name]
            exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE "
                                 "table_schema = 'raw' AND table_name = ?",
                                 [node.identifier]).fetchone()
            if exists and not exists[0]:
                spec = load_spec(project, node)
                _ensure_table(con, spec, f"raw.{db.quote(spec.name)}")


def _run_node(spark: Any, compiler: se.Compiler, project: Project, node: Node,
              graph: Graph) -> NodeResult:
    started = time.perf_counter()
    samples: list[str] = []
    try:
        sql = compiler.compile(node)
        se.write_compiled(project.target_dir, node.name, sql)
        if node.kind == "model":
            rows = se.materialize(spark, project.target, node, sql)
            return NodeResult(node.name, "model", "success", rows,
                              time.perf_counter() - started)
        failures = se.store_failures(spark, project.target, node, sql)
        if failures:
            columns = spark.table(f"`{FAILURES_SCHEMA}`.`{node.identifier}`").columns
            samples = se.describe_failures(spark, node, key_columns(columns, node, graph))
    except EltError as exc:
        return NodeResult(node.name, node.kind, "error", None, time.perf_counter() - started,
                          str(exc))
    except Exception as exc:  # noqa: BLE001 - a Spark runtime error (ANSI cast, overflow)
        return NodeResult(node.name, node.kind, "error", None, time.perf_counter() - started,
                          f"{node.kind} {node.name}: Spark: {se._first_line(exc)}")
    seconds = time.perf_counter() - started
    if not failures:
        return NodeResult(node.name, "test", "success", 0, seconds)
    status = "error" if node.severity == "error" else "warn"
    more = f" (+{failures - 1:,} more)" if failures > 1 else ""
    return NodeResult(node.name, "test", status, failures, seconds,
                      f"test {node.name}: {failures:,} failing row(s), e.g. {samples[0]}{more}; "
                      f"see {FAILURES_SCHEMA}.{node.identifier}")


def _failures_view(con: Any, project: Project, node: Node) -> None:
    """`test_failures.<test>` in the state DuckDB: a view over the Spark test's parquet, so
    `elt sql` shows a Spark build's failing rows as it shows a DuckDB build's (a DuckDB table
    of that name, from a DuckDB target sharing the file, is left alone)."""
    folder = se.warehouse(project.target) / FAILURES_SCHEMA / node.identifier
    kind = con.execute("SELECT table_type FROM information_schema.tables WHERE "
                       "table_schema = ? AND table_name = ?",
                       [FAILURES_SCHEMA, node.identifier]).fetchone()
    if not folder.is_dir() or (kind and kind[0] == "BASE TABLE"):
        return
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {FAILURES_SCHEMA}")
    con.execute(f"CREATE OR REPLACE VIEW {FAILURES_SCHEMA}.{db.quote(node.identifier)} AS "
                f"SELECT * FROM read_parquet('{folder / '*.parquet'}')")


def record_in_state(project: Project, graph: Graph, results: RunResults) -> int:
    """Make Spark's tables what `elt publish` reads: in the state DuckDB, `main.<model>`
    becomes a view over the model's parquet directory, and `_elt.nodes` says how the model
    and its error-severity tests fared (publish skips a model that failed either). The
    pending set, key text and body hash are then computed exactly as for a DuckDB target,
    so switching engines resends nothing. A model that is a DuckDB table in that file (a
    state file shared with a DuckDB target) is left alone. Returns the views written."""
    from elt.build import nodestate

    outcome = {r.name: r for r in results.results}
    failed_tests = {graph.nodes[r.name].owner for r in results.results
                    if r.kind == "test" and r.status == "error" and r.name in graph.nodes}
    written = 0
    with db.connect(project.target.path) as con:
        nodestate.ensure(con)
        for name, r in outcome.items():
            node = graph.nodes.get(name)
            if node is not None and node.kind == "test":
                _failures_view(con, project, node)
            if node is None or node.kind != "model" or node.materialized == "view":
                continue
            kind = con.execute("SELECT table_type FROM information_schema.tables WHERE "
                               "table_schema = 'main' AND table_name = ?",
                               [node.identifier]).fetchone()
            if kind and kind[0] == "BASE TABLE":
                continue
            if r.status != "success":
                nodestate.record_status(con, name=name, kind="model", status=r.status,
                                        message=r.message, seconds=r.seconds)
                continue
            files = se.warehouse(project.target) / "main" / node.identifier / "*.parquet"
            con.execute(f"CREATE OR REPLACE VIEW main.{db.quote(node.identifier)} AS "
                        f"SELECT * FROM read_parquet('{files}')")
            stored = nodestate.read(con, name)
            nodestate.record_success(
                con, name=name, kind="model", checksum=node.checksum,
                version=(stored.version or 0) + 1 if stored else 1, inputs={},
                rows=r.rows, seconds=r.seconds, message="built on Spark",
                tests_ok=name not in failed_tests)
            written += 1
    return written
