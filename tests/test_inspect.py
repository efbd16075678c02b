"""sql/show/ls/dag: queries, rendering formats and helpful errors."""

from __future__ import annotations

import csv
import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from test_build import BASE, make_ctx, write

from elt.context import Context
from elt.core.console import Console
from elt.core.errors import EltError
from elt.inspect import list_nodes, render, render_dag, run_query, show_relation

Built = tuple[Context, duckdb.DuckDBPyConnection]


@pytest.fixture
def built(tmp_path: Path) -> Iterator[Built]:
    ctx, console = make_ctx(tmp_path, BASE)
    assert not ctx.build().failed
    con = duckdb.connect(str(tmp_path / "target" / "elt.duckdb"), read_only=True)
    yield ctx, con
    con.close()


def _printed(fmt: str, columns: list[str], rows: list[tuple]) -> str:
    console = Console(out=io.StringIO(), err=io.StringIO())
    render(console, columns, rows, fmt)
    return console.out.getvalue()  # type: ignore[attr-defined]


def test_run_query_and_errors(built: Built) -> None:
    _, con = built
    columns, rows = run_query(con, "SELECT id, name FROM stg_people ORDER BY id", limit=2)
    assert columns == ["id", "name"] and rows == [(1, "ANN"), (2, "BOB")]
    with pytest.raises(EltError) as info:
        run_query(con, "SELECT * FROM nope")
    assert str(info.value).startswith("Catalog Error: Table with name nope does not exist")
    assert "\n" not in str(info.value)
    with pytest.raises(EltError, match="no SQL given"):
        run_query(con, "  ")


def test_render_formats() -> None:
    columns, rows = ["id", "name"], [(1, "a,b"), (2, None)]
    table = _printed("table", columns, rows).splitlines()
    assert table[0].split() == ["id", "name"] and table[3].split() == ["2", "NULL"]
    assert list(csv.reader(io.StringIO(_printed("csv", columns, rows)))) == \
        [["id", "name"], ["1", "a,b"], ["2", ""]]
    assert json.loads(_printed("json", columns, rows)) == \
        [{"id": 1, "name": "a,b"}, {"id": 2, "name": None}]


def test_show_relation(built: Built) -> None:
    ctx, con = built
    graph = ctx.graph()
    columns, rows = show_relation(con, graph, "people_cities", 2)
    assert columns == ["id", "name", "city"] and len(rows) == 2
    columns, rows = show_relation(con, graph, "cities", 10)  # a seed by its short name
    assert columns[:2] == ["id", "city"] and len(rows) == 3
    assert show_relation(con, graph, "_elt.nodes", 1)[0][0] == "name"
    with pytest.raises(EltError, match=r"no model, seed or source named 'people_citys' "
                                       r"\(did you mean people_cities\?\)"):
        show_relation(con, graph, "people_citys", 5)


def test_show_not_built_yet(built: Built, tmp_path: Path) -> None:
    ctx, con = built
    write(tmp_path, {"models/later.sql": "SELECT 1 AS x"})
    with pytest.raises(EltError, match=r"model later has not been built yet; "
                                       r"run `elt build -s later`"):
        show_relation(con, ctx.graph(), "later", 5)


def test_list_nodes_shows_a_warning_test_as_warn(tmp_path: Path) -> None:
    ctx, _ = make_ctx(tmp_path, {**BASE, "models/checks/odd.test.sql":
                                 "/* elt\nseverity: warn\n*/\nSELECT * FROM stg_people "
                                 "WHERE id % 2 = 1\n"})
    assert not ctx.build().failed
    with duckdb.connect(str(tmp_path / "target" / "elt.duckdb"), read_only=True) as con:
        _, rows = list_nodes(con, ctx.graph(), ["odd", "stg_people"], [])
    assert {r[0]: (r[3], r[5]) for r in rows} == {"odd": (3, "warn"),
                                                 "stg_people": (5, "success")}


def test_list_nodes(built: Built) -> None:
    ctx, con = built
    columns, rows = list_nodes(con, ctx.graph(), ["kind:model"], ["people_inc"])
    assert columns == ["name", "kind", "materialized", "rows", "last_build", "status"]
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {"stg_people", "stg_cities", "people_cities"}
    assert by_name["stg_people"][2:4] == ("table", 5) and by_name["stg_people"][5] == "success"
    assert by_name["stg_cities"][2:4] == ("view", None)
    assert by_name["people_cities"][4][:2] == "20"
    _, cold = list_nodes(None, ctx.graph(), [], [])
    assert {r[5] for r in cold} == {"not built"}
    assert {r[0] for r in cold} >= {"raw.people", "people_inc"}


