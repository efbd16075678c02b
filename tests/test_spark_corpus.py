"""The differential corpus (tests/spark_corpus.py): over 100 small DuckDB models built on
DuckDB and on Spark in one project build each. Every model gives the same values and column
types on both engines, or Spark refuses it at compile time with a message naming the model,
the construct and what to write instead. A silent difference fails this test."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import spark_compare
from spark_corpus import BASE, EVENTS, MODELS, OPEN, REFUSED

from elt.context import Console, Context

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]'")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark cannot start",
                allow_module_level=True)

PROFILES = """
elt:
  target: duck
  outputs:
    duck: {type: duckdb, path: target/elt.duckdb}
    spark:
      type: spark
      master: local[2]
      path: target/spark-state.duckdb
      warehouse: target/warehouse
      conf: {spark.sql.shuffle.partitions: 2, spark.default.parallelism: 2}
"""
VIEW = "/* elt\nmaterialized: view\n*/\n"


def _project(root: Path) -> None:
    (root / "models").mkdir()
    (root / "models" / "base.sql").write_text(BASE)
    (root / "models" / "events.sql").write_text(EVENTS)
    for name, sql in MODELS.items():
        (root / "models" / f"{name}.sql").write_text(VIEW + sql + "\n")
    (root / "profiles.yml").write_text(PROFILES)


def _outcomes(duck: Context, results: Any, spark: Any) -> dict[str, tuple[str, str]]:
    """model -> (equal | refused | different | error, detail)."""
    status = {r.name: r for r in results.results if r.kind == "model"}
    out: dict[str, tuple[str, str]] = {}
    with duck.connect(read_only=True) as con:
        for name in MODELS:
            result = status.get(name)
            if result is None or result.status != "success":
                message = (result.message or result.status) if result else "not built"
                refused = "no Spark rule for DuckDB construct" in message
                out[name] = ("refused" if refused else "error", message)
                continue
            want_types = spark_compare.duck_types(con, f'main."{name}"')
            want = spark_compare.rows(con.execute(f'SELECT * FROM main."{name}"').fetchall())
            frame = spark.table(f"main.`{name}`")
            got_types = spark_compare.spark_types(frame)
            try:
                got = spark_compare.rows(frame.collect())
            except Exception as exc:  # noqa: BLE001 - a runtime error DuckDB did not raise
                out[name] = ("error", f"Spark at run time: {str(exc).splitlines()[0]}")
                continue
            if got_types != want_types:
                out[name] = ("different", f"types {got_types} != DuckDB's {want_types}")
            elif got != want:
                out[name] = ("different", f"rows {got} != DuckDB's {want}")
            else:
                out[name] = ("equal", "")
    return out


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, spark_session: None) -> Any:
    root = tmp_path_factory.mktemp("spark_corpus")
    _project(root)
    duck = Context(root, target="duck", console=Console(quiet=True))
    built = duck.build()
    broken = [(r.name, r.message) for r in built.results if r.status != "success"]
    assert not broken, broken  # the corpus is valid DuckDB
    shutil.copy(root / "target" / "elt.duckdb", root / "target" / "spark-state.duckdb")
    results = Context(root, target="spark", console=Console(quiet=True)).build()
    from pyspark.sql import SparkSession

    outcomes = _outcomes(duck, results, SparkSession.getActiveSession())
    counts = {k: sum(1 for v in outcomes.values() if v[0] == k)
              for k in ("equal", "refused", "different", "error")}
    (root / "corpus_counts.json").write_text(json.dumps(counts))
    print("spark corpus:", json.dumps(counts))  # noqa: T201 - read by bench/spark_results.md
    return outcomes


def test_corpus_has_at_least_100_models() -> None:
    assert len(MODELS) >= 100


def test_no_model_differs_silently(corpus: dict[str, tuple[str, str]]) -> None:
    """Every difference is a known, listed one (OPEN, shrinking as rules land); a new one
    fails, and so does a listed one that became equal (take it off the list)."""
    bad = {n: d for n, (o, d) in corpus.items() if o in ("different", "error")}
    new = {n: d for n, d in bad.items() if n not in OPEN}
    assert not new, "\n".join(f"{n}: {d[:400]}" for n, d in sorted(new.items()))
    fixed = set(OPEN) - set(bad)
    assert not fixed, f"now equal or refused, take off spark_corpus.OPEN: {sorted(fixed)}"


def test_refusals_name_the_model_the_construct_and_what_to_write(
        corpus: dict[str, tuple[str, str]]) -> None:
    refused = {n: d for n, (o, d) in corpus.items() if o == "refused"}
    assert set(refused) == set(REFUSED), sorted(refused)
    for name, construct in REFUSED.items():
        message = refused[name]
        assert f"model {name}" in message and f"`{construct}`" in message, message
        assert "; " in message.split(f"`{construct}`", 1)[1], message  # what to write


def test_most_of_the_corpus_is_equal(corpus: dict[str, tuple[str, str]]) -> None:
    equal = [n for n, (o, _) in corpus.items() if o == "equal"]
    assert len(equal) >= 0.8 * len(MODELS), len(equal)
