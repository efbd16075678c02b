"""Data tests: each generic kind passing and failing, singular tests, severities, tests_ok."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
from test_build import Proj, by_name, make_ctx, output, query, statuses, write

from elt.core.errors import ConfigError
from elt.graph.discover import discover_graph as load_graph
from elt.transform.runner import plan

CLEAN = ("id,customer_id,day,status,amount\n"
         "1,1,2024-01-01,new,10\n2,2,2024-01-01,paid,5\n3,1,2024-01-02,paid,0\n")
# one row per broken rule: duplicate id, NULL id + bad status + negative amount,
# unknown customer, duplicate (customer_id, day)
DIRTY = ("id,customer_id,day,status,amount\n"
         "1,1,2024-01-01,new,10\n1,2,2024-01-01,paid,5\n,1,2024-01-02,lost,-1\n"
         "4,9,2024-01-03,paid,3\n5,1,2024-01-01,new,1\n")
FILES = {
    "seeds/customers.csv": "id\n1\n2\n",
    "seeds/orders.csv": CLEAN,
    "models/customers.sql": "SELECT id FROM raw.customers",
    "models/orders.sql": """
        /* elt
        unique_key: [id]
        columns:
          id: {tests: [not_null, unique]}
          status: {tests: [{accepted_values: {values: [new, paid]}}]}
          customer_id: {tests: [{relationships: {to: customers, field: id}}]}
        tests:
          - unique: [customer_id, day]
          - expression: "amount >= 0"
        */
        SELECT id, customer_id, day, status, amount FROM raw.orders
        """,
    "models/summary.sql": "SELECT count(*) AS n FROM orders",
    "models/checks/big_orders.test.sql": "SELECT * FROM orders WHERE amount > 100",
}
TESTS = {
    "not_null_orders_id": (1, "id=NULL"),
    "unique_orders_id": (1, "id=1, n_records=2"),
    "accepted_values_orders_status": (1, "id=NULL, status=lost"),
    "relationships_orders_customer_id__customers__id": (1, "id=4, customer_id=9"),
    "unique_orders_customer_id__day": (1, "customer_id=1, day=2024-01-01, n_records=2"),
    "expression_orders_amount_0": (1, "id=NULL"),
    "big_orders": (0, None),
}


@pytest.fixture
def shop(tmp_path: Path) -> Proj:
    ctx, console = make_ctx(tmp_path, FILES)
    return ctx, console, tmp_path


def test_all_kinds_pass(shop: Proj) -> None:
    ctx, console, root = shop
    run = ctx.build()
    assert not run.failed, output(console)
    tests = {r.name: r for r in run.results if r.kind == "test"}
    assert set(tests) == set(TESTS)
    assert {r.status for r in tests.values()} == {"success"}
    assert {r.rows for r in tests.values()} == {0}
    assert statuses(run)["summary"] == "success"
    assert query(root, "SELECT tests_ok FROM _elt.nodes WHERE name = 'orders'") == [(True,)]
    assert query(root, "SELECT count(*) FROM test_failures.unique_orders_id") == [(0,)]
    # passing tests only count (no failing rows stored), yet leave an empty table of the
    # test's columns, and compiled/ shows the test's own SELECT, not the count around it
    assert query(root, "SELECT column_name FROM information_schema.columns WHERE table_schema "
                       "= 'test_failures' AND table_name = 'expression_orders_amount_0' "
                       "ORDER BY ordinal_position") == [
        ("id",), ("customer_id",), ("day",), ("status",), ("amount",)]
    compiled = (root / "target/compiled/expression_orders_amount_0.sql").read_text()
    assert "amount >= 0" in compiled and "__elt_failing" not in compiled
    # nothing changed: the tests do not run again either
    assert {r.status for r in ctx.build().results} == {"up_to_date"}


def test_all_kinds_fail_with_rows_named(shop: Proj) -> None:
    ctx, console, root = shop
    ctx.build()
    write(root, {"seeds/orders.csv": DIRTY,
                 "models/checks/big_orders.test.sql": "SELECT * FROM orders WHERE amount < 0"})
    run = ctx.build()
    assert run.failed
    for name, (count, row) in TESTS.items():
        result = by_name(run, name)
        expected = 1 if name == "big_orders" else count
        assert result.kind == "test" and result.status == "error", name
        assert result.rows == expected, name
        if row:
            assert f"e.g. {row}" in result.message, result.message
        assert query(root, f"SELECT count(*) FROM test_failures.{name}") == [(expected,)]
    assert by_name(run, "not_null_orders_id").message == (
        "test not_null_orders_id: 1 failing row(s), e.g. id=NULL; "
        "see test_failures.not_null_orders_id")
    text = output(console)
    assert "      id=4, customer_id=9" in text        # failing rows are printed
    assert "fail" in text
    # an error-severity failure blocks what reads the model, and publish can see it
    assert by_name(run, "summary").status == "skipped"
    assert "upstream test" in by_name(run, "summary").message
    assert query(root, "SELECT tests_ok FROM _elt.nodes WHERE name = 'orders'") == [(False,)]
    # failing tests are not 'up to date': they run (and fail) again
    again = ctx.build()
    assert by_name(again, "unique_orders_id").status == "error"
    assert by_name(again, "orders").status == "up_to_date"
    # fixed data: tables of failing rows are replaced, tests_ok comes back
    write(root, {"seeds/orders.csv": CLEAN})
    fixed = ctx.build()
    assert not fixed.failed, output(console)
    assert query(root, "SELECT count(*) FROM test_failures.unique_orders_id") == [(0,)]
    assert query(root, "SELECT tests_ok FROM _elt.nodes WHERE name = 'orders'") == [(True,)]


def test_warn_severity_only_warns(shop: Proj) -> None:
    ctx, console, root = shop
    write(root, {
        "seeds/orders.csv": CLEAN + "6,2,2024-01-05,paid,-7\n",
        "models/orders.sql": """
            /* elt
            tests:
              - expression: {sql: "amount >= 0", severity: warn, name: no_negative_amounts}
            */
            SELECT * FROM raw.orders
            """,
        "models/checks/big_orders.test.sql": "/* elt\nseverity: warn\n*/\n"
                                             "SELECT * FROM orders WHERE amount < 0",
    })
    run = ctx.build()
    assert not run.failed, output(console)
    warned = by_name(run, "no_negative_amounts")
    assert warned.status == "warn" and warned.rows == 1
    # no unique_key: the first columns of the failing row name it
    assert "e.g. id=6, customer_id=2, day=2024-01-05, status=paid;" in warned.message
    assert by_name(run, "big_orders").status == "warn"
    saved = json.loads((root / "target" / "run_results.json").read_text())
    assert saved["counts"]["warn"] == 2
    assert {r["name"]: r["status"] for r in saved["results"]}["no_negative_amounts"] == "warn"
    assert re.search(r"Done: .*2 warn", console.out.getvalue())
    assert "warning: test no_negative_amounts: 1 failing row(s)" in console.err.getvalue()
    assert by_name(run, "summary").status == "success"
    assert query(root, "SELECT tests_ok FROM _elt.nodes WHERE name = 'orders'") == [(True,)]


def test_tests_follow_their_model_in_selection(shop: Proj) -> None:
    graph = shop[0].graph()
    assert "unique_orders_id" in plan(graph, ["orders"], [], "build")
    assert "big_orders" in plan(graph, ["orders"], [], "build")
    # excluding a model excludes its tests too
    assert set(plan(graph, [], ["orders"], "build")) == \
        {"raw.customers", "customers", "raw.orders", "summary"}
    assert plan(graph, ["customers"], [], "test") == \
        ["relationships_orders_customer_id__customers__id"]
    assert set(plan(graph, [], [], "test")) == set(TESTS)


def test_test_command_runs_tests_without_building(shop: Proj) -> None:
    ctx, console, root = shop
    ctx.build()
    built = query(root, "SELECT built_at FROM _elt.nodes WHERE name = 'orders'")
    write(root, {"seeds/orders.csv": DIRTY})  # not loaded: `elt test` builds nothing
    run = ctx.test()
    assert {r.kind for r in run.results} == {"test"}
    assert not run.failed
    assert query(root, "SELECT built_at FROM _elt.nodes WHERE name = 'orders'") == built
    one = ctx.test(select=["customers"])
    assert [r.name for r in one.results] == ["relationships_orders_customer_id__customers__id"]
    with pytest.raises(ConfigError):
        ctx.test(select=["orderz"])


def test_config_errors(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, {**FILES, "models/orders.sql":
                                 "/* elt\ncolumns:\n  id: {tests: [uniq]}\n*/\nSELECT 1 AS id"})
    with pytest.raises(ConfigError, match="model orders: unknown test 'uniq'"):
        load_graph(ctx.project)
    write(tmp_path, {"models/orders.sql": "/* elt\ncolumns:\n  id: {tests: [{relationships: "
                                          "{to: custmers}}]}\n*/\nSELECT 1 AS id"})
    with pytest.raises(ConfigError, match=r"unknown `to:` custmers \(did you mean customers\?\)"):
        load_graph(ctx.project)
    write(tmp_path, {"models/orders.sql": "/* elt\ntests: [{accepted_values: {column: x}}]\n*/\n"
                                          "SELECT 1 AS id"})
    with pytest.raises(ConfigError, match=r"needs `values: \[...\]`"):
        load_graph(ctx.project)


def test_huge_cells_in_samples_are_cut(shop: Proj) -> None:
    """A 1.3 MB payload in a failing row once made a 3.9 MB log: samples cut every cell."""
    ctx, console, root = shop
    write(root, {
        "models/payloads.sql": """
            /* elt
            tests:
              - expression: "length(payload) < 100"
            */
            SELECT 1 AS id, repeat('x', 1300000) AS payload
            UNION ALL SELECT 2, 'short'
            """,
    })
    run = ctx.build()
    result = by_name(run, "expression_payloads_length_payload_100")
    assert result.status == "error" and result.rows == 1
    assert f"payload={'x' * 200}... [+1,299,800 chars]".replace(",", "") in result.message
    assert len(result.message) < 600, len(result.message)
    assert len(output(console)) < 5000
    # the failing row itself is kept whole
    assert query(root, "SELECT length(payload) FROM test_failures."
                       "expression_payloads_length_payload_100") == [(1300000,)]


def _scans_of(caplog: pytest.LogCaptureFixture, relation: str) -> list[str]:
    """Statements the build ran that read `relation` for a test (from the SQL log)."""
    return [r.getMessage() for r in caplog.records if r.name == "elt.sql"
            and f"FROM {relation}" in r.getMessage() and "count" in r.getMessage()]


def test_row_tests_of_a_model_are_counted_in_one_scan(shop: Proj,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """not_null, accepted_values, relationships and expression tests of `orders` read the
    model once between them (a payload column is read once, not once per test)."""
    ctx, console, root = shop
    caplog.set_level(logging.DEBUG, logger="elt.sql")
    run = ctx.build()
    assert not run.failed, output(console)
    fused = [s for s in _scans_of(caplog, '"main"."orders" AS child') if "count_if" in s]
    assert len(fused) == 1, fused
    for name in ("not_null_orders_id", "accepted_values_orders_status",
                 "relationships_orders_customer_id__customers__id",
                 "expression_orders_amount_0"):
        assert by_name(run, name).status == "success"
        assert query(root, f"SELECT count(*) FROM test_failures.{name}") == [(0,)]
    # no row test counted on its own; the unique tests (GROUP BY) still do
    alone = [s for s in _scans_of(caplog, '"main"."orders"') if "count_if" not in s
             and "__elt_failing" in s and "GROUP BY" not in s and "LIMIT 0" not in s]
    assert alone == []


def test_a_broken_condition_fails_alone(shop: Proj) -> None:
    """One expression that DuckDB rejects makes the shared count fail: each test then runs
    alone, so the broken one reports its own error and its siblings still pass."""
    ctx, console, root = shop
    write(root, {"models/orders.sql": FILES["models/orders.sql"].replace(
        '- expression: "amount >= 0"',
        '- expression: "amount >= 0"\n          - expression: "no_such_column > 0"')})
    run = ctx.build()
    assert run.failed
    broken = by_name(run, "expression_orders_no_such_column_0")
    assert broken.status == "error" and "no_such_column" in (broken.message or "")
    for name in ("not_null_orders_id", "expression_orders_amount_0",
                 "relationships_orders_customer_id__customers__id"):
        assert by_name(run, name).status == "success", name


def test_row_tests_of_an_empty_model_pass(shop: Proj) -> None:
    """count_if over no rows is NULL in DuckDB: no rows is no failing row."""
    ctx, console, root = shop
    write(root, {"models/orders.sql": FILES["models/orders.sql"].replace(
        "FROM raw.orders", "FROM raw.orders WHERE false")})
    run = ctx.build()
    assert not run.failed, output(console)
    assert by_name(run, "not_null_orders_id").status == "success"
    assert by_name(run, "expression_orders_amount_0").rows == 0