def test_render_dag(built: Built) -> None:
    ctx, _ = built
    graph = ctx.graph()
    text = render_dag(graph, "text").splitlines()
    assert "model     people_cities  <- stg_cities, stg_people" in text
    assert text[0].startswith("seed")
    mermaid = render_dag(graph, "mermaid")
    assert mermaid.startswith("flowchart LR")
    assert "  model_stg_people --> model_people_cities" in mermaid
    assert '  seed_raw_people["raw.people"]:::seed' in mermaid
    dot = render_dag(graph, "dot")
    assert dot.startswith("digraph elt {") and dot.endswith("}")
    assert '  "raw.people" -> "stg_people";' in dot
    assert '  "raw.people" [shape=cylinder];' in dot
    with pytest.raises(EltError):
        render_dag(graph, "png")


def test_sql_on_another_database_file(tmp_path: Path) -> None:
    """`elt sql --database target/sandbox.duckdb`: look at what the sandbox received."""
    from click.testing import CliRunner

    from elt.cli import cli

    (tmp_path / "profiles.yml").write_text(
        "p: {target: dev, outputs: {dev: {type: duckdb, path: target/elt.duckdb}}}\n")
    other = tmp_path / "other.duckdb"
    with duckdb.connect(str(other)) as con:
        con.execute("CREATE TABLE received AS SELECT 7 AS mdid")
    result = CliRunner().invoke(cli, ["sql", "--project-dir", str(tmp_path), "--database",
                                      str(other), "--format", "json",
                                      "SELECT mdid FROM received"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"mdid": 7}]


WRITES = {  # every kind of statement `elt sql` must refuse, and what it would have done
    "delete": "DELETE FROM stg_people",
    "insert": "INSERT INTO stg_people SELECT * FROM stg_people",
    "update": "UPDATE stg_people SET name = 'x'",
    "create": "CREATE TABLE t AS SELECT 1",
    "drop": "DROP TABLE stg_people",
    "alter": "ALTER TABLE stg_people RENAME TO p",
    "attach": "ATTACH '{db}' AS w (READ_WRITE); DELETE FROM w.stg_people",
    "attach_new": "ATTACH '{out}/x.duckdb' AS x",
    "copy_outside": "COPY (SELECT * FROM stg_people) TO '{out}/leak.csv'",
    "copy_inside": "COPY (SELECT * FROM stg_people) TO '{root}/leak.csv'",
    "export": "EXPORT DATABASE '{out}/dump'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET threads = 1",
    "reset": "RESET threads",
    "pragma": "PRAGMA enable_profiling",
    "checkpoint": "CHECKPOINT",
    "call": "CALL checkpoint()",
    "explain_analyze": "EXPLAIN ANALYZE COPY (SELECT 1) TO '{root}/leak.csv'",
    "second_statement": "SELECT 1; DELETE FROM stg_people",
    "vacuum": "VACUUM",
    "create_secret": "CREATE SECRET s (TYPE s3, KEY_ID 'k', SECRET 'v')",
}


@pytest.mark.parametrize("kind", sorted(WRITES))
@pytest.mark.parametrize("on", ["staging", "--database"])
def test_sql_refuses_every_statement_that_writes(tmp_path: Path, kind: str, on: str) -> None:
    root, out = tmp_path / "p", tmp_path / "outside"
    root.mkdir()
    out.mkdir()
    ctx, _ = make_ctx(root, BASE)
    assert not ctx.build().failed
    db = root / "target" / "elt.duckdb"
    other = root / "target" / "other.duckdb"
    shutil.copy(db, other)
    query = WRITES[kind].format(db=db, out=out, root=root)
    before = _fingerprint(db)
    with pytest.raises(EltError) as info:
        ctx.sql(query, database=other if on == "--database" else None)
    assert "\n" not in str(info.value)
    assert not list(out.iterdir()) and not (root / "leak.csv").exists()
    assert _fingerprint(db) == before and _fingerprint(other) == before


def _fingerprint(path: Path) -> list[tuple]:
    """Every table of a file with its rows and columns' names."""
    with duckdb.connect(str(path), read_only=True) as con:
        tables = con.execute("SELECT schema_name, table_name, estimated_size FROM "
                             "duckdb_tables() ORDER BY ALL").fetchall()
        people = con.execute("SELECT * FROM stg_people ORDER BY ALL").fetchall()
    return [*tables, *people]


def test_sql_reads_files_inside_the_project_only(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    ctx, console = make_ctx(root, BASE)
    assert not ctx.build().failed
    (root / "inside.csv").write_text("a\n7\n")
    (tmp_path / "outside.csv").write_text("a\n8\n")
    ctx.sql(f"SELECT a * 6 AS answer FROM read_csv('{root / 'inside.csv'}')", fmt="csv")
    assert "42" in console.out.getvalue()
    with pytest.raises(EltError, match="Permission Error"):
        ctx.sql(f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')")
    ctx.sql("SELECT * FROM pragma_table_info('stg_people')", fmt="csv")  # reading a pragma
    ctx.sql("DESCRIBE stg_people; SHOW TABLES; SUMMARIZE stg_people", fmt="csv")
    ctx.sql("EXPLAIN SELECT * FROM stg_people", fmt="csv")
