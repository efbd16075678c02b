"""Shared pytest fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# the shared check helpers' bare asserts say what differed when they fail (pytest rewrites
# only test modules and conftest unless told)
pytest.register_assert_rewrite("helpers", "sandbox_client", "seed_helpers")

from sandbox_client import HTTP  # noqa: E402 - after the rewrite registration

from elt.sandbox.server import Sandbox  # noqa: E402

pytest_plugins = ["seed_helpers"]  # the seed-loading tests' `root` and `con` fixtures


def _scope(nodeid: str) -> str:
    """A test's unit of work for pytest-xdist: its module, and one unit for every Spark
    module (one JVM, on one worker: two would warm up twice and compete for the cores)."""
    module = nodeid.split("::", 1)[0]
    return "spark" if Path(module).name.startswith("test_spark_") else module


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist loadscope` (pyproject.toml) with the Spark modules as one scope. Not
    `loadgroup` with marks: under pytest 9.2 xdist 3.8 no longer sees the groups
    (pytest-dev/pytest-xdist#1386) and spreads a module's tests over the workers."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesAndSpark(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return _scope(nodeid)

    return ModulesAndSpark(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The Spark tests first: they are the longest unit, so under xdist the other worker
    runs everything else meanwhile instead of waiting for them at the end
    (`--no-loadscope-reorder` keeps this order)."""
    items.sort(key=lambda item: _scope(item.nodeid) != "spark")


@pytest.fixture(scope="session")
def spark_jvm() -> Iterator[None]:
    """One Spark JVM for the whole run (its start and JIT warm-up cost as much as a small
    build): the first Context that asks creates the session (getOrCreate), every later one
    gets it; stopped at the end of the run. The Spark targets of the tests all say local[2]
    with 2 shuffle partitions, so whichever comes first makes the same session.

    The JVM compiles with C1 only (-XX:TieredStopAtLevel=1): the tests run many small
    queries once each, where C2's compile work costs more CPU than its faster code saves
    (a cold build of the repo project measured ~28% less JVM CPU time, same results).
    C1 alone reserves 48 MB for compiled code, which the whole run's generated code filled
    (the JVM then stopped answering mid-build): 256 MB, as tiered compilation reserves."""
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_SUBMIT_ARGS",
                          "--driver-java-options='-XX:TieredStopAtLevel=1 "
                          "-XX:ReservedCodeCacheSize=256m' pyspark-shell")
    yield
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()


@pytest.fixture(scope="module")
def spark_session(spark_jvm: None) -> Iterator[None]:
    """The run's Spark session for one test module; after the module its catalog is
    emptied (databases, views, cache), so the next module starts from what a fresh session
    knows: nothing. Only modules that skip without pyspark and Java ask for it."""
    yield
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        reset_catalog(active)


@pytest.fixture
def spark(spark_session: None, tmp_path: Path) -> Any:
    """The run's Spark session configured as elt configures it (UTC, TIMESTAMP_NTZ, the
    `main` database), for tests that use Spark directly: not a bare builder, whose settings
    would depend on which test made the session first."""
    from elt.engines.spark.session import session
    from elt.project.config import Target

    return session(Target(name="spark", type="spark", path=tmp_path / "state.duckdb",
                          master="local[2]", warehouse=tmp_path / "spark-warehouse"))


def reset_catalog(spark: Any) -> None:
    """Drop every database but `default` (tables over parquet LOCATIONs keep their files),
    every temporary view and the cache."""
    spark.catalog.setCurrentDatabase("default")
    for db in spark.catalog.listDatabases():
        if db.name != "default":
            spark.sql(f"DROP DATABASE IF EXISTS `{db.name}` CASCADE")
    for table in spark.catalog.listTables("default"):
        if table.isTemporary:
            spark.catalog.dropTempView(table.name)
    spark.catalog.clearCache()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """An in-memory sandbox on a free loopback port, stopped after the test."""
    sb = Sandbox(None).start()
    try:
        yield sb
    finally:
        sb.stop()


@pytest.fixture
def client(sandbox: Sandbox) -> Iterator[httpx.Client]:
    HTTP.base_url = httpx.URL(sandbox.url)
    yield HTTP


@pytest.fixture(scope="session", autouse=True)
def _machine_under_load() -> Iterator[None]:
    """`ELT_TEST_STRESS=N`: N CPU-burning processes run for the whole session (per xdist
    worker), the busy machine every test must pass on."""
    n = int(os.environ.get("ELT_TEST_STRESS", "0") or 0)
    if n <= 0:
        yield
        return
    from helpers import stress

    stop = stress(n)
    try:
        yield
    finally:
        stop()
