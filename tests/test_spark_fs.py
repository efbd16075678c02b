"""Warehouse file operations through Hadoop's FileSystem (elt/build/spark_fs.py), on the
run's Spark session, with file:// URIs and plain paths."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark cannot start",
                allow_module_level=True)

from elt.build import spark_fs  # noqa: E402


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
