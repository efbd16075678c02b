"""elt against the plain-DuckDB script, side by side in one run: build CPU, wall, peak RSS,
one changed row, and the no-op build against bare interpreter start-up.

Per run, each as its own measured process on the same generated data:
  plain      `plain_duckdb.py` (the best a skilled user writes in an hour)
  plain batched `plain_duckdb.py --batches N` under elt's memory limit (`--plain-batches N`):
             the one statement runs out of memory under 2GB at scale 1; this is the same
             job as a skilled user writes it to fit (clean rows in TEMP tables, N date ranges)
  plain keep `plain_duckdb.py --keep`: the same SQL keeping raw, clean and dataset tables
             in a DuckDB file, as elt does (a reference, not the issue's baseline)
  elt build  `elt build --select +flowkit_datasets` in a fresh project copy
  no-op      the same command again, `--noop-runs` times, each next to
             `python -c "import duckdb"` (the floor of any Python tool using DuckDB);
             answered from target/build_stamp.json (elt/transform/upto.py)
  no stamp   the same no-op with the stamp deleted first: the normal path, which a build
             takes after anything wrote the database (e.g. `elt publish`)
  changed    one value changed in one export row (run.change_one_row), then the build
  new file   the next day's presence file dropped (run.add_daily_file), then the build
  --repo R   elt and models/ of another checkout (its .venv), e.g. the commit before a
             change, to run it paired and alternating with this one (`--alternate`)
The payload fingerprints of the plain script and of elt must be equal (same bytes).

    python bench/vs_plain.py --scale 0.1 --runs 3        # scale 0.1 = devdata --scale 30
    python bench/vs_plain.py --scale 1 --runs 1 --memory-limit 2GB
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

import duckdb
from plain_duckdb import fingerprint_sql
from procs import machine, measure
from run import PY, REPO, add_daily_file, change_one_row

BENCH = Path(__file__).resolve().parent
ELT = str(Path(PY).with_name("elt"))
SELECT = "+flowkit_datasets"


def profile(limit: str | None, threads: int) -> str:
    extra = f", memory_limit: {limit}" if limit else ""
    return (f"elt: {{target: bench, outputs: {{bench: {{type: duckdb, path: target/elt.duckdb, "
            f"threads: {threads}{extra}}}}}}}\n")


def seeds_for(scale: float, work: Path) -> Path:
    """Generated once per scale (the layout run.py uses, so its cache is shared)."""
    seeds = work / "data" / f"scale-{scale:g}" / "seeds"
    if not (seeds / "seeds.yml").exists():
        measure("generate", [PY, "-m", "elt.devdata", "--out", str(seeds), "--scale",
                             f"{scale * 300:g}"], cwd=REPO, log_dir=seeds.parent)
    return seeds


def fingerprint(db: Path | str, relation: str) -> list[Any]:
    with duckdb.connect(str(db), read_only=str(db) != ":memory:") as con:
        return list(con.execute(fingerprint_sql(relation)).fetchone() or ())


def run_once(i: int, args: argparse.Namespace, seeds: Path, repo: Path = REPO) -> dict[str, Any]:
    run_dir = args.work / f"vs-plain-{i}{'' if repo == REPO else '-other'}"
    shutil.rmtree(run_dir, ignore_errors=True)
    project = run_dir / "project"
    shutil.copytree(repo / "models", project / "models")
    elt = ELT if repo == REPO else str(repo / ".venv" / "bin" / "elt")
    shutil.copytree(seeds, project / "seeds")
    (project / "profiles.yml").write_text(profile(args.memory_limit, args.threads))
    logs = run_dir / "logs"
    out: dict[str, Any] = {}
    plain_out, keep_db = run_dir / "plain.parquet", run_dir / "plain_keep.duckdb"

    def plain(output: Path, *extra: str) -> list[str]:
        # no memory limit: its string_agg would not fit in one; its output is
        # fingerprinted below, outside the measured process
        return [PY, str(BENCH / "plain_duckdb.py"), str(seeds), str(output), "--threads",
                str(args.threads), "--no-fingerprint", *extra]

    out["plain"] = measure("plain", plain(plain_out), cwd=run_dir, log_dir=logs).to_dict()
    out["load_before"] = os.getloadavg()[0]
    batched_out = run_dir / "plain-batched"
    if args.plain_batches:
        limit = ["--memory-limit", args.memory_limit] if args.memory_limit else []
        out["plain_batched"] = measure("plain_batched", plain(
            batched_out, "--batches", str(args.plain_batches), *limit), cwd=run_dir,
            log_dir=logs).to_dict()
    if not args.no_keep:
        out["plain_keep"] = measure("plain_keep", plain(keep_db, "--keep"), cwd=run_dir,
                                    log_dir=logs).to_dict()
    build = [elt, "build", "--select", SELECT]
    out["elt_build"] = measure("elt_build", build, cwd=project, log_dir=logs).to_dict()
    same = fingerprint(project / "target/elt.duckdb", "main.flowkit_datasets")
    out["same_payloads"] = same == fingerprint(":memory:", f"read_parquet('{plain_out}')") \
        and (args.no_keep or same == fingerprint(keep_db, "datasets")) and (
            not args.plain_batches
            or same == fingerprint(":memory:", f"read_parquet('{batched_out}/*.parquet')"))
    keep_db.unlink(missing_ok=True)  # 280 MB per run
    out["datasets"] = same[0] if same else None
    stamp = project / "target" / "build_stamp.json"
    for key in ("noop", "import_duckdb", "noop_no_stamp"):
        out[f"{key}_wall_s"], out[f"{key}_cpu_s"] = [], []
    for k in range(args.noop_runs):
        for key, cmd in (("import_duckdb", [PY, "-c", "import duckdb"]), ("noop", build),
                         ("noop_no_stamp", build)):
            if key == "noop_no_stamp":
                stamp.unlink(missing_ok=True)
            m = measure(f"{key}{k}", cmd, cwd=project, log_dir=logs)
            out[f"{key}_wall_s"].append(m.wall_s)
            out[f"{key}_cpu_s"].append(m.cpu_s)
    out["changed_row"] = change_one_row(project / "seeds")
    out["elt_changed"] = measure("elt_changed", build, cwd=project, log_dir=logs).to_dict()
    out["new_file"] = add_daily_file(project / "seeds")
    out["elt_new_file"] = measure("elt_new_file", build, cwd=project, log_dir=logs).to_dict()
    out["load_after"] = os.getloadavg()[0]
    return out


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(stage: str, key: str) -> float:
        return statistics.median(r[stage][key] for r in runs)

    s: dict[str, Any] = {}
    stages = [k for k in ("plain", "plain_batched", "plain_keep", "elt_build", "elt_changed",
                          "elt_new_file")
              if all(k in r for r in runs)]
    for stage in stages:
        for key in ("wall_s", "cpu_s", "peak_rss_mb", "own_peak_rss_mb"):
            if all(r[stage].get(key) is not None for r in runs):
                s[f"{stage}.{key}"] = round(med(stage, key), 3)
    for key in ("noop", "import_duckdb", "noop_no_stamp"):
        for unit in ("wall_s", "cpu_s"):
            s[f"{key}_{unit}"] = round(statistics.median(
                w for r in runs for w in r[f"{key}_{unit}"]), 3)
    s["ratio.build_cpu_elt_over_plain"] = round(s["elt_build.cpu_s"] / s["plain.cpu_s"], 2)
    s["ratio.build_wall_elt_over_plain"] = round(s["elt_build.wall_s"] / s["plain.wall_s"], 2)
    if "plain_batched" in stages:  # same memory limit for both
        s["ratio.build_cpu_elt_over_plain_batched"] = round(
            s["elt_build.cpu_s"] / s["plain_batched.cpu_s"], 2)
        s["ratio.build_cpu_elt_over_plain_batched_per_run"] = [round(
            r["elt_build"]["cpu_s"] / r["plain_batched"]["cpu_s"], 3) for r in runs]
    s["ratio.build_cpu_elt_over_plain_per_run"] = [round(
        r["elt_build"]["cpu_s"] / r["plain"]["cpu_s"], 3) for r in runs]
    if "plain_keep" in stages:
        s["ratio.build_cpu_elt_over_plain_keep"] = round(
            s["elt_build.cpu_s"] / s["plain_keep.cpu_s"], 2)
        s["ratio.build_wall_elt_over_plain_keep"] = round(
            s["elt_build.wall_s"] / s["plain_keep.wall_s"], 2)
    s["ratio.changed_over_full_build"] = round(s["elt_changed.wall_s"] / s["elt_build.wall_s"],
                                               3)
    if "elt_new_file" in stages:  # each run's own pair, then the median
        s["ratio.new_file_over_full_build"] = round(statistics.median(
            r["elt_new_file"]["wall_s"] / r["elt_build"]["wall_s"] for r in runs), 3)
    s["load_average"] = [r.get("load_before") for r in runs]
    s["ratio.noop_over_import_duckdb"] = round(s["noop_wall_s"] / s["import_duckdb_wall_s"], 2)
    s["ratio.noop_cpu_over_import_duckdb"] = round(s["noop_cpu_s"] / s["import_duckdb_cpu_s"], 2)
    s["all_ok"] = all(r[k]["ok"] for r in runs for k in stages)
    s["same_payloads"] = all(r["same_payloads"] for r in runs)
    return s


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=0.1)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--noop-runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-limit", default=None, help="elt's profile memory_limit")
    ap.add_argument("--work", type=Path, default=BENCH / "work")
    ap.add_argument("--out", type=Path, default=None, help="JSON results file")
    ap.add_argument("--no-keep", action="store_true", help="skip plain_duckdb.py --keep")
    ap.add_argument("--plain-batches", type=int, default=0,
                    help="also plain_duckdb.py --batches N under --memory-limit")
    ap.add_argument("--repo", type=Path, default=None,
                    help="another checkout (with its .venv) to run alternately with this one")
    args = ap.parse_args(argv)
    # as an installed package has: compiled modules (PYTHONDONTWRITEBYTECODE would otherwise
    # make every elt process compile the modules it imports, ~0.05 s)
    measure("compileall", [PY, "-m", "compileall", "-q", str(REPO / "elt")], cwd=REPO,
            log_dir=args.work / "logs")
    seeds = seeds_for(args.scale, args.work)
    runs, other = [], []
    for i in range(args.runs):  # paired and alternating: this checkout, then the other
        runs.append(run_once(i, args, seeds))
        if args.repo:
            other.append(run_once(i, args, seeds, args.repo.resolve()))
    result = {"scale": args.scale, "runs": args.runs, "memory_limit": args.memory_limit,
              "threads": args.threads, "machine": machine(), "summary": summarise(runs),
              "per_run": runs}
    if other:
        result.update(repo=str(args.repo), repo_summary=summarise(other), repo_per_run=other)
    text = json.dumps(result, indent=1, default=str)
    out = args.out or BENCH / f"vs_plain-scale-{args.scale:g}.json"
    out.write_text(text + "\n")
    sys.stdout.write(json.dumps({k: result[k] for k in ("summary", "repo_summary")
                                 if k in result}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
