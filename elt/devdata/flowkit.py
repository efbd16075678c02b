"""Reproducible synthetic FlowKit and UOIS exports: `python -m elt.devdata [--out seeds]`.

The committed `seeds/` is this module's default output (`--seed 42 --scale 1`): the same
seed always writes byte-identical files. DuckDB writes the CSVs from `range()` with an
integer hash (MINSTD rounds and xor-shifts, no `random()`), so they are reproducible and
fast at benchmark sizes. `--scale` multiplies the days of the daily exports and the UOIS
population (`--scale 300`: ~1M single-location rows, ~3M flow rows, 1,800 days, 90k users);
the monthly exports stay 6 months x ~520 communal sections, like a real small export.

The CSVs carry the dirt of real exports: empty cells, NaN, Inf, -Inf; rows without a date,
a unit or any value; rows lacking values at their end, with fewer cells than the header
(`--padded-rows`: empty cells instead); rows out of order at the end; an exact duplicate
row (for presence, the daily drops, a row delivered again in the next drop).
"""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import date, timedelta
from pathlib import Path

import duckdb

from elt.devdata.uois import SYSTEMDATA_TABLES, systemdata

_P = 2147483647  # 2**31 - 1: the MINSTD modulus; every hash value is below it
MONTHS, DAYS, DROPS = 6, 6, 3
MONTH0, DAY0 = date(2020, 1, 1), date(2020, 2, 1)
DEPARTMENTS = ["Ouest", "Sud-Est", "Nord", "Nord-Est", "Artibonite", "Centre", "Sud",
               "Grand'Anse", "Nord-Ouest", "Nippes"]

# (category, data_type, trid, file, key columns, indicator columns): the contract's headers
EXPORTS = [
    ("residents", "single_location", 2, "residents.csv", ["month", "pcod"],
     ["residents", "residents_perKm2", "arrived", "departed", "delta_arrived",
      "residents_diffwithref", "abnormality", "residents_pctchangewithref"]),
    ("relocations", "flow", 2, "relocations.csv", ["date", "pcod_from", "pcod_to"],
     ["relocations", "relocations_diffwithref", "abnormality", "relocations_pctchangewithref"]),
    ("presence", "single_location", 4, "presence/presence_*.csv", ["date", "pcod"],
     ["presence", "presence_perKm2", "trips_in", "trips_out", "abnormality",
      "presence_diffwithref", "presence_pctchangewithref"]),
    ("movements", "flow", 4, "movements.csv", ["date", "pcod_from", "pcod_to"],
     ["travellers", "abnormality", "travellers_diffwithref", "travellers_pctchangewithref"]),
]
_ABN = "round(6 * u(rid, 4) - 3, 3)"
_PCT = "round(100 * (v - ref) / ref, 2)"
_NO_REF = "WHEN ref = 0 THEN (CASE WHEN v = 0 THEN 'NaN' ELSE 'Inf' END)"
# SQL of each indicator column (v: the count, ref: its reference; a, b: arrivals and
# departures or trips in and out), optionally with a first WHEN of its own: the residents
# reference month has no abnormality, and its % change is NaN.
CELLS = {
    "residents": ["v", "round(v / area, 2)", "a", "b", "a - b", "v - ref",
                  (_ABN, "WHEN per = 0 THEN NULL"), (_PCT, "WHEN per = 0 THEN 'NaN'")],
    "relocations": ["v", "v - ref", _ABN, (_PCT, _NO_REF)],
    "presence": ["v", "round(v / area, 2)", "a", "b", _ABN, "v - ref", _PCT],
    "movements": ["v", _ABN, "v - ref", (_PCT, _NO_REF)],
}


def export_glob(category: str) -> str:
    """The seeds.yml glob of a category: these files and the real exports' dated names
    (`residents_admin3_monthly_small.csv`, `presence_admin3_daily_20200201.csv`) dropped
    in flowkit/ or any folder below it, so nobody renames an export."""
    return f"flowkit/**/{category}*.csv"


def seeds_yml() -> str:
    """seeds/seeds.yml for these files (written beside them: edit it here)."""
    lines = ["# Written by `python -m elt.devdata` with the data beside it: edit it there.",
             "# FlowKit exports load as text: the staging models decide what a value is (empty,",
             "# NaN, Inf and -Inf are not values), so raw.* holds exactly what was exported.",
             "seeds:"]
    for category, data_type, trid, _, _, _ in EXPORTS:
        what = "per communal section" if data_type == "single_location" else \
            "between communal sections"
        lines += [f"  flowkit_{category}:", f"    path: {export_glob(category)}",
                  f"    description: {'Monthly' if trid == 2 else 'Daily'} {category} {what}"
                  f" (srid 3, trid {trid}).", "    format: csv", "    header: true",
                  "    all_varchar: true",
                  "    null_padding: true  # rows lacking values at their end have fewer cells"]
    for name, what in (("config", "The FlowKit UI configuration, the body of POST /setup."),
                       ("data_access", "Data access spec, scope -> list of dataset queries.")):
        lines += [f"  flowkit_{name}:", f"    path: flowkit/{name}.json",
                  f"    description: {what}", "    format: document"]
    for table in SYSTEMDATA_TABLES:
        lines += [f"  systemdata_{table}:", "    path: uois/systemdata.json",
                  f"    json_key: {table}"]
    return "\n".join(lines) + "\n"


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


