"""Incremental models equal a full refresh, whatever arrives: every incremental model of a
test project and of this repository's project (its keyed tables made incremental too) is
built step by step as seed files are added, replaced and removed, and compared after each
step with a `--full-refresh` build of the same files in another copy. SQL that can never be
maintained from new rows is refused, naming the model file."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from test_build import by_name, make_ctx, output, query, statuses, write

from elt.context import Context
from elt.graph.discover import discover_graph

REPO = Path(__file__).resolve().parents[1]


def incremental(sql: str, key: str) -> str:
    return f"/* elt\nmaterialized: incremental\nunique_key: [{key}]\n*/\n{sql}\n"


def partitioned(sql: str, columns: str) -> str:
    return f"/* elt\nmaterialized: incremental\npartition_by: [{columns}]\n*/\n{sql}\n"


# sales arrive in daily drops; the shops dimension in drops too
MODELS = {
    "seeds/seeds.yml": "seeds:\n  sales: {path: 'sales/*.csv'}\n  shops: {path: 'shops/*.csv'}\n",
    "models/inc_rows.sql": incremental(
        "SELECT id, upper(name) AS name, amount FROM raw.sales", "id"),
    # row by row, but a later drop repeats a name: a full build has both rows
    "models/inc_names.sql": incremental("SELECT name, day, amount FROM raw.sales", "name"),
    "models/inc_daily.sql": incremental(
        "SELECT day, shop, sum(amount) AS total, count(*) AS n, min(_elt_source_file) AS first "
        "FROM raw.sales GROUP BY ALL", "day, shop"),
    "models/inc_busy.sql": incremental(
        "SELECT shop, count(*) AS n FROM raw.sales GROUP BY shop HAVING count(*) >= 3", "shop"),
    "models/inc_join.sql": incremental(
        "SELECT s.id, s.amount, h.region FROM raw.sales AS s JOIN raw.shops AS h "
        "ON h.shop = s.shop", "id"),
    "models/inc_left.sql": incremental(
        "SELECT s.id, h.region FROM raw.sales AS s LEFT JOIN raw.shops AS h USING (shop)", "id"),
    "models/inc_region.sql": incremental(
        "WITH s AS (SELECT * FROM raw.sales) SELECT h.region, sum(s.amount) AS total, "
        "count(DISTINCT s.shop) AS shops FROM s JOIN raw.shops AS h USING (shop) GROUP BY 1",
        "region"),
    "models/inc_union.sql": incremental(
        "SELECT 'sale' AS kind, CAST(id AS VARCHAR) AS ref FROM raw.sales UNION ALL "
        "SELECT 'shop', shop FROM raw.shops", "kind, ref"),
    "models/inc_sold.sql": incremental(
        "SELECT h.shop, h.region FROM raw.shops AS h WHERE EXISTS "
        "(SELECT 1 FROM raw.sales AS s WHERE s.shop = h.shop)", "shop"),
    "models/inc_unsold.sql": incremental(
        "SELECT h.shop FROM raw.shops AS h WHERE NOT EXISTS "
        "(SELECT 1 FROM raw.sales AS s WHERE s.shop = h.shop)", "shop"),
    "models/inc_first.sql": incremental(
        "SELECT shop, arg_min(name, id) AS first_name, max(day) AS last_day, "
        "list(id ORDER BY id) AS ids FROM raw.sales GROUP BY shop", "shop"),
    "models/inc_days.sql": incremental("SELECT DISTINCT shop, day FROM raw.sales", "shop, day"),
    "models/inc_share.sql": incremental(
        "SELECT id, amount / (SELECT sum(amount) FROM raw.sales) AS share FROM raw.sales", "id"),
    "models/stg_sales.sql": "/* elt\nmaterialized: view\n*/\n"
                            "SELECT id, shop, amount, _elt_load_id FROM raw.sales\n",
    "models/inc_over_view.sql": incremental(
        "SELECT shop, sum(amount) AS total FROM stg_sales GROUP BY shop", "shop"),
    # partitioned: through a view over a table model (its changed rows are kept) and a seed
    "models/stg_sales_t.sql": "SELECT DISTINCT id, day, shop, amount FROM raw.sales\n",
    "models/sales_region.sql": "/* elt\nmaterialized: view\n*/\nSELECT s.id, s.day, s.amount, "
                               "h.region FROM stg_sales_t AS s JOIN raw.shops AS h USING (shop)\n",
    "models/inc_part.sql": partitioned(
        "WITH x AS (SELECT region, day, amount FROM sales_region) "
        "SELECT region, day, sum(amount) AS total, count(*) AS n FROM x GROUP BY ALL",
        "region, day"),
    "models/inc_part_raw.sql": partitioned(
        "SELECT shop, day, sum(amount) AS total, list(id ORDER BY id) AS ids FROM raw.sales "
        "GROUP BY ALL", "shop"),
}
HEAD = "id,name,day,shop,amount\n"
STEPS: list[dict[str, str | None]] = [
    {"seeds/sales/d1.csv": HEAD + "1,ann,2024-01-01,a,10\n2,bob,2024-01-01,b,5\n"
                                  "3,cid,2024-01-02,a,7\n",
     "seeds/shops/s1.csv": "shop,region\na,north\nb,south\n"},
    # a second drop: more rows for the same (day, shop) groups
    {"seeds/sales/d2.csv": HEAD + "4,dan,2024-01-01,a,1\n8,cid,2024-01-02,a,7\n"
                                  "5,eve,2024-01-02,c,4\n"},
    # a shop arrives that old sales name
    {"seeds/shops/s2.csv": "shop,region\nc,north\n"},
    # a drop corrected: a row gone, an amount changed
    {"seeds/sales/d1.csv": HEAD + "1,ann,2024-01-01,a,11\n3,cid,2024-01-02,a,7\n"},
    # a drop withdrawn, a new one
    {"seeds/sales/d2.csv": None,
     "seeds/sales/d3.csv": HEAD + "6,fay,2024-01-03,b,2\n7,gus,2024-01-03,b,3\n"},
]


def incremental_models(root: Path) -> list[str]:
    graph = discover_graph(Context(root).project)
    return sorted(n for n, node in graph.nodes.items() if node.materialized == "incremental")


def rows(root: Path, model: str) -> list[tuple]:
    return sorted(query(root, f"SELECT * FROM {model}"), key=repr)


def compare_with_full_refresh(step: Callable[[Path], None], steps: int, inc: Path,
                              full: Path, **build: object) -> list[dict[str, str]]:
    """Apply each step to `inc` (incremental builds) and copy its seeds to `full` (built with
    --full-refresh); after each step every incremental model must hold the same rows."""
    messages = []
    ctx_inc, ctx_full = Context(inc), Context(full)
    for i in range(steps):
        step(inc)
        shutil.rmtree(full / "seeds")
        shutil.copytree(inc / "seeds", full / "seeds")
        a, b = ctx_inc.build(**build), ctx_full.build(full_refresh=True, **build)
        models = incremental_models(inc)
        assert models
        for model in models:
            built = [statuses(r).get(model) in ("success", "up_to_date") for r in (a, b)]
            assert built[0] == built[1], (i, model, by_name(a, model), by_name(b, model))
            if built[0]:
                assert rows(inc, model) == rows(full, model), f"step {i}: {model}"
        messages.append({r.name: r.message or r.status for r in a.results if r.name in models})
    return messages


def test_test_project_incremental_equals_full_refresh(tmp_path: Path) -> None:
    inc, full = tmp_path / "inc", tmp_path / "full"
    for root in (inc, full):
        make_ctx(root, {**MODELS, **STEPS[0]})
    steps = iter(STEPS)
    messages = compare_with_full_refresh(lambda root: write(root, next(steps)), len(STEPS),
                                         inc, full)
    first, drop, shop, fixed, _ = messages
    assert set(first.values()) == {"full build (first build)"}
    # the second drop: the new rows' keys, recomputed from all rows; row by row: merged
    assert drop["inc_rows"] == "incremental: 3 rows merged"
    assert drop["inc_names"] == "incremental: 3 keys recomputed, 4 rows"  # cid twice
    assert drop["inc_daily"] == "incremental: 3 keys recomputed, 3 rows"
    assert drop["inc_busy"] == "incremental: 2 keys recomputed, 1 rows"
    assert drop["inc_first"] == "incremental: 2 keys recomputed, 2 rows"
    assert drop["inc_unsold"].startswith("full build (new rows in raw.sales: it is read "
                                         "under NOT")
    assert drop["inc_share"] == ("full build (new rows in raw.sales: it is read in a scalar "
                                 "subquery)")
    assert drop["inc_over_view"] == "full build (stg_sales changed and is read whole)"
    # a shop arrives: old sales join it now
    assert shop["inc_join"] == "incremental: 1 keys recomputed, 1 rows"
    assert shop["inc_sold"] == "incremental: 1 keys recomputed, 1 rows"
    assert shop["inc_left"].startswith("full build (new rows in raw.shops: it is read on the "
                                       "NULL side")
    assert shop["inc_rows"] == "up_to_date"
    assert fixed["inc_daily"] == "full build (rows of raw.sales were replaced or removed)"
    # partitioned: only the partitions the changed rows reach, also rows gone from a table
    assert drop["inc_part"] == "incremental: 2 partitions rebuilt, 2 rows"
    assert drop["inc_part_raw"] == "incremental: 2 partitions rebuilt, 3 rows"
    assert shop["inc_part"] == "incremental: 1 partitions rebuilt, 1 rows"
    assert shop["inc_part_raw"] == "up_to_date"
    assert fixed["inc_part"] == "incremental: 2 partitions rebuilt, 1 rows"
    assert fixed["inc_part_raw"] == "full build (raw.sales: its changed rows are not known)"


@pytest.mark.parametrize("sql, why", [
    ("SELECT id, row_number() OVER (ORDER BY day) AS n FROM raw.sales", "a window function"),
    ("SELECT id FROM raw.sales ORDER BY id LIMIT 2", "LIMIT"),
    ("WITH s AS (SELECT * FROM raw.sales), t AS (SELECT id FROM s) "
     "SELECT id FROM (SELECT id FROM t QUALIFY row_number() OVER (PARTITION BY id) = 1) x",
     "a window function"),
])
def test_sql_that_cannot_be_incremental_is_refused(tmp_path: Path, sql: str, why: str) -> None:
    ctx, console = make_ctx(tmp_path, {**STEPS[0], "seeds/seeds.yml": MODELS["seeds/seeds.yml"],
                                       "models/bad.sql": incremental(sql, "id")})
    run = ctx.build()
    bad = by_name(run, "bad")
    assert bad.status == "error"
    assert bad.message.startswith(f"{tmp_path / 'models' / 'bad.sql'}: model bad: materialized: "
                                  f"incremental cannot use {why} over raw.sales"), bad.message
    assert "materialized: table" in bad.message and "\n" not in bad.message
    assert "Traceback" not in output(console)


# -- the repository's project ---------------------------------------------------------------
def _keyed_tables_made_incremental(root: Path) -> list[str]:
    """Every table model with a unique test becomes incremental on that key."""
    made = []
    for name, node in discover_graph(Context(root).project).nodes.items():
        if node.kind != "model" or node.materialized != "table":
            continue
        keys = [t["unique"] for t in node.config.get("tests") or []
                if isinstance(t, dict) and isinstance(t.get("unique"), list)]
        keys += [[c] for c, spec in (node.config.get("columns") or {}).items()
                 if "unique" in ((spec or {}).get("tests") or [])]
        if not keys:
            continue
        text = node.path.read_text(encoding="utf-8")
        new = re.sub(r"(?m)^materialized: table$",
                     f"materialized: incremental\nunique_key: [{', '.join(keys[0])}]", text)
        assert new != text, name
        node.path.write_text(new, encoding="utf-8")
        made.append(name)
    return sorted(made)


def test_project_incremental_models_equal_full_refresh(tmp_path: Path) -> None:
    inc, full = tmp_path / "inc", tmp_path / "full"
    aside = tmp_path / "aside"
    for root in (inc, full):
        for name in ("seeds", "models"):
            shutil.copytree(REPO / name, root / name)
        shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
        made = _keyed_tables_made_incremental(root)
    assert {"stg_flowkit_residents", "uois_externalids"} <= set(made)
    # incremental in the project itself (flowkit_datasets partitioned)
    assert {"flowkit_datasets", "stg_flowkit_presence"} <= set(incremental_models(inc))
    presence = sorted((inc / "seeds/flowkit/presence").glob("*.csv"))
    aside.mkdir()
    for path in presence[1:]:  # the later daily drops arrive one by one
        path.rename(aside / path.name)
    relocations = (inc / "seeds/flowkit/relocations.csv").read_text(encoding="utf-8")

    def step(root: Path, n: list[int] = [0]) -> None:  # noqa: B006 - the step counter
        i, n[0] = n[0], n[0] + 1
        if i in (1, 2):  # the next daily drop (it repeats a row of the one before)
            drop = presence[i]
            shutil.copy(aside / drop.name, drop)
        if i == 2:  # a corrected export: fewer rows
            lines = relocations.splitlines(keepends=True)
            (root / "seeds/flowkit/relocations.csv").write_text(
                "".join(lines[: len(lines) // 2]), encoding="utf-8")

    messages = compare_with_full_refresh(step, 3, inc, full, exclude=["kind:api"])
    assert "keys recomputed" in messages[1]["stg_flowkit_presence"]
    assert "keys recomputed" in messages[2]["stg_flowkit_presence"]
    assert messages[2]["stg_flowkit_relocations"] == (
        "full build (rows of raw.flowkit_relocations were replaced or removed)")
    assert not any("error" in m for m in messages[-1].values())


@pytest.mark.parametrize("sql, row_level, unsafe", [
    ("SELECT k, x FROM raw.f", True, {}),
    ("WITH f AS (SELECT * FROM raw.f) SELECT k FROM f LEFT JOIN other USING (k)", True, {}),
    ("SELECT k, histogram(x) FROM raw.f GROUP BY k", False, {}),
    ("SELECT k, my_agg(x) AS a FROM raw.f", False, {}),  # an aggregate sqlglot does not know
    ("SELECT * FROM raw.f JOIN raw.d USING (k)", False, {}),
    ("(SELECT k FROM raw.f) UNION ALL (SELECT k FROM raw.d)", False, {}),
    ("SELECT * FROM raw.f LEFT JOIN raw.d USING (k)", False, {"raw.d": "NULL side"}),
    ("SELECT * FROM raw.d RIGHT JOIN other USING (k)", False, {"raw.d": "NULL side"}),
    ("SELECT * FROM other FULL JOIN raw.d USING (k)", False, {"raw.d": "NULL side"}),
    ("SELECT k FROM raw.f ANTI JOIN raw.d USING (k)", False, {"raw.d": "ANTI JOIN"}),
    ("SELECT k FROM raw.f WHERE k NOT IN (SELECT k FROM raw.d)", False, {"raw.d": "NOT"}),
    ("SELECT k FROM raw.f EXCEPT SELECT k FROM raw.d", False, {"raw.d": "EXCEPT"}),
    ("SELECT k, (SELECT max(x) FROM raw.d) AS m FROM raw.f", False,
     {"raw.d": "scalar subquery"}),
    # the relation an UNPIVOT turns is a set of rows, not a scalar subquery
    ("SELECT k, n, v FROM (UNPIVOT (SELECT *, x * 2 AS y FROM raw.d) "
     "ON COLUMNS(* EXCLUDE (k)) INTO NAME n VALUE v) JOIN raw.f USING (k)", False, {}),
    ("SELECT k, (SELECT max(v) FROM (UNPIVOT (SELECT * FROM raw.d) ON COLUMNS(* EXCLUDE (k)) "
     "INTO NAME n VALUE v)) AS m FROM raw.f", False, {"raw.d": "scalar subquery"}),
    # a window or LIMIT over a model read whole: any change of it rebuilds fully anyway
    ("SELECT f.k, r.n FROM raw.f JOIN (SELECT k, row_number() OVER (ORDER BY k) AS n "
     "FROM other LIMIT 9) AS r USING (k)", True, {}),
])
def test_which_inputs_allow_a_delta(sql: str, row_level: bool, unsafe: dict[str, str]) -> None:
    from types import SimpleNamespace

    from elt.transform.incremental import analyse

    node = SimpleNamespace(sql=sql, name="m", path=Path("m.sql"), unique_key=["k"])
    shape = analyse(node, {"raw.f", "raw.d"}, {"histogram", "my_agg"})  # type: ignore[arg-type]
    assert shape.row_level == row_level
    assert set(shape.unsafe) == set(unsafe)
    for rel, why in unsafe.items():
        assert why in shape.unsafe[rel]


def test_project_one_changed_cell_rebuilds_its_partitions(tmp_path: Path) -> None:
    """flowkit_datasets as committed (staging tables, partition_by): one changed export
    cell rebuilds only the (indicator, date) partitions of its row, equal to a full refresh."""
    inc, full = tmp_path / "inc", tmp_path / "full"
    for root in (inc, full):
        for name in ("seeds", "models"):
            shutil.copytree(REPO / name, root / name)
        shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    export = sorted((inc / "seeds/flowkit/presence").glob("*.csv"))[0]
    lines = export.read_text(encoding="utf-8").splitlines(keepends=True)
    cells = lines[1].rstrip("\n").split(",")
    column = next(i for i, c in enumerate(cells) if i >= 2 and c.strip().isdigit())

    def step(root: Path, n: list[int] = [0]) -> None:  # noqa: B006 - the step counter
        i, n[0] = n[0], n[0] + 1
        if i == 1:
            cells[column] = str(int(cells[column]) + 1)
            export.write_text("".join([lines[0], ",".join(cells) + "\n", *lines[2:]]),
                              encoding="utf-8")

    messages = compare_with_full_refresh(step, 2, inc, full, exclude=["kind:api"])
    header = lines[0].rstrip("\n").split(",")
    indicators = len(header) - 2  # every value column of the row: a superset of the one
    assert messages[1]["flowkit_datasets"].startswith(
        f"incremental: {indicators} partitions rebuilt"), messages[1]
    assert query(inc, "SELECT count(*) FROM _elt.changes WHERE model = "
                      "'stg_flowkit_presence' AND rows = 2") == [(1,)]
