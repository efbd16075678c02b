"""Medians, ratios and goals over the benchmark runs, written as results.json and results.md.

Kept apart from run.py so the figures can be recomputed from a results.json without
re-running anything: `python bench/report.py bench/results.json`.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

MB = 1_000_000

# (key, label, throughput figures make sense) in table order
STAGES: list[tuple[str, str, bool]] = [
    ("baseline_clean", "baseline: clean (pandas)", True),
    ("baseline_build", "baseline: build datasets (DictReader+dateutil)", True),
    ("baseline_send", "baseline: encode+send (gather x50)", True),
    ("replay", "replay bound (bodies in memory)", True),
    ("plain_build", "plain-DuckDB script (bench/plain_duckdb.py: CSV -> parquet)", True),
    ("elt_startup", "elt --version (CLI start-up, in every elt row)", False),
    ("elt_build", "elt build (full, whole project)", True),
    ("elt_build_flowkit", "elt build --select +flowkit_datasets (full, FlowKit only)", True),
    ("elt_publish", "elt publish --select flowkit_data (full; scope mappings excluded)", True),
    ("elt_noop_build", "elt build (no-op)", False),
    ("elt_noop_publish", "elt publish (no-op)", False),
    ("elt_change_build", "elt build (one changed row)", False),
    ("elt_change_publish", "elt publish (one changed row)", False),
]
COMBOS: dict[str, tuple[str, list[str], bool]] = {
    "baseline_clean_build": ("baseline: clean + build", ["baseline_clean", "baseline_build"],
                             True),
    "baseline_total": ("baseline: all stages", ["baseline_clean", "baseline_build",
                                                "baseline_send"], True),
    "elt_total": ("elt: build + publish (whole project)", ["elt_build", "elt_publish"], True),
    "elt_flowkit_total": ("elt: FlowKit-only build + publish",
                          ["elt_build_flowkit", "elt_publish"], True),
}
GOALS = [
    # (key in ratios, label, comparison, threshold)
    ("build_speedup", "build >= 50x faster than the baseline (clean+build)", ">=", 50.0),
    ("publish_vs_replay", "publish >= 90% of the replay bound (datasets/s)", ">=", 0.90),
    ("noop_build_fraction", "no-op build <= 5% of a full build (wall)", "<=", 0.05),
    ("publish_peak_rss_mb", "peak RSS of publish <= 300 MB", "<=", 300.0),
]


def stage_figures(m: dict[str, Any]) -> dict[str, Any]:
    """One run's figures for one stage: the stage's own timing when it reported one."""
    report = m.get("report") or {}
    return {
        "ok": bool(m.get("ok")),
        "wall_s": report.get("wall_s", m.get("wall_s")),
        "cpu_s": report.get("cpu_s", m.get("cpu_s")),
        "peak_rss_mb": report.get("peak_rss_mb", m.get("peak_rss_mb")),
        "process_wall_s": m.get("wall_s"),
        "process_cpu_s": m.get("cpu_s"),
        "process_peak_rss_mb": m.get("peak_rss_mb"),
        "receiver_cpu_s": m.get("receiver_cpu_s"),
        "datasets": m.get("datasets"),
        "sent": m.get("sent"),
        "acked": m.get("acked"),
    }


def _median(values: list[Any]) -> float | None:
    vals = [v for v in values if isinstance(v, int | float)]
    return statistics.median(vals) if vals else None


def summarise(runs: list[dict[str, Any]], raw_bytes: int,
              build_select: str | None = None) -> dict[str, Any]:
    """Medians per stage over the runs where the stage succeeded, then combos and ratios.
    build_select: run.py's --build-select, named in the labels of the rows it narrows."""
    summary: dict[str, Any] = {}
    labels = {"elt_build": f"elt build --select {build_select} (full)",
              "elt_total": f"elt: build --select {build_select} + publish"} if build_select else {}
    for key, label, throughput in STAGES:
        label = labels.get(key, label)
        per_run = [stage_figures(r["stages"][key]) for r in runs if key in r.get("stages", {})]
        good = [f for f in per_run if f["ok"]]
        row: dict[str, Any] = {"label": label, "runs": len(per_run), "ok_runs": len(good)}
        for metric in ("wall_s", "cpu_s", "peak_rss_mb", "process_wall_s", "process_cpu_s",
                       "process_peak_rss_mb", "receiver_cpu_s", "datasets", "sent", "acked"):
            row[metric] = _median([f[metric] for f in good])
        errors = [r["stages"][key].get("error") for r in runs
                  if key in r.get("stages", {}) and not r["stages"][key].get("ok")]
        if errors:
            row["error"] = errors[-1]
        _throughput(row, raw_bytes, throughput)
        summary[key] = row
    for key, (label, parts, throughput) in COMBOS.items():
        label = labels.get(key, label)
        rows = [summary[p] for p in parts]
        row = {"label": label, "ok_runs": min(r["ok_runs"] for r in rows)}
        for metric in ("wall_s", "cpu_s"):
            vals = [r[metric] for r in rows]
            row[metric] = sum(vals) if all(v is not None for v in vals) else None
        rss = [r["peak_rss_mb"] for r in rows]
        row["peak_rss_mb"] = max(rss) if all(v is not None for v in rss) else None
        row["datasets"] = next((r["datasets"] for r in rows if r["datasets"]), None)
        _throughput(row, raw_bytes, throughput)
        summary[key] = row
    return summary


