"""Bodies against an endpoint's schema: the compiled DuckDB query against the Python loop.

N FlowKit dataset bodies (each with E data_input entries; one in a hundred broken) in a
DuckDB table, checked against the sandbox's OpenAPI `Dataset` schema two ways in one
process: the query `payload_matches_schema` and `publish --dry-run` run now (elt/http/
schemasql.py via bodycheck.check_relation), and the baseline: the same rows streamed to the
Python validator (bodycheck.check_rows, what ran before). Medians of --runs; both must
find the same failing rows.

    python bench/schema_check.py [--rows 200000] [--entries 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb

from elt.http.apischema import BodyChecker, EndpointSchema
from elt.http.bodycheck import check_relation, check_rows
from elt.sandbox.flowkit_openapi import OPENAPI

BODIES = """CREATE TABLE bodies AS
SELECT i::VARCHAR AS key, 'insert' AS op, json_object(
  'metadata', json_object('revision', 'v1', 'category_id', 'residents',
                          'indicator_id', 'residents.residents', 'srid', 3, 'trid', 2,
                          'dt', '2020-02-01 00:00:00'),
  'data_type', 'single_location',
  'data_input', (SELECT json_group_array(json_object(
        'spatial_unit_ids', json_array('HT' || j), 'data',
        CASE WHEN i % 100 = 7 AND j = 0 THEN NULL ELSE i + j END)) FROM range({e}) t(j))
)::VARCHAR AS body FROM range({n}) r(i)"""


def _streamed(cur: duckdb.DuckDBPyConnection) -> Iterator[tuple[str, str, str]]:
    while chunk := cur.fetchmany(500):
        yield from chunk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--entries", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    con = duckdb.connect()
    con.execute(BODIES.format(n=args.rows, e=args.entries))
    checker = BodyChecker(EndpointSchema("openapi", OPENAPI, "sandbox"), "rest",
                          {"insert": {"method": "POST", "path": "/data"}}, Path("."), "bench")
    times: dict[str, list[float]] = {"duckdb": [], "python": []}
    found: dict[str, int] = {}
    for _ in range(args.runs):
        started = time.perf_counter()
        found["duckdb"] = check_relation(con, "SELECT * FROM bodies", [], checker).failing
        times["duckdb"].append(time.perf_counter() - started)
        started = time.perf_counter()
        cur = con.execute("SELECT key, op, body FROM bodies ORDER BY key")
        found["python"] = check_rows(_streamed(cur), checker).failing
        times["python"].append(time.perf_counter() - started)
    assert found["duckdb"] == found["python"] == args.rows // 100 + (args.rows % 100 > 7)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.rows:,} bodies x {args.entries} entries, {found['duckdb']:,} failing, "
          f"medians of {args.runs}: DuckDB query {med['duckdb']:.2f}s, Python loop "
          f"{med['python']:.2f}s (ratio Python/DuckDB {med['python'] / med['duckdb']:.1f}x)")


if __name__ == "__main__":
    main()
