"""A Spark build beyond the models: API sources fetched (by DuckDB, into the state file) and
handed to Spark like seeds, failing test rows kept in `test_failures.<test>` as a DuckDB
build keeps them, and json_type answering DuckDB's type names exactly (a string of digits
is VARCHAR). A small project against the sandbox's UOIS over loopback; the test run's one
Spark session (local[2], conftest.spark_jvm)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import REPO, sandbox_endpoints, stats, statuses, write_files, write_spark_profile

from elt.context import Console, Context
from elt.sandbox.server import Sandbox

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]' "
                    "to run the Spark build tests")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark cannot start",
                allow_module_level=True)

TYPE_ID = "2d9dc5ca-a4a2-11ed-b9df-0242ac120003"
SOURCES = """
api_sources:
  lookups:
    endpoint: uois
    kind: graphql
    document: internal_id.gql
    for_each: {model: externalids, columns: [type_id, outer_id]}
    batch_size: 2
    result: result
    max_age: 1h
"""
# the outer ids as Spark builds them; each asked once, the answers read back on Spark
EXTERNALIDS = "SELECT type_id, CAST(outer_id AS VARCHAR) AS outer_id FROM raw.ids"
ANSWERS = """/* elt
tests:
  - expression: {name: lookups_answered_with_an_id, sql: "result IS NOT NULL",
                 severity: warn}
  - not_null: [outer_id]
*/
SELECT outer_id, result, http_status FROM raw.lookups"""
DOC = json.dumps({"s": "123", "n": 123, "neg": -4, "f": 1.5, "nul": None, "b": True,
                  "a": [1], "o": {"k": "v"}, "big": 18446744073709551615})
KINDS = f"""SELECT {", ".join(f"json_type(payload -> '$.{k}') AS {k}" for k in json.loads(DOC))},
  json_type(payload, '$.missing') AS missing, json_type(payload) AS whole,
  json_type(n) AS typed
