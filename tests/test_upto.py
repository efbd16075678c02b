"""The up-to-date fast path (elt/transform/upto.py): a no-op build answered from the stamp, and
every reason the stamp no longer holds making a real build run, with real files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml
from click.testing import CliRunner
from test_build import BASE, Proj, by_name, make_ctx, output, query, statuses, write
from test_sources import IDS, TYPE_ID, Env, requests_seen, sb, seeded  # noqa: F401 - fixtures

from elt.cli import cli
from elt.context import Context
from elt.core.log import INVOCATION_ID
from elt.sandbox.server import Sandbox
from elt.sources import fetch
from elt.transform import runner, upto


@pytest.fixture
def project(tmp_path: Path) -> Proj:
    ctx, console = make_ctx(tmp_path, BASE)
    return ctx, console, tmp_path


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, ...]]]:
    """The selections of the builds that really ran (the fast path never calls run_build)."""
    calls: list[tuple[str, ...]] = []
    real = runner.run_build

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(tuple(kwargs.get("select") or ()))
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_build", spy)
    yield calls


def _node_lines(text: str) -> list[str]:
    """Node lines without their `N of M` counter and seconds (both vary run to run)."""
    lines = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[1] == "of" and parts[3] in ("START", "OK"):
            lines.append(" ".join(p for p in parts[3:] if not p.endswith("s") or
                                  not p[:-1].replace(".", "").isdigit()))
    return sorted(lines)


# -- the no-op itself ------------------------------------------------------------------------
def test_replay_matches_the_normal_no_op(project: Proj, builds: list) -> None:
    ctx, console, root = project
    assert set(statuses(ctx.build()).values()) == {"success"}
    assert (root / "target" / upto.STAMP_FILE).exists()
    console.out.seek(0)
    console.out.truncate(0)
    normal_stamp = root / "target" / upto.STAMP_FILE
    normal_stamp.unlink()  # the normal no-op, for comparison
    normal = ctx.build()
    normal_out = console.out.getvalue()
    normal_run = json.loads((root / "target" / "run_results.json").read_text())
    normal_manifest = json.loads((root / "target" / "manifest.json").read_text())
    assert len(builds) == 2 and normal_stamp.exists()
    console.out.seek(0)
    console.out.truncate(0)

    replayed = ctx.build()
    assert len(builds) == 2  # answered from the stamp
    assert [(r.name, r.kind, r.status, r.rows) for r in replayed.results] == \
        [(r.name, r.kind, r.status, r.rows) for r in normal.results]
    assert _node_lines(console.out.getvalue()) == _node_lines(normal_out)
    assert console.out.getvalue().rstrip().splitlines()[-1].startswith(
        f"Done: {len(normal.results)} up_to_date in ")
    run = json.loads((root / "target" / "run_results.json").read_text())
    assert run["counts"] == normal_run["counts"]
    timed = ("seconds", "execution_time", "timing")  # the replay took no time
    assert [{k: v for k, v in r.items() if k not in timed} for r in run["results"]] == \
        [{k: v for k, v in r.items() if k not in timed} for r in normal_run["results"]]
    manifest = json.loads((root / "target" / "manifest.json").read_text())
    assert manifest["nodes"] == normal_manifest["nodes"]
    assert manifest["invocation_id"] == run["invocation_id"] == INVOCATION_ID
    assert manifest["generated_at"] > normal_manifest["generated_at"]


def test_replay_after_an_incremental_build_reports_stored_rows(project: Proj,
                                                               builds: list) -> None:
    """An incremental (or partitioned) build reports the rows it wrote; the no-op after it
    reports the table's stored rows, and so does the replay."""
    ctx, console, root = project
    ctx.build()
    write(root, {"seeds/people/c.csv": "id,name,city_id\n6,fay,20\n"})
    changed = ctx.build()
    assert by_name(changed, "people_inc").status == "success", output(console)
    replayed = {r.name: r.rows for r in ctx.build().results}
    (root / "target" / upto.STAMP_FILE).unlink()
    normal = {r.name: r.rows for r in ctx.build().results}
    assert len(builds) == 3 and replayed == normal
    assert replayed["people_inc"] == 6 and replayed["raw.people"] == 6


