"""Ctrl-C during `elt publish`: the first stops sending at once, the second quits at once.

The first SIGINT raises KeyboardInterrupt in the main thread: the event loop cancels the
requests in flight, the run's `finally` merges every answer received into the ledger and
the CLI exits 130 with one line. A second SIGINT while that merge runs exits the process
there and then; nothing is lost, the answers stay in the journal the next publish merges.

SIGINT is honoured even when the process inherited it ignored (a job started with `&`
from a script, some CI runners): an operator pressing Ctrl-C means it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from types import FrameType

EXIT_INTERRUPTED = 130


@contextlib.contextmanager
def interruptible(note: Callable[[str], None]) -> Iterator[None]:
    """Install the two-step SIGINT handler for the duration of a publish run."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed = 0

    def handler(signum: int, frame: FrameType | None) -> None:
        nonlocal pressed
        pressed += 1
        if pressed > 1:
            sys.stderr.write("error: interrupted again: quitting now (the answers received "
                             "stay in the journal; the next publish merges them)\n")
            sys.stderr.flush()
            os._exit(EXIT_INTERRUPTED)
        note("interrupted: stopping the sends, merging the answers received "
             "(Ctrl-C again to quit at once)")
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