def _export_select(index: int, n: int, periods: int) -> str:
    """SELECT rid, per, s1, s2 (sort keys) and the export's columns as text.

    rid numbers the rows of all exports apart (the export in its top bits), so no two
    exports share their pseudo-random draws. Flows: each origin sends to k destinations at
    distinct offsets modulo n.
    """
    category, data_type, trid, _, keys, values = EXPORTS[index]
    top = index << 28
    start = f"DATE '{MONTH0}' + to_months(per::INT)" if trid == 2 else \
        f"DATE '{DAY0}' + to_days(per::INT)"
    if data_type == "single_location":
        source = f"""SELECT p.i AS per, o.ui AS s1, 0 AS s2, {top} + per * {n} + o.ui AS rid,
              o.code AS src, NULL AS dst, o.area, o.pop AS ref,
              round(o.pop * (0.97 + 0.06 * u(rid, 1)) * (1 + 0.004 * per))::BIGINT AS v,
              round(o.pop * 0.03 * u(rid, 2))::BIGINT AS a,
              round(o.pop * 0.03 * u(rid, 3))::BIGINT AS b
            FROM range({periods}) p(i) CROSS JOIN units o"""
    else:
        k, spread, rate = ("8 + h(o.ui, 31) % 5", n // 13, 0.0015) if trid == 2 else \
            ("2 + h(o.ui, 41) % 3", n // 5, 0.004)
        source = f"""SELECT s.*, d.code AS dst FROM (
            SELECT p.i AS per, o.ui AS s1, q.i AS j, {top} + (per * {n} + o.ui) * 16 + j AS rid,
              (o.ui + 1 + j * {spread} + h(o.ui * 16 + j, 32) % {spread}) % {n} AS s2,
              o.code AS src, (1 + 1.5 / (1 + j)) * o.pop * {rate} AS size,
              round(size * (0.2 + u(rid, 1)))::BIGINT AS v,
              round(size * (0.2 + u(s1 * 16 + j, 2)))::BIGINT AS ref
            FROM range({periods}) p(i) CROSS JOIN units o CROSS JOIN range(12) q(i)
            WHERE q.i < {k}) s JOIN units d ON d.ui = s.s2"""
    exprs = [f"CASE WHEN u(rid, 91) < 0.001 THEN NULL ELSE strftime({start}, '%Y-%m-%d') END",
             "CASE WHEN u(rid, 92) < 0.001 THEN NULL ELSE src END", "dst"][:len(keys)]
    for salt, cell in enumerate(CELLS[category], start=11):
        expr, first = cell if isinstance(cell, tuple) else (cell, "")
        exprs.append(_cell(expr, salt, first))
    cols = ", ".join(f'{e} AS "{h}"' for e, h in zip(exprs, keys + values, strict=True))
    return (f"SELECT rid, per, s1, s2, {cols} FROM "
            f"(SELECT *, u(rid, 93) < 0.003 AS blank FROM ({source}))")


def _line(row: tuple) -> str:
    return ",".join("" if v is None else v for v in row)


def _write_export(con: duckdb.DuckDBPyConnection, out: Path, index: int, n_units: int,
                  periods: int, short_rows: bool) -> dict[str, int]:
    """COPY one export to CSV (several daily drops for presence); then append the dirty
    rows a SELECT cannot write in place."""
    category, _, _, file, keys, _ = EXPORTS[index]
    con.execute(f"CREATE OR REPLACE TEMP TABLE t AS {_export_select(index, n_units, periods)}")
    cols = "* EXCLUDE (rid, per, s1, s2)"
    picks = con.execute(f"SELECT rid, {cols} FROM t WHERE per = 0 ORDER BY h(rid, 77) LIMIT 4"
                        ).fetchall()
    cut = ", ".join(str(p[0]) for p in picks[:3])  # written only as rows lacking values
    lines = [_line(p[1:]) for p in picks]
    tail = []  # one value kept; the keys only; the date only
    for line, width in zip(lines, [len(keys) + 1, len(keys), 1], strict=False):
        cells = line.split(",")
        tail.append(",".join(cells[:width] + ([] if short_rows else [""] * (len(cells) - width))))
    tail.append(lines[3])  # an exact duplicate
    per_file = max(1, math.ceil(periods / DROPS)) if "*" in file else periods
    written: dict[str, int] = {}
    again = None
    for first in range(0, periods, per_file):
        day = (DAY0 + timedelta(days=first)).strftime("%Y%m%d")
        path = out / "flowkit" / file.replace("*", day)
        path.parent.mkdir(parents=True, exist_ok=True)
        where = f"per >= {first} AND per < {first + per_file} AND rid NOT IN ({cut})"
        con.execute(f"COPY (SELECT {cols} FROM t WHERE {where} ORDER BY per, s1, s2) "
                    f"TO '{path}' (FORMAT csv, HEADER true, DELIMITER ',')")
        extra = tail if first == 0 else ([_line(again)] if first == per_file else [])
        # the last row of this drop is delivered again in the next one
        again = con.execute(f"SELECT {cols} FROM t WHERE {where} "
                            "ORDER BY per DESC, s1 DESC, s2 DESC LIMIT 1").fetchone()
        with path.open("a", encoding="utf-8", newline="") as f:
            f.writelines(line + "\n" for line in extra)
        rows = con.execute(f"SELECT count(*) FROM t WHERE {where}").fetchone()[0]
        written[path.relative_to(out).as_posix()] = rows + len(extra)
    con.execute("DROP TABLE t")
    return written


def _admin_units(rng: random.Random, n: int = 520) -> list[str]:
    """n Haiti-like communal sections: HT<dept 01-10><arrondissement><commune>-<section>."""
    communes = [f"HT{dept:02d}{arr}{com}" for dept in range(1, len(DEPARTMENTS) + 1)
                for arr in range(1, rng.randint(2, 5) + 1)
                for com in range(1, rng.randint(2, 4) + 1)]
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
        unit = code[:{1: 4, 2: 6, 3: None}[level]]
        x, y = i % cols * w, i // cols * h
        b = boxes.setdefault(unit, [x, y, x + w, y + h])
        boxes[unit] = [min(b[0], x), min(b[1], y), max(b[2], x + w), max(b[3], y + h)]
    geometries, arcs = [], []
    for i, (unit, (x0, y0, x1, y1)) in enumerate(boxes.items()):
        department = DEPARTMENTS[int(unit[2:4]) - 1]
        geometries.append({"type": "Polygon", "id": unit, "arcs": [[i]], "properties": {
            "pcod": unit, "name": department if level == 1 else f"{unit} ({department})"}})
        arcs.append([[x0, y0], [x1 - x0, 0], [0, y1 - y0], [x0 - x1, 0], [0, y0 - y1]])
    return {"type": "Topology", "transform": {"scale": [0.001, 0.001], "translate": [-74.5, 18]},
            "objects": {f"admin{level}": {"type": "GeometryCollection", "geometries": geometries}},
            "arcs": arcs}


def _label(column: str) -> str:
    words = {"perKm2": "per km²", "diffwithref": "- difference with reference",
             "pctchangewithref": "- % change with reference"}
    return " ".join(words.get(w, w) for w in column.split("_")).capitalize()


def _config(codes: list[str]) -> dict:
    """config.json in the shape of POST /setup: srid and trid explicit."""
    categories, indicators = [], []
    for order, (category, data_type, _, _, _, values) in enumerate(EXPORTS, start=1):
        label = category.capitalize()
        categories.append({
            "category_id": category, "type": data_type, "order": order,
            "flowgeek_url": f"https://flowgeek.flowminder.org/{category}", "label": label,
            "description": f"{label} from mobile phone data.", "label_fr": f"{label} (fr)",
            "description_fr": f"{label}, à partir des données mobiles."})
        for i, col in enumerate(values, start=1):
            diverging = any(w in col for w in ("diff", "pct", "abnormality", "delta"))
            label = _label(col)
            indicators.append({
                "category_id": category, "indicator_id": f"{category}.{col}", "order": i,
                "flowgeek_url": f"https://flowgeek.flowminder.org/{category}#{col}",
                "label": label, "description": f"{label}, {data_type.replace('_', ' ')}.",
                "method": f"Computed from CDR as `{col}`.",
                "scale": "diverging" if diverging else "sequential",
                "decimals": 2 if diverging or "perKm2" in col else 0,
                "min_value": -3 if col == "abnormality" else None,
                "max_value": 3 if col == "abnormality" else None,
                "num_bins": 7 if diverging else 5, "label_fr": f"{label} (fr)",
                "description_fr": f"{label} (fr).", "method_fr": "Calculé à partir des CDR."})
    periods = [(1, "Year", "Année", "years", "%Y"), (2, "Month", "Mois", "months", "%Y-%m"),
               (3, "Week", "Semaine", "weeks", "%G-W%V"), (4, "Day", "Jour", "days", "%Y-%m-%d")]
    places = [(1, "Department", "Département"), (2, "Commune", "Commune"),
              (3, "Communal section", "Section communale")]
    return {
        "languages": [{"code": "en", "name": "English", "flag": "gb", "default": True},
                      {"code": "fr", "name": "Français", "flag": "fr", "default": False},
                      {"code": "ht", "name": "Kreyòl ayisyen", "flag": "ht", "default": False}],
        "data_providers": [
            {"name": "Mobile network operator", "logo": "https://example.org/mno.png",
             "url": "https://example.org/mno"},
            {"name": "Flowminder", "logo": "https://example.org/flowminder.png",
             "url": "https://www.flowminder.org"}],
        "categories": categories, "indicators": indicators,
        "temporal_resolutions": [
            {"trid": trid, "label": label, "label_fr": fr, "index": trid - 1,
             "relativedelta_unit": unit, "relativedelta_num": 1, "date_format": fmt,
             "description": f"One value per {unit[:-1]}", "default_selected": trid == 2}
            for trid, label, fr, unit, fmt in periods],
        "spatial_resolutions": [
            {"srid": srid, "label": label, "label_fr": fr, "index": srid - 1,
             "description": f"Admin level {srid}", "boundaries": _topology(codes, srid)}
            for srid, label, fr in places],
    }


def _data_access(days: int) -> dict:
    """Scope -> /query-shaped selections: a free sample, and everything for premium users."""
    def query(category: str, column: str, start: str | None = None,
              duration: int | None = None) -> dict:
        trid = next(e[2] for e in EXPORTS if e[0] == category)
        whole = (MONTH0.strftime("%Y-%m"), MONTHS) if trid == 2 else (DAY0.isoformat(), days)
        return {"category_id": category, "indicator_id": f"{category}.{column}", "srid": 3,
                "trid": trid, "start_date": start or whole[0], "duration": duration or whole[1]}
    free = [query("residents", "residents", "2020-02", 3),
            query("residents", "arrived", "2020-02", 3), query("relocations", "relocations"),
            query("presence", "presence", duration=min(days, 3)), query("movements", "travellers")]
    premium = [query(e[0], col) for e in EXPORTS for col in e[5]]
    return {"read:free_data": free, "read:premium_data": premium}


def _dump(doc: dict) -> str:
    """A JSON object of lists, one line per record: readable, diffable, any parser reads it."""
    def line(value: object) -> str:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    parts = []
    for key, items in doc.items():
        body = ",\n".join(f"  {line(item)}" for item in items)
        parts.append(f" {line(key)}: [\n{body}\n ]" if items else f" {line(key)}: []")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def generate(out: str | Path = "seeds", seed: int = 42, scale: float = 1.0,
             short_rows: bool = True) -> dict[str, int]:
    """Write the exports and seeds.yml under `out`; return {relative path: rows/records}."""
    out = Path(out)
    days = max(1, round(DAYS * scale))
    codes = _admin_units(random.Random(f"units/{seed}"))
    for old in (out / "flowkit" / "presence").glob("presence_*.csv"):
        old.unlink()  # the drops of an earlier run (another scale) must not be unioned in
    written: dict[str, int] = {}
    with duckdb.connect() as con:
        _macros(con, seed)
        con.execute("CREATE TABLE units AS SELECT i AS ui, codes[i + 1] AS code, "
                    "round(1500 + 40000 * pow(u(i, 5), 2))::BIGINT AS pop, "
                    "round(3 + 60 * u(i, 6), 1) AS area "
                    "FROM (SELECT ?::VARCHAR[] AS codes), range(?) t(i)", [codes, len(codes)])
        for index, export in enumerate(EXPORTS):
            periods = MONTHS if export[2] == 2 else days
            written |= _write_export(con, out, index, len(codes), periods, short_rows)
    docs = {"flowkit/config.json": _config(codes), "flowkit/data_access.json": _data_access(days),
            "uois/systemdata.json": systemdata(random.Random(f"uois/{seed}"), scale)}
    for name, doc in docs.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(_dump(doc), encoding="utf-8")
        written[name] = sum(len(v) for v in doc.values())
    (out / "seeds.yml").write_text(seeds_yml(), encoding="utf-8")
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m elt.devdata",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="seeds", help="seeds directory (default: seeds)")
    parser.add_argument("--seed", type=int, default=42, help="same seed, same bytes (42)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="multiplies the days of the daily exports and the UOIS population")
    parser.add_argument("--padded-rows", dest="short_rows", action="store_false",
                        help="write every row with all its cells (by default rows lacking "
                             "values at their end have fewer cells than the header, as real "
                             "exports do)")
    args = parser.parse_args(argv)
    if args.scale <= 0:
        parser.error("--scale must be positive")
    for path, rows in generate(args.out, args.seed, args.scale, args.short_rows).items():
        print(f"{rows:>12,}  {Path(args.out) / path}")

