"""Benchmark harness: the notebook baseline and elt side by side, same data, same receiver.

Generates a scaled FlowKit export with `python -m elt.devdata`, starts the sandbox in
null-sink mode on loopback in a separate process, then per run measures each stage as its
own process: the baseline (clean, build datasets, send), the replay bound, the plain-DuckDB
script (bench/plain_duckdb.py, the same job as one SQL statement), and elt (full
build, full publish, no-op build, no-op publish, one changed row build + publish). Writes
medians, ratios and goals to results.md and results.json. A failing stage is recorded,
never a crash: the harness exists to say how far the engine gets.

    python bench/run.py --scale 0.02 --runs 1          # quick
    python bench/run.py                                # scale 1: ~1M + ~3M rows, 3 runs
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import math
import os
import shlex
import shutil
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import report
import yaml
from notebook_baseline import find_exports
from procs import Measured, Receiver, machine, measure

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=1.0,
                    help="fraction of the full benchmark size: 1 = ~1M single-location + "
                         "~3M flow rows; 0.02 for a quick run")
    ap.add_argument("--full-size", type=float, default=300.0,
                    help="generator --scale that gives the full size (elt.devdata: 300)")
    ap.add_argument("--runs", type=int, default=3, help="runs; medians are reported")
    ap.add_argument("--out", type=Path, default=BENCH, help="where results.md/.json go")
    ap.add_argument("--work", type=Path, default=BENCH / "work", help="scratch (git-ignored)")
    ap.add_argument("--concurrency", type=int, default=8,
                    help="requests in flight for elt publish and the replay")
    ap.add_argument("--generator", default="python -m elt.devdata",
                    help="data generator command; --out DIR --scale S are appended")
    ap.add_argument("--regenerate", action="store_true", help="ignore cached generated data")
    ap.add_argument("--sandbox", default="elt.sandbox.server:Sandbox",
                    help="module:Class of the receiver, Class(None, port=P, null_sink=True)")
    ap.add_argument("--stage-timeout", type=float, default=3600.0, help="seconds per stage")
    ap.add_argument("--skip", action="append", default=[],
                    choices=["baseline", "replay", "plain", "elt", "elt-flowkit"],
                    help="leave out a side (repeatable)")
    ap.add_argument("--flowkit-select", default="+flowkit_datasets",
                    help="selection of the FlowKit-only elt build compared with the baseline")
    ap.add_argument("--build-select", default=None,
                    help="pass --select to elt build (default: build the whole project)")
    return ap.parse_args(argv)


def child_env() -> dict[str, str]:
    """The working tree's elt and bench modules first on the path, for every child."""
    env = dict(os.environ)
    paths = [str(REPO), str(BENCH)] + [p for p in env.get("PYTHONPATH", "").split(":") if p]
    env["PYTHONPATH"] = ":".join(paths)
    env.pop("ELT_TARGET", None)
    return env


def generate(args: argparse.Namespace, env: dict[str, str]) -> tuple[Path, dict[str, Any]]:
    """Generated data is cached per (generator, scale) under work/data."""
    root = args.work / "data" / f"scale-{args.scale:g}"
    marker = root / "generated.json"
    gen_scale = args.scale * args.full_size
    cmd = shlex.split(args.generator)
    if cmd and cmd[0] in ("python", "python3"):
        cmd[0] = PY
    wanted = {"generator": args.generator, "scale": args.scale, "generator_scale": gen_scale,
              "generator_sha256": _fingerprint(cmd)}
    if not args.regenerate and marker.exists():
        done = json.loads(marker.read_text())
        if {k: done.get(k) for k in wanted} == wanted:
            return root / "seeds", done
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    cmd += ["--out", str(root / "seeds"), "--scale", f"{gen_scale:g}"]
    m = measure("generate", cmd, cwd=REPO, log_dir=root, env=env, timeout=args.stage_timeout)
    if not m.ok:
        raise RuntimeError(f"data generator failed ({shlex.join(cmd)}): {m.error}")
    info = {**wanted, "seconds": round(m.wall_s, 2), "command": shlex.join(cmd)}
    marker.write_text(json.dumps(info))
    return root / "seeds", info


def _fingerprint(cmd: list[str]) -> str | None:
    """Hash of the generator's source, so cached data is regenerated when the code changes."""
    source: Path | None = None
    if "-m" in cmd[:-1]:
        module = cmd[cmd.index("-m") + 1].replace(".", "/")
        source = next((p for p in (REPO / f"{module}.py", REPO / module / "__main__.py")
                       if p.exists()), None)
    elif len(cmd) > 1 and cmd[1].endswith(".py"):
        source = Path(cmd[1])
    if source is None or not source.exists():
        return None
    return hashlib.sha256(source.read_bytes()).hexdigest()


