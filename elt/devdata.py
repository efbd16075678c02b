"""Reproducible synthetic FlowKit and UOIS exports: `python -m elt.devdata [--out seeds]`.

The committed `seeds/` is this module's default output (`--seed 42 --scale 1`); the same
seed always writes byte-identical files. The CSVs are written by DuckDB from `range()`
with an integer hash (MINSTD rounds and xor-shifts, no `random()`), so they are
reproducible across machines and fast at benchmark sizes: `--scale` multiplies the days
of the daily exports and the UOIS population (`--scale 300`: ~1M single-location rows,
~3M flow rows, 1,800 days, 90k users).

The CSVs carry the dirt of real exports: empty cells, NaN, Inf, -Inf, rows without a
date, a unit or any value, rows with too few values, rows out of order at the end and
an exact duplicate row (for presence: a row delivered again in the next daily drop).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import unicodedata
import uuid
from datetime import date, timedelta
from pathlib import Path

import duckdb

_P = 2147483647  # 2**31 - 1: the MINSTD modulus; every hash value is below it
MONTHS, DAYS, DROPS = 6, 6, 3
MONTH0, DAY0 = date(2020, 1, 1), date(2020, 2, 1)
DEPARTMENTS = ["Ouest", "Sud-Est", "Nord", "Nord-Est", "Artibonite", "Centre", "Sud",
               "Grand'Anse", "Nord-Ouest", "Nippes"]

# (category, data_type, file, key columns, indicator columns), headers as in the contract
EXPORTS = [
    ("residents", "single_location", "residents.csv", ["month", "pcod"],
     ["residents", "residents_perKm2", "arrived", "departed", "delta_arrived",
      "residents_diffwithref", "abnormality", "residents_pctchangewithref"]),
    ("relocations", "flow", "relocations.csv", ["date", "pcod_from", "pcod_to"],
     ["relocations", "relocations_diffwithref", "abnormality", "relocations_pctchangewithref"]),
    ("presence", "single_location", "presence", ["date", "pcod"],
     ["presence", "presence_perKm2", "trips_in", "trips_out", "abnormality",
      "presence_diffwithref", "presence_pctchangewithref"]),
    ("movements", "flow", "movements.csv", ["date", "pcod_from", "pcod_to"],
     ["travellers", "abnormality", "travellers_diffwithref", "travellers_pctchangewithref"]),
]

SEEDS_YML = """\
# Written by `python -m elt.devdata` together with the data beside it: edit it there.
# FlowKit exports are loaded as text (all_varchar): the staging models decide what a value
# is (empty, NaN, Inf and -Inf are not values), so raw.* keeps exactly what was exported.
seeds:
  flowkit_residents:
    path: flowkit/residents.csv
    description: Monthly residents per communal section (admin3, srid 3, trid 2).
    format: csv
    header: true
    all_varchar: true
  flowkit_relocations:
    path: flowkit/relocations.csv
    description: Monthly relocations between communal sections (flows, srid 3, trid 2).
    format: csv
    header: true
    all_varchar: true
  flowkit_presence:
    path: flowkit/presence/*.csv
    description: Daily presence per communal section, one file per daily drop (srid 3, trid 4).
    format: csv
    header: true
    all_varchar: true
  flowkit_movements:
    path: flowkit/movements.csv
    description: Daily movements between communal sections (flows, srid 3, trid 4).
    format: csv
    header: true
    all_varchar: true
  flowkit_config:
    path: flowkit/config.json
    description: The FlowKit UI configuration, exactly the body of POST /setup.
    format: document
  flowkit_data_access:
    path: flowkit/data_access.json
    description: Data access spec, scope -> list of /query-shaped dataset selections.
    format: document
  systemdata_users:
    path: uois/systemdata.json
    json_key: users
  systemdata_groups:
    path: uois/systemdata.json
    json_key: groups
  systemdata_memberships:
    path: uois/systemdata.json
    json_key: memberships
  systemdata_externalids:
    path: uois/systemdata.json
    json_key: externalids
  systemdata_externalidtypes:
    path: uois/systemdata.json
    json_key: externalidtypes
"""


def _macros(con: duckdb.DuckDBPyConnection, seed: int) -> None:
    """h(a, b): a well-mixed integer in [0, 2**31 - 1) from two integers; u(a, b) in [0, 1)."""
    salt = seed % _P * 104729 % _P
    con.execute(f"CREATE MACRO mx(x) AS (x * 48271) % {_P}")
    con.execute("CREATE MACRO sx(x) AS xor(x, x >> 11)")
    con.execute(f"CREATE MACRO h(a, b) AS mx(sx(mx(sx(mx(xor((a) % {_P}, "
                f"((b) * 7919 + {salt}) % {_P}) + 1)))))")
    con.execute(f"CREATE MACRO u(a, b) AS h(a, b) / {_P}.0")


def _cell(expr: str, salt: int, first: str = "") -> str:
    """One indicator cell as text, dirty like real exports: empty, NaN, Inf, -Inf."""
    r = f"u(rid, {salt})"
    return (f"CASE WHEN blank THEN NULL {first} WHEN {r} < 0.01 THEN NULL "
            f"WHEN {r} < 0.018 THEN 'NaN' WHEN {r} < 0.02 THEN 'Inf' WHEN {r} < 0.021 "
            f"THEN '-Inf' ELSE CAST({expr} AS VARCHAR) END")


def _export_select(category: str, header: list[str], n: int, periods: int) -> str:
    """SELECT rid, per, s1, s2 (sort keys) and the export's columns as text.

    rid numbers the rows of all exports apart (the category in its top bits), so no two
    exports share their pseudo-random draws.
    """
    top = [e[0] for e in EXPORTS].index(category) << 28
    monthly = category in ("residents", "relocations")
    start = f"DATE '{MONTH0}' + to_months(per::INT)" if monthly else \
        f"DATE '{DAY0}' + to_days(per::INT)"
    abn = "round(6 * u(rid, 4) - 3, 3)"
    if category in ("residents", "presence"):
        source = f"""SELECT p.i AS per, o.ui AS s1, 0 AS s2, {top} + per * {n} + o.ui AS rid,
              o.code AS src, o.pop, o.area, u(rid, 93) < 0.003 AS blank,
              round(o.pop * (0.97 + 0.06 * u(rid, 1)) * (1 + 0.004 * per)) AS v,
              round(o.pop * 0.03 * u(rid, 2)) AS a, round(o.pop * 0.03 * u(rid, 3)) AS b
            FROM range({periods}) p(i) CROSS JOIN units o"""
        pct = "round(100 * (v - pop) / pop, 2)"
        cells = ([_cell("v::BIGINT", 11), _cell("round(v / area, 2)", 12),
                  _cell("a::BIGINT", 13), _cell("b::BIGINT", 14)]
                 + ([_cell("(a - b)::BIGINT", 15)] if category == "residents" else [])
                 + ([_cell("(v - pop)::BIGINT", 16), _cell(abn, 17, "WHEN per = 0 THEN NULL"),
                     _cell(pct, 18, "WHEN per = 0 THEN 'NaN'")] if category == "residents"
                    else [_cell(abn, 17), _cell("(v - pop)::BIGINT", 16), _cell(pct, 18)]))
    else:  # flows: each origin sends to k distinct destinations (distinct offsets modulo n)
        k, spread, rate = ("8 + h(o.ui, 31) % 5", n // 13, 0.0015) if monthly else \
            ("2 + h(o.ui, 41) % 3", n // 5, 0.004)
        source = f"""SELECT p.i AS per, o.ui AS s1, q.i AS j, {top} + (per * {n} + o.ui) * 16 + j AS rid,
              (o.ui + 1 + j * {spread} + h(o.ui * 16 + j, 32) % {spread}) % {n} AS s2,
              o.code AS src, u(rid, 93) < 0.003 AS blank,
              round(o.pop * {rate} * (0.2 + u(rid, 1)) * (1 + 1.5 / (1 + j))) AS v,
              round(o.pop * {rate} * (0.2 + u(s1 * 16 + j, 2)) * (1 + 1.5 / (1 + j))) AS ref
            FROM range({periods}) p(i) CROSS JOIN units o CROSS JOIN range(12) q(i)
            WHERE q.i < {k}"""
        pct = _cell("round(100 * (v - ref) / ref, 2)", 14,
                    "WHEN ref = 0 THEN (CASE WHEN v = 0 THEN 'NaN' ELSE 'Inf' END)")
        diff = _cell("(v - ref)::BIGINT", 12)
        abn = _cell(abn, 13)
        cells = [_cell("v::BIGINT", 11)] + ([diff, abn] if monthly else [abn, diff]) + [pct]
    keys = [f"CASE WHEN u(rid, 91) < 0.001 THEN NULL ELSE strftime({start}, '%Y-%m-%d') END",
            "CASE WHEN u(rid, 92) < 0.001 THEN NULL ELSE src END"]
    if category in ("relocations", "movements"):
        source = f"SELECT s.*, d.code AS dst FROM ({source}) s JOIN units d ON d.ui = s.s2"
        keys.append("dst")
    exprs = keys + cells
    cols = ", ".join(f'{e} AS "{h}"' for e, h in zip(exprs, header, strict=True))
    return f"SELECT rid, per, s1, s2, {cols} FROM ({source})"


def _line(row: tuple) -> str:
    return ",".join("" if v is None else v for v in row)


def _write_export(con: duckdb.DuckDBPyConnection, out: Path, export: tuple, n_units: int,
                  periods: int, short_rows: bool) -> dict[str, int]:
    """COPY one export to CSV; then append the dirty rows a SELECT cannot produce."""
    category, _, name, keys, values = export
    con.execute("CREATE OR REPLACE TEMP TABLE t AS "
                + _export_select(category, keys + values, n_units, periods))
    cols = "* EXCLUDE (rid, per, s1, s2)"
    picks = con.execute(f"SELECT rid, {cols} FROM t WHERE per = 0 ORDER BY h(rid, 77) LIMIT 4"
                        ).fetchall()
    cut = ", ".join(str(p[0]) for p in picks[:3])
    lines = [_line(p[1:]) for p in picks]
    # too few values: one value kept; no value; only the date (the full rows are not written).
    # short_rows: the line really ends there; else its other cells are empty (`a,b,,,`)
    widths = [len(keys) + 1, len(keys), 1]
    dirt = []
    for line, width in zip(lines, widths, strict=False):
        cells = line.split(",")
        dirt.append(",".join(cells[:width] + ([] if short_rows else [""] * (len(cells) - width))))
    per_drop = max(1, math.ceil(periods / DROPS)) if category == "presence" else periods
    written: dict[str, int] = {}
    for first in range(0, periods, per_drop):
        if category == "presence":  # daily drops, a few days per file
            day = (DAY0 + timedelta(days=first)).strftime("%Y%m%d")
            path = out / "flowkit" / "presence" / f"presence_{day}.csv"
        else:
            path = out / "flowkit" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        where = f"per >= {first} AND per < {first + per_drop} AND rid NOT IN ({cut})"
        con.execute(f"COPY (SELECT {cols} FROM t WHERE {where} ORDER BY per, s1, s2) "
                    f"TO '{path}' (FORMAT csv, HEADER true, DELIMITER ',')")
        extra = []
        if first == 0:  # rows out of order at the end, an exact duplicate of a row
            extra = [*dirt, lines[3]]
            if first + per_drop < periods:  # the last row of this drop, delivered again next
                again = con.execute(f"SELECT {cols} FROM t WHERE {where} "
                                    "ORDER BY per DESC, s1 DESC, s2 DESC LIMIT 1").fetchone()
        elif first == per_drop:
            extra = [_line(again)]
        with path.open("a", encoding="utf-8", newline="") as f:
            f.writelines(line + "\n" for line in extra)
        rows = con.execute(f"SELECT count(*) FROM t WHERE {where}").fetchone()[0]
        written[path.relative_to(out).as_posix()] = rows + len(extra)
    con.execute("DROP TABLE t")
    return written


def _admin_units(rng: random.Random, n: int = 520) -> list[str]:
    """n Haiti-like communal sections: HT<dept 01-10><arrondissement><commune>-<section>."""
    communes = [f"HT{dept:02d}{arr}{com}" for dept in range(1, len(DEPARTMENTS) + 1)
                for arr in range(1, rng.randint(2, 5) + 1) for com in range(1, rng.randint(2, 4) + 1)]
    sections = dict.fromkeys(communes, 2)
    while sum(sections.values()) < n:
        sections[rng.choice(communes)] += 1
    return [f"{c}-{s:02d}" for c, k in sections.items() for s in range(1, k + 1)]


def _topology(codes: list[str], level: int) -> dict:
    """Small quantized TopoJSON: each section a grid cell, each commune/department a box."""
    cols = math.ceil(math.sqrt(len(codes) * 1.45))
    w, h = 2900 // cols, 2000 // math.ceil(len(codes) / cols)
    boxes: dict[str, list[int]] = {}
    for i, code in enumerate(codes):
        unit = {1: code[:4], 2: code[:6], 3: code}[level]
        x, y = i % cols * w, i // cols * h
        b = boxes.setdefault(unit, [x, y, x + w, y + h])
        boxes[unit] = [min(b[0], x), min(b[1], y), max(b[2], x + w), max(b[3], y + h)]
    geometries, arcs = [], []
    for i, (unit, (x0, y0, x1, y1)) in enumerate(boxes.items()):
        name = DEPARTMENTS[int(unit[2:4]) - 1] if level == 1 else f"{unit} ({DEPARTMENTS[int(unit[2:4]) - 1]})"
        geometries.append({"type": "Polygon", "id": unit, "arcs": [[i]],
                           "properties": {"pcod": unit, "name": name}})
        arcs.append([[x0, y0], [x1 - x0, 0], [0, y1 - y0], [x0 - x1, 0], [0, y0 - y1]])
    return {"type": "Topology", "transform": {"scale": [0.001, 0.001], "translate": [-74.5, 18.0]},
            "objects": {f"admin{level}": {"type": "GeometryCollection", "geometries": geometries}},
            "arcs": arcs}


def _label(column: str) -> str:
    base, _, rest = column.partition("_")
    text = base.capitalize() + {"perKm2": " per km²", "diffwithref": ": difference with reference",
                                "pctchangewithref": ": % change with reference",
                                "in": " in", "out": " out", "arrived": " arrived"}.get(rest, "")
    return "Net arrivals" if column == "delta_arrived" else text


def _config(codes: list[str]) -> dict:
    categories, indicators = [], []
    for order, (category, data_type, _, _, values) in enumerate(EXPORTS, start=1):
        label = category.capitalize()
        categories.append({
            "category_id": category, "type": data_type, "order": order,
            "flowgeek_url": f"https://flowgeek.flowminder.org/{category}", "label": label,
            "description": f"{label} derived from mobile phone data.",
            "label_fr": f"{label} (fr)", "description_fr": f"{label}, à partir des données mobiles."})
        for i, col in enumerate(values, start=1):
            diverging = any(w in col for w in ("diff", "pct", "abnormality", "delta"))
            indicators.append({
                "category_id": category, "indicator_id": f"{category}.{col}", "order": i,
                "flowgeek_url": f"https://flowgeek.flowminder.org/{category}#{col}",
                "label": _label(col), "description": f"{_label(col)} per {('communal section', 'pair of communal sections')[data_type == 'flow']}.",
                "method": f"Computed from CDR as `{col}`.",
                "scale": "diverging" if diverging else "sequential",
                "decimals": 2 if diverging or "perKm2" in col else 0,
                "min_value": -3 if col == "abnormality" else None,
                "max_value": 3 if col == "abnormality" else None, "num_bins": 7 if diverging else 5,
                "label_fr": f"{_label(col)} (fr)", "description_fr": f"{_label(col)} (fr).",
                "method_fr": f"Calculé à partir des CDR : `{col}`."})
    periods = [(1, "Year", "Année", "years", "%Y"), (2, "Month", "Mois", "months", "%Y-%m"),
               (3, "Week", "Semaine", "weeks", "%G-W%V"), (4, "Day", "Jour", "days", "%Y-%m-%d")]
    places = [(1, "Department", "Département"), (2, "Commune", "Commune"),
              (3, "Communal section", "Section communale")]
    return {
        "languages": [{"code": "en", "name": "English", "flag": "gb", "default": True},
                      {"code": "fr", "name": "Français", "flag": "fr", "default": False},
                      {"code": "ht", "name": "Kreyòl ayisyen", "flag": "ht", "default": False}],
        "data_providers": [{"name": "Mobile network operator", "logo": "https://example.org/mno.png",
                            "url": "https://example.org/mno"},
                           {"name": "Flowminder", "logo": "https://example.org/flowminder.png",
                            "url": "https://www.flowminder.org"}],
        "categories": categories, "indicators": indicators,
        "temporal_resolutions": [
            {"trid": trid, "label": label, "label_fr": fr, "index": trid - 1,
             "relativedelta_unit": unit, "relativedelta_num": 1, "date_format": fmt,
             "description": f"{label}ly figures", "default_selected": trid == 2}
            for trid, label, fr, unit, fmt in periods],
        "spatial_resolutions": [
            {"srid": srid, "label": label, "label_fr": fr, "index": srid - 1,
             "description": f"Admin level {srid}", "boundaries": _topology(codes, srid)}
            for srid, label, fr in places],
    }


def _data_access(days: int) -> dict:
    """Scope -> /query-shaped selections: a free sample, and everything for premium users."""
    def q(category: str, column: str, trid: int, start: str, duration: int) -> dict:
        return {"category_id": category, "indicator_id": f"{category}.{column}", "srid": 3,
                "trid": trid, "start_date": start, "duration": duration}
    month0, day0 = MONTH0.strftime("%Y-%m"), DAY0.isoformat()
    free = [q("residents", "residents", 2, "2020-02", 3), q("residents", "arrived", 2, "2020-02", 3),
            q("relocations", "relocations", 2, month0, MONTHS),
            q("presence", "presence", 4, day0, min(days, 3)),
            q("movements", "travellers", 4, day0, days)]
    premium = [q(c, col, 2 if f.endswith(".csv") and c in ("residents", "relocations") else 4,
                 month0 if c in ("residents", "relocations") else day0,
                 MONTHS if c in ("residents", "relocations") else days)
               for c, _, f, _, values in EXPORTS for col in values]
    return {"read:free_data": free, "read:premium_data": premium}


FIRST = ["Jan", "Petr", "Pavel", "Tomáš", "Martin", "Jana", "Eva", "Lucie", "Hana", "Kateřina",
         "Jiří", "Lenka", "Ondřej", "Veronika", "Michal", "Tereza", "Zdeněk", "Markéta"]
LAST = ["Novák", "Svoboda", "Novotný", "Dvořák", "Černý", "Procházka", "Kučera", "Veselý",
        "Horák", "Němec", "Marek", "Pokorný", "Růžička", "Beneš", "Fiala", "Šťastný"]


def _ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()


def _systemdata(rng: random.Random, scale: float) -> dict:
    """The UOIS export: users, groups, memberships, external ids, and tables the import ignores."""
    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    grouptypes = [{"id": uid(), "name": n, "name_en": e} for n, e in [
        ("univerzita", "university"), ("fakulta", "faculty"), ("katedra", "department"),
        ("studijní skupina", "study group"), ("oddělení", "office")]]
    n_groups = max(6, round(30 * scale))
    groups = [{"id": uid(), "name": "Univerzita", "name_en": "University", "valid": True,
               "grouptype_id": grouptypes[0]["id"], "mastergroup_id": None}]
    levels = [[groups[0]], [], [], []]  # university, faculties, departments, study groups
    for i in range(1, n_groups):
        kind = 1 if i <= max(2, n_groups // 10) else (2 if i <= n_groups // 2 else 3)
        group = {"id": uid(), "name": f"{['', 'Fakulta', 'Katedra', 'Skupina'][kind]} {i}",
                 "name_en": f"{grouptypes[kind]['name_en']} {i}", "valid": rng.random() > 0.05,
                 "grouptype_id": grouptypes[kind]["id"],
                 "mastergroup_id": rng.choice(levels[kind - 1] or levels[0])["id"]}
        groups.append(group)
        levels[kind].append(group)
    users, seen = [], {}
    for _ in range(max(10, round(300 * scale))):
        name, surname = rng.choice(FIRST), rng.choice(LAST)
        stem = f"{_ascii(name)}.{_ascii(surname)}"
        seen[stem] = seen.get(stem, 0) + 1
        email = f"{stem}{seen[stem] if seen[stem] > 1 else ''}@world.com"
        if rng.random() < 0.03:  # as typed by hand: mixed case, stray blanks
            email = f" {email.capitalize()} "
        users.append({"id": uid(), "name": name, "surname": surname, "email": email,
                      "valid": True})
    memberships = [{"id": uid(), "user_id": u["id"], "group_id": g["id"],
                    "valid": rng.random() > 0.05, "startdate": "2023-09-01T00:00:00",
                    "enddate": None}
                   for u in users for g in (groups[i] for i in rng.sample(range(1, n_groups), rng.randint(1, 3)))]
    category = uid()
    types = [{"id": uid(), "name": n, "name_en": e, "urlformat": f, "category_id": category}
             for n, e, f in [("UČO", "personal number", "https://is.example.cz/osoba/%s"),
                             ("Moodle", "Moodle id", "https://moodle.example.cz/user/%s"),
                             ("ORCID", "ORCID", "https://orcid.org/%s")]]
    numbers = rng.sample(range(100000, 100000 + 10 * len(users)), len(users))
    externalids = []
    for user, number in zip(users, numbers, strict=True):
        outer = {0: str(number), 1: f"m{number - 40000}", 2: f"0000-0002-{number % 10000:04d}-{number // 10000:04d}"}
        for t, share in enumerate((1.0, 0.6, 0.2)):
            if rng.random() < share:
                externalids.append({"id": uid(), "inner_id": user["id"], "outer_id": outer[t],
                                    "typeid_id": types[t]["id"]})
    externalids.insert(len(externalids) // 2, dict(externalids[0]))  # exported twice
    roletypes = [{"id": uid(), "name": n} for n in ("rektor", "děkan", "vedoucí katedry", "garant",
                                                    "tajemník")]
    roles = [{"id": uid(), "user_id": rng.choice(users)["id"], "group_id": rng.choice(groups)["id"],
              "roletype_id": rng.choice(roletypes)["id"], "valid": True}
             for _ in range(max(5, round(20 * scale)))]
    return {"grouptypes": grouptypes, "groups": groups, "users": users, "memberships": memberships,
            "externalidcategories": [{"id": category, "name": "osobní identifikátory"}],
            "externalidtypes": types, "externalids": externalids, "roletypes": roletypes,
            "roles": roles, "eventtypes": []}


def _dump(doc: dict) -> str:
    """A JSON object with one line per record: readable, diffable, loadable by any parser."""
    def line(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    parts = []
    for key, items in doc.items():
        body = ",\n".join(f"  {line(item)}" for item in items)
        parts.append(f" {line(key)}: [\n{body}\n ]" if items else f" {line(key)}: []")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def generate(out: str | Path = "seeds", seed: int = 42, scale: float = 1.0,
             short_rows: bool = False) -> dict[str, int]:
    """Write the exports under `out`; return {relative path: rows (records)}."""
    out = Path(out)
    days = max(1, round(DAYS * scale))
    codes = _admin_units(random.Random(f"units/{seed}"))
    for old in (out / "flowkit" / "presence").glob("presence_*.csv"):
        old.unlink()  # drops of an earlier, other-scale run must not be unioned in
    con = duckdb.connect()
    try:
        _macros(con, seed)
        con.execute("CREATE TABLE units (ui BIGINT, code VARCHAR)")
        con.executemany("INSERT INTO units VALUES (?, ?)", list(enumerate(codes)))
        con.execute("CREATE OR REPLACE TABLE units AS SELECT ui, code, "
                    "round(1500 + 40000 * pow(u(ui, 5), 2)) AS pop, "
                    "round(3 + 60 * u(ui, 6), 1) AS area FROM units")
        written: dict[str, int] = {}
        for export in EXPORTS:
            monthly = export[0] in ("residents", "relocations")
            written |= _write_export(con, out, export, len(codes), MONTHS if monthly else days,
                                     short_rows)
    finally:
        con.close()
    docs = {"flowkit/config.json": _config(codes), "flowkit/data_access.json": _data_access(days),
            "uois/systemdata.json": _systemdata(random.Random(f"uois/{seed}"), scale)}
    for name, doc in docs.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(doc), encoding="utf-8")
        written[name] = sum(len(v) for v in doc.values())
    (out / "seeds.yml").write_text(SEEDS_YML, encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m elt.devdata", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="seeds", help="seeds directory to write (default: seeds)")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same bytes (default 42)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the days of the daily exports and the UOIS population")
    parser.add_argument("--short-rows", action="store_true",
                        help="end the rows that lack values early (fewer cells than the header)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    for path, rows in generate(args.out, args.seed, args.scale, args.short_rows).items():
        print(f"{rows:>12,}  {Path(args.out) / path}")


if __name__ == "__main__":
    main()
