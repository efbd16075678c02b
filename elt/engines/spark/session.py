"""Running the project's models on Apache Spark (`type: spark` targets).

DuckDB stays the embedded staging database: it loads the seeds (its readers give the
file:line errors and the incremental file fingerprints), fetches API sources, and keeps
`_elt` state and the publish ledger. Spark gets what DuckDB staged as parquet files under
`<warehouse>/raw/` and `<warehouse>/published/` (UUID and JSON columns as text), registered
as `raw.<seed>` and `published.<pub>`; models are parquet tables `<warehouse>/main/<model>`
(registered as `main.<model>`) or views, built in dependency order. Handing parquet over is
cheaper and stricter than reading the raw files a second time with Spark's readers, whose
CSV/JSON inference differs from DuckDB's: the models would then see other types.

Each model's SQL is the DuckDB model rewritten by `spark_rules` (or `<model>.spark.sql`
beside it), written to `target/compiled/spark/<node>.sql` and checked by Spark's analyzer.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb

from elt.core.db import FAILURES_SCHEMA
from elt.core.errors import ConfigError, ModelError
from elt.engines.spark import fs as spark_fs
from elt.engines.spark.rules import MissingRule
from elt.engines.spark.sql import to_spark
from elt.graph.dag import Graph, Node
from elt.project.config import Project, Target
from elt.project.modelfile import relative, strip_sql
from elt.transform import datatests

COMPILED_DIR = Path("compiled") / "spark"
_TEXT_TYPES = ("UUID", "JSON")


def _why(target: Target) -> str:
    """What asked for Spark: the target's type, or `--engine spark` on another target."""
    return (f"target {target.name!r} is type: spark" if target.type == "spark"
            else "--engine spark needs Spark")


