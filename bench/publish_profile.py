"""Where `elt publish` spends its CPU, per thread: sampled, not timed (py-spy is not here).

Against the null-sink receiver (a separate process, as in run.py), on a project whose
`flowkit_datasets` is already built, `elt publish --select flowkit_data --exclude
flowkit_scope_mappings` runs in this process while a sampler thread reads, every
`--interval` seconds (with `--sample`; without it publish runs as its own process, only
measured), each thread's CPU time (/proc/self/task/<tid>/stat) and its innermost
Python frames (sys._current_frames). Printed: CPU-s per thread (event loop, encoders,
reader, DuckDB), the receiver's CPU-s, and per thread the functions it was seen running in
(only samples where the thread's CPU time moved count as busy).

    python bench/publish_profile.py PROJECT_DIR [--pairs 3] [--out FILE.json]

Each publish runs on a fresh copy of PROJECT_DIR without its ledger (every dataset is
sent), then `replay.py` sends the same payloads (flowkit_datasets' as dicts, gzipped by it)
to the same receiver: `--pairs N` alternating pairs, each with its load average.
"""

from __future__ import annotations

import argparse
import collections
import io
import json
import os
import pickle
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from procs import Receiver, measure
from run import BENCH, child_env, write_profiles

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(tid: int) -> float:
    try:
        fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def proc_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Sampler(threading.Thread):
    """Per thread: last CPU seen, and the frames it was busy in."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True, name="sampler")
        self.interval, self.stop = interval, threading.Event()
        self.cpu: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.busy: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter)
        # threads older than the publish (the main thread): count their CPU from here on
        self.start = {int(t): thread_cpu(int(t)) for t in os.listdir("/proc/self/task")}

    def run(self) -> None:
        me = threading.get_native_id()
        while not self.stop.wait(self.interval):
            by_ident = {t.ident: t for t in threading.enumerate()}
            frames = sys._current_frames()
            for tid in os.listdir("/proc/self/task"):
                n = int(tid)
                if n == me:
                    continue
                before, now = self.cpu.get(n, 0.0), thread_cpu(n)
                self.cpu[n] = now
                if n not in self.names:
                    self.names[n] = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
                if now <= before:
                    continue
                for ident, t in by_ident.items():
                    if t.native_id == n:
                        self.names[n] = t.name
                        frame = frames.get(ident)
                        self.busy[t.name].update([where(frame)])


def where(frame: Any) -> str:
    """The innermost two frames as module:function."""
    parts = []
    while frame is not None and len(parts) < 2:
        code = frame.f_code
        parts.append(f"{Path(code.co_filename).stem}:{code.co_name}")
        frame = frame.f_back
    return " < ".join(parts) or "?"


def group(name: str) -> str:
    for prefix in ("ThreadPoolExecutor", "read-", "asyncio", "MainThread", "sampler"):
        if name.startswith(prefix):
            return prefix
    return name if not name.isdigit() else "native"


def fresh_copy(project: Path, work: Path) -> None:
    """The built project without its ledger, so that publish sends every dataset."""
    import duckdb

    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(project, work, ignore=shutil.ignore_patterns("logs", "*.wal", "publish"))
    with duckdb.connect(str(work / "target" / "elt.duckdb")) as con:
        for (name,) in con.execute("SELECT table_name FROM information_schema.tables WHERE "
                                   "table_schema = '_elt' AND (table_name LIKE 'ledger%' OR "
                                   "table_name LIKE 'publish%')").fetchall():
            con.execute(f'DROP TABLE _elt."{name}"')


def replay_pickle(project: Path, out: Path) -> None:
    """The replay's datasets: flowkit_datasets' payloads as dicts (what the notebook holds)."""
    import duckdb

    with duckdb.connect(str(project / "target" / "elt.duckdb"), read_only=True) as con:
        payloads = [json.loads(r[0]) for r in con.execute(
            "SELECT payload FROM flowkit_datasets").fetchall()]
    with out.open("wb") as f:
        pickle.dump(payloads, f, protocol=pickle.HIGHEST_PROTOCOL)


def publish_once(work: Path, receiver: Receiver, args: argparse.Namespace) -> dict[str, Any]:
    from elt.context import Context
    from elt.core.console import Console

    assert receiver.proc is not None
    write_profiles(work, receiver, args.concurrency)
    r0 = proc_cpu(receiver.proc.pid)
    sampler = Sampler(args.interval)
    out = io.StringIO()
    ctx = Context(work, target="bench", console=Console(out=out, err=out, color=False))
    sampler.start()
    wall0, cpu0 = time.monotonic(), time.process_time()
    results = ctx.publish(select=["flowkit_data"], exclude=["flowkit_scope_mappings"],
                          concurrency=args.concurrency)
    wall, cpu = time.monotonic() - wall0, time.process_time() - cpu0
    sampler.stop.set()
    sampler.join()
    sent = sum(r.rows or 0 for r in results.results if r.kind == "publication")
    threads: dict[str, float] = collections.defaultdict(float)
    for tid, seconds in sampler.cpu.items():
        threads[group(sampler.names.get(tid, str(tid)))] += seconds - sampler.start.get(tid, 0.0)
    return {"ok": not results.failed, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "sent": sent, "datasets_per_s": round(sent / wall, 1) if wall else None,
            "receiver_cpu_s": round(proc_cpu(receiver.proc.pid) - r0, 2),
            "cpu_s_by_thread": {k: round(v, 2) for k, v in sorted(threads.items())},
            "busy_in": {name: dict(c.most_common(12)) for name, c in sampler.busy.items()},
            "load_average": os.getloadavg()[0]}


def publish_process(work: Path, receiver: Receiver,
                    args: argparse.Namespace) -> dict[str, Any]:
    """`elt publish` as its own process, not sampled: the figure beside the replay."""
    import duckdb

    write_profiles(work, receiver, args.concurrency)
    load = os.getloadavg()[0]
    elt = str(Path(sys.executable).with_name("elt"))
    m = measure("elt_publish", [elt, "publish", "--target", "bench", "--select", "flowkit_data",
                                "--exclude", "flowkit_scope_mappings", "--concurrency",
                                str(args.concurrency)],
                cwd=work, log_dir=work.parent / "publish-logs", receiver=receiver,
                keep_rss=True)
    with duckdb.connect(str(work / "target" / "elt.duckdb"), read_only=True) as con:
        sent = int((con.execute("SELECT sum(sent) FROM _elt.publish_runs").fetchone()
                    or [0])[0] or 0)
    return {"ok": m.ok, "wall_s": round(m.wall_s, 2), "cpu_s": round(m.cpu_s, 2), "sent": sent,
            "datasets_per_s": round(sent / m.wall_s, 1), "peak_rss_mb": round(m.peak_rss_mb),
            "own_peak_rss_mb": m.own_peak_rss_mb and round(m.own_peak_rss_mb),
            "receiver_cpu_s": m.receiver_cpu_s, "load_average": load, **rss_phases(work, m)}


def rss_phases(work: Path, m: Any) -> dict[str, Any]:
    """Where the peak is: the highest sampled VmRSS before the first request (start-up,
    classification, the bodies copy: the log's first `POST`) and while sending."""
    log = work / "target" / "logs" / "elt.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    first = None  # seconds from the start to the first data request, on the samples' clock
    lines = [x for x in text.splitlines() if x[:4].isdigit()]
    posts = [x for x in lines if " elt.http " in x and " POST " in x and "/oauth/" not in x]
    if m.rss_mb and lines and posts:
        def at(line: str) -> float:  # the log's clock is not the sampler's: scale its share
            return datetime.fromisoformat(line.split()[0]).timestamp()
        span = at(lines[-1]) - at(lines[0]) or 1.0
        first = (at(posts[0]) - at(lines[0])) / span * m.rss_mb[-1][0]
    before = [mb for t, mb in m.rss_mb if first is None or t <= first]
    after = [mb for t, mb in m.rss_mb if first is not None and t > first]
    return {"rss_peak_before_sending_mb": max(before, default=None),
            "rss_peak_while_sending_mb": max(after, default=None),
            "first_request_s": None if first is None else round(first, 1)}


def replay_once(datasets: Path, receiver: Receiver, args: argparse.Namespace,
                result: Path) -> dict[str, Any]:
    assert receiver.proc is not None
    load = os.getloadavg()[0]
    r0 = proc_cpu(receiver.proc.pid)
    subprocess.run([sys.executable, str(BENCH / "replay.py"), "--datasets", str(datasets),
                    "--endpoint", json.dumps(receiver.info["flowkit"]), "--concurrency",
                    str(args.concurrency), "--result", str(result)], check=True)
    got = json.loads(result.read_text())
    return {"wall_s": round(got["wall_s"], 2), "cpu_s": round(got["cpu_s"], 2),
            "sent": got["datasets"], "datasets_per_s": round(got["datasets"] / got["wall_s"], 1),
            "receiver_cpu_s": round(proc_cpu(receiver.proc.pid) - r0, 2),
            "load_average": load}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("project", type=Path)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--interval", type=float, default=0.005)
    ap.add_argument("--pairs", type=int, default=1, help="publish + replay pairs, alternating")
    ap.add_argument("--sandbox", default="elt.sandbox.server:Sandbox")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--sample", action="store_true",
                    help="publish in this process, sampled (slower: the sampler costs CPU)")
    args = ap.parse_args(argv)
    project = args.project.resolve()
    work = project.parent / "publish-profile"
    datasets = project.parent / "replay-datasets.pickle"
    if not datasets.exists():  # ~2 min at scale 1: made once, in a child: it holds every
        # payload as a dict, and a publish forked from a parent that did reported the
        # parent's RSS as its own ru_maxrss (422 MB in session 15; its own peak: ~260 MB)
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from publish_profile import replay_pickle; "
                        "replay_pickle(Path(sys.argv[1]), Path(sys.argv[2]))",
                        str(project), str(datasets)], check=True, cwd=BENCH, env=child_env())
    pairs = []
    with Receiver(args.sandbox, child_env()) as receiver:
        for _ in range(args.pairs):
            fresh_copy(project, work)
            elt = (publish_once if args.sample else publish_process)(work, receiver, args)
            replay = replay_once(datasets, receiver, args, project.parent / "replay.json")
            pairs.append({"elt": elt, "replay": replay, "publish_over_replay": round(
                elt["datasets_per_s"] / replay["datasets_per_s"], 3)})
    ratios = [p["publish_over_replay"] for p in pairs]
    report = {"median_publish_over_replay": statistics.median(ratios), "ratios": ratios,
              "pairs": pairs}
    text = json.dumps(report, indent=1)
    if args.out:
        args.out.write_text(text + "\n")
    sys.stdout.write(text + "\n")
    return 0 if all(p["elt"]["ok"] for p in pairs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
