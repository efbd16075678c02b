"""The second baseline: the FlowKit job in plain DuckDB SQL, as a skilled user writes it.

Same job as `elt build --select +flowkit_datasets`: the four CSV exports (all text, as
exported) and config.json -> one POST /data body per (category, indicator, srid, trid, dt),
byte for byte what `flowkit_datasets.payload` holds. No state, no tests, no incremental
anything: read, clean, unpivot, aggregate, write one parquet file. Prints a JSON line with
the number of datasets and a fingerprint of all payloads (compare with elt's, see
`fingerprint_sql`).

The values are grouped on (category, export column, date) and the config's names joined to
the ~20,000 results, as `flowkit_datasets` does: grouping before joining is what a skilled
user does (session 9: -13% CPU for this script against joining every value first). Each
export row's `{"spatial_unit_ids":[...],"data":` is made once, before the UNPIVOT multiplies
the rows, as `flowkit_values` does.

    python bench/plain_duckdb.py SEEDS_DIR OUT.parquet [--memory-limit 2GB] [--threads 2]
                                 [--no-fingerprint]
    python bench/plain_duckdb.py SEEDS_DIR OUT.duckdb --keep ...
    python bench/plain_duckdb.py SEEDS_DIR OUT_DIR --batches 20 --memory-limit 2GB ...

`--batches N` is the same job as a skilled user writes it under a memory limit the one
statement does not fit in (its ordered `string_agg` holds every dataset at once and does
not spill: under 2GB at scale 1 it runs out of memory, with or without
`preserve_insertion_order`): each export's clean rows once into a TEMP table (sorted by
date and units, so a date range reads only its row groups), then the datasets in N date
ranges of equal numbers of dates, one parquet file per range in OUT_DIR (read them as
`OUT_DIR/*.parquet`).

`--keep` does the job elt does instead, with the same SQL: a DuckDB file that keeps each
export's raw rows (`raw_<export>`, all text) and clean rows (`stg_<export>`) as tables,
then `datasets` made from them, as a skilled user would keep them (default settings, one
statement per table, the checkpoint when the connection closes). Not the issue's baseline:
it measures what keeping the tables costs a plain script.

`vs_plain.py` passes --no-fingerprint and fingerprints the file itself, outside the measured
process: reading the 1 GB of payloads back costs ~1 CPU-s that is not part of the job.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import duckdb

# export: (key columns in the file, names of the spatial units, srid, trid)
EXPORTS = {
    "residents": (["month", "pcod"], ["pcod"], 3, 2),
    "relocations": (["date", "pcod_from", "pcod_to"], ["pcod_from", "pcod_to"], 3, 2),
    "presence": (["date", "pcod"], ["pcod"], 3, 4),
    "movements": (["date", "pcod_from", "pcod_to"], ["pcod_from", "pcod_to"], 3, 4),
}

FINGERPRINT = ("SELECT count(*), sum(hash(category_id, indicator_id, srid, trid, dt, payload)"
               "::HUGEINT)::VARCHAR FROM {rel}")


def fingerprint_sql(relation: str) -> str:
    """Datasets and an order-independent hash of keys and payload bytes."""
    return FINGERPRINT.format(rel=relation)


def read_sql(seeds: Path, category: str) -> str:
    """One export's files as text, as exported (the raw rows)."""
    glob = (seeds / "flowkit" / "**" / f"{category}*.csv").as_posix()
    return (f"read_csv('{glob}', all_varchar = true, null_padding = true, "
            "union_by_name = true, filename = true, header = true)")


