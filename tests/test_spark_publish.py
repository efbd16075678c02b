"""Publish from a Spark target: the pending set is computed in Spark (key text, key object,
body md5 spelled as DuckDB spells them), so switching a project's engine resends nothing, a
row changed on Spark goes out once, and models reading `published.*` are rebuilt on Spark
during the publish. A small FlowKit project against the sandbox over loopback; the test run's
one Spark session (local[2], conftest.spark_jvm)."""

from __future__ import annotations

import io
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import (
    CONFIG,
    FLOWKIT_PUBLICATIONS,
    sandbox_endpoints,
    stats,
    statuses,
    write_files,
    write_spark_profile,
)

from elt.context import Console, Context
from elt.sandbox.server import Sandbox

pytest.importorskip("pyspark", reason="pyspark is not installed: pip install -e '.[spark]' "
                    "to run the Spark publish tests")
if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
    pytest.skip("no Java runtime (java on PATH or JAVA_HOME): Spark cannot start",
                allow_module_level=True)

# Plain SQL both engines run as it is: the payload is text built with ||.
DATASETS = """SELECT category_id, indicator_id, srid, trid, dt,
  '{"metadata":{"revision":"v1","category_id":"' || category_id || '","indicator_id":"'
  || indicator_id || '","srid":' || srid || ',"trid":' || trid || ',"dt":"' || dt
  || '"},"data_type":"single_location","data_input":[{"spatial_unit_ids":["HT0111-01"],'
  || '"data":' || value || '}]}' AS payload
FROM raw.datasets"""
SCOPES = """SELECT 'public' AS scope, TRY_CAST(answer AS BIGINT) AS mdid,
  '{"scope":"public","mdid":' || answer || '}' AS body
FROM published.flowkit_data WHERE status = 'acknowledged'"""
ROWS = 4
LABEL = "residents|residents.residents|3|2|2020-01-{:02d} 00:00:00"


def _seed(values: list[int]) -> str:
    lines = ["category_id,indicator_id,srid,trid,dt,value"]
    lines += [f"residents,residents.residents,3,2,2020-01-{i + 1:02d} 00:00:00,{v}"
              for i, v in enumerate(values)]
    return "\n".join(lines) + "\n"


@pytest.fixture
def project(tmp_path: Path, spark_session: None) -> Iterator[tuple[Path, Sandbox]]:
    root = tmp_path / "p"
    write_files(root, {
        "seeds/datasets.csv": _seed(list(range(1, ROWS + 1))),
        "models/publications.yml": FLOWKIT_PUBLICATIONS,
        "models/flowkit_config.sql": f"SELECT 1 AS id, '{json.dumps(CONFIG)}' AS body",
        "models/flowkit_datasets.sql": DATASETS, "models/flowkit_scope_mappings.sql": SCOPES})
    with Sandbox(tmp_path / "sb.duckdb") as sb:
        write_spark_profile(root, sandbox_endpoints(sb), duck_path="target/elt.duckdb",
                            target="duck")
        yield root, sb


def _ctx(root: Path, target: str, out: io.StringIO) -> Context:
    return Context(root, target=target, console=Console(out, out))


