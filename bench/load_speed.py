"""Does `elt build` load and build at DuckDB speed? One CSV of N rows, two ways, one process.

Baseline: plain DuckDB in this process, `CREATE TABLE AS SELECT * FROM read_csv(...)` and
one `CREATE TABLE AS` model over it; that is the speed of DuckDB itself. Then the same file
and the same model through `elt build` (Context API, same process: no start-up cost), a
no-op rebuild, and a rebuild after one row changed. Figures are medians of --runs; the ratio
elt/DuckDB says what elt's bookkeeping (fingerprints, load ids, swaps, state) costs.

    python bench/load_speed.py [--rows 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import duckdb

from elt.context import Context
from elt.core.console import Console

MODEL = """/* elt
materialized: table
*/
SELECT day, unit, sum(value) AS total, count(*) AS n
FROM raw.readings WHERE value IS NOT NULL GROUP BY day, unit
"""


def write_csv(path: Path, rows: int) -> None:
    """A million-row export: date, unit code, value (some empty)."""
    duckdb.sql(f"""
        COPY (SELECT DATE '2020-01-01' + (i % 365)::INTEGER AS day,
                     'HT' || lpad(((i * 7919) % 520)::VARCHAR, 4, '0') AS unit,
                     CASE WHEN i % 97 = 0 THEN NULL ELSE (hash(i) % 100000)::BIGINT END AS value
              FROM range({rows}) t(i)) TO '{path}' (HEADER, DELIMITER ',')""")


def duckdb_baseline(csv: Path, work: Path) -> float:
    db = work / "plain.duckdb"
    db.unlink(missing_ok=True)
    started = time.perf_counter()
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE readings AS SELECT * FROM read_csv('{csv}')")
        con.execute("CREATE TABLE model AS " + MODEL.split("*/", 1)[1].replace("raw.", ""))
    return time.perf_counter() - started


def elt_project(csv: Path, work: Path) -> Path:
    root = work / "project"
    shutil.rmtree(root, ignore_errors=True)
    (root / "seeds").mkdir(parents=True)
    (root / "models").mkdir()
    shutil.copy(csv, root / "seeds" / "readings.csv")
    (root / "models" / "daily.sql").write_text(MODEL)
    (root / "profiles.yml").write_text(
        "bench:\n  target: dev\n  outputs:\n    dev: {type: duckdb, path: target/elt.duckdb}\n")
    return root


def timed_build(root: Path) -> float:
    ctx = Context(project_dir=root, console=Console(quiet=True))
    started = time.perf_counter()
    results = ctx.build()
    if results.failed:
        raise SystemExit(f"elt build failed: {[r.message for r in results.results]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"duckdb": [], "elt_full": [], "elt_noop": [],
                                       "elt_one_row": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv = work / "readings.csv"
        write_csv(csv, args.rows)
        for _ in range(args.runs):
            figures["duckdb"].append(duckdb_baseline(csv, work))
            root = elt_project(csv, work)
            figures["elt_full"].append(timed_build(root))
            figures["elt_noop"].append(timed_build(root))
            seed = root / "seeds" / "readings.csv"
            lines = seed.read_text().splitlines()
            lines[1] = lines[1].rsplit(",", 1)[0] + ",12345"
            seed.write_text("\n".join(lines) + "\n")
            figures["elt_one_row"].append(timed_build(root))
    med = {k: statistics.median(v) for k, v in figures.items()}
    summary = {
        "rows": args.rows, "runs": args.runs, "median_seconds": med,
        "elt_full_over_duckdb": med["elt_full"] / med["duckdb"],
        "noop_over_full": med["elt_noop"] / med["elt_full"],
        "one_row_over_full": med["elt_one_row"] / med["elt_full"],
    }
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