def clean_sql(source: str, category: str) -> str:
    """One export's rows parsed and deduplicated like the staging models (no sort)."""
    keys, units, _, _ = EXPORTS[category]
    unit_cells = ", ".join(f"nullif(trim({u}), '') AS u{i}" for i, u in enumerate(units))
    excluded = ", ".join(f'"{k}"' for k in keys)
    value = f"COLUMNS(* EXCLUDE ({excluded}, filename))"
    not_null = " AND ".join(f"u{i} IS NOT NULL" for i in range(len(units)))
    return f"""SELECT DISTINCT * FROM (
                SELECT try_strptime(trim("{keys[0]}"), ['%Y-%m-%d', '%Y-%m']) AS date,
                       {unit_cells},
                       CASE WHEN isfinite(try_cast({value} AS DOUBLE))
                            THEN try_cast({value} AS DOUBLE) END
                FROM {source})
            WHERE date IS NOT NULL AND {not_null}"""


def values_sql(cleaned: str, category: str) -> str:
    """One export's clean rows (a subquery or a table) unpivoted to one value per row."""
    units = EXPORTS[category][1]
    unit_list = "[" + ", ".join(f"u{i}" for i in range(len(units))) + "]"
    unit_names = ", ".join(f"u{i}" for i in range(len(units)))
    return f"""
        SELECT '{category}' AS category_id, date, spatial_unit_ids, entry_head, column_name,
               value
        FROM (UNPIVOT (
            SELECT *, {unit_list} AS spatial_unit_ids,
                   '{{"spatial_unit_ids":' || to_json({unit_list}) || ',"data":' AS entry_head
            FROM ({cleaned}))
          ON COLUMNS(* EXCLUDE (date, {unit_names}, spatial_unit_ids, entry_head))
          INTO NAME column_name VALUE value)"""


def job_sql(seeds: Path, cleaned: dict[str, str] | None = None) -> str:
    """The datasets; each export's clean rows read inline from its files, or from
    `cleaned[export]` (a table the --keep job made)."""
    config = (seeds / "flowkit" / "config.json").as_posix()
    values = "\nUNION ALL\n".join(
        values_sql(f"SELECT * FROM {cleaned[c]}" if cleaned
                   else clean_sql(read_sql(seeds, c), c), c) for c in EXPORTS)
    exports = " UNION ALL ".join(f"SELECT '{c}' AS category_id, {s} AS srid, {t} AS trid"
                                 for c, (_, _, s, t) in EXPORTS.items())
    return f"""
    WITH cfg AS (SELECT json AS content FROM read_json_objects('{config}',
                                                                format = 'unstructured')),
    indicators AS (
        SELECT i ->> 'category_id' AS category_id, i ->> 'indicator_id' AS indicator_id,
               substr(i ->> 'indicator_id', length(i ->> 'category_id') + 2) AS column_name
        FROM (SELECT unnest(json_extract(content, '$.indicators[*]')) AS i FROM cfg)),
    categories AS (
        SELECT c ->> 'category_id' AS category_id, c ->> 'type' AS data_type
        FROM (SELECT unnest(json_extract(content, '$.categories[*]')) AS c FROM cfg)),
    v AS ({values}),
    per_column AS (
        -- grouped on three keys, the config's names joined to the ~20,000 results after
        SELECT category_id, column_name, date AS dt,
               '[' || string_agg(entry_head || CASE WHEN value = trunc(value) AND abs(value) < 1e15
                      THEN CAST(CAST(value AS BIGINT) AS VARCHAR) ELSE to_json(value)::VARCHAR
                      END || '}}', ',' ORDER BY spatial_unit_ids) || ']' AS data_input
        FROM v
        GROUP BY category_id, column_name, date),
    datasets AS (
        SELECT p.category_id, i.indicator_id, e.srid, e.trid, p.dt, c.data_type, p.data_input
        FROM per_column p
        JOIN indicators i ON i.category_id = p.category_id AND i.column_name = p.column_name
        JOIN categories c ON c.category_id = p.category_id
        JOIN ({exports}) e ON e.category_id = p.category_id)
    SELECT category_id, indicator_id, srid, trid, dt,
           '{{"metadata":' || json_object('revision', 'v1', 'category_id', category_id,
               'indicator_id', indicator_id, 'srid', srid, 'trid', trid,
               'dt', strftime(dt, '%Y-%m-%d %H:%M:%S'))::VARCHAR
           || ',"data_type":' || to_json(data_type)::VARCHAR
           || ',"data_input":' || data_input || '}}' AS payload
    FROM datasets"""


