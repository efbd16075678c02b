"""`elt sql` / `elt show` never write: a database, a file, a setting or an extension."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from elt.cli import cli
from elt.core.errors import EltError
from elt.core.readonly import refuse_writes

PROFILE = "p: {target: dev, outputs: {dev: {type: duckdb, path: target/elt.duckdb}}}\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose staging db holds a ledger-like table, plus a second db file."""
    root = tmp_path / "proj"
    (root / "target").mkdir(parents=True)
    (root / "profiles.yml").write_text(PROFILE)
    (root / "data.csv").write_text("a\n1\n2\n")
    with duckdb.connect(str(root / "target" / "elt.duckdb")) as con:
        con.execute("CREATE SCHEMA _elt")
        con.execute("CREATE TABLE _elt.ledger AS SELECT range AS id FROM range(30)")
        con.execute("CREATE TABLE people AS SELECT 1 AS id, 'ann' AS name")
    with duckdb.connect(str(root / "target" / "sandbox.duckdb")) as con:
        con.execute("CREATE TABLE received AS SELECT 7 AS mdid")
    return root


def _sql(root: Path, query: str, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["sql", "--project-dir", str(root), *extra, query])
    return result.exit_code, result.output


def _ledger_rows(root: Path) -> int:
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        return con.execute("SELECT count(*) FROM _elt.ledger").fetchone()[0]  # type: ignore[index]


WRITES = {
    "attach": "ATTACH '{w}' AS w (READ_WRITE); DELETE FROM w._elt.ledger",
    "attach_new_file": "ATTACH '{tmp}/x.duckdb' AS x; CREATE TABLE x.t AS SELECT 1",
    "copy_out": "COPY (SELECT * FROM people) TO '{tmp}/leak.csv'",
    "copy_inside_project": "COPY (SELECT * FROM people) TO '{root}/leak.csv'",
    "export": "EXPORT DATABASE '{tmp}/dump'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET threads = 1",
    "pragma": "PRAGMA enable_profiling",
    "checkpoint": "PRAGMA version; CHECKPOINT",
    "call": "CALL checkpoint()",
    "create": "CREATE TABLE t AS SELECT 1",
    "create_temp": "CREATE TEMP TABLE t AS SELECT 1",
    "insert": "INSERT INTO people VALUES (2, 'bob')",
    "delete": "DELETE FROM _elt.ledger",
    "update": "UPDATE people SET name = 'x'",
    "drop": "DROP TABLE people",
    "explain_analyze_copy": "EXPLAIN ANALYZE COPY people TO '{tmp}/e.csv'",
    "read_then_write": "SELECT 1; DELETE FROM _elt.ledger",
}


@pytest.mark.parametrize("database", [False, True], ids=["staging", "--database"])
@pytest.mark.parametrize("kind", sorted(WRITES))
def test_every_writing_statement_is_refused(project: Path, kind: str, database: bool) -> None:
    tmp = project.parent
    query = WRITES[kind].format(w=project / "target" / "elt.duckdb", tmp=tmp, root=project)
    extra = ("--database", str(project / "target" / "sandbox.duckdb")) if database else ()
    code, output = _sql(project, query, *extra)
    assert code != 0, output
    assert "read-only: refused" in output and len(output.strip().splitlines()) == 1, output
    assert _ledger_rows(project) == 30
    assert sorted(p.name for p in tmp.iterdir()) == ["proj"]  # no file written anywhere
    assert not (project / "leak.csv").exists()


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM _elt.ledger",
    "WITH x AS (SELECT 1 AS a) SELECT * FROM x",
    "FROM people", "DESCRIBE people", "SHOW TABLES", "SUMMARIZE people",
    "EXPLAIN SELECT * FROM people",
    "SELECT * FROM pragma_table_info('people')",
    "SELECT sum(a) FROM read_csv('data.csv')",
])
def test_reading_statements_run(project: Path, query: str,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    code, output = _sql(project, query)
    assert code == 0, output


def test_reading_a_file_outside_the_project_is_refused(project: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    outside = project.parent / "secret.csv"
    outside.write_text("s\nhidden\n")
    code, output = _sql(project, f"SELECT * FROM read_csv('{outside}')")
    assert code != 0 and "hidden" not in output
    code, output = _sql(project, "SELECT * FROM read_csv('../secret.csv')")
    assert code != 0 and "hidden" not in output
    code, output = _sql(project, "SELECT * FROM read_csv('data.csv')")
    assert code == 0 and "1" in output


def test_show_cannot_be_steered_into_writing(project: Path) -> None:
    result = CliRunner().invoke(cli, ["show", "--project-dir", str(project),
                                      "people; DELETE FROM _elt.ledger"])
    assert result.exit_code != 0
    assert _ledger_rows(project) == 30


def test_refuse_writes_checks_all_statements_before_any_runs() -> None:
    refuse_writes("SELECT 1; FROM range(3); EXPLAIN SELECT 2")
    with pytest.raises(EltError, match="ATTACH"):
        refuse_writes("SELECT 1; ATTACH 'x.duckdb' AS x")
    with pytest.raises(EltError, match="does not parse|Parser"):
        refuse_writes("SELEC 1")