def write_profiles(project: Path, receiver: Receiver, concurrency: int) -> None:
    """The project's profiles.yml plus a `bench` output aimed at the null-sink receiver."""
    source = REPO / "profiles.yml"
    profiles = yaml.safe_load(source.read_text()) if source.exists() else None
    if not isinstance(profiles, dict) or not profiles:
        profiles = {"elt": {"target": "bench", "outputs": {}}}
    for profile in profiles.values():
        if not isinstance(profile, dict):
            continue
        outputs = profile.setdefault("outputs", {})
        bench = copy.deepcopy(outputs.get("local") or {"type": "duckdb", "threads": 2})
        bench["path"] = "target/elt.duckdb"
        endpoints = dict(bench.get("endpoints") or {})
        for name in ("flowkit", "flowkit_admin", "uois"):
            config = receiver.info.get(name)
            if config is None and name == "flowkit_admin":
                config = receiver.info["flowkit"]
            if config is not None:
                endpoints[name] = dict(config)
        for name in ("flowkit", "flowkit_admin"):
            endpoints[name]["concurrency"] = concurrency
        bench["endpoints"] = endpoints
        outputs["bench"] = bench
    (project / "profiles.yml").write_text(yaml.safe_dump(profiles, sort_keys=False))


def make_project(run_dir: Path, seeds: Path, receiver: Receiver, concurrency: int,
                 name: str = "project") -> Path:
    """A fresh project per run: the repo's models, its profiles plus `bench`, the data."""
    project = run_dir / name
    if (REPO / "models").is_dir():
        shutil.copytree(REPO / "models", project / "models")
    else:
        (project / "models").mkdir(parents=True)
    shutil.copytree(seeds, project / "seeds")
    for yml in (REPO / "seeds").glob("*.yml"):
        if not (project / "seeds" / yml.name).exists():
            shutil.copy2(yml, project / "seeds" / yml.name)
    write_profiles(project, receiver, concurrency)
    return project


def change_one_row(seeds: Path) -> str:
    """Bump one value in one single-location export: the smallest real-world correction."""
    exports = find_exports(seeds)
    exports.sort(key=lambda pe: (pe[1].category != "residents",
                                 pe[1].data_type != "single_location"))
    for path, export in exports:
        if path.suffix == ".gz":
            continue
        lines = path.read_text().splitlines(keepends=True)
        column = len(export.units) + 1
        for i, line in enumerate(lines[1:], start=1):
            cells = line.rstrip("\r\n").split(",")
            try:
                cells[column] = str(int(cells[column]) + 1)
            except (ValueError, IndexError):
                try:
                    value = float(cells[column])
                except (ValueError, IndexError):
                    continue
                if not math.isfinite(value):
                    continue
                cells[column] = repr(value + 1.0)
            lines[i] = ",".join(cells) + line[len(line.rstrip("\r\n")):]
            path.write_text("".join(lines))
            return f"{path.relative_to(seeds)} line {i + 1}: {export.header[column]} +1"
    raise RuntimeError("no numeric cell found to change")


