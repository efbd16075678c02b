"""Build engine: up-to-date checks, incremental batches, atomic swaps, failure isolation.

Also home of the small helpers the other build-side test files import (make_ctx, write, query, ...).
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import duckdb
import pytest

from elt.context import Context
from elt.core.console import Console
from elt.core.errors import ConfigError
from elt.core.results import RunResults
from elt.transform import materialize, nodestate

PROFILE = "p: {target: dev, outputs: {dev: {type: duckdb, path: target/elt.duckdb, threads: 2}}}\n"


# -- helpers shared by the build-side test files ------------------------------------------
def write(root: Path, files: dict[str, str | None]) -> None:
    """Write (dedented) files below root; None deletes a file."""
    for rel, text in files.items():
        path = root / rel
        if text is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def make_ctx(root: Path, files: dict[str, str | None] | None = None) -> tuple[Context, Console]:
    """A project in root with the minimal profile; output captured in StringIO."""
    if not (root / "profiles.yml").exists():
        write(root, {"profiles.yml": PROFILE})
    write(root, files or {})
    console = Console(out=io.StringIO(), err=io.StringIO())
    return Context(root, console=console), console


def output(console: Console) -> str:
    return console.out.getvalue() + console.err.getvalue()  # type: ignore[attr-defined]


def query(root: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def statuses(results: RunResults) -> dict[str, str]:
    return {r.name: r.status for r in results.results}


def by_name(results: RunResults, name: str) -> Any:
    return next(r for r in results.results if r.name == name)


BASE = {
    "seeds/seeds.yml": "seeds:\n  people: {path: people/*.csv}\n",
    "seeds/people/a.csv": "id,name,city_id\n1,ann,10\n2,bob,20\n3,cid,10\n",
    "seeds/people/b.csv": "id,name,city_id\n4,dan,20\n5,eve,30\n",
    "seeds/cities.csv": "id,city\n10,Oslo\n20,Rome\n30,Lima\n",
    "models/staging/stg_people.sql":
        "SELECT id, upper(name) AS name, city_id, _elt_load_id FROM raw.people\n",
    "models/staging/stg_cities.sql": """
        /* elt
        materialized: view
        */
        SELECT id AS city_id, city FROM raw.cities
        """,
    "models/marts/people_cities.sql": """
        WITH p AS (SELECT * FROM stg_people)
        SELECT p.id, p.name, c.city FROM p JOIN stg_cities AS c USING (city_id);
        """,
    "models/marts/people_inc.sql": """
        /* elt
        materialized: incremental
        unique_key: [id]
        */
        SELECT id, name, city_id, now()::TIMESTAMP AS processed_at FROM raw.people
        """,
}


Proj = tuple[Context, Console, Path]


@pytest.fixture
def project(tmp_path: Path) -> Proj:
    ctx, console = make_ctx(tmp_path, BASE)
    return ctx, console, tmp_path


def _state(root: Path) -> dict[str, tuple]:
    rows = query(root, "SELECT name, built_at, version, status FROM _elt.nodes")
    return {r[0]: r[1:] for r in rows}


# -- up to date -----------------------------------------------------------------------------
def test_second_build_runs_nothing(project: Proj, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, console, root = project
    first = ctx.build()
    assert not first.failed, output(console)
    assert set(statuses(first).values()) == {"success"}
    assert set(statuses(first)) == {"raw.people", "raw.cities", "stg_people", "stg_cities",
                                    "people_cities", "people_inc"}
    before = _state(root)

    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("no model may be built when nothing changed")

    monkeypatch.setattr(materialize, "build_model", boom)
    second = ctx.build()
    assert set(statuses(second).values()) == {"up_to_date"}, statuses(second)
    assert _state(root) == before
    run = json.loads((root / "target" / "run_results.json").read_text())
    assert {r["elt_status"] for r in run["results"]} == {"up_to_date"}
    assert {r["status"] for r in run["results"]} <= {"success", "pass"}  # dbt's words
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    assert manifest["nodes"]["model.p.people_cities"]["depends_on"]["nodes"] == [
        "model.p.stg_cities", "model.p.stg_people"]
    assert manifest["nodes"]["model.p.people_cities"]["elt"]["depends_on"] == [
        "stg_cities", "stg_people"]


def test_changed_row_reloads_one_seed_and_increments(project: Proj) -> None:
    ctx, console, root = project
    assert not ctx.build().failed, output(console)
    first = dict(query(root, "SELECT id, processed_at FROM people_inc"))
    write(root, {"seeds/people/c.csv": "id,name,city_id\n6,fay,20\n7,gus,30\n"})
    run = ctx.build()
    assert statuses(run) == {
        "raw.people": "success", "raw.cities": "up_to_date", "stg_people": "success",
        "stg_cities": "up_to_date", "people_cities": "success", "people_inc": "success"}
    # only batch c.csv was processed: 2 rows merged, the other rows kept their processed_at
    inc = by_name(run, "people_inc")
    assert inc.rows == 2 and inc.message == "incremental: 2 rows merged"
    after = dict(query(root, "SELECT id, processed_at FROM people_inc"))
    assert [after[i] for i in range(1, 6)] == [first[i] for i in range(1, 6)]
    assert sorted(after) == [1, 2, 3, 4, 5, 6, 7]
    # a replaced file may have lost rows whose keys no new row names: rebuilt fully
    write(root, {"seeds/people/b.csv": "id,name,city_id\n5,eva,30\n"})
    run = ctx.build()
    inc = by_name(run, "people_inc")
    assert inc.message == "full build (rows of raw.people were replaced or removed)"
    assert query(root, "SELECT list(id ORDER BY id) FROM people_inc") == [([1, 2, 3, 5, 6, 7],)]
    assert query(root, "SELECT name FROM people_inc WHERE id = 5") == [("eva",)]
    assert query(root, "SELECT count(*) FROM people_cities WHERE name = 'EVA'") == [(1,)]
    assert query(root, "SELECT kind, path FROM _elt.loads WHERE seed = 'people' "
                       "ORDER BY load_id DESC LIMIT 1") == [("replaced", "people/b.csv")]


def test_sql_change_rebuilds_model_and_downstream_only(project: Proj) -> None:
    ctx, console, root = project
    ctx.build()
    before = _state(root)
    write(root, {"models/staging/stg_cities.sql":
                 "SELECT id AS city_id, lower(city) AS city FROM raw.cities\n"})
    run = ctx.build()
    assert statuses(run)["stg_cities"] == "success"
    assert statuses(run)["people_cities"] == "success"
    assert statuses(run)["stg_people"] == "up_to_date"
    assert statuses(run)["people_inc"] == "up_to_date"
    after = _state(root)
    assert after["stg_cities"][1] == before["stg_cities"][1] + 1  # version bumped
    assert after["stg_people"] == before["stg_people"]
    assert query(root, "SELECT city FROM people_cities WHERE id = 1") == [("oslo",)]
    # the table became a view? no: stg_cities had no header now -> default table
    assert query(root, "SELECT table_type FROM information_schema.tables "
                       "WHERE table_name = 'stg_cities'") == [("BASE TABLE",)]


def test_config_change_rebuilds_incremental_fully(project: Proj) -> None:
    ctx, _, root = project
    ctx.build()
    write(root, {"models/marts/people_inc.sql": """
        /* elt
        materialized: incremental
        unique_key: [id, name]
        */
        SELECT id, name, city_id, now()::TIMESTAMP AS processed_at FROM raw.people
        """})
    inc = by_name(ctx.build(), "people_inc")
    assert inc.status == "success" and inc.rows == 5
    assert "full build (SQL or config changed)" in inc.message


def test_removed_file_rebuilds_incremental_fully(project: Proj) -> None:
    ctx, _, root = project
    ctx.build()
    write(root, {"seeds/people/b.csv": None})
    inc = by_name(ctx.build(), "people_inc")
    assert "rows of raw.people were replaced or removed" in inc.message
    assert query(root, "SELECT list(id ORDER BY id) FROM people_inc") == [([1, 2, 3],)]


def test_full_refresh_rebuilds_everything(project: Proj) -> None:
    ctx, _, root = project
    ctx.build()
    run = ctx.build(full_refresh=True)
    assert set(statuses(run).values()) == {"success"}
    assert by_name(run, "people_inc").message == "full build (--full-refresh)"


def test_selection_builds_only_selected(project: Proj) -> None:
    ctx, _, root = project
    run = ctx.build(select=["+stg_people"])
    assert set(statuses(run)) == {"raw.people", "stg_people"}
    run = ctx.build(select=["stg_people+"], exclude=["people_inc"])
    assert set(statuses(run)) == {"stg_people", "people_cities"}
    assert "stg_cities" in by_name(run, "people_cities").message  # never built: not selected
    run = ctx.build(select=["kind:seed"], full_refresh=True)
    assert set(statuses(run)) == {"raw.people", "raw.cities"}
    with pytest.raises(ConfigError, match="--select tag:nothing: matches no node"):
        ctx.build(select=["tag:nothing", "kind:seed"])  # a typo must not build a part quietly


# -- failures -----------------------------------------------------------------------------
def test_failing_model_keeps_previous_table_and_skips_downstream(project: Proj) -> None:
    ctx, console, root = project
    ctx.build()
    old = query(root, "SELECT * FROM stg_people ORDER BY id")
    write(root, {"models/staging/stg_people.sql": "SELECT id, nope FROM raw.people\n",
                 "models/marts/extra.sql": "SELECT count(*) AS n FROM raw.cities\n"})
    run = ctx.build()
    assert run.failed
    result = by_name(run, "stg_people")
    assert result.status == "error"
    assert result.message.startswith('models/staging/stg_people.sql:1: model stg_people: '
                                     'Binder Error: Referenced column "nope"')
    assert 'Candidate bindings: "name"' in result.message
    assert "\n" not in result.message
    assert statuses(run)["people_cities"] == "skipped"
    assert "stg_people" in by_name(run, "people_cities").message
    assert statuses(run)["extra"] == "success"          # independent nodes continue
    assert statuses(run)["people_inc"] == "up_to_date"
    assert query(root, "SELECT * FROM stg_people ORDER BY id") == old
    state = query(root, "SELECT status, version, message FROM _elt.nodes "
                        "WHERE name = 'stg_people'")[0]
    assert state[0] == "error" and state[1] == 1 and "nope" in state[2]
    assert ("error: models/staging/stg_people.sql:1: model stg_people: Binder Error"
            in console.err.getvalue())
    saved = json.loads((root / "target" / "run_results.json").read_text())
    assert {r["name"]: r["status"] for r in saved["results"]}["people_cities"] == "skipped"
    # fixed: it runs again (its last status was error) and downstream follows
    write(root, {"models/staging/stg_people.sql": BASE["models/staging/stg_people.sql"]})
    again = ctx.build()
    assert statuses(again)["stg_people"] == "success"
    assert statuses(again)["people_cities"] == "success"


def test_failing_test_over_several_models_skips_what_reads_them_all(project: Proj) -> None:
    """A singular test reading two models has no one owner: like dbt build, it guards each
    node that reads one of them and has both upstream (people_cities), not the rest."""
    ctx, console, root = project
    ctx.build()
    write(root, {"models/checks/every_city_known.test.sql":
                 "SELECT p.id FROM stg_people AS p ANTI JOIN stg_cities AS c USING (city_id)\n",
                 "seeds/people/b.csv": "id,name,city_id\n4,dan,20\n5,eve,99\n"})
    run = ctx.build()
    assert run.failed and statuses(run)["every_city_known"] == "error"
    assert statuses(run)["people_cities"] == "skipped"
    assert "upstream test every_city_known failed" in by_name(run, "people_cities").message
    assert statuses(run)["stg_people"] == "success"      # the test's own inputs are built
    assert statuses(run)["people_inc"] == "success"      # reads neither model
    assert query(root, "SELECT status FROM _elt.nodes WHERE name = 'people_cities'") == [
        ("skipped",)]
    write(root, {"seeds/people/b.csv": BASE["seeds/people/b.csv"]})
    again = ctx.build()
    assert statuses(again)["every_city_known"] == "success"
    assert statuses(again)["people_cities"] == "success"


def test_failing_swap_rolls_back(project: Proj, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, _, root = project
    ctx.build()
    write(root, {"models/staging/stg_people.sql":
                 "SELECT id, name, city_id, _elt_load_id, 1 AS extra FROM raw.people\n"})
    real = nodestate.record_success

    def failing(con: Any, **kwargs: Any) -> None:
        if kwargs["name"] == "stg_people":
            raise duckdb.IOException("IO Error: disk full (simulated)")
        real(con, **kwargs)

    monkeypatch.setattr(nodestate, "record_success", failing)
    run = ctx.build()
    assert by_name(run, "stg_people").message == \
        "models/staging/stg_people.sql: model stg_people: IO Error: disk full (simulated)"
    columns = [r[0] for r in query(root, "SELECT column_name FROM information_schema.columns "
                                         "WHERE table_name = 'stg_people'")]
    assert "extra" not in columns  # the DROP + RENAME were rolled back
    assert query(root, "SELECT count(*) FROM stg_people") == [(5,)]
    assert query(root, "SELECT count(*) FROM information_schema.tables "
                       "WHERE table_name LIKE '__elt_tmp_%'") == [(0,)]


def test_leftover_temp_tables_are_dropped(project: Proj) -> None:
    ctx, console, root = project
    ctx.build()
    with duckdb.connect(str(root / "target" / "elt.duckdb")) as con:
        con.execute("CREATE TABLE main.__elt_tmp_stg_people AS SELECT 1 AS x")
    ctx.build()
    assert query(root, "SELECT count(*) FROM information_schema.tables "
                       "WHERE starts_with(table_name, '__elt_tmp_')") == [(0,)]
    assert "dropped main.__elt_tmp_stg_people" in console.err.getvalue()


def test_null_unique_key_fails_and_changes_nothing(project: Proj) -> None:
    ctx, _, root = project
    ctx.build()
    before = query(root, "SELECT id, name FROM people_inc ORDER BY id")
    write(root, {"seeds/people/b.csv": "id,name,city_id\n4,dan,20\n,eve,30\n"})
    run = ctx.build()
    inc = by_name(run, "people_inc")
    assert inc.status == "error"
    assert inc.message == ("model people_inc: unique_key column id is NULL in 1 row(s); "
                           "nothing was changed")
    assert query(root, "SELECT id, name FROM people_inc ORDER BY id") == before


def test_view_to_table_switch(project: Proj) -> None:
    ctx, _, root = project
    ctx.build()
    assert query(root, "SELECT table_type FROM information_schema.tables "
                       "WHERE table_name = 'stg_cities'") == [("VIEW",)]
    write(root, {"models/staging/stg_cities.sql":
                 "/* elt\nmaterialized: table\n*/\nSELECT id AS city_id, city FROM raw.cities\n"})
    assert statuses(ctx.build())["stg_cities"] == "success"
    assert query(root, "SELECT table_type FROM information_schema.tables "
                       "WHERE table_name = 'stg_cities'") == [("BASE TABLE",)]


def test_parallel_wide_graph(tmp_path: Path) -> None:
    files = {"seeds/n.csv": "x\n1\n2\n3\n"}
    for i in range(12):
        files[f"models/m{i}.sql"] = f"SELECT x * {i} AS y FROM raw.n\n"
        files[f"models/d{i}.sql"] = ("/* elt\nmaterialized: view\n*/\n"
                                     f"SELECT sum(y) AS s FROM m{i}\n")
    ctx, console = make_ctx(tmp_path, files)
    run = ctx.build()
    assert not run.failed, output(console)
    assert len(run.results) == 25
    got = query(tmp_path, "SELECT " + " + ".join(f"(SELECT s FROM d{i})" for i in range(12)))
    assert got == [(6 * sum(range(12)),)]
    assert set(statuses(ctx.build()).values()) == {"up_to_date"}


# -- API sources and published answers ----------------------------------------------------
def _fake_sources(calls: list[str]) -> Any:
    """A stand-in for elt.sources.fetch (another module): one answer row per for_each id."""
    from elt.load.loader import LoadOutcome

    def fetch_source(con: Any, project: Any, node: Any, console: Any, endpoints: Any, *,
                     full_refresh: bool = False, published: Any = None) -> Any:
        calls.append(node.name)
        model = node.config["for_each"]["model"]
        con.execute(f"CREATE OR REPLACE TABLE {node.qualified} AS SELECT id, id * 100 AS answer,"
                    f" 1::BIGINT AS _elt_load_id FROM {model}")
        rows = con.execute(f"SELECT count(*) FROM {node.qualified}").fetchone()[0]
        return LoadOutcome("success", rows, rows, 0, 0, None)

    return types.SimpleNamespace(fetch_source=fetch_source,
                                 published_inputs=lambda graph, node: [])


def test_api_source_runs_between_models(project: Proj, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, console, root = project
    calls: list[str] = []
    monkeypatch.setitem(sys.modules, "elt.sources.fetch", _fake_sources(calls))
    write(root, {
        "models/api.yml": "api_sources:\n  geo: {endpoint: x, for_each: {model: stg_people, "
                          "columns: [id]}}\n",
        "models/geo_join.sql": "SELECT p.id, g.answer FROM stg_people AS p JOIN raw.geo AS g "
                               "USING (id)",
    })
    run = ctx.build()
    assert not run.failed, output(console)
    order = [r.name for r in run.results]
    assert order.index("stg_people") < order.index("raw.geo") < order.index("geo_join")
    assert by_name(run, "raw.geo").kind == "api" and calls == ["raw.geo"]
    assert query(root, "SELECT sum(answer) FROM geo_join") == [(1500,)]
    # the source fetched again (its module decides what is new); its version moved on
    assert statuses(ctx.build())["geo_join"] == "success"


def test_published_answers_are_inputs(project: Proj) -> None:
    ctx, _, root = project
    write(root, {"models/pubs.yml": "publications:\n  out: {model: people_cities, key: [id]}\n",
                 "models/report.sql": "SELECT count(*) AS acked FROM published.out"})
    assert not ctx.build().failed
    assert statuses(ctx.build())["report"] == "up_to_date"
    with duckdb.connect(str(root / "target" / "elt.duckdb")) as con:
        con.execute("INSERT INTO _elt.ledger (publication, key, key_json, status, seq) "
                    "VALUES ('out', '[1]', '{\"id\": \"1\"}', 'acknowledged', 7)")
    run = ctx.build()
    assert statuses(run)["report"] == "success"
    assert query(root, "SELECT acked FROM report") == [(1,)]
    assert query(root, "SELECT inputs FROM _elt.nodes WHERE name = 'report'") == \
        [('{"published.out": 7}',)]