def test_cli_no_op_does_not_import_duckdb(project: Proj) -> None:
    _, _, root = project
    script = ("import sys\nfrom elt.cli import main\nsys.argv = ['elt', 'build', '-q', "
              f"'--project-dir', {str(root)!r}]\ntry:\n    main()\nexcept SystemExit as e:\n"
              "    assert not e.code, e.code\nprint('duckdb' in sys.modules)\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELT_")}
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                           env=env, check=True)
    assert first.stdout.split()[-1] == "True"  # a real build
    second = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=env, check=True)
    assert second.stdout.split()[-1] == "False", second.stdout + second.stderr
    log = (root / "target" / "logs" / "elt.log").read_text()
    assert "up-to-date check: nothing changed since the last build" in log


def test_full_refresh_always_builds(project: Proj, builds: list) -> None:
    ctx, _, _ = project
    ctx.build()
    run = ctx.build(full_refresh=True)
    assert len(builds) == 2
    assert statuses(run)["people_cities"] == "success"


def test_failed_build_leaves_no_stamp(project: Proj, builds: list) -> None:
    ctx, console, root = project
    ctx.build()
    write(root, {"models/marts/people_cities.sql": "SELECT nope FROM stg_people"})
    assert ctx.build().failed
    assert not (root / "target" / upto.STAMP_FILE).exists()
    assert ctx.build().failed  # still the real error, not a replay
    assert len(builds) == 3


