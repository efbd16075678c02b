"""Partitioned incremental models: config errors, data tests on the rebuilt partitions."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build import by_name, make_ctx, query, write

from elt.context import Context
from elt.core.errors import ConfigError

HEAD = "id,day,amount\n"
FILES = {
    "seeds/seeds.yml": "seeds:\n  sales: {path: 'sales/*.csv'}\n",
    "seeds/sales/d1.csv": HEAD + "1,2024-01-01,10\n2,2024-01-02,5\n",
    "models/daily.sql": """
        /* elt
        materialized: incremental
        partition_by: day
        columns:
          total: {tests: [{expression: "total >= 0"}]}
        tests:
          - unique: [day]
        */
        SELECT day, sum(amount) AS total FROM raw.sales GROUP BY day
        """,
}
EXPR, UNIQUE = "expression_daily_total__total_0", "unique_daily_day"


def test_tests_check_only_the_rebuilt_partitions(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, FILES)
    first = ctx.build()
    assert by_name(first, "daily").message == "full build (first build)"
    assert by_name(first, EXPR).message is None  # the first run tests every row
    write(tmp_path, {"seeds/sales/d2.csv": HEAD + "3,2024-01-03,-4\n"})
    bad = ctx.build()
    assert by_name(bad, "daily").message == "incremental: 1 partitions rebuilt, 1 rows"
    assert by_name(bad, EXPR).status == "error"  # the new partition's failing row is found
    assert "1 failing row(s), e.g. " in by_name(bad, EXPR).message
    assert by_name(bad, UNIQUE).message == "tested the rebuilt partitions only"
    write(tmp_path, {"seeds/sales/d3.csv": HEAD + "4,2024-01-03,9\n"})
    fixed = ctx.build()  # after a failure the test checks every row again
    assert by_name(fixed, EXPR).status == "success" and by_name(fixed, EXPR).message is None
    write(tmp_path, {"seeds/sales/d4.csv": HEAD + "5,2024-01-04,1\n"})
    more = ctx.build()
    assert by_name(more, EXPR).message == "tested the rebuilt partitions only"
    assert query(tmp_path, "SELECT * FROM _elt.\"partitions/daily\"") == [
        (query(tmp_path, "SELECT max(day) FROM daily")[0][0],)]
    assert query(tmp_path, "SELECT count(*), sum(total) FROM daily") == [(4, 21)]


def test_partition_by_config_errors(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, {
        **FILES, "models/daily.sql": "/* elt\npartition_by: [day]\n*/\nSELECT 1 AS day\n"})
    with pytest.raises(ConfigError, match="partition_by needs materialized: incremental"):
        ctx.build()
    write(tmp_path, {"models/daily.sql": "/* elt\nmaterialized: incremental\npartition_by: "
                                         "[month]\n*/\nSELECT 1 AS day\n"})
    run = Context(tmp_path).build()
    assert by_name(run, "daily").status == "error"
    assert "partition_by column month is not in its output" in by_name(run, "daily").message


def test_a_full_build_runs_in_batches_of_partitions(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import elt.transform.partitioned

    ctx, _ = make_ctx(tmp_path, {**FILES, "seeds/sales/d2.csv": HEAD + "3,2024-01-03,4\n"
                                                                       "4,2024-01-01,1\n"})
    monkeypatch.setattr(elt.transform.partitioned, "BATCH", 2)  # 3 partitions: 2 batches
    run = ctx.build()
    assert by_name(run, "daily").message == "full build (first build, 2 batches)"
    assert sorted(query(tmp_path, "SELECT CAST(day AS VARCHAR), total FROM daily")) == [
        ("2024-01-01", 11), ("2024-01-02", 5), ("2024-01-03", 4)]
    assert query(tmp_path, "SELECT count(*) FROM information_schema.tables "
                           "WHERE starts_with(table_name, '__elt_tmp')") == [(0,)]


def test_an_input_rebuilt_to_the_same_rows_takes_no_part(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """`kinds` is rebuilt when its seed gains a duplicate line, to the same rows: the keys
    pass leaves it out (else it would run the model over every row of `sales` for no
    partition); a real change to it still redoes the partitions it reaches."""
    import elt.transform.partitions as partitions

    passes: list[list[str]] = []
    keys_sql = partitions._keys_sql

    def recording(graph: object, tree: object, deltas: dict[str, str],
                  columns: list[str]) -> str:
        passes.append(sorted(deltas))
        return keys_sql(graph, tree, deltas, columns)  # type: ignore[arg-type]

    monkeypatch.setattr(partitions, "_keys_sql", recording)
    ctx, _ = make_ctx(tmp_path, {
        **FILES,
        "seeds/seeds.yml": "seeds:\n  sales: {path: 'sales/*.csv'}\n"
                           "  kind_src: {path: 'kinds/*.csv'}\n",
        "seeds/kinds/a.csv": "id,kind\n1,big\n2,small\n",
        "models/kinds.sql": "/* elt\nmaterialized: table\n*/\n"
                            "SELECT DISTINCT CAST(id AS INTEGER) AS id, kind FROM raw.kind_src\n",
        "models/daily.sql": "/* elt\nmaterialized: incremental\npartition_by: day\n*/\n"
                            "SELECT s.day, k.kind, sum(s.amount) AS total FROM raw.sales AS s "
                            "JOIN kinds AS k ON k.id = s.id GROUP BY ALL\n"})
    ctx.build()
    write(tmp_path, {"seeds/kinds/b.csv": "id,kind\n1,big\n"})  # a duplicate: same rows
    same = ctx.build()
    assert by_name(same, "kinds").status == "success"
    assert by_name(same, "daily").message == "incremental: 0 partitions rebuilt, 0 rows"
    assert passes == [[]]
    write(tmp_path, {"seeds/kinds/b.csv": "id,kind\n2,huge\n"})  # a real change
    moved = ctx.build()
    assert by_name(moved, "daily").message == "incremental: 1 partitions rebuilt, 2 rows"
    assert passes[-1] == ["kinds"]
    assert sorted(query(tmp_path, "SELECT CAST(day AS VARCHAR), kind, total FROM daily")) == [
        ("2024-01-01", "big", 10), ("2024-01-02", "huge", 5), ("2024-01-02", "small", 5)]


def test_batch_sql_prints_the_model_once_per_shape_of_bounds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlglot import parse_one

    from elt.transform import partitions

    tree = parse_one("SELECT day, shop, sum(amount) AS total FROM raw.sales GROUP BY day, shop",
                     read="duckdb")
    real, printed = partitions.recompute_sql, []
    monkeypatch.setattr(partitions, "recompute_sql",
                        lambda *args: printed.append(args[3]) or real(*args))
    batch_sql = partitions.BatchSQL(tree, ["day", "shop"], "keys")

    def day(lo: str, hi: str) -> str:
        return f"BETWEEN CAST('{lo}' AS DATE) AND CAST('{hi}' AS DATE)"

    batches = [[day("2024-01-01", "2024-01-02"), "BETWEEN 1 AND 4"],
               [day("2024-01-03", "2024-01-09"), "BETWEEN 2 AND 3"],
               [day("2024-01-10", "2024-01-10"), None]]  # a NULL shop: no bounds for it
    for ranges in batches:
        assert batch_sql(ranges) == real(tree, ["day", "shop"], "keys", ranges)
    assert len(printed) == 2  # one per shape: both columns bounded, only day bounded
    assert "BETWEEN 2 AND 3" in batch_sql(batches[1]) and "__elt_lo" not in batch_sql(batches[1])
    # a bound whose text looks like a slot is not filled in again
    odd = [day("BETWEEN __elt_lo1 AND __elt_hi1", "2024-01-02"), "BETWEEN 1 AND 4"]
    assert batch_sql(odd) == real(tree, ["day", "shop"], "keys", odd)
    # printed otherwise than the slots expect: each batch is printed whole, still right
    monkeypatch.setattr(partitions.BatchSQL, "slot",
                        staticmethod(lambda i: f'BETWEEN "__elt_lo{i}" AND "__elt_hi{i}"'))
    fresh = partitions.BatchSQL(tree, ["day", "shop"], "keys")
    assert fresh(batches[0]) == real(tree, ["day", "shop"], "keys", batches[0])
    assert len(printed) == 4  # the shape's print, then this batch's own