def add_daily_file(seeds: Path) -> str:
    """Drop the next day's presence file, as FlowKit's daily reload does: the last day's
    rows one day later (values +1), plus one row of the last day delivered again (an exact
    duplicate of a row an earlier file holds)."""
    folder = seeds / "flowkit" / "presence"
    last = max(folder.glob("presence_*.csv"))
    text = last.read_text().splitlines()
    header, rows = text[0], [r.split(",") for r in text[1:] if r]
    day = max(r[0] for r in rows)
    today = [r for r in rows if r[0] == day]
    nxt = (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    new = [[nxt, r[1], *(str(int(c) + 1) if c.isdigit() else c for c in r[2:])]
           for r in today]
    out = folder / f"presence_{nxt.replace('-', '')}.csv"
    out.write_text("\n".join([header, ",".join(today[0]), *(",".join(r) for r in new)]) + "\n")
    return f"{out.relative_to(seeds)}: {len(new) + 1} rows ({nxt}, one repeated from {day})"


def elt_state(project: Path) -> dict[str, Any]:
    """Rows of the published model and the latest publish run, read from the staging DB."""
    state: dict[str, Any] = {}
    path = project / "target" / "elt.duckdb"
    if not path.exists():
        return state
    try:
        import duckdb

        with duckdb.connect(str(path), read_only=True) as con:
            for key, sql in (("datasets", "SELECT count(*) FROM flowkit_datasets"),
                             ("last_publish", "SELECT * FROM _elt.publish_runs "
                                              "ORDER BY started DESC LIMIT 1")):
                try:
                    cur = con.execute(sql)
                    row = cur.fetchone()
                    if row is None:  # no publish run yet
                        continue
                    names = [d[0] for d in cur.description]
                    state[key] = row[0] if key == "datasets" else dict(zip(names, row,
                                                                           strict=True))
                except duckdb.Error as exc:
                    state[key + "_error"] = str(exc).splitlines()[0]
    except Exception as exc:  # the harness reports, it does not crash
        state["error"] = f"{type(exc).__name__}: {exc}"
    return state


def slowest_nodes(project: Path, limit: int = 8) -> list[list[Any]]:
    """Where a build spent its time: the slowest nodes of target/run_results.json."""
    try:
        results = json.loads((project / "target" / "run_results.json").read_text())["results"]
        ranked = sorted(results, key=lambda r: -(r.get("seconds") or 0))[:limit]
        return [[r.get("kind"), r.get("name"), round(r.get("seconds") or 0, 2)] for r in ranked]
    except (OSError, ValueError, KeyError, TypeError):
        return []


def run_once(i: int, args: argparse.Namespace, seeds: Path, receiver: Receiver,
             env: dict[str, str]) -> dict[str, Any]:
    """One full round: baseline, replay, elt; each stage its own measured process."""
    run_dir = args.work / f"run-{i}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    logs, base = run_dir / "logs", run_dir / "baseline"
    endpoint = json.dumps(receiver.info["flowkit"])
    stages: dict[str, Measured] = {}
    extra: dict[str, dict[str, Any]] = {}
    notes: dict[str, Any] = {}

    def stage(name: str, cmd: list[str], cwd: Path, result: bool = True,
              network: bool = False) -> Measured:
        rf = run_dir / f"{name}.json" if result else None
        print(f"  run {i}: {name} ...", end=" ", flush=True)
        m = measure(name, cmd, cwd=cwd, log_dir=logs, env=env, timeout=args.stage_timeout,
                    result_file=rf, receiver=receiver if network else None)
        stages[name] = m
        wall = m.report.get("wall_s", m.wall_s)
        print(f"{'ok' if m.ok else 'FAILED'} {wall:.2f} s, {m.peak_rss_mb:.0f} MB", flush=True)
        return m

    nb = str(BENCH / "notebook_baseline.py")
    if "baseline" not in args.skip or "replay" not in args.skip:
        stage("baseline_clean", [PY, nb, "clean", "--seeds", str(seeds), "--work", str(base),
                                 "--result", str(run_dir / "baseline_clean.json")], BENCH)
        b = stage("baseline_build", [PY, nb, "build", "--work", str(base), "--result",
                                     str(run_dir / "baseline_build.json")], BENCH)
        notes["datasets"] = b.report.get("datasets")
    if "baseline" not in args.skip:
        stage("baseline_send", [PY, nb, "send", "--work", str(base), "--endpoint", endpoint,
                                "--result", str(run_dir / "baseline_send.json")], BENCH,
              network=True)
    if "replay" not in args.skip:
        stage("replay", [PY, str(BENCH / "replay.py"), "--datasets",
                         str(base / "datasets.pickle"), "--endpoint", endpoint,
                         "--concurrency", str(args.concurrency), "--result",
                         str(run_dir / "replay.json")], BENCH, network=True)
    shutil.rmtree(base, ignore_errors=True)
    if "plain" not in args.skip:  # the same job as one DuckDB statement: what SQL alone costs
        plain_out = run_dir / "plain.parquet"
        stage("plain_build", [PY, str(BENCH / "plain_duckdb.py"), str(seeds), str(plain_out),
                              "--threads", "2", "--no-fingerprint"], BENCH, result=False)
        plain_out.unlink(missing_ok=True)
    if "elt" not in args.skip:
        project = make_project(run_dir, seeds, receiver, args.concurrency)
        elt = [PY, "-m", "elt.cli"]
        build = [*elt, "build", "--target", "bench"]
        if args.build_select:
            build += ["--select", args.build_select]
        # flowkit_data alone, like the replay: not flowkit_scope_mappings, which reads its
        # answers and would come along (one more request per dataset, to another path)
        publish = [*elt, "publish", "--target", "bench", "--select", "flowkit_data",
                   "--exclude", "flowkit_scope_mappings", "--concurrency", str(args.concurrency)]
        stage("elt_startup", [*elt, "--version"], project, result=False)
        for name, cmd in (("elt_build", build), ("elt_publish", publish),
                          ("elt_noop_build", build), ("elt_noop_publish", publish)):
            stage(name, cmd, project, result=False, network=name.endswith("publish"))
            extra[name] = elt_state(project)
            if name == "elt_build":
                notes["elt_build_nodes"] = slowest_nodes(project)
        try:
            notes["changed"] = change_one_row(project / "seeds")
        except (OSError, RuntimeError) as exc:
            notes["changed_error"] = str(exc)
        for name, cmd in (("elt_change_build", build), ("elt_change_publish", publish)):
            stage(name, cmd, project, result=False, network=name.endswith("publish"))
            extra[name] = elt_state(project)
        shutil.rmtree(project / "seeds", ignore_errors=True)
    if "elt-flowkit" not in args.skip:
        # the FlowKit data path alone, on a fresh database: what the baseline's clean+build do
        project = make_project(run_dir, seeds, receiver, args.concurrency, "project_flowkit")
        stage("elt_build_flowkit", [PY, "-m", "elt.cli", "build", "--target", "bench",
                                    "--select", args.flowkit_select], project, result=False)
        extra["elt_build_flowkit"] = elt_state(project)
        shutil.rmtree(project, ignore_errors=True)
    out: dict[str, Any] = {"run": i, "notes": notes, "stages": {}}
    for name, m in stages.items():
        d = m.to_dict()
        d["elt_state"] = extra.get(name)
        d.update(_counts(name, m, extra.get(name) or {}, notes.get("datasets")))
        if name == "elt_publish" and d["ok"] and not d.get("datasets"):
            d["ok"] = False  # a full publish that sent nothing measured nothing
            out_log = (logs / f"{name}.out").read_text(errors="replace").strip()
            d["error"] = "sent no datasets: " + " ".join(out_log.split())[-600:]
        out["stages"][name] = d
    return out


def _counts(name: str, m: Measured, state: dict[str, Any], fallback: int | None,
            ) -> dict[str, Any]:
    """Datasets a stage handled and how many the receiver acknowledged, where that applies."""
    if "datasets" in m.report:
        return {"datasets": m.report["datasets"], "sent": m.report.get("sent"),
                "acked": m.report.get("ok")}
    if name.endswith("_publish"):
        last = state.get("last_publish") or {}
        sent = last.get("sent")
        return {"datasets": sent if sent is not None or name != "elt_publish" else fallback,
                "sent": sent, "acked": last.get("acknowledged")}
    if name in ("elt_build", "elt_build_flowkit"):
        return {"datasets": state.get("datasets") or fallback, "elt_rows": state.get("datasets")}
    return {}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.work = args.work.resolve()
    env = child_env()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    result: dict[str, Any] = {
        "started": started, "argv": shlex.join(sys.argv[1:] if argv is None else argv),
        "machine": machine(), "errors": [], "runs": [],
        "config": {"scale": args.scale, "runs": args.runs, "concurrency": args.concurrency,
                   "generator": args.generator, "full_size": args.full_size,
                   "build_select": args.build_select, "flowkit_select": args.flowkit_select,
                   "sandbox": args.sandbox,
                   "baseline_chunk": 50},
    }
    data: dict[str, Any] = {"scale": args.scale, "raw_bytes": 0, "raw_mb": 0.0, "files": 0}
    try:
        print(f"generating data (scale {args.scale:g}) ...", flush=True)
        seeds, gen = generate(args, env)
        exports = find_exports(seeds)
        raw = sum(p.stat().st_size for p, _ in exports)
        data.update(generator=gen, raw_bytes=raw, raw_mb=raw / report.MB, files=len(exports))
        print(f"  {len(exports)} exports, {raw / report.MB:.1f} MB", flush=True)
        with Receiver(args.sandbox, env) as receiver:
            print(f"receiver {receiver.info['url']} ({args.sandbox})", flush=True)
            for i in range(1, args.runs + 1):
                t0 = time.perf_counter()
                result["runs"].append(run_once(i, args, seeds, receiver, env))
                print(f"  run {i} done in {time.perf_counter() - t0:.1f} s", flush=True)
    except (Exception, KeyboardInterrupt) as exc:  # report what was measured so far
        result["errors"].append(f"{type(exc).__name__}: {exc}" if str(exc) else "interrupted")
        print(f"error: {exc}", file=sys.stderr)
    clean = [r["stages"].get("baseline_clean", {}).get("report", {}) for r in result["runs"]]
    if clean and clean[0]:
        data.update(rows=clean[0].get("rows_in"), rows_by_category=clean[0].get(
            "rows_by_category"))
    datasets = [r["notes"].get("datasets") for r in result["runs"]]
    data["datasets"] = next((d for d in datasets if d), None)
    elt_counts = [(r["stages"].get("elt_build") or {}).get("elt_rows") for r in result["runs"]]
    data["elt_datasets"] = next((d for d in elt_counts if d), None)
    result["data"] = data
    result["summary"] = report.summarise(result["runs"], data["raw_bytes"], args.build_select)
    result["ratios"] = report.ratios(result["summary"])
    result["goals"] = report.goals(result["ratios"])
    result["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    result["machine"]["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    report.write(result, args.out)
    print(f"wrote {args.out / 'results.md'} and results.json", flush=True)
    return 0 if not result["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
