"""The two-step Ctrl-C of `elt publish` (elt/publish/interrupt.py), in a real process."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import os, signal, sys, time
from elt.publish.interrupt import interruptible
signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited ignored: still honoured
with interruptible(lambda text: print("note:", text, flush=True)):
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
        print("not interrupted", flush=True)
    except KeyboardInterrupt:
        print("merging", flush=True)  # the run's `finally` merging answers
        if sys.argv[1] == "twice":
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
        print("merged", flush=True)
sys.exit(0)
"""


def _run(times: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, times], capture_output=True,
                          text=True, timeout=60)


def test_the_first_ctrl_c_stops_and_lets_the_merge_finish() -> None:
    once = _run("once")
    assert once.returncode == 0, once.stderr
    assert once.stdout.splitlines() == [
        "note: interrupted: stopping the sends, merging the answers received "
        "(Ctrl-C again to quit at once)", "merging", "merged"]


def test_a_second_ctrl_c_quits_at_once_during_the_merge() -> None:
    twice = _run("twice")
    assert twice.returncode == 130, twice.stdout + twice.stderr
    assert "merged" not in twice.stdout.splitlines()
    assert twice.stderr.strip().splitlines() == [
        "error: interrupted again: quitting now (the answers received stay in the journal; "
        "the next publish merges them)"]