def _throughput(row: dict[str, Any], raw_bytes: int, applies: bool) -> None:
    wall = row.get("wall_s")
    ok = applies and wall
    row["datasets_per_s"] = row["datasets"] / wall if ok and row.get("datasets") else None
    row["mb_per_s"] = raw_bytes / MB / wall if ok else None


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _sum(*values: float | None) -> float | None:
    return None if any(v is None for v in values) else sum(values)  # type: ignore[arg-type]


def ratios(s: dict[str, Any]) -> dict[str, float | None]:
    """elt against the baseline and against the replay bound; the goals read from here."""
    def get(key: str, metric: str) -> float | None:
        return s.get(key, {}).get(metric)

    flowkit_build = "elt_build_flowkit" if get("elt_build_flowkit", "wall_s") else "elt_build"
    return {
        "build_speedup": _div(get("baseline_clean_build", "wall_s"),
                              get(flowkit_build, "wall_s")),
        "build_speedup_whole_project": _div(get("baseline_clean_build", "wall_s"),
                                            get("elt_build", "wall_s")),
        "build_speedup_plain_script": _div(get("baseline_clean_build", "wall_s"),
                                           get("plain_build", "wall_s")),
        "build_wall_elt_over_plain": _div(get(flowkit_build, "wall_s"),
                                          get("plain_build", "wall_s")),
        "build_cpu_elt_over_plain": _div(get(flowkit_build, "cpu_s"),
                                         get("plain_build", "cpu_s")),
        "build_wall_elt_over_baseline": _div(get(flowkit_build, "wall_s"),
                                             get("baseline_clean_build", "wall_s")),
        "build_cpu_elt_over_baseline": _div(get(flowkit_build, "cpu_s"),
                                            get("baseline_clean_build", "cpu_s")),
        "build_rss_elt_over_baseline": _div(get(flowkit_build, "peak_rss_mb"),
                                            get("baseline_clean_build", "peak_rss_mb")),
        "publish_wall_elt_over_baseline": _div(get("elt_publish", "wall_s"),
                                               get("baseline_send", "wall_s")),
        "publish_cpu_elt_over_baseline": _div(get("elt_publish", "cpu_s"),
                                              get("baseline_send", "cpu_s")),
        "publish_rss_elt_over_baseline": _div(get("elt_publish", "peak_rss_mb"),
                                              get("baseline_send", "peak_rss_mb")),
        "total_wall_elt_over_baseline": _div(get("elt_flowkit_total", "wall_s")
                                             or get("elt_total", "wall_s"),
                                             get("baseline_total", "wall_s")),
        "publish_vs_replay": _div(get("elt_publish", "datasets_per_s"),
                                  get("replay", "datasets_per_s")),
        "baseline_send_vs_replay": _div(get("baseline_send", "datasets_per_s"),
                                        get("replay", "datasets_per_s")),
        "noop_build_fraction": _div(get("elt_noop_build", "wall_s"), get("elt_build", "wall_s")),
        "noop_publish_s": get("elt_noop_publish", "wall_s"),
        "change_fraction": _div(_sum(get("elt_change_build", "wall_s"),
                                     get("elt_change_publish", "wall_s")),
                                get("elt_total", "wall_s")),
        "publish_peak_rss_mb": max(
            (v for v in (get("elt_publish", "peak_rss_mb"),
                         get("elt_change_publish", "peak_rss_mb")) if v is not None),
            default=None),
    }


def goals(r: dict[str, float | None]) -> list[dict[str, Any]]:
    out = []
    for key, label, op, threshold in GOALS:
        value = r.get(key)
        met = None if value is None else (value >= threshold if op == ">=" else value <= threshold)
        out.append({"goal": label, "key": key, "value": value, "threshold": threshold,
                    "met": met})
    return out


def _fmt(v: Any, digits: int = 2) -> str:
    if v is None:
        return "-"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) >= 100):
        return f"{int(v):,}"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.{digits}f}" if abs(v) >= 0.01 or v == 0 else f"{v:.2g}"
    return str(v)