def test_switching_to_spark_resends_nothing_and_a_changed_row_goes_once(
        project: tuple[Path, Sandbox]) -> None:
    root, sb = project
    out = io.StringIO()
    duck = _ctx(root, "duck", out)
    assert not duck.build().failed, out.getvalue()
    first = duck.publish()
    assert set(statuses(first).values()) == {"success"}, out.getvalue()
    assert sb.store.scalar("SELECT count(*) FROM flowkit_scope_mappings WHERE scope = "
                           "'public'") == ROWS

    spark = _ctx(root, "spark", out)
    built = spark.build()
    assert not built.failed, out.getvalue()
    assert (root / "target" / "warehouse" / "main" / "flowkit_datasets").is_dir()
    _assert_same_text_for_every_row(root, spark)

    before = stats(sb)
    again = spark.publish()
    assert set(statuses(again).values()) == {"up_to_date"}, out.getvalue()
    assert stats(sb) == before  # nothing sent
    assert "computed by DuckDB" not in out.getvalue()  # Spark computed every pending set

    # one value changes: Spark rebuilds, publish PATCHes that dataset once, FlowKit answers
    # a new mdid, the scope mappings (they read published.flowkit_data) are rebuilt on
    # Spark during the publish and the new mdid's mapping goes out in the same run
    (root / "seeds" / "datasets.csv").write_text(_seed([1, 2, 999, 4]))
    assert not spark.build().failed, out.getvalue()
    old = sb.store.scalar("SELECT mdid FROM flowkit_datasets WHERE dt = '2020-01-03'")
    changed = spark.publish()
    assert statuses(changed) == {"flowkit_setup": "up_to_date", "flowkit_data": "success",
                                 "flowkit_scopes": "success"}, out.getvalue()
    assert {r.name: r.rows for r in changed.results} == {
        "flowkit_setup": 0, "flowkit_data": 1, "flowkit_scopes": 1}
    assert "rebuilding flowkit_scope_mappings" in out.getvalue()
    after = stats(sb)
    moved = {k for k, v in after["flowkit"].items() if v != before["flowkit"].get(k)}
    assert moved == {LABEL.format(3)}
    assert (after["flowkit"][LABEL.format(3)]["inserted"],
            after["flowkit"][LABEL.format(3)]["patched"]) == (1, 1)
    new = sb.store.scalar("SELECT mdid FROM flowkit_datasets WHERE dt = '2020-01-03'")
    assert new != old
    assert sb.store.scalar("SELECT count(*) FROM flowkit_scope_mappings WHERE mdid = ? AND "
                           "scope = 'public'", [new]) == 1
    assert sb.store.scalar("SELECT data->'$[0].data' FROM flowkit_datasets WHERE dt = "
                           "'2020-01-03'") == "999"

    settled = stats(sb)
    assert set(statuses(spark.publish()).values()) == {"up_to_date"}
    assert stats(sb) == settled
    # and back on DuckDB (rebuilt from the same seeds): nothing to send either
    assert not duck.build().failed, out.getvalue()
    assert set(statuses(duck.publish()).values()) == {"up_to_date"}, out.getvalue()
    assert stats(sb) == settled


def _assert_same_text_for_every_row(root: Path, spark_ctx: Context) -> None:
    """Key text, key object and body md5 of every model row: Spark's spelling over Spark's
    table equals DuckDB's (ledger._model_cte) over DuckDB's table."""
    from elt.engines.spark.pending import SparkPending
    from elt.publish import ledger, report
    from elt.publish.spec import load_publications

    engine = SparkPending(lambda: _session(spark_ctx), root / "target" / "scratch")
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        for pub in load_publications(spark_ctx.project).values():
            q = report.pending_query(pub)
            duck_sql = ledger._model_cte(q, ledger.model_columns(con, q.relation),
                                         with_body=False)
            want = sorted(con.execute(f"SELECT key, key_json, hash FROM ({duck_sql})")
                          .fetchall())
            got = sorted(tuple(r) for r in engine.spark.sql(
                f"SELECT key, key_json, hash FROM ({engine.model_sql(q, with_body=False)})"
            ).collect())
            assert got == want and want, pub.name


def _session(ctx: Context) -> Any:
    """The session publish computes in: the last build's tables registered."""
    return ctx.engine()._publish_session()


