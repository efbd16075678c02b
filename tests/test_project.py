"""The FlowKit + UOIS project itself: it builds with every data test passing, its datasets
match an independent reading of the raw CSVs, every payload has the contract's shape, and
a bad row makes the right data test fail with a message naming the row."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import re
import shutil
from collections import defaultdict
from pathlib import Path

import duckdb
import pytest

from elt.context import Context
from elt.core.console import Console
from elt.core.results import RunResults
from elt.devdata.flowkit import generate

REPO = Path(__file__).resolve().parents[1]
INT32 = (-(2**31), 2**31 - 1)
DT = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
# category -> (files, number of units after the date, trid), from the contract
EXPORTS = {"residents": ("flowkit/residents.csv", 1, 2),
           "relocations": ("flowkit/relocations.csv", 2, 2),
           "presence": ("flowkit/presence/*.csv", 1, 4),
           "movements": ("flowkit/movements.csv", 2, 4)}
STAGING = ["stg_flowkit_residents", "stg_flowkit_relocations", "stg_flowkit_presence",
           "stg_flowkit_movements"]


def make_project(root: Path) -> Path:
    for name in ("seeds", "models"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    return root


def build(root: Path, **kwargs) -> tuple[RunResults, str]:
    out = io.StringIO()
    results = Context(project_dir=root, target="sandbox",
                      console=Console(out=out, err=out, color=False)).build(**kwargs)
    return results, out.getvalue()


def query(root: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(root / "target" / "elt.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunResults, str]:
    root = make_project(tmp_path_factory.mktemp("project"))
    results, output = build(root)
    return root, results, output


def export_rows(seeds: Path) -> dict[str, set[tuple]]:
    """category -> {(date, units, header, values)}, read with the csv module: a value is a
    finite number (else None); rows without a date, a unit or any value are left out; a
    repeated row counts once."""
    found: dict[str, set[tuple]] = defaultdict(set)
    for category, (pattern, n_units, _) in EXPORTS.items():
        for path in sorted(seeds.glob(pattern)):
            with path.open(newline="", encoding="utf-8") as f:
                reader = csv.reader(f)
                header = next(reader)
                for row in reader:
                    row += [""] * (len(header) - len(row))
                    day, units = row[0].strip(), tuple(u.strip() for u in row[1:1 + n_units])
                    values = tuple(number(cell) for cell in row[1 + n_units:])
                    if day and all(units) and any(v is not None for v in values):
                        found[category].add((day, units, tuple(header[1 + n_units:]), values))
    return found


def number(cell: str) -> float | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def expected_values(seeds: Path) -> dict[tuple[str, str, str], dict[tuple[str, ...], float]]:
    """(category, indicator_id, date) -> {units: value}: what each dataset must hold."""
    found: dict[tuple[str, str, str], dict[tuple[str, ...], float]] = defaultdict(dict)
    for category, rows in export_rows(seeds).items():
        for day, units, columns, values in rows:
            for column, value in zip(columns, values, strict=True):
                if value is not None:
                    found[(category, f"{category}.{column}", day)][units] = value
    return found


def test_project_builds_with_every_data_test_passing(project):
    root, results, output = project
    errors = [(r.name, r.message) for r in results.results if r.status in ("error", "skipped")]
    assert not errors, errors
    ours = {r.name: r for r in results.results if r.kind == "test"}
    for name in ("unique_stg_flowkit_residents_date__spatial_unit", "flowkit_expected_columns",
                 "flowkit_payload_data_finite", "flowkit_payload_min_max_int32",
                 "flowkit_payload_data_input_not_empty", "flowkit_datasets_indicator_declared",
                 "relationships_uois_memberships_user_id__uois_users__id",
                 "relationships_uois_memberships_group_id__uois_groups__id",
                 "unique_uois_externalids_type_id__outer_id", "uois_users_email_looks_like_email",
                 "uois_users_id_is_uuid", "flowkit_undeclared_columns_not_published"):
        assert ours[name].status == "success", (name, ours[name].message)
    assert "warning: test flowkit_undeclared" not in output  # every CSV column is declared
    counts = dict(query(root, """
        SELECT 'datasets', count(*) FROM flowkit_datasets UNION ALL
        SELECT 'setup', count(*) FROM flowkit_setup UNION ALL
        SELECT 'mappings', count(*) FROM flowkit_scope_mappings UNION ALL
        SELECT 'undeclared', count(*) FROM flowkit_undeclared_columns UNION ALL
        SELECT 'users', count(*) FROM uois_users UNION ALL
        SELECT 'memberships', count(*) FROM uois_memberships UNION ALL
        SELECT 'externalids', count(*) FROM uois_externalids"""))
    systemdata = json.loads((root / "seeds/uois/systemdata.json").read_text(encoding="utf-8"))
    assert counts["setup"] == 1 and counts["undeclared"] == 0
    assert counts["mappings"] == 0  # nothing published yet
    assert counts["users"] == len(systemdata["users"])
    assert counts["memberships"] == len(systemdata["memberships"])
    # the export lists one external id twice: registered once
    assert counts["externalids"] == len({json.dumps(e, sort_keys=True)
                                         for e in systemdata["externalids"]})
    emails = {e for (e,) in query(root, "SELECT email FROM uois_users")}
    assert emails == {u["email"].strip().lower() for u in systemdata["users"]}


def test_uois_tables_carry_their_mutations_variables(project):
    root, _, _ = project
    for model, document, extra in [("uois_users", "user_insert", set()),
                                   ("uois_groups", "group_insert", {"depth"}),
                                   ("uois_memberships", "membership_insert", {"refused"}),
                                   ("uois_grouptypes", "group_type_insert", set()),
                                   ("uois_externalid_types", "externalid_type_insert", set()),
                                   ("uois_externalids", "externalid_insert", set())]:
        text = (root / "models/uois" / f"{document}.gql").read_text(encoding="utf-8")
        assert re.search(r"\bresult: \w+Insert\(", text), document  # the field aliased result
        variables = set(re.findall(r"\$(\w+):", text))
        columns = {c for (c,) in query(root, f"SELECT column_name FROM (DESCRIBE {model})")}
        assert columns == variables | extra, model


def test_datasets_match_an_independent_reading_of_the_csvs(project):
    root, _, _ = project
    expected = expected_values(root / "seeds")
    got = {(c, i, dt.strftime("%Y-%m-%d")): (srid, trid, n, payload)
           for c, i, srid, trid, dt, n, payload in query(root, """
               SELECT category_id, indicator_id, srid, trid, dt, n_values, payload
               FROM flowkit_datasets""")}
    assert set(got) == set(expected)
    assert len(got) == 136  # 23 indicators; two residents columns are NaN in the first month
    for key, (srid, trid, n, _) in got.items():
        assert (srid, trid) == (3, EXPORTS[key[0]][2]), key
        assert n == len(expected[key]), key
    rng = random.Random(3)
    for key in rng.sample(sorted(expected), 25):
        data = {tuple(d["spatial_unit_ids"]): d["data"]
                for d in json.loads(got[key][3])["data_input"]}
        assert data.keys() == expected[key].keys(), key
        for units in rng.sample(sorted(data), 5):
            assert data[units] == pytest.approx(expected[key][units], rel=1e-12), (key, units)


def test_staging_keeps_each_valid_export_row_once(project):
    root, _, _ = project
    for category, rows in export_rows(root / "seeds").items():
        units = "spatial_unit" if EXPORTS[category][1] == 1 else "origin, destination"
        staged = query(root, f"SELECT count(*), count(DISTINCT (date, {units})), "
                             f"min(date), max(date) FROM stg_flowkit_{category}")[0]
        assert staged[0] == staged[1] == len(rows), category
        assert [d.strftime("%Y-%m-%d") for d in staged[2:]] == \
            [min(r[0] for r in rows), max(r[0] for r in rows)]


def test_every_payload_has_the_contract_shape(project):
    root, _, _ = project
    config = json.loads((root / "seeds/flowkit/config.json").read_text(encoding="utf-8"))
    types = {c["category_id"]: c["type"] for c in config["categories"]}
    declared = {i["indicator_id"] for i in config["indicators"]}
    rows = query(root, "SELECT category_id, indicator_id, srid, trid, dt, payload "
                       "FROM flowkit_datasets")
    assert rows
    for category, indicator, srid, trid, dt, text in rows:
        body = json.loads(text)
        assert set(body) == {"metadata", "data_type", "data_input"}
        meta = body["metadata"]
        assert set(meta) == {"revision", "category_id", "indicator_id", "srid", "trid", "dt"}
        assert isinstance(meta["revision"], str) and meta["revision"]
        assert (meta["category_id"], meta["indicator_id"]) == (category, indicator)
        assert indicator in declared and indicator.startswith(category + ".")
        assert len(indicator) <= 255
        assert type(meta["srid"]) is int and type(meta["trid"]) is int
        assert (meta["srid"], meta["trid"]) == (srid, trid)
        assert DT.fullmatch(meta["dt"]) and meta["dt"] == dt.strftime("%Y-%m-%d %H:%M:%S")
        assert body["data_type"] == types[category]
        entries = body["data_input"]
        assert entries, "data_input must not be empty"
        width = 2 if body["data_type"] == "flow" else 1
        values = []
        for entry in entries:
            assert set(entry) == {"spatial_unit_ids", "data"}
            assert len(entry["spatial_unit_ids"]) == width
            assert all(isinstance(u, str) and u for u in entry["spatial_unit_ids"])
            assert type(entry["data"]) in (int, float) and math.isfinite(entry["data"])
            values.append(entry["data"])
        assert INT32[0] <= round(min(values)) and round(max(values)) <= INT32[1]
    setup = json.loads(query(root, "SELECT payload FROM flowkit_setup")[0][0])
    assert setup == config  # /setup gets config.json's six sections, unchanged


def test_a_repeated_key_with_another_value_fails_naming_the_row(tmp_path: Path):
    root = make_project(tmp_path)
    residents = root / "seeds/flowkit/residents.csv"
    with residents.open(newline="", encoding="utf-8") as f:
        row = list(csv.reader(f))[1]  # 2020-01-01,HT0111-01,...
    row[2] = str(int(row[2]) + 1)  # same month and unit, another residents value
    with residents.open("a", encoding="utf-8", newline="") as f:
        f.write(",".join(row) + "\n")
    results, output = build(root, exclude=["kind:api"])
    test = next(r for r in results.results
                if r.name == "unique_stg_flowkit_residents_date__spatial_unit")
    assert test.status == "error"
    for message in (test.message, output):
        assert "spatial_unit=HT0111-01" in message and "date=2020-01-01" in message, message
    run_results = json.loads((root / "target/run_results.json").read_text(encoding="utf-8"))
    failed = [r for r in run_results["results"] if r["name"] == test.name]
    assert failed and "HT0111-01" in failed[0]["message"]
    kept = query(root, f"SELECT * FROM test_failures.{test.name}")
    assert len(kept) == 1 and "HT0111-01" in map(str, kept[0])  # the failing row, by key


def test_config_and_exports_disagreeing_is_reported_by_name(tmp_path: Path):
    root = make_project(tmp_path)
    config_path = root / "seeds/flowkit/config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["indicators"] = [i for i in config["indicators"]  # a column becomes undeclared
                            if i["indicator_id"] != "relocations.abnormality"]
    config["indicators"].append({"category_id": "movements",  # declared, but not exported
                                 "indicator_id": "movements.travellers_perKm2"})
    config_path.write_text(json.dumps(config), encoding="utf-8")
    results, _ = build(root, exclude=["kind:api"])
    by_name = {r.name: r for r in results.results}
    missing = by_name["flowkit_expected_columns"]
    assert missing.status == "error"
    assert "missing_column=travellers_perKm2" in missing.message
    assert "category_id=movements" in missing.message
    # the test reads exports and indicators: what reads both waits for it (dbt build's
    # test edges), so no datasets are built, and none published, while they disagree
    assert by_name["flowkit_datasets"].status == "skipped"
    assert "flowkit_expected_columns failed" in by_name["flowkit_datasets"].message
    config["indicators"].pop()  # exported again: only the undeclared column is left
    config_path.write_text(json.dumps(config), encoding="utf-8")
    results, _ = build(root, exclude=["kind:api"])
    by_name = {r.name: r for r in results.results}
    assert by_name["flowkit_expected_columns"].status == "success"
    undeclared = by_name["flowkit_undeclared_columns_not_published"]  # a warning
    assert undeclared.status == "warn"
    assert "category_id=relocations, column_name=abnormality" in undeclared.message
    assert by_name["flowkit_datasets"].status == "success"
    assert query(root, "SELECT DISTINCT indicator_id FROM flowkit_datasets "
                       "WHERE category_id = 'relocations' ORDER BY 1") == \
        [("relocations.relocations",), ("relocations.relocations_diffwithref",),
         ("relocations.relocations_pctchangewithref",)]


def test_a_config_without_resolution_ids_is_stopped_before_setup(tmp_path: Path):
    """The backend's shipped config.json lacks srid/trid: each /setup would renumber the
    resolutions and orphan the datasets sent. The model test stops it, naming the test."""
    root = make_project(tmp_path)
    config_path = root / "seeds/flowkit/config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    for section, id_name in (("spatial_resolutions", "srid"), ("temporal_resolutions", "trid")):
        for item in config[section]:
            item.pop(id_name)
    config_path.write_text(json.dumps(config), encoding="utf-8")
    results, _ = build(root, select=["+flowkit_setup"], exclude=["kind:api"])
    by_name = {r.name: r for r in results.results}
    assert by_name["flowkit_setup_resolution_ids_explicit"].status == "error"
    assert by_name["flowkit_setup"].status == "success"  # built, but its tests failed:
    assert query(root, "SELECT tests_ok FROM _elt.nodes WHERE name = 'flowkit_setup'") == [
        (False,)]  # publish does not send it (nor what depends on it)


def test_rows_with_too_few_cells_load_and_are_cleaned_alike(project, tmp_path: Path):
    built, _, _ = project
    header, *lines = (built / "seeds/flowkit/residents.csv").read_text().splitlines()
    assert any(line.count(",") < header.count(",") for line in lines)  # short rows are there
    root = make_project(tmp_path)
    generate(root / "seeds", short_rows=False)  # the same rows, every cell written
    results, _ = build(root, exclude=["kind:api"])
    assert all(r.status == "success" for r in results.results if r.kind == "seed")
    counts = "SELECT " + ", ".join(f"(SELECT count(*) FROM {m})" for m in STAGING)
    assert query(root, counts) == query(built, counts)


def test_real_export_names_load_without_renaming(project, tmp_path: Path):
    """Exports come with dated names; dropped into flowkit/ they feed the same seeds."""
    built, _, _ = project
    root = make_project(tmp_path)
    flowkit = root / "seeds" / "flowkit"
    (flowkit / "residents.csv").rename(flowkit / "residents_admin3_monthly_small.csv")
    (flowkit / "relocations.csv").rename(flowkit / "relocations_admin3_monthly_small.csv")
    (flowkit / "movements.csv").rename(flowkit / "movements_admin3_daily_small.csv")
    for path in sorted((flowkit / "presence").glob("*.csv")):
        day = path.stem.split("_")[-1]
        path.rename(flowkit / f"presence_admin3_daily_{day}.csv")
    (flowkit / "presence").rmdir()
    results, output = build(root, exclude=["kind:api"])
    assert not results.failed, output
    seeds = {r.name for r in results.results if r.kind == "seed"}
    assert seeds == {r.name for r in project[1].results if r.kind == "seed"}  # none unclaimed
    files = query(root, "SELECT seed, count(*) FROM _elt.files WHERE seed LIKE 'flowkit_%' "
                        "AND path LIKE '%admin3%' GROUP BY ALL ORDER BY 1")
    assert files == [("flowkit_movements", 1), ("flowkit_presence", 3),
                     ("flowkit_relocations", 1), ("flowkit_residents", 1)]
    counts = "SELECT " + ", ".join(f"(SELECT count(*) FROM {m})" for m in
                                   [*STAGING, "flowkit_datasets"])
    assert query(root, counts) == query(built, counts)


def test_publishing_external_ids_makes_their_lookups_stale(tmp_path: Path):
    """uois_internal_ids (max_age 1h) answers what uois_externalids_to_register reads: after
    `elt publish` registers the external ids, the next build asks again instead of keeping
    the answers from before ("missing") for an hour."""
    root = make_project(tmp_path)
    results, output = build(root)
    assert not results.failed, output
    status = ("SELECT status, count(*) FROM uois_externalids_to_register GROUP BY ALL "
              "ORDER BY ALL")
    [(state, n)] = query(root, status)
    assert state == "missing" and n > 0
    fetched = query(root, "SELECT max(fetched_at) FROM raw.uois_internal_ids")
    out = io.StringIO()
    ctx = Context(project_dir=root, target="sandbox", console=Console(out=out, err=out,
                                                                      color=False))
    published = ctx.publish(select=["uois_users", "uois_externalid_types", "uois_externalids"])
    assert not published.failed, out.getvalue()
    again, output = build(root)
    assert not again.failed, output
    statuses = {r.name: r.status for r in again.results}
    assert statuses["raw.uois_internal_ids"] == "success", output
    assert query(root, status) == [("registered", n)]
    assert query(root, "SELECT min(fetched_at) FROM raw.uois_internal_ids") > fetched
    # nothing published since: the answers are fresh again
    third, _ = build(root)
    assert {r.name: r.status for r in third.results}["raw.uois_internal_ids"] == "up_to_date"


def test_the_backend_lists_warning_lasts_until_the_build_after_the_publish(tmp_path: Path):
    """README's quick start: the first build warns (the fresh sandbox lists no indicator);
    `elt test` right after the publish still reads that build's tables; the publish's sends
    make the lists stale (stale_after:), so the next build asks again and the test passes."""
    root = make_project(tmp_path)
    results, output = build(root)
    check = "flowkit_backend_lists_configured_indicators"
    assert {r.name: r.status for r in results.results}[check] == "warn", output
    out = io.StringIO()
    ctx = Context(project_dir=root, target="sandbox", console=Console(out=out, err=out,
                                                                      color=False))
    published = ctx.publish(select=["flowkit_setup", "flowkit_data", "flowkit_scope_mappings"])
    assert not published.failed, out.getvalue()
    assert {r.name: r.status for r in ctx.test(select=[check]).results}[check] == "warn"
    again, output = build(root)
    statuses = {r.name: r.status for r in again.results}
    assert statuses["raw.flowkit_backend_lists"] == "success", output  # asked again
    assert statuses[check] == "success", output
    assert {r.name: r.status for r in ctx.test(select=[check]).results}[check] == "success"
