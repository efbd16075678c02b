"""A new daily file processes only its rows: `stg_flowkit_presence` (GROUP BY ALL over the
daily drops) recomputes only the keys the new file reaches, from every file, and
`flowkit_datasets` redoes only the partitions those rows change; both equal a full refresh."""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
from test_project import make_project

from elt.context import Context
from elt.core.console import Console
from elt.core.results import NodeResult, RunResults

SELECT = ["+flowkit_datasets"]
PRESENCE = Path("seeds/flowkit/presence")
UNIQUE = "unique_stg_flowkit_presence_date__spatial_unit"


def build(root: Path, full_refresh: bool = False, ok: bool = True) -> RunResults:
    out = io.StringIO()
    results = Context(project_dir=root, target="sandbox", console=Console(
        out=out, err=out, color=False)).build(select=SELECT, full_refresh=full_refresh)
    assert not results.failed or not ok, out.getvalue()
    return results


def node(results: RunResults, name: str) -> NodeResult:
    return next(r for r in results.results if r.name == name)


def rows(root: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)


def next_day_file(root: Path) -> tuple[int, tuple[str, str]]:
    """The next day's drop: every unit of the last day, values +1, and one row of an
    earlier file delivered again (an exact duplicate). Returns (rows, the repeated key)."""
    files = sorted((root / PRESENCE).glob("presence_*.csv"))
    with files[-1].open(newline="") as f:
        header, *old = list(csv.reader(f))
    day = max(r[0] for r in old)
    nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    new = [[nxt, r[1], *(str(int(c) + 1) if c.isdigit() else c for c in r[2:])]
           for r in old if r[0] == day]
    repeated = next(r for r in old if r[0] == day and all(c not in ("", "NaN") for c in r))
    with (root / PRESENCE / f"presence_{nxt.replace('-', '')}.csv").open("w", newline="") as f:
        csv.writer(f).writerows([header, repeated, *new])
    return len(new) + 1, (repeated[0], repeated[1])


def assert_equals_full_refresh(root: Path, tmp_path: Path, name: str) -> None:
    fresh = tmp_path / name
    shutil.copytree(root / "seeds", fresh / "seeds")
    shutil.copytree(root / "models", fresh / "models")
    shutil.copy(root / "profiles.yml", fresh / "profiles.yml")
    build(fresh)
    for table in ("stg_flowkit_presence", "flowkit_datasets"):
        assert rows(root, table) == rows(fresh, table), table


def test_a_new_daily_file_recomputes_only_its_keys(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    first = build(root)
    total = node(first, "stg_flowkit_presence").rows
    assert total and total > 3000
    added, (day, unit) = next_day_file(root)
    run = build(root)
    stg = node(run, "stg_flowkit_presence")
    # the rows processed are the new file's (its keys, the repeated one included), not all
    nxt = date.fromisoformat(day) + timedelta(days=1)
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        [(new_rows,)] = con.execute("SELECT count(*) FROM stg_flowkit_presence WHERE "
                                    "CAST(date AS DATE) = ?", [nxt]).fetchall()
    assert 0 < new_rows < added
    assert stg.message == f"incremental: {new_rows + 1:,} keys recomputed, {new_rows + 1:,} rows"
    assert stg.rows == new_rows + 1 < total // 3
    datasets = node(run, "flowkit_datasets").message or ""
    assert datasets.startswith("incremental: ") and "partitions rebuilt" in datasets
    for test in (UNIQUE, "not_null_stg_flowkit_presence_date"):  # the recomputed keys only
        assert node(run, test).message == "tested the rebuilt partitions only", test
    assert_equals_full_refresh(root, tmp_path, "fresh")
    # the repeated row is kept once, with the first file's name (as in a full build)
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        kept = con.execute("SELECT source_file FROM stg_flowkit_presence WHERE "
                           "CAST(date AS DATE) = CAST(? AS DATE) AND spatial_unit = ?",
                           [day, unit]).fetchall()
    assert len(kept) == 1 and "presence_2020" in kept[0][0]
    assert not kept[0][0].endswith(f"{nxt:%Y%m%d}.csv")


def test_a_changed_file_rebuilds_staging_and_only_the_partitions_it_reaches(
        tmp_path: Path) -> None:
    """A replaced file (rows removed) is no append: staging rebuilds fully, and still keeps
    its changed rows for flowkit_datasets, which redoes only their partitions."""
    root = make_project(tmp_path / "project")
    build(root)
    next_day_file(root)
    build(root)
    newest = max((root / PRESENCE).glob("presence_*.csv"))
    lines = newest.read_text().splitlines()
    newest.write_text("\n".join(lines[:-1]) + "\n")  # one row fewer
    run = build(root)
    assert node(run, "stg_flowkit_presence").message == (
        "full build (rows of raw.flowkit_presence were replaced or removed)")
    datasets = node(run, "flowkit_datasets").message or ""
    assert datasets.startswith("incremental: ") and "partitions rebuilt" in datasets
    assert_equals_full_refresh(root, tmp_path, "fresh")


def test_a_new_file_repeating_a_key_with_other_values_fails_its_unique_test(
        tmp_path: Path) -> None:
    """Testing only the recomputed keys still finds a key that the new file makes twice."""
    root = make_project(tmp_path / "project")
    build(root)
    files = sorted((root / PRESENCE).glob("presence_*.csv"))
    header, first = files[0].read_text().splitlines()[:2]
    cells = first.split(",")
    cells[2] = str(int(cells[2]) + 7)  # the same (date, unit), another value
    (root / PRESENCE / "presence_20990101.csv").write_text(f"{header}\n{','.join(cells)}\n")
    run = build(root, ok=False)
    assert node(run, "stg_flowkit_presence").message == "incremental: 1 keys recomputed, 2 rows"
    unique = node(run, UNIQUE)
    assert unique.status == "error" and unique.message and "1 failing row" in unique.message
