"""Running unattended: init and root discovery, broken pipes, data vs. secret redaction, the
database file's storage version, artifacts, compiled SQL and DuckDB errors mapped to lines."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path

import duckdb
from helpers import REPO, elt, elt_process
from test_build import BASE, PROFILE, write

from elt.core import db


def _init(tmp_path: Path) -> Path:
    root = tmp_path / "my project"
    result = subprocess.run([sys.executable, "-m", "elt.cli", "init", str(root)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return root


def test_init_builds_from_a_subfolder_and_refuses_to_overwrite(tmp_path: Path) -> None:
    root = _init(tmp_path)
    assert {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()} == {
        "profiles.yml", "seeds/people.csv", "models/people_clean.sql", ".gitignore"}
    sub = root / "models"
    built = subprocess.run([sys.executable, "-m", "elt.cli", "build"], capture_output=True,
                           text=True, cwd=sub)
    assert built.returncode == 0, built.stdout + built.stderr
    assert "Done: 5 success" in built.stdout
    assert (root / "target" / "elt.duckdb").exists() and not (sub / "target").exists()
    again = subprocess.run([sys.executable, "-m", "elt.cli", "init", str(root)],
                           capture_output=True, text=True)
    assert again.returncode == 1 and again.stderr.strip() == (
        f"error: {root / 'profiles.yml'}: already exists; elt init never overwrites")


def test_folder_without_project_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "elt.cli", "ls"], capture_output=True,
                            text=True, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: {tmp_path}: not an elt project (no profiles.yml in it or a parent folder; "
        "`elt init DIR` makes one)"]


def test_output_into_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    root = _init(tmp_path)
    assert elt_process(root, "build").code == 0
    # the reader takes two lines and leaves while elt still has 300,000 to write
    proc = subprocess.Popen([sys.executable, "-m", "elt.cli", "sql",
                             "SELECT range FROM range(300000)"], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    head = [proc.stdout.readline(), proc.stdout.readline()]
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0 and err == ""
    assert head[0].split() == [b"range"]
    # and the shell form (`set -o pipefail` reports elt's own exit code)
    piped = subprocess.run(["bash", "-c", "set -o pipefail; "
                            f"{sys.executable} -m elt.cli status | head -0"],
                           capture_output=True, text=True, cwd=root)
    assert piped.returncode == 0 and piped.stderr == ""


def test_data_equal_to_a_secret_prints_as_is(tmp_path: Path) -> None:
    """An e-mail used as a password is still the row's value in `elt sql`/`elt show`;
    the same text inside an error message is redacted."""
    email = f"ann.{uuid.uuid4().hex[:8]}@example.com"
    write(tmp_path, {
        "profiles.yml": "p: {target: dev, outputs: {dev: {path: target/elt.duckdb, endpoints: "
                        "{api: {url: 'http://127.0.0.1:9', auth: {type: login3, login_url: x, "
                        "username: \"{{ env_var('T_USER') }}\", "
                        "password: \"{{ env_var('T_PW') }}\"}}}}}}\n",
        "seeds/users.csv": f"id,email\n1,{email}\n2,bob@example.com\n",
    })
    env = {"T_USER": email, "T_PW": email}
    assert elt(tmp_path, "build", env=env).code == 0
    for args in (("sql", "SELECT email FROM raw.users ORDER BY id"),
                 ("sql", "SELECT * FROM raw.users", "--format", "json"),
                 ("sql", "SELECT * FROM raw.users", "--format", "csv"),
                 ("show", "raw.users")):
        shown = elt(tmp_path, *args, env=env)
        assert shown.code == 0 and email in shown.stdout, (args, shown.output)
    failed = elt(tmp_path, "sql", f"SELECT CAST('{email}' AS INTEGER)", env=env)
    assert failed.code == 1 and email not in failed.output and "***" in failed.stderr


def test_database_file_declares_a_storage_version_duckdb_1x_reads(tmp_path: Path) -> None:
    root = _init(tmp_path)
    assert elt(root, "build").code == 0
    path = root / "target" / "elt.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        tags = con.execute("SELECT tags FROM duckdb_databases() "
                           "WHERE database_name = current_database()").fetchone()[0]
    assert tags["storage_version"] == f"{db.STORAGE_VERSION}+" == "v1.4.0+"
    with db.connect(path, read_only=True) as con:
        assert db.storage_version(con) == "v1.4.0+"
    assert db.STORAGE_VERSION in (REPO / "README.md").read_text()


def test_artifacts_carry_schema_version_and_invocation_id(tmp_path: Path) -> None:
    root = _init(tmp_path)
    run = elt_process(root, "build", "--log-format", "json")
    assert run.code == 0, run.output
    results = json.loads((root / "target" / "run_results.json").read_text())
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    assert results["schema_version"] == 2 and manifest["schema_version"] == 2
    invocation = results["invocation_id"]
    assert re.fullmatch(r"[0-9a-f-]{36}", invocation) and manifest["invocation_id"] == invocation
    assert results["counts"] == {"success": 5, "up_to_date": 0, "warn": 0, "error": 0,
                                 "skipped": 0}
    records = [json.loads(line) for line in
               (root / "target" / "logs" / "elt.log").read_text().splitlines()]
    assert {r["invocation_id"] for r in records} == {invocation}


def test_compile_writes_what_build_runs_incremental_rewrite_included(tmp_path: Path) -> None:
    write(tmp_path, {**BASE, "profiles.yml": PROFILE})
    compiled = tmp_path / "target" / "compiled"
    assert elt(tmp_path, "compile", "-s", "people_inc").code == 0
    assert sorted(p.name for p in compiled.iterdir()) == ["people_inc.sql"]
    first = (compiled / "people_inc.sql").read_text()
    assert first.startswith("SELECT id, name, city_id") and "_elt_load_id >" not in first
    assert elt(tmp_path, "build").code == 0
    assert (compiled / "people_inc.sql").read_text() == first   # the full first build
    assert (compiled / "stg_cities.sql").read_text() == \
        "SELECT id AS city_id, city FROM raw.cities\n"
    write(tmp_path, {"seeds/people/c.csv": "id,name,city_id\n6,fay,10\n"})
    assert elt(tmp_path, "compile").code == 0
    planned = (compiled / "people_inc.sql").read_text()
    assert re.search(r'"_elt_load_id" > \d+|_elt_load_id > \d+', planned), planned
    (compiled / "people_inc.sql").unlink()
    assert elt(tmp_path, "build").code == 0
    assert (compiled / "people_inc.sql").read_text() == planned  # what build ran


def test_database_error_names_model_file_line_and_keeps_detail(tmp_path: Path) -> None:
    write(tmp_path, {**BASE, "profiles.yml": PROFILE,
                     "models/marts/bad.sql": """
                        /* elt
                        materialized: table
                        tags: [x]
                        */
                        SELECT id,
                          city_idd
                        FROM stg_people
                        """})
    result = elt(tmp_path, "build", "-s", "+bad")
    assert result.code == 1
    assert result.error_lines() == [
        'error: models/marts/bad.sql:6: model bad: Binder Error: Referenced column "city_idd" '
        'not found in FROM clause! Candidate bindings: "city_id", "_elt_load_id", "id"']
    lines = result.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.strip().startswith("line 6:"))
    assert lines[at].strip() == "line 6:   city_idd"
    assert lines[at + 1].index("^") == lines[at].index("city_idd")


def test_python_api_snippet_in_readme_runs(tmp_path: Path) -> None:
    root = _init(tmp_path)
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Python API", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('"path/to/project"', repr(str(root)))
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own README
    results = namespace["results"]
    assert not results.failed  # type: ignore[attr-defined]
    assert {r.name for r in results.results} >= {"people_clean"}  # type: ignore[attr-defined]
    assert (root / "target" / "run_results.json").exists()
