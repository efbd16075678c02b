"""elt.devdata: reproducible synthetic exports, the committed seeds/, scale, and the dirt."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pytest

from elt.devdata.flowkit import EXPORTS, generate

REPO = Path(__file__).resolve().parents[1]
HEADERS = {  # the contract's headers, verbatim
    "residents": "month,pcod,residents,residents_perKm2,arrived,departed,delta_arrived,"
                 "residents_diffwithref,abnormality,residents_pctchangewithref",
    "relocations": "date,pcod_from,pcod_to,relocations,relocations_diffwithref,abnormality,"
                   "relocations_pctchangewithref",
    "presence": "date,pcod,presence,presence_perKm2,trips_in,trips_out,abnormality,"
                "presence_diffwithref,presence_pctchangewithref",
    "movements": "date,pcod_from,pcod_to,travellers,abnormality,travellers_diffwithref,"
                 "travellers_pctchangewithref",
}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def csv_files(root: Path, category: str) -> list[Path]:
    if category == "presence":
        return sorted((root / "flowkit" / "presence").glob("*.csv"))
    return [root / "flowkit" / f"{category}.csv"]


def rows(root: Path, category: str) -> list[list[str]]:
    out = []
    for path in csv_files(root, category):
        with path.open(newline="", encoding="utf-8") as f:
            out += list(csv.reader(f))[1:]
    return out


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("default")
    generate(out)
    return out


def test_same_seed_same_bytes_and_committed_seeds_are_the_default_output(default: Path,
                                                                         tmp_path: Path):
    again = tmp_path / "again"
    generate(again, seed=42, scale=1.0)
    produced = files(default)
    assert files(again) == produced
    # the committed seeds/ was written by another process: byte-identical too
    assert files(REPO / "seeds") == produced, "regenerate with `python -m elt.devdata`"


def test_another_seed_other_data(default: Path, tmp_path: Path):
    generate(tmp_path, seed=7)
    for name in ("flowkit/residents.csv", "flowkit/movements.csv", "uois/systemdata.json"):
        assert (tmp_path / name).read_bytes() != (default / name).read_bytes()
    # same shapes: headers and number of admin units do not depend on the seed
    for category, header in HEADERS.items():
        first = csv_files(tmp_path, category)[0].read_text(encoding="utf-8").splitlines()[0]
        assert first == header


def test_scale_multiplies_daily_rows_and_population(default: Path, tmp_path: Path):
    generate(tmp_path, scale=2.0, short_rows=False)
    for category in ("presence", "movements"):  # daily: twice the days, twice the rows
        small, big = len(rows(default, category)), len(rows(tmp_path, category))
        assert 1.9 * small < big < 2.1 * small, (category, small, big)
    assert len(csv_files(tmp_path, "presence")) == 3  # still a few daily drops
    assert len(rows(tmp_path, "residents")) == len(rows(default, "residents"))  # 6 months
    days = {r[0] for r in rows(tmp_path, "presence") if r[0]}
    assert len(days) == 12
    small = json.loads((default / "uois/systemdata.json").read_text(encoding="utf-8"))
    big = json.loads((tmp_path / "uois/systemdata.json").read_text(encoding="utf-8"))
    assert len(big["users"]) == 2 * len(small["users"]) == 600
    # by default rows lacking values end early; --padded-rows writes every cell
    for category, header in HEADERS.items():
        width = len(header.split(","))
        assert any(len(r) < width for r in rows(default, category)), category
        assert not any(len(r) < width for r in rows(tmp_path, category)), category


def test_flowkit_exports_carry_the_dirt_of_real_ones(default: Path):
    for category, header in HEADERS.items():
        for path in csv_files(default, category):
            assert path.read_text(encoding="utf-8").splitlines()[0] == header
        keys = 3 if "pcod_from" in header else 2
        width = len(header.split(","))
        data = [r + [""] * (width - len(r)) for r in rows(default, category)]
        cells = Counter(c for r in data for c in r[keys:])
        for dirt in ("", "NaN", "Inf", "-Inf"):
            assert cells[dirt] > 0, (category, dirt)
        assert any(r[0] == "" for r in data), f"{category}: a row without date"
        assert any(r[0] and r[1] == "" for r in data), f"{category}: a row without unit"
        assert any(all(c == "" for c in r[keys:]) for r in data if all(r[:keys])), \
            f"{category}: a row without any value"
        assert any(sum(c != "" for c in r) == 1 for r in data), f"{category}: only a date"
        lines = Counter(tuple(r) for r in data)
        assert max(lines.values()) == 2, f"{category}: an exact duplicate row"
        dated = [(r[0], r[1:keys]) for r in data if r[0] and all(r[1:keys])]
        assert dated != sorted(dated), f"{category}: rows out of order"
        units = {u for r in data for u in r[1:keys] if u}
        assert all(re.fullmatch(r"HT(0[1-9]|10)\d\d-\d\d", u) for u in units)
    presence = csv_files(default, "presence")
    assert len(presence) == 3
    first, second = (set(map(tuple, csv.reader(p.open(encoding="utf-8")))) for p in presence[:2])
    assert len(first & second) == 2, "the header and one row delivered again in the next drop"
    residents = {r[1] for r in rows(default, "residents") if len(r) > 1 and r[1]}
    assert len(residents) == 520
    assert len(rows(default, "relocations")) == pytest.approx(30_000, rel=0.1)
    assert len(rows(default, "residents")) == pytest.approx(6 * 520, rel=0.01)


def test_config_declares_exactly_the_csv_indicator_columns(default: Path):
    config = json.loads((default / "flowkit/config.json").read_text(encoding="utf-8"))
    assert set(config) == {"languages", "data_providers", "categories", "indicators",
                           "temporal_resolutions", "spatial_resolutions"}
    assert [lang["code"] for lang in config["languages"]] == ["en", "fr", "ht"]
    columns = {f"{e[0]}.{col}" for e in EXPORTS for col in e[-1]}
    ids = [i["indicator_id"] for i in config["indicators"]]
    assert len(ids) == 23 and set(ids) == columns
    for category, header in HEADERS.items():
        keys = 3 if "pcod_from" in header else 2
        assert {i for i in ids if i.startswith(category + ".")} == \
            {f"{category}.{c}" for c in header.split(",")[keys:]}
    types = {c["category_id"]: c["type"] for c in config["categories"]}
    assert types == {"residents": "single_location", "relocations": "flow",
                     "presence": "single_location", "movements": "flow"}
    trids = {t["label"]: t["trid"] for t in config["temporal_resolutions"]}
    assert trids == {"Year": 1, "Month": 2, "Week": 3, "Day": 4}
    srids = [s["srid"] for s in config["spatial_resolutions"]]
    assert srids == [1, 2, 3]
    topo = config["spatial_resolutions"][2]["boundaries"]
    assert topo["type"] == "Topology"
    assert len(topo["objects"]["admin3"]["geometries"]) == 520

    access = json.loads((default / "flowkit/data_access.json").read_text(encoding="utf-8"))
    assert access and all(isinstance(qs, list) and qs for qs in access.values())
    for queries in access.values():
        for q in queries:
            assert set(q) == {"category_id", "indicator_id", "srid", "trid", "start_date",
                              "duration"}
            assert q["indicator_id"] in columns and isinstance(q["duration"], int)


def test_systemdata_has_the_uois_shape(default: Path):
    doc = json.loads((default / "uois/systemdata.json").read_text(encoding="utf-8"))
    assert {"users", "groups", "memberships", "externalids", "externalidtypes",
            "grouptypes", "roletypes"} <= set(doc)
    assert 200 <= len(doc["users"]) <= 500 and 10 <= len(doc["groups"]) <= 99
    for table in ("users", "groups", "memberships", "externalids", "externalidtypes"):
        assert all(UUID.fullmatch(r["id"]) for r in doc[table]), table
    users = {u["id"] for u in doc["users"]}
    groups = {g["id"] for g in doc["groups"]}
    assert all(m["user_id"] in users and m["group_id"] in groups for m in doc["memberships"])
    assert all({"id", "name", "surname", "email"} <= set(u) for u in doc["users"])
    types = {t["id"] for t in doc["externalidtypes"]}
    assert all(isinstance(e["outer_id"], str) and e["typeid_id"] in types and
               e["inner_id"] in users for e in doc["externalids"])
    pairs = Counter((e["typeid_id"], e["outer_id"], e["inner_id"]) for e in doc["externalids"])
    assert sorted(pairs.values())[-1] == 2  # one record exported twice
