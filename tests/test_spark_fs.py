"""Warehouse file operations through Hadoop's FileSystem (elt/engines/spark/fs.py), on the
run's Spark session, with file:// URIs and plain paths."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import statuses, write_files, write_spark_profile

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark cannot start",
                allow_module_level=True)

from elt.context import Console, Context  # noqa: E402
from elt.core.errors import EltError  # noqa: E402
from elt.engines.spark import fs as spark_fs  # noqa: E402


def test_uri_keeps_a_uri_and_makes_a_path_file_uri(tmp_path: Path) -> None:
    assert spark_fs.uri("s3a://bucket/wh/main") == "s3a://bucket/wh/main"
    assert spark_fs.uri(tmp_path / "wh") == (tmp_path / "wh").as_uri()


def test_replace_swaps_a_table_directory_through_hadoop(spark: Any, tmp_path: Path) -> None:
    final, fresh = tmp_path / "wh" / "t", tmp_path / "wh" / "t.new"
    spark.sql("SELECT 1 AS a").write.parquet(spark_fs.uri(final))
    spark.sql("SELECT 2 AS a UNION ALL SELECT 3").write.parquet(fresh.as_uri())
    assert spark_fs.exists(spark, final.as_uri()) and spark_fs.exists(spark, fresh)
    spark_fs.replace(spark, fresh.as_uri(), final.as_uri())
    assert not fresh.exists() and final.is_dir()
    assert sorted(r.a for r in spark.read.parquet(final.as_uri()).collect()) == [2, 3]
    spark_fs.delete(spark, final)
    assert not final.exists() and not spark_fs.exists(spark, final)
    spark_fs.delete(spark, final)  # nothing there: no error


def test_replace_of_a_missing_directory_says_so(spark: Any, tmp_path: Path) -> None:
    with pytest.raises(OSError, match="could not move"):
        spark_fs.replace(spark, tmp_path / "absent", tmp_path / "t")


def test_join_and_local_keep_a_uri_a_uri(tmp_path: Path) -> None:
    assert spark_fs.join("s3a://bucket/wh/", "main", "t") == "s3a://bucket/wh/main/t"
    assert spark_fs.join(tmp_path, "main", "t") == tmp_path / "main" / "t"
    assert spark_fs.local((tmp_path / "a b").as_uri()) == tmp_path / "a b"
    assert spark_fs.local("hdfs://nn:8020/wh") is None
    with pytest.raises(EltError, match="hdfs://nn:8020/wh: .* use a local path or a file"):
        spark_fs.duckdb_path("hdfs://nn:8020/wh")


def test_a_file_uri_warehouse_is_a_uri_not_a_folder_of_the_project(
        spark_session: None, tmp_path: Path) -> None:
    """Seeds, model tables and test failures go to the URI's folder (through Hadoop's
    FileSystem), nothing to `<project>/file:/...`; a rebuild finds the tables there (up to
    date) and the state DuckDB reads them."""
    root, wh = tmp_path / "p", tmp_path / "elsewhere" / "wh"
    write_files(root, {
        "seeds/nums.csv": "n\n1\n2\n3\n",
        "models/doubled.sql": "/* elt\ncolumns:\n  m: {tests: [not_null]}\n*/\n"
                              "SELECT n * 2 AS m FROM raw.nums\n"})
    write_spark_profile(root, {}, duck_path="target/duck.duckdb", target="spark")
    profile = json.loads((root / "profiles.yml").read_text())
    profile["elt"]["outputs"]["spark"]["warehouse"] = wh.as_uri()
    (root / "profiles.yml").write_text(json.dumps(profile))
    ctx = Context(root, target="spark", console=Console(quiet=True))
    assert ctx.project.target.warehouse == wh.as_uri()
    first = ctx.build()
    assert not first.failed, [(r.name, r.message) for r in first.results]
    assert (wh / "main" / "doubled").is_dir() and (wh / "raw" / "nums.parquet").exists()
    assert (wh / "test_failures" / "not_null_doubled_m").is_dir()
    assert not any(p.name.startswith("file:") for p in root.rglob("*")), list(root.rglob("*"))
    again = Context(root, target="spark", console=Console(quiet=True)).build()
    assert statuses(again)["doubled"] == "up_to_date"
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        assert con.execute("SELECT sum(m) FROM main.doubled").fetchone() == (12,)