FROM (SELECT '{DOC}' AS payload, 7 AS n) AS d"""


@pytest.fixture
def project(tmp_path: Path, spark_session: None) -> Iterator[tuple[Path, Sandbox]]:
    root = tmp_path / "p"
    write_files(root, {
        "seeds/ids.csv": "type_id,outer_id\n" + "".join(f"{TYPE_ID},{i}\n" for i in (11, 12, 13)),
        "models/sources.yml": SOURCES, "models/externalids.sql": EXTERNALIDS,
        "models/answers.sql": ANSWERS, "models/json_kinds.sql": KINDS})
    shutil.copy(REPO / "models" / "uois" / "internal_id.gql", root / "models" / "internal_id.gql")
    with Sandbox(tmp_path / "sb.duckdb") as sb:
        write_spark_profile(root, sandbox_endpoints(sb, ("uois",)),
                            duck_path="target/duck.duckdb", target="spark")
        yield root, sb


def test_spark_build_fetches_api_sources_keeps_failing_rows_and_types_json(
        project: tuple[Path, Sandbox]) -> None:
    root, sb = project
    out = io.StringIO()
    spark = Context(root, target="spark", console=Console(out, out))
    results = spark.build()
    by_name = statuses(results)
    assert not results.failed, out.getvalue()
    # one runner for both engines: one numbering over seeds, the API fetch, models and
    # tests (1 of 7 ... 7 of 7), one `Done:` line
    lines = out.getvalue().splitlines()
    counters = [(int(m[1]), int(m[2])) for line in lines
                if (m := re.search(r"(\d+) of (\d+) ", line))]
    assert sorted({n for n, _ in counters}) == list(range(1, 8)), out.getvalue()
    assert {total for _, total in counters} == {7}, out.getvalue()
    assert any(re.search(r"\d+ of \d+ OK\s+model\s+answers\b", line) for line in lines), \
        out.getvalue()
    assert out.getvalue().count("Done:") == 1
    # the source was asked about the three ids Spark built, and Spark read the answers
    assert by_name["raw.lookups"] == "success", out.getvalue()
    state = root / "target" / "elt.duckdb"
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("SELECT count(*), count(http_status) FROM raw.lookups"
                           ).fetchone() == (3, 3)
        answers = con.execute("SELECT outer_id FROM answers ORDER BY 1").fetchall()
        assert answers == [("11",), ("12",), ("13",)]
        # the warn test's failing rows (nothing is registered: every answer is null) are
        # kept as the DuckDB build keeps them; the passing test leaves an empty table
        failing = con.execute("SELECT outer_id FROM test_failures.lookups_answered_with_an_id "
                              "ORDER BY 1").fetchall()
        assert failing == answers
        passing = con.execute("SELECT * FROM test_failures.not_null_answers_outer_id")
        assert passing.fetchall() == [] and [d[0] for d in passing.description] == [
            "outer_id", "result", "http_status"]
    warn = next(r for r in results.results if r.name == "lookups_answered_with_an_id")
    assert warn.status == "warn" and warn.rows == 3
    assert "outer_id=11" in (warn.message or "")
    assert "see test_failures.lookups_answered_with_an_id" in (warn.message or "")

    # asked once: a second build asks nothing (max_age) and rebuilds nothing (the same
    # fingerprints as the DuckDB runner's); only the failing test runs again
    before = stats(sb)["requests"]
    again = statuses(spark.build())
    assert stats(sb)["requests"] == before
    assert again == {"raw.ids": "up_to_date", "raw.lookups": "up_to_date",
                     "externalids": "up_to_date", "answers": "up_to_date",
                     "json_kinds": "up_to_date", "not_null_answers_outer_id": "up_to_date",
                     "lookups_answered_with_an_id": "warn"}, out.getvalue()
    # a new id: the model over it is rebuilt, the source asks about that id only, the
    # answers are rebuilt; json_kinds reads nothing that changed
    (root / "seeds" / "ids.csv").write_text(
        "type_id,outer_id\n" + "".join(f"{TYPE_ID},{i}\n" for i in (11, 12, 13, 14)))
    built = spark.build()
    third = statuses(built)
    assert third["raw.ids"] == third["externalids"] == third["raw.lookups"] == "success"
    assert third["answers"] == "success" and third["json_kinds"] == "up_to_date"
    asked = next(r for r in built.results if r.name == "raw.lookups")
    assert (asked.message or "").startswith("asked 1 in 1 request"), asked.message
    with duckdb.connect(str(state), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM answers").fetchone() == (4,)

    # json_type: DuckDB's names, a string of digits included, on both engines
    duck = Context(root, target="duck", console=Console(out, out))
    assert not duck.build(select=["json_kinds"]).failed, out.getvalue()
    with duckdb.connect(str(root / "target" / "duck.duckdb"), read_only=True) as con:
        want = con.execute("SELECT * FROM json_kinds").fetchall()
    with duckdb.connect(str(state), read_only=True) as con:
        got = con.execute("SELECT * FROM json_kinds").fetchall()
    assert want == [("VARCHAR", "UBIGINT", "BIGINT", "DOUBLE", "NULL", "BOOLEAN", "ARRAY",
                     "OBJECT", "UBIGINT", None, "OBJECT", "UBIGINT")]
    assert got == want


def test_an_api_source_reading_a_spark_view_is_fetched(project: tuple[Path, Sandbox]) -> None:
    """A view lives only in the Spark session, yet DuckDB fetches the API source over it:
    the view's rows are handed to DuckDB as parquet first (the FlowKit backend lists source
    reads the flowkit_categories view). On a state file no DuckDB build has touched."""
    root, sb = project
    models = root / "models"
    (models / "wanted_ids.sql").write_text(
        "/* elt\nmaterialized: view\n*/\nSELECT type_id, outer_id FROM externalids "
        "WHERE outer_id <> '13'")
    (models / "sources.yml").write_text(SOURCES + SOURCES.replace(
        "  lookups:", "  view_lookups:").replace("model: externalids", "model: wanted_ids")
        .replace("api_sources:\n", ""))
    out = io.StringIO()
    results = Context(root, target="spark", console=Console(out, out)).build()
    by_name = statuses(results)
    assert by_name["raw.view_lookups"] == "success", out.getvalue()
    state = root / "target" / "elt.duckdb"
    with duckdb.connect(str(state), read_only=True) as con:
        asked = con.execute("SELECT outer_id FROM raw.view_lookups ORDER BY 1").fetchall()
    assert asked == [("11",), ("12",)]
    assert by_name["wanted_ids"] == "success"


def test_register_built_replaces_a_table_another_project_left(tmp_path: Path,
                                                              spark: Any) -> None:
    """A long-lived session may know main.<model> at another project's location: the
    session of a publish or a build reads this project's last build, not that one."""
    from types import SimpleNamespace

    from elt.engines.spark import session as spark_engine
    from elt.project.config import Target

    other, ours = tmp_path / "other" / "t", tmp_path / "spark-warehouse" / "main" / "t"
    for folder, value in ((other, 1), (ours, 2)):
        folder.mkdir(parents=True)
        duckdb.execute(f"COPY (SELECT {value} AS v) TO '{folder / 'part-0.parquet'}' "
                       "(FORMAT parquet)")
    spark.sql("DROP TABLE IF EXISTS main.t")
    spark.sql(f"CREATE TABLE main.t USING parquet LOCATION '{other.as_uri()}'")
    assert [r.v for r in spark.table("main.t").collect()] == [1]
    target = Target(name="spark", type="spark", path=tmp_path / "state.duckdb",
                    warehouse=tmp_path / "spark-warehouse")
    node = SimpleNamespace(kind="model", materialized="table", identifier="t")
    spark_engine.register_built(spark, target, SimpleNamespace(nodes={"t": node}))  # type: ignore[arg-type]
    assert [r.v for r in spark.table("main.t").collect()] == [2]
    assert (other / "part-0.parquet").is_file()  # the other table's files stay where they are
    spark.sql("DROP TABLE main.t")