def batched(con: duckdb.DuckDBPyConnection, seeds: Path, out: Path, batches: int) -> None:
    """The job in `batches` date ranges over TEMP tables of the clean rows (see above)."""
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.parquet"):
        old.unlink()
    for c, (_, units, _, _) in EXPORTS.items():
        order = ", ".join(["date"] + [f"u{i}" for i in range(len(units))])
        con.execute(f"CREATE TEMP TABLE clean_{c} AS {clean_sql(read_sql(seeds, c), c)} "
                    f"ORDER BY {order}")
    dates = " UNION ".join(f"SELECT DISTINCT date FROM clean_{c}" for c in EXPORTS)
    ranges = con.execute(f"SELECT min(date), max(date) FROM (SELECT date, ntile({batches}) "
                         f"OVER (ORDER BY date) AS b FROM ({dates})) GROUP BY b "
                         "ORDER BY b").fetchall()
    for i, (lo, hi) in enumerate(ranges):
        cleaned = {c: f"(SELECT * FROM clean_{c} WHERE date BETWEEN '{lo}' AND '{hi}')"
                   for c in EXPORTS}
        con.execute(f"COPY ({job_sql(seeds, cleaned)}) TO "
                    f"'{(out / f'part-{i:03d}.parquet').as_posix()}' (FORMAT parquet)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("seeds", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--memory-limit", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-fingerprint", action="store_true",
                    help="do not read the output back (the caller compares it)")
    ap.add_argument("--keep", action="store_true",
                    help="OUT is a DuckDB file keeping raw, clean and dataset tables")
    ap.add_argument("--batches", type=int, default=None,
                    help="OUT is a directory: the datasets in N date ranges (see above)")
    args = ap.parse_args(argv)
    seeds = args.seeds.resolve()
    start, cpu0 = time.perf_counter(), time.process_time()
    config = {k: v for k, v in (("memory_limit", args.memory_limit),
                                ("threads", args.threads)) if v is not None}
    if args.keep:
        for leftover in (args.out, args.out.with_name(args.out.name + ".wal")):
            leftover.unlink(missing_ok=True)
        con = duckdb.connect(str(args.out), config=config)
        for c in EXPORTS:
            con.execute(f"CREATE TABLE raw_{c} AS SELECT * FROM {read_sql(seeds, c)}")
            con.execute(f"CREATE TABLE stg_{c} AS {clean_sql(f'raw_{c}', c)}")
        con.execute(f"CREATE TABLE datasets AS {job_sql(seeds, {c: f'stg_{c}' for c in EXPORTS})}")
        con.close()  # checkpoints: the tables are in the file, as elt's are after a build
        relation = "datasets"
    elif args.batches:
        con = duckdb.connect(config=config)
        batched(con, seeds, args.out, args.batches)
        relation = f"read_parquet('{(args.out / '*.parquet').as_posix()}')"
    else:
        con = duckdb.connect(config=config)
        con.execute(f"COPY ({job_sql(seeds)}) TO '{args.out.as_posix()}' (FORMAT parquet)")
        relation = f"read_parquet('{args.out.as_posix()}')"
    report: dict[str, object] = {
        "wall_s": round(time.perf_counter() - start, 3),
        "cpu_s": round(time.process_time() - cpu0, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if not args.no_fingerprint:
        with duckdb.connect(str(args.out) if args.keep else ":memory:") as reader:
            report["datasets"], report["fingerprint"] = reader.execute(
                fingerprint_sql(relation)).fetchone() or (None, None)
    sys.stdout.write(json.dumps(report) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