# -- each reason the stamp no longer holds ---------------------------------------------------
def test_seed_changed_or_touched(project: Proj, builds: list) -> None:
    ctx, console, root = project
    ctx.build()
    csv = root / "seeds" / "people" / "b.csv"
    csv.write_text(csv.read_text() + "6,fay,10\n")
    run = ctx.build()
    assert by_name(run, "raw.people").status == "success", output(console)
    assert by_name(run, "raw.people").rows == 6
    assert query(root, "SELECT count(*) FROM people_cities") == [(6,)]
    ctx.build()
    assert len(builds) == 2
    # same bytes, new mtime: the real build runs (and records the new mtime)
    st = csv.stat()
    os.utime(csv, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    run = ctx.build()
    assert len(builds) == 3 and set(statuses(run).values()) == {"up_to_date"}
    assert query(root, "SELECT mtime FROM _elt.files WHERE path = 'people/b.csv'") == \
        [(csv.stat().st_mtime,)]


def test_new_seed_file(project: Proj, builds: list) -> None:
    ctx, _, root = project
    ctx.build()
    write(root, {"seeds/people/c.csv": "id,name,city_id\n7,gus,30\n"})
    run = ctx.build()
    assert len(builds) == 2 and by_name(run, "raw.people").rows == 6


def test_model_edited(project: Proj, builds: list) -> None:
    ctx, _, root = project
    ctx.build()
    write(root, {"models/staging/stg_people.sql":
                 "SELECT id, lower(name) AS name, city_id, _elt_load_id FROM raw.people\n"})
    run = ctx.build()
    assert statuses(run)["stg_people"] == "success" and len(builds) == 2
    assert query(root, "SELECT name FROM people_cities WHERE id = 1") == [("ann",)]


def test_profile_edited(project: Proj, builds: list) -> None:
    ctx, _, root = project
    ctx.build()
    profiles = root / "profiles.yml"
    profiles.write_text(profiles.read_text().replace("threads: 2", "threads: 1"))
    Context(root, console=ctx.console).build()
    assert len(builds) == 2


def test_database_written_by_another_tool(project: Proj, builds: list) -> None:
    ctx, console, root = project
    ctx.build()
    result = CliRunner().invoke(cli, ["sql", "SELECT count(*) FROM people_cities",
                                      "--project-dir", str(root)])
    assert result.exit_code == 0, result.output
    ctx.build()
    assert len(builds) == 1  # `elt sql` opens the database read-only: still up to date
    with duckdb.connect(str(root / "target" / "elt.duckdb")) as con:
        con.execute("DROP TABLE people_cities")
    run = ctx.build()
    assert len(builds) == 2 and statuses(run)["people_cities"] == "success", output(console)
    assert query(root, "SELECT count(*) FROM people_cities") == [(5,)]


def test_selection_changed(project: Proj, builds: list) -> None:
    ctx, console, root = project
    run = ctx.build(exclude=["people_inc"])
    assert "people_inc" not in statuses(run)
    assert "people_inc" not in statuses(ctx.build(exclude=["people_inc"]))
    assert len(builds) == 1
    run = ctx.build()
    assert statuses(run)["people_inc"] == "success", output(console)
    run = ctx.build(select=["stg_people"])
    assert set(statuses(run)) == {"stg_people"} and len(builds) == 3


def _source_project(tmp_path: Path, sandbox: Sandbox, **settings: Any) -> Context:
    """A seed of external ids, a GraphQL source asking the sandbox about them, a model."""
    env = Env(tmp_path / "p", {"uois": {**sandbox.endpoint_config("uois"), "max_attempts": 1}})
    env.con.close()
    root = env.project.root
    write(root, {"seeds/ext.csv": f"type_id,outer_id\n{TYPE_ID},o0\n{TYPE_ID},o9\n"})
    (root / "models" / "sources.yml").write_text(yaml.safe_dump(
        {"api_sources": {"ids": {**IDS, **settings}}}))
    write(root, {"models/known.sql": "SELECT outer_id FROM raw.ids WHERE result IS NOT NULL"})
    return Context(root, console=env.console)


def test_graphql_document_parsed_only_when_asking(tmp_path: Path, sb: Sandbox,  # noqa: F811
                                                  seeded: list[str],  # noqa: F811
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The normal no-op build (no stamp) leaves the unchanged document unparsed; a changed,
    broken one fails the source before its table is touched."""
    from elt.sources import spec

    ctx = _source_project(tmp_path, sb)
    root = ctx.project.root
    assert by_name(ctx.build(), "raw.ids").status == "success"
    real = spec._check_document
    parsed: list[str] = []
    monkeypatch.setattr(spec, "_check_document", lambda s: parsed.append(s.name) or real(s))
    (root / "target" / upto.STAMP_FILE).unlink()
    assert by_name(ctx.build(), "raw.ids").status == "up_to_date" and parsed == []
    (root / "models" / "internal_id.gql").write_text("query {\n  result(\n}")
    run = ctx.build()
    assert parsed == ["ids"] and by_name(run, "raw.ids").status == "error"
    assert "internal_id.gql:3:1: GraphQL syntax error" in by_name(run, "raw.ids").message
    assert query(root, "SELECT count(*) FROM raw.ids") == [(2,)]  # last good answers kept


def test_api_source_reaching_max_age(tmp_path: Path, sb: Sandbox, seeded: list[str],  # noqa: F811
                                     builds: list, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = _source_project(tmp_path, sb, max_age="1h")
    root = ctx.project.root
    assert by_name(ctx.build(), "raw.ids").status == "success"
    asked = requests_seen(sb)
    assert by_name(ctx.build(), "raw.ids").status == "up_to_date"
    assert requests_seen(sb) == asked and len(builds) == 1
    stamp = json.loads((root / "target" / upto.STAMP_FILE).read_text())
    assert stamp["expires"] is not None
    later = upto.now() + 2 * 3600
    monkeypatch.setattr(upto, "now", lambda: later)
    real_now = fetch._now
    monkeypatch.setattr(fetch, "_now", lambda: real_now() + timedelta(hours=2))
    run = ctx.build()
    assert len(builds) == 2 and by_name(run, "raw.ids").status == "success"
    assert requests_seen(sb) > asked