def markdown(result: dict[str, Any]) -> str:
    """results.md: machine, data, one table of medians, the ratios and the goals."""
    m, d, s, r = result["machine"], result["data"], result["summary"], result["ratios"]
    lines = [
        "# elt benchmark results",
        "",
        f"Generated {result['finished']} by `python bench/run.py {result['argv']}`.",
        "",
        f"Machine: {m.get('cores')} cores, {m.get('memory_gib')} GiB memory, "
        f"{m.get('cpu', '?')}; Python {m.get('python')}, DuckDB {m.get('duckdb')}, "
        f"pandas {m.get('pandas')}, httpx {m.get('httpx')}. Load average (1, 5, 15 min) "
        f"at start {m.get('load_avg_at_start')}, at end {m.get('load_avg_at_end')}: other "
        "work on the machine skews the figures.",
        "",
        f"Data: scale {d['scale']}, {d['raw_mb']:.1f} MB of raw CSV in {d['files']} files, "
        f"{_fmt(d.get('rows'))} rows ({_fmt(d.get('rows_by_category'))}), "
        f"{_fmt(d.get('datasets'))} datasets (baseline), {_fmt(d.get('elt_datasets'))} rows "
        f"in elt's flowkit_datasets. Receiver: `{result['config']['sandbox']}` "
        f"(null sink, separate process, loopback). Concurrency: baseline gather x50, elt "
        f"publish and replay {result['config']['concurrency']} in flight.",
        "",
        f"Medians of {result['config']['runs']} run(s).",
        "",
        "| stage | wall s | CPU s | peak RSS MB | datasets | datasets/s | MB/s | "
        "receiver CPU s | acked/sent | ok runs |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in [k for k, _, _ in STAGES[:4]] + ["baseline_clean_build", "baseline_total"] + [
            k for k, _, _ in STAGES[4:]] + ["elt_total", "elt_flowkit_total"]:
        row = s[key]
        total = row.get("runs", result["config"]["runs"])
        runs = f"{row['ok_runs']}/{total}" if total else "skipped"
        acked = "-" if row.get("sent") is None else f"{_fmt(row.get('acked'))}/{_fmt(row['sent'])}"
        lines.append(
            f"| {row['label']} | {_fmt(row['wall_s'])} | {_fmt(row['cpu_s'])} | "
            f"{_fmt(row['peak_rss_mb'], 0)} | {_fmt(row['datasets'])} | "
            f"{_fmt(row['datasets_per_s'], 1)} | {_fmt(row['mb_per_s'])} | "
            f"{_fmt(row.get('receiver_cpu_s'))} | {acked} | {runs} |")
    nodes = next((r["notes"]["elt_build_nodes"] for r in reversed(result["runs"])
                  if r.get("notes", {}).get("elt_build_nodes")), None)
    if nodes:
        lines += ["", "Slowest nodes of the full `elt build` (last run): " + ", ".join(
            f"{name} ({kind}) {secs:.2f} s" for kind, name, secs in nodes) + "."]
    lines += ["", "## Ratios (medians of each side)", "",
              "Build ratios compare the FlowKit-only elt build (when measured) with the "
              "baseline's clean + build.", "", "| ratio | value |", "|---|---:|"]
    for key, value in r.items():
        lines.append(f"| {key} | {_fmt(value, 3)} |")
    lines += ["", "## Goals", "", "| goal | value | met |", "|---|---:|---|"]
    for g in result["goals"]:
        met = {True: "yes", False: "**no**", None: "not measured"}[g["met"]]
        lines.append(f"| {g['goal']} | {_fmt(g['value'], 3)} | {met} |")
    failures = [(s[k]["label"], s[k]["error"]) for k, _, _ in STAGES if s[k].get("error")]
    if failures or result.get("errors"):
        lines += ["", "## Failures", ""]
        for label, error in failures:
            one_line = " ".join(str(error).split())[-400:]
            lines.append(f"- {label}: `{one_line}`")
        for error in result.get("errors", []):
            lines.append(f"- {' '.join(str(error).split())[-400:]}")
    lines += ["", "Baseline and replay rows time the stage proper (measured inside the "
              "process); elt rows time the whole CLI process, start-up included. Peak RSS is "
              "per process (ru_maxrss). MB/s is raw CSV megabytes per wall second. See "
              "bench/README.md.", ""]
    return "\n".join(lines)


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    (out / "results.md").write_text(markdown(result))


def recompute(path: Path) -> None:
    """Rebuild summary, ratios, goals and results.md from the runs in a results.json."""
    result = json.loads(path.read_text())
    result["summary"] = summarise(result["runs"], result["data"]["raw_bytes"],
                                  result.get("config", {}).get("build_select"))
    result["ratios"] = ratios(result["summary"])
    result["goals"] = goals(result["ratios"])
    write(result, path.parent)


if __name__ == "__main__":
    recompute(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results.json"))
