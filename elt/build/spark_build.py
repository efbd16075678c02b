"""`elt build` and `elt compile --engine spark` for Spark: DuckDB loads, Spark builds.

Seeds are loaded by the DuckDB runner into the target's state file (`path:`), exactly as
for a DuckDB target; then every raw.* and published.* relation goes to Spark as parquet
(spark_engine.stage_inputs) and models and data tests run there in DAG order. API sources
are fetched by DuckDB into the state file when their turn comes and handed over likewise.
Models and tests whose fingerprints (checksum, input versions) equal their last Spark
build's are skipped as up to date (spark_state.py); the others are rebuilt whole (no
incremental maintenance on Spark yet); a failed model skips what depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from elt.build import spark_engine as se
from elt.build.datatests import key_columns
from elt.build.spark_state import is_view_export, record_in_state, up_to_date, view_export_path
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
                    duckdb_build: Any, full_refresh: bool = False) -> RunResults:
    """Seeds with DuckDB (`duckdb_build(node names)` returns its RunResults), then models
    and tests on Spark in DAG order; an API source is fetched by DuckDB into the state file
    when its turn comes (the models it asks about recorded there first) and handed to Spark
    like a seed. A model or test whose fingerprints equal its last Spark build's is not run
    again (spark_state.up_to_date; all of them run with full_refresh). Ends by recording
    the models in the state file (record_in_state)."""
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
    # API sources are fetched by the DuckDB runner, which numbers their lines itself
    console.plan(sum(graph.nodes[n].kind != "api" for n in todo))
    try:
        return _run_on_spark(project, graph, console, spark, compiler, todo, results,
                             failed, full_refresh, duckdb_build)
    finally:
        console.plan(0)  # later lines (publish) are not part of this run's `N of M`


def _run_on_spark(project: Project, graph: Graph, console: Console, spark: Any,
                  compiler: Any, todo: list[str], results: RunResults, failed: set[str],
                  full_refresh: bool, duckdb_build: Any) -> RunResults:
    """Models and tests in DAG order on Spark (API sources fetched by DuckDB in between)."""
    recorded: set[str] = set()
    rebuilt = {r.name for r in results.results if r.status != "up_to_date"}
    for name in todo:
        node = graph.nodes[name]
        bad = next((d for d in graph.run_after(name) if d in failed), None)
        stored = None if bad is not None or node.kind == "api" or full_refresh else \
            up_to_date(project, graph, node, rebuilt)
        if bad is not None:
            failed.add(name)
            result = NodeResult(name, node.kind, "skipped", message=f"upstream {bad} failed")
        elif node.kind == "api":
            result = _fetch(project, graph, spark, results, recorded, node, duckdb_build)
            results.add(result)  # the DuckDB runner printed its line
            if result.status in ("error", "skipped"):
                failed.add(name)
            if result.status != "up_to_date":
                rebuilt.add(name)
            continue
        elif stored is not None and node.materialized != "view":
            result = NodeResult(name, node.kind, "up_to_date", stored, 0.0)
        else:  # a view is defined in every session; it changed only when not up to date
            console.node_start(node.kind, name)
            result = _run_node(spark, compiler, project, node, graph)
            if stored is None:
                rebuilt.add(name)
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
    _views_for_duckdb(project, spark, graph, node)
    fetched = [r for r in duckdb_build([node.name]).results if r.name == node.name]
    result = fetched[0] if fetched else NodeResult(node.name, "api", "error",
                                                   message="the DuckDB runner did not run it")
    if result.status not in ("error", "skipped"):
        with db.connect(project.target.path, read_only=True) as con:
            se.stage_table(con, spark, project.target, "raw", node.identifier)
    return result


def _views_for_duckdb(project: Project, spark: Any, graph: Graph, node: Node) -> None:
    """The Spark views an API source reads, as rows DuckDB can read: a view lives only in
    the Spark session, and DuckDB fetches the source. Its rows at this moment go to parquet
    under `<warehouse>/views/` and a DuckDB view of the same name reads them (a DuckDB
    target's own view of that name, on a shared state file, is left as it is)."""
    with project.connect() as con:
        for dep in node.depends_on:
            up = graph.nodes[dep]
            if up.kind != "model" or up.materialized != "view" or (
                    db.table_exists(con, "main", up.identifier)
                    and not is_view_export(con, project, up)):
                continue
            path = view_export_path(project, up)
            spark.table(f"main.`{up.identifier}`").write.mode("overwrite").parquet(
                path.as_uri())
            con.execute(f"CREATE OR REPLACE VIEW main.{db.quote(up.identifier)} AS "
                        f"SELECT * FROM read_parquet('{path / '*.parquet'}')")


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

    with project.connect() as con:
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