def session(target: Target) -> Any:
    """A Spark session for the target (pyspark imported here: it is an optional extra)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise ConfigError(f"{_why(target)} but pyspark is not installed (pip install -e "
                          "'.[spark]')") from None
    # pyspark logs every analysis error with its Java stack; elt reports one line instead
    logging.getLogger("SQLQueryContextLogger").setLevel(logging.CRITICAL)
    if target.remote:  # the server runs Spark: no Java needed here
        return _connect(target)
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise ConfigError(f"{_why(target)} but no Java runtime was found (install Java 17 "
                          "or set JAVA_HOME)")
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (SparkSession.builder.appName("elt").master(target.master or "local[*]")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")  # elt prints its own lines
               .config("spark.sql.warehouse.dir",
                       spark_fs.uri(spark_fs.join(warehouse(target), "_catalog"))))
    for key, value in {**SESSION_CONF, **target.spark_conf}.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("OFF")  # errors reach the user as one line, not a log dump
    return _current_main(spark)


# what the rules and the parity of results assume; runtime settings, so a Connect session
# can set them too (the server's static ones, the UI and warehouse dir, are its own)
SESSION_CONF = {"spark.sql.session.timeZone": "UTC",
                "spark.sql.timestampType": "TIMESTAMP_NTZ",
                "spark.sql.shuffle.partitions": "2"}


def _connect(target: Target) -> Any:
    """A Spark Connect session (`remote: sc://host:port`): no JVM on this side, so no
    SparkContext; file operations are local (spark_fs.connected), the settings runtime."""
    try:
        from pyspark.sql.connect.session import SparkSession as ConnectSession
    except ImportError as exc:  # grpcio, pandas, pyarrow: the `spark` extra brings them
        raise ConfigError(f"{_why(target)} with remote: {target.remote}, but the Spark "
                          f"Connect client cannot load ({exc}); pip install -e '.[spark]'"
                          ) from None
    try:
        spark = ConnectSession.builder.remote(target.remote).getOrCreate()
        for key, value in {**SESSION_CONF, **target.spark_conf}.items():
            spark.conf.set(key, value)
        return _current_main(spark)
    except Exception as exc:  # noqa: BLE001 - gRPC unavailable, a static setting, ...
        raise ConfigError(f"Spark Connect server {target.remote}: {_first_line(exc)}",
                          where=f"target {target.name}") from None


def _current_main(spark: Any) -> Any:
    spark.sql("CREATE DATABASE IF NOT EXISTS main")
    spark.catalog.setCurrentDatabase("main")  # models are read by bare name
    return spark


def warehouse(target: Target) -> spark_fs.Location:
    return target.warehouse or target.path.parent / "spark-warehouse"


# -- inputs: DuckDB's raw.* and published.* as parquet --------------------------------------------
def stage_inputs(con: duckdb.DuckDBPyConnection, spark: Any, target: Target,
                 skip: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """Copy every raw.* table and published.* view of the state DuckDB to parquet and
    register it in Spark under the same name; returns the names. `skip`: raw tables the
    run loads again (staged once loaded)."""
    rows = [(schema, table) for schema, table in con.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema IN ('raw', 'published') ORDER BY 1, 2").fetchall()
        if schema != "raw" or table not in skip]
    for schema, table in rows:
        stage_table(con, spark, target, schema, table)
    return [f"{schema}.{table}" for schema, table in rows]


def stage_table(con: duckdb.DuckDBPyConnection, spark: Any, target: Target, schema: str,
                table: str) -> None:
    """One DuckDB relation to `<warehouse>/<schema>/<table>.parquet`, registered in Spark."""
    cols = con.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
        [schema, table]).fetchall()
    select = ", ".join(f'CAST("{c}" AS VARCHAR) AS "{c}"' if t in _TEXT_TYPES else f'"{c}"'
                       for c, t in cols)
    location = spark_fs.join(warehouse(target), schema, f"{table}.parquet")
    path = spark_fs.local(location)  # DuckDB writes a local file; a URI gets a copy of it
    staged = path or target.path.parent / "spark-stage" / schema / f"{table}.parquet"
    staged.parent.mkdir(parents=True, exist_ok=True)
    con.execute(f"COPY (SELECT {select} FROM \"{schema}\".\"{table}\") TO "
                f"'{staged}' (FORMAT parquet)")
    if path is None:
        spark_fs.put(spark, staged, location)
    register_parquet(spark, f"{schema}.{table}", location)


def register_parquet(spark: Any, name: str, path: spark_fs.Location, known: bool = True
                     ) -> None:
    """`schema.table` over the parquet at path (known=False: no such name to drop first)."""
    schema, table = name.split(".")
    spark.sql(f"CREATE DATABASE IF NOT EXISTS `{schema}`")
    if known:
        drop(spark, f"`{schema}`.`{table}`")
    spark.sql(f"CREATE TABLE `{schema}`.`{table}` USING parquet "
              f"LOCATION '{spark_fs.uri(path)}'")


def drop(spark: Any, name: str) -> None:
    """Drop a table or view of that name, whichever it is (Spark wants the right verb).
    TABLE first: most names are tables, and the wrong verb costs a raised exception."""
    for verb in ("TABLE", "VIEW"):
        try:
            spark.sql(f"DROP {verb} IF EXISTS {name}")
        except Exception:  # noqa: BLE001, S112 - WRONG_COMMAND_FOR_OBJECT_TYPE: the other verb
            continue


# -- compile ---------------------------------------------------------------------------------------
class Compiler:
    """Model/test SQL for Spark: override file or rewrite, checked by the analyzer."""

    def __init__(self, spark: Any, project: Project) -> None:
        self.spark = spark
        self.project = project
        self._known: dict[str, bool] = {}

    def columns(self, sql: str) -> list[tuple[str, str]]:
        return [(f.name, f.dataType.simpleString()) for f in self.spark.sql(sql).schema.fields]

    def known_function(self, name: str) -> bool:
        if name not in self._known:
            self._known[name] = bool(self.spark.catalog.functionExists(name))
        return self._known[name]

    def override(self, node: Node) -> Path | None:
        if node.path is None:
            return None
        path = node.path.with_name(node.path.name[: -len(".sql")] + ".spark.sql")
        return path if path.is_file() else None

    def compile(self, node: Node) -> str:
        """The Spark SELECT of a model or test; raises ModelError naming the model (and the
        construct no rule rewrites, or Spark's analyzer message)."""
        where = relative(node.path, self.project.root) if node.path else node.name
        own = self.override(node)
        try:
            if own is not None:
                sql = strip_sql(own.read_text(encoding="utf-8"))
            else:
                sql, _ = to_spark(strip_sql(node.sql), self.columns, self.known_function)
        except MissingRule as exc:
            instead = exc.instead or (f"write {node.name}.spark.sql beside the model to "
                                      "port it by hand")
            raise ModelError(f"{node.kind} {node.name}: no Spark rule for DuckDB construct "
                             f"`{exc.construct}`; {instead}", where=where) from None
        except Exception as exc:  # noqa: BLE001 - Spark's analyzer while reading a schema
            raise ModelError(f"{node.kind} {node.name}: Spark: {_first_line(exc)}",
                             where=where) from None
        try:
            self.spark.sql(sql)  # a SELECT is analyzed eagerly: names, types, functions
        except Exception as exc:  # noqa: BLE001 - AnalysisException, ParseException
            source = own.name if own is not None else f"target/{COMPILED_DIR}/{node.name}.sql"
            raise ModelError(f"{node.kind} {node.name}: Spark ({source}): {_first_line(exc)}",
                             where=where) from None
        return sql + "\n"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def write_compiled(target_dir: Path, name: str, sql: str) -> Path:
    folder = target_dir / COMPILED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.sql"
    path.write_text(sql, encoding="utf-8")
    return path


# -- materialize -----------------------------------------------------------------------------------
def materialize(spark: Any, target: Target, node: Node, sql: str) -> int | None:
    """Build one model: a view (`main.<model>`), or a parquet table written to a fresh
    directory and swapped in (the old one stays until the new one is complete)."""
    spark.sql("CREATE DATABASE IF NOT EXISTS main")
    name = f"main.`{node.identifier}`"
    if node.materialized == "view":
        drop(spark, name)
        spark.sql(f"CREATE OR REPLACE VIEW {name} AS {sql}")
        return None
    # table and incremental: rebuilt whole (incremental maintenance is DuckDB-only so far)
    final = spark_fs.join(warehouse(target), "main", node.identifier)
    fresh = spark_fs.join(warehouse(target), "main", node.identifier + ".new")
    spark_fs.delete(spark, fresh)
    spark.sql(sql).write.mode("overwrite").parquet(spark_fs.uri(fresh))
    drop(spark, name)
    spark_fs.replace(spark, fresh, final)
    spark.sql(f"CREATE TABLE {name} USING parquet LOCATION '{spark_fs.uri(final)}'")
    return int(spark.table(name).count())


def store_failures(spark: Any, target: Target, node: Node, sql: str) -> int:
    """Run a data test; its failing rows become the parquet table `test_failures.<test>`
    (`<warehouse>/test_failures/<test>/`, replaced each run; empty with the same columns
    when the test passes), as the DuckDB build keeps them. Returns the failing rows."""
    frame = spark.sql(sql)
    failures = int(frame.count())  # counted first: a passing test stores no column data
    final = spark_fs.join(warehouse(target), FAILURES_SCHEMA, node.identifier)
    fresh = spark_fs.join(warehouse(target), FAILURES_SCHEMA, node.identifier + ".new")
    spark_fs.delete(spark, fresh)
    (frame if failures else frame.limit(0)).coalesce(1).write.parquet(spark_fs.uri(fresh))
    spark_fs.replace(spark, fresh, final)
    register_parquet(spark, f"{FAILURES_SCHEMA}.{node.identifier}", final)  # drops the old
    return failures


def describe_failures(spark: Any, node: Node, columns: list[str], limit: int = 5
                      ) -> list[str]:
    """`col=value, ...` of the first failing rows (cells cut as the DuckDB build cuts them)."""
    cut = datatests.MAX_CELL

    def cell(c: str) -> str:
        text = f"CAST(`{c}` AS STRING)"
        return (f"coalesce(CASE WHEN length({text}) > {cut} THEN concat(left({text}, {cut}), "
                f"'... [+', length({text}) - {cut}, ' chars]') ELSE {text} END, 'NULL')")

    described = ", ".join(f"concat('{c.replace(chr(39), chr(92) + chr(39))}=', {cell(c)})"
                          for c in columns)
    order = ", ".join(f"`{c}` NULLS FIRST" for c in columns)
    return [r[0] for r in spark.sql(
        f"SELECT concat_ws(', ', {described}) FROM `{FAILURES_SCHEMA}`.`{node.identifier}` "
        f"ORDER BY {order} LIMIT {limit}").collect()]


def register_built(spark: Any, target: Target, graph: Graph) -> None:
    """Register the parquet tables of an earlier build (a new session knows none; a
    long-lived one may know a table of that name at another project's location)."""
    spark.sql("CREATE DATABASE IF NOT EXISTS main")
    known = {r.tableName.lower() for r in spark.sql("SHOW TABLES IN main").collect()}
    for node in graph.nodes.values():
        path = spark_fs.join(warehouse(target), "main", node.identifier)
        if node.kind == "model" and node.materialized != "view" \
                and spark_fs.exists(spark, path):
            register_parquet(spark, f"main.{node.identifier}", path,
                             known=node.identifier.lower() in known)