def test_json_text_of_every_supported_type_equals_duckdb(tmp_path: Path,
                                                         spark: Any) -> None:
    """A row-object body (no `body:` column) and a key over every type Spark spells: each
    ASCII character, non-ASCII text, NULLs, negative and large integers, booleans, dates,
    timestamps with and without fractions, lists and structs of them."""
    from elt.engines.spark.pending import SparkPending
    from elt.publish import ledger

    text = "".join(chr(i) for i in range(128)) + "é€😀\u2028"
    path = tmp_path / "m.parquet"
    with duckdb.connect() as con:
        con.execute("CREATE TABLE m AS SELECT * FROM (VALUES "
                    "(1, ?, true, -9223372036854775807::BIGINT, 7::SMALLINT, DATE '2020-02-29', "
                    " TIMESTAMP '2020-01-01 00:00:00', [1, NULL, 3], "
                    " {'a': 'x\"y', 'b': [TIMESTAMP '2021-05-06 07:08:09.5']}, 1::TINYINT), "
                    "(2, NULL, NULL, NULL, NULL, NULL, TIMESTAMP '1999-12-31 23:59:59.123456', "
                    " []::INTEGER[], NULL, NULL), "
                    "(3, '', false, 0, -1, DATE '1970-01-01', NULL, NULL, "
                    " {'a': NULL, 'b': []::TIMESTAMP[]}, 2)) "
                    "t(id, s, b, big, small, d, ts, ints, st, _elt_load_id)", [text])
        con.execute(f"COPY m TO '{path}' (FORMAT parquet)")
        duck_rows = {}
        for key in (("id",), ("s", "d", "id"), ("ts", "b", "id")):
            q = ledger.PendingQuery("p", "main.m", key, "upsert")
            sql = ledger._model_cte(q, ledger.model_columns(con, "main.m"), with_body=True)
            duck_rows[key] = sorted(con.execute(f"SELECT key, key_json, body FROM ({sql})")
                                    .fetchall())
    spark.sql("CREATE DATABASE IF NOT EXISTS main")
    spark.read.parquet(path.as_uri()).createOrReplaceTempView("m")  # main.m in SQL below
    spark.sql("DROP TABLE IF EXISTS main.m")
    spark.sql(f"CREATE TABLE main.m USING parquet LOCATION '{path.as_uri()}'")
    engine = SparkPending(lambda: spark, tmp_path)
    for key, want in duck_rows.items():
        q = ledger.PendingQuery("p", 'main."m"', key, "upsert")
        got = sorted(tuple(r) for r in spark.sql(
            f"SELECT key, key_json, body FROM ({engine.model_sql(q, with_body=True)})"
        ).collect())
        assert got == want, key
    # not a trivial comparison: escapes and raw UTF-8 alike were in it
    assert any("\\u001F" in body and "😀" in body for _, _, body in want)


def test_a_double_column_leaves_the_pending_set_to_duckdb(tmp_path: Path,
                                                         spark: Any) -> None:
    """DuckDB and Java print doubles differently (1e20: 100000000000000000000.0 vs 1.0E20):
    a publication hashing a DOUBLE is not spelled in Spark (NotExact names it)."""
    from elt.engines.spark.pending import NotExact, SparkPending
    from elt.publish import ledger

    spark.sql("CREATE DATABASE IF NOT EXISTS main")
    spark.sql("CREATE OR REPLACE TEMP VIEW dbl AS SELECT 1 AS id, 1e20D AS x")
    engine = SparkPending(lambda: spark, tmp_path)
    with pytest.raises(NotExact, match="publication p: a column is double"):
        engine.model_sql(ledger.PendingQuery("p", '"dbl"', ("id",), "upsert"),
                         with_body=False)


def test_spark_checks_keys_as_duckdb_does(tmp_path: Path, spark: Any) -> None:
    """A duplicate or NULL key, or a missing column: the same one-line error either way."""
    from elt.core.errors import PublishError
    from elt.engines.spark.pending import SparkPending
    from elt.publish import ledger

    engine = SparkPending(lambda: spark, tmp_path)
    cases = {"dup": "SELECT 'a' AS k, 1 AS v UNION ALL SELECT 'a', 2",
             "nul": "SELECT CAST(NULL AS STRING) AS k, 1 AS v"}
    with duckdb.connect() as con:
        for name, sql in [*cases.items(), ("nul", None)]:
            if sql is not None:
                spark.sql(f"CREATE OR REPLACE TEMP VIEW {name} AS {sql}")
                con.execute(f"CREATE TABLE {name} AS {sql}")
            key = ("k",) if sql is not None else ("nope",)
            q = ledger.PendingQuery("p", f'"{name}"', key, "append")
            with pytest.raises(PublishError) as duck_error:
                ledger.check_model(con, q)
            with pytest.raises(PublishError) as spark_error:
                engine.check_model(q)
            assert str(spark_error.value) == str(duck_error.value)
