"""The FlowKit models on DuckDB and on Spark local, on the same generated exports.

Generates FlowKit exports with `python -m elt.devdata --scale S`, copies this project's
models into a temporary project with a DuckDB target and a Spark target (local[N], own state
file), and times `elt build -s +tag:flowkit --exclude kind:api` on each (seeds are loaded by
DuckDB on both: the Spark figure is the DuckDB load plus the Spark model build). Spark's
session start is timed apart (a cluster pays it once per command). Writes
bench/spark_results.md (and prints it).

    python bench/spark_vs_duckdb.py [--scale 10] [--master local[2]]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from elt.context import Context
from elt.core.console import Console

REPO = Path(__file__).resolve().parents[1]
PROFILES = """elt:
  target: duck
  outputs:
    duck: {{type: duckdb, path: target/elt.duckdb, threads: 2}}
    spark:
      type: spark
      master: "{master}"
      path: target/spark-state.duckdb
      warehouse: target/warehouse
      conf: {{spark.sql.shuffle.partitions: 2}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=10, help="elt.devdata --scale")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "spark_results.md")
    args = ap.parse_args()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        subprocess.run([sys.executable, "-m", "elt.devdata", "--out", str(root / "seeds"),
                        "--scale", str(args.scale)], check=True, capture_output=True)
        shutil.copytree(REPO / "models", root / "models")
        shutil.copy(REPO / "seeds" / "seeds.yml", root / "seeds" / "seeds.yml")
        (root / "profiles.yml").write_text(PROFILES.format(master=args.master))
        rows = sum(max(0, len(p.read_text().splitlines()) - 1)
                   for p in (root / "seeds").rglob("*.csv"))
        sel, exc = ["+tag:flowkit"], ["kind:api"]
        quiet = Console(quiet=True)

        start = time.perf_counter()
        duck = Context(root, target="duck", console=quiet).build(select=sel, exclude=exc)
        t_duck = time.perf_counter() - start

        from elt.engines.spark.session import session

        spark_ctx = Context(root, target="spark", console=quiet)
        start = time.perf_counter()
        spark = session(spark_ctx.project.target)
        t_session = time.perf_counter() - start
        start = time.perf_counter()
        built = spark_ctx.build(select=sel, exclude=exc)
        t_spark = time.perf_counter() - start
        spark.stop()
    ok = not duck.failed and not built.failed
    errors = sorted({f"{r.name} ({r.kind})" for res in (duck, built) for r in res.results
                     if r.status == "error"})
    models = sum(1 for r in built.results if r.kind == "model" and r.status == "success")
    text = (
        "# DuckDB vs Spark local: the FlowKit models\n\n"
        f"`python bench/spark_vs_duckdb.py --scale {args.scale:g} --master {args.master}`: "
        f"{rows:,} CSV rows (elt.devdata), {models} models and their data tests, "
        f"`elt build -s +tag:flowkit --exclude kind:api`, on {os.cpu_count()} cores "
        "shared with other work. Seeds are loaded by DuckDB for both targets.\n\n"
        "| engine | seconds |\n|---|---|\n"
        f"| DuckDB (load + models + tests) | {t_duck:.1f} |\n"
        f"| Spark session start | {t_session:.1f} |\n"
        f"| Spark target (DuckDB load, parquet hand-over, models + tests on Spark) | "
        f"{t_spark:.1f} |\n\n"
        f"Both builds succeeded: {ok}" + (f" (errors: {', '.join(errors)})" if errors else "")
        + ". At this size Spark pays per-query planning and "
        "job scheduling on every model and test; it is the engine for data that does not "
        "fit one machine, not for this one.\n")
    args.out.write_text(text)
    Console().result(text)


if __name__ == "__main__":
    main()
