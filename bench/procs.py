"""Child processes for the benchmark: one measured process per stage, and the receiver.

Every measured stage is its own process so its peak RSS is its own: os.wait4 returns the
rusage of exactly that child (CPU user+system and ru_maxrss), which RUSAGE_CHILDREN deltas
cannot give for the peak. The receiver runs in a separate process too, so its CPU is not
charged to the client being measured; its own CPU is read from /proc for reference.
"""

from __future__ import annotations

import json
import os
import platform
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Measured:
    """What one stage process cost, seen from outside, plus what it reported about itself."""

    name: str
    ok: bool
    returncode: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    receiver_cpu_s: float | None = None
    error: str | None = None
    report: dict[str, Any] = field(default_factory=dict)  # the stage's own result file
    rss_mb: list[tuple[float, int]] = field(default_factory=list)  # (s, VmRSS) if sampled
    # the program's own peak (VmHWM, sampled): ru_maxrss also counts the parent's resident
    # memory, which the fork copied before the exec (a 400 MB parent: `python -c pass` 369 MB)
    own_peak_rss_mb: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _tail(path: Path, limit: int = 1500) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


def _sample_rss(pid: int, every: float, waiter: threading.Thread, start: float,
                samples: list[tuple[float, int]], hwm: list[int]) -> None:
    """VmRSS every `every` s, and the highest VmHWM seen (kB). Popen returns after the exec,
    so no sample sees the parent's copied pages; a rise in the last interval is missed."""
    status = Path(f"/proc/{pid}/status")
    while waiter.is_alive():
        try:
            fields = {k: v for k, _, v in (x.partition(":") for x in
                                           status.read_text().splitlines())}
            rss, peak = int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
        except (OSError, KeyError, ValueError, IndexError):
            return
        samples.append((round(time.perf_counter() - start, 2), rss // 1024))
        hwm[0] = max(hwm[0], peak)
        time.sleep(every)


def measure(name: str, cmd: list[str], *, cwd: Path, log_dir: Path,
            env: dict[str, str] | None = None, timeout: float = 3600.0,
            result_file: Path | None = None, receiver: Receiver | None = None,
            rss_every: float = 0.05, keep_rss: bool = False) -> Measured:
    """Run `cmd` to completion and measure it; never raises for a failing or hung child.

    The child's VmHWM is sampled every `rss_every` s (`own_peak_rss_mb`: the program's own
    peak); keep_rss: its VmRSS samples too (`rss_mb`: which phase makes the peak)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    out_path, err_path = log_dir / f"{name}.out", log_dir / f"{name}.err"
    if result_file is not None:
        result_file.unlink(missing_ok=True)
    recv0 = receiver.cpu_seconds() if receiver else None
    reaped: dict[str, Any] = {}
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            return Measured(name, False, None, 0.0, 0.0, 0.0, error=f"cannot start: {exc}")

        def reap() -> None:
            _, status, usage = os.wait4(proc.pid, 0)
            reaped.update(status=status, usage=usage, end=time.perf_counter())

        waiter = threading.Thread(target=reap, daemon=True)
        samples: list[tuple[float, int]] = []
        hwm = [0]
        sampler = threading.Thread(target=_sample_rss, daemon=True,
                                   args=(proc.pid, rss_every, waiter, start, samples, hwm))
        waiter.start()
        sampler.start()
        try:
            waiter.join(timeout)
        except KeyboardInterrupt:  # the child is in its own session: Ctrl-C does not reach it
            os.killpg(proc.pid, signal.SIGKILL)
            waiter.join(30)
            raise
        timed_out = waiter.is_alive()
        if timed_out:
            os.killpg(proc.pid, signal.SIGKILL)
            waiter.join(30)
    if not reaped:
        return Measured(name, False, None, timeout, 0.0, 0.0, error="could not reap the child")
    proc.returncode = os.waitstatus_to_exitcode(reaped["status"])
    usage = reaped["usage"]
    m = Measured(
        name=name, ok=proc.returncode == 0 and not timed_out, returncode=proc.returncode,
        wall_s=reaped["end"] - start, cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024, rss_mb=samples if keep_rss else [],
        own_peak_rss_mb=hwm[0] / 1024 if hwm[0] else None,
    )
    if receiver is not None and recv0 is not None:
        recv1 = receiver.cpu_seconds()
        m.receiver_cpu_s = None if recv1 is None else recv1 - recv0
    if timed_out:
        m.error = f"timed out after {timeout:.0f} s"
    elif not m.ok:
        m.error = _tail(err_path) or _tail(out_path) or f"exit code {proc.returncode}"
    if result_file is not None and result_file.exists():
        try:
            m.report = json.loads(result_file.read_text())
        except ValueError as exc:
            m.error = (m.error or "") + f" (unreadable result file: {exc})"
    return m


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


RECEIVER_CODE = """
import importlib, json, sys
module, _, cls = sys.argv[1].partition(":")
Sandbox = getattr(importlib.import_module(module), cls or "Sandbox")
box = Sandbox(None, port=int(sys.argv[2]), null_sink=True)
box.start()
info = {"url": box.url}
for name in ("flowkit", "flowkit_admin", "uois"):
    try:
        info[name] = box.endpoint_config(name)
    except Exception as exc:
        info[name + "_error"] = repr(exc)
print(json.dumps(info), flush=True)
sys.stdin.read()
box.stop()
"""


class Receiver:
    """The sandbox in null-sink mode on loopback, in a separate process, for the whole run."""

    def __init__(self, spec: str, env: dict[str, str], start_timeout: float = 60.0) -> None:
        self.spec, self.env, self.start_timeout = spec, env, start_timeout
        self.proc: subprocess.Popen[str] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Receiver:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", RECEIVER_CODE, self.spec, str(free_port())],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.env, start_new_session=True,
        )
        line: list[str] = []
        reader = threading.Thread(target=lambda: line.append(self.proc.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(self.start_timeout)
        if not line or not line[0].strip():
            self.__exit__()
            err = self.proc.stderr.read() if self.proc.stderr else ""
            raise RuntimeError(f"receiver {self.spec} did not start: {err.strip()[-1500:]}")
        self.info = json.loads(line[0])
        if "flowkit" not in self.info:
            self.__exit__()
            raise RuntimeError(f"receiver has no flowkit endpoint: {self.info}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def cpu_seconds(self) -> float | None:
        """User+system CPU of the receiver process so far (all its threads), from /proc."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime


def machine() -> dict[str, Any]:
    """Cores, memory and versions: the context every figure needs."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version(),
                            "platform": platform.platform(),
                            "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    for module in ("duckdb", "pandas", "httpx"):
        try:
            info[module] = __import__(module).__version__
        except ImportError:
            info[module] = None
    return info
