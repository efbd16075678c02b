"""End to end through the `elt` CLI: build, test, sql, show, ls, dag and one-line errors."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_build import BASE, PROFILE, write

from elt.cli import cli

FILES = {
    **BASE,
    "profiles.yml": PROFILE,
    "models/pubs.yml": "publications:\n  people_out: {model: people_cities, key: [id]}\n",
    "models/sent_report.sql": "SELECT count(*) AS sent FROM published.people_out",
}


def elt(root: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, [*args, "--project-dir", str(root)], input=stdin)


def one_error_line(result: Result) -> str:
    """The CLI's error: exactly one `error:` line on stderr and no traceback."""
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write(tmp_path, FILES)
    result = elt(tmp_path, "build")
    assert result.exit_code == 0, result.output
    return tmp_path


def test_build_then_up_to_date(root: Path) -> None:
    again = elt(root, "build")
    assert again.exit_code == 0
    lines = [line.split() for line in again.stdout.splitlines() if line.startswith("  ")]
    starts = [parts for parts in lines if parts[3] == "START"]
    ends = [parts for parts in lines if parts[3] != "START"]
    assert [p[:3] for p in starts] == [[str(i), "of", "7"] for i in range(1, 8)]
    assert len(ends) == 7 and {parts[6] for parts in ends} == {"up_to_date"}
    assert {parts[3] for parts in ends} == {"OK"}
    assert "Done: 7 up_to_date" in again.stdout
    assert json.loads(elt(root, "sql", "SELECT * FROM sent_report", "--format", "json").stdout) \
        == [{"sent": 0}]


def test_sql_formats(root: Path) -> None:
    result = elt(root, "sql", "SELECT id, name FROM stg_people ORDER BY id", "--format", "json",
                 "--limit", "2")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"id": 1, "name": "ANN"}, {"id": 2, "name": "BOB"}]
    piped = elt(root, "sql", "--format", "csv", stdin="SELECT count(*) AS n FROM raw.people")
    assert list(csv.reader(io.StringIO(piped.stdout))) == [["n"], ["5"]]
    table = elt(root, "sql", "SELECT 'x' AS col").stdout.splitlines()
    assert table == ["col", "---", "x"]
    bad = elt(root, "sql", "SELECT nope FROM stg_people")
    assert one_error_line(bad).startswith('error: Binder Error: Referenced column "nope"')


def test_show_ls_dag(root: Path) -> None:
    shown = elt(root, "show", "people_cities", "--limit", "2", "--format", "csv")
    assert shown.exit_code == 0
    assert shown.stdout.splitlines()[0] == "id,name,city" and len(shown.stdout.splitlines()) == 3
    listed = json.loads(elt(root, "ls", "--format", "json", "-s", "kind:model").stdout)
    assert {n["name"]: n["status"] for n in listed} == {
        "stg_people": "success", "stg_cities": "success", "people_cities": "success",
        "people_inc": "success", "sent_report": "success"}
    assert {n["materialized"] for n in listed} == {"table", "view", "incremental"}
    mermaid = elt(root, "dag", "--format", "mermaid").stdout
    assert "model_people_cities -.-> published_published_people_out" in mermaid
    assert "published_published_people_out --> model_sent_report" in mermaid
    dot = elt(root, "dag", "--format", "dot").stdout
    assert '"stg_people" -> "people_cities";' in dot
    text = elt(root, "dag").stdout
    assert "published published.people_out  (sent from people_cities)" in text
    missing = elt(root, "show", "peple_cities")
    assert "did you mean people_cities?" in one_error_line(missing)


def test_unknown_column_fails_build(root: Path) -> None:
    write(root, {"models/staging/stg_cities.sql": "SELECT idd AS city_id FROM raw.cities"})
    result = elt(root, "build")
    line = one_error_line(result)
    assert line.startswith('error: models/staging/stg_cities.sql:1: model stg_cities: '
                           'Binder Error: Referenced column "idd"')
    assert 'Candidate bindings: "id", "city"' in line
    assert "skipped  upstream model stg_cities failed" in result.stdout
    saved = json.loads((root / "target" / "run_results.json").read_text())
    assert {r["name"]: r["status"] for r in saved["results"]}["people_cities"] == "skipped"


def test_debug_shows_the_traceback_behind_a_node_error(root: Path) -> None:
    """The run goes past a failing node, so the CLI never sees its exception: --debug
    prints its traceback where the error happened, the one line stays as without it."""
    write(root, {"models/staging/stg_cities.sql": "SELECT idd AS city_id FROM raw.cities",
                 "seeds/people/b.csv": "id,name,city_id\n4,dan,20\n5,eve\n"})
    plain = elt(root, "build")
    assert "Traceback" not in plain.output
    debug = elt(root, "build", "--debug")
    assert debug.exit_code == 1
    assert "duckdb.BinderException" in debug.stderr  # the model's
    assert "The above exception was the direct cause" in debug.stderr  # the seed's, chained
    assert "LoadError: seeds/people/b.csv:3" in debug.stderr
    errors = sorted(line for line in debug.stderr.splitlines() if line.startswith("error:"))
    assert len(errors) == 2 and errors == sorted(
        line for line in plain.stderr.splitlines() if line.startswith("error:"))


def test_debug_tracebacks_are_redacted(root: Path) -> None:
    """--debug used to re-raise, and Python printed the traceback as it was: now it goes
    through the console, which redacts it like every message."""
    write(root, {"profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, path: "
                                 "target/elt.duckdb, threads: \"{{ env_var('MY_SECRET') }}\"}}}\n"})
    run = CliRunner().invoke(cli, ["build", "--debug", "--project-dir", str(root)],
                             env={"MY_SECRET": "dbg-canary-4711"})
    assert run.exit_code == 1
    assert run.exception is None or isinstance(run.exception, SystemExit)
    assert "Traceback (most recent call last)" in run.stderr
    assert "ConfigError" in run.stderr and "not '***'" in run.stderr
    assert "dbg-canary" not in run.output


def test_graph_errors_are_one_line(root: Path) -> None:
    write(root, {"models/bad.sql": "SELECT * FROM raw.peoples"})
    line = one_error_line(elt(root, "build"))
    assert line == ("error: models/bad.sql: model bad: unknown table raw.peoples "
                    "(did you mean raw.people?)")
    write(root, {"models/bad.sql": "/* elt\nmaterialized: table\ntags: [a, b\n*/\nSELECT 1"})
    line = one_error_line(elt(root, "ls"))
    assert line.startswith("error: models/bad.sql:4: invalid YAML")
    write(root, {"models/bad.sql": "/* elt\nmaterialised: table\n*/\nSELECT 1"})
    assert "model bad: unknown config key(s) materialised" in one_error_line(elt(root, "dag"))


def test_failing_data_test_exit_code(root: Path) -> None:
    write(root, {"models/staging/stg_people.sql": """
        /* elt
        columns:
          id: {tests: [unique]}
        */
        SELECT 1 AS id, name, city_id FROM raw.people
        """})
    result = elt(root, "build")
    assert result.exit_code == 1
    assert "error: test unique_stg_people_id: 1 failing row(s), e.g. id=1, n_records=5" \
        in result.stderr
    tested = elt(root, "test", "-s", "stg_people")
    assert tested.exit_code == 1 and "unique_stg_people_id" in tested.stdout
