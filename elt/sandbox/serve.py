"""`elt sandbox serve`: the sandbox in the foreground until SIGTERM, SIGINT or Ctrl-C.

The handlers are installed explicitly: a process started in the background from a script
(`elt sandbox serve &`) inherits SIGINT as ignored, and SIGTERM would otherwise kill it
without closing the store. Either signal stops the server, lets running requests finish
and checkpoints the store, so no `.wal` file is left behind.

While it listens, `address_file` (the project's target/sandbox.json) says where: profiles.yml
reads it with `{{ sandbox_url('/v1') }}`, so `-t local` follows `--port` (0: any free one).
"""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from elt.sandbox.server import Sandbox

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def serve(host: str, port: int, store_path: Path, fresh: bool, echo: Callable[[str], None],
          *, reveal: Callable[[str], None] | None = None, stop: threading.Event | None = None,
          strict_tokens: bool = False, address_file: Path | None = None) -> None:
    """Run until a stop signal (or `stop` is set), printing URLs and credentials. `reveal`
    prints the credential lines: shown, never logged (a project whose real secrets equal
    the sandbox's would otherwise find them in its log)."""
    stop = stop or threading.Event()
    sandbox = Sandbox(store_path, host, port, fresh=fresh, strict_tokens=strict_tokens).start()
    previous: dict[int, Any] = {}
    received: list[str] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        received.append(signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        for sig in STOP_SIGNALS:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        if address_file is not None:
            _write_address(address_file, sandbox)
        for line, secret in _banner(sandbox, store_path, strict_tokens):
            (reveal or echo if secret else echo)(line)
        while not stop.wait(0.5):  # a timed wait lets the main thread run signal handlers
            pass
        echo(f"stopping sandbox ({received[0]})" if received else "stopping sandbox")
    except KeyboardInterrupt:
        echo("stopping sandbox")
    finally:
        if address_file is not None:
            _remove_address(address_file)
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    echo(f"sandbox stopped; store checkpointed: {store_path}")


def _write_address(path: Path, sandbox: Sandbox) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps({"url": sandbox.url, "port": sandbox.port, "pid": os.getpid()}),
                   encoding="utf-8")
    tmp.replace(path)


def _remove_address(path: Path) -> None:
    """The address file goes with the server, unless another serve wrote it since."""
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def _banner(sandbox: Sandbox, store_path: Path,
            strict_tokens: bool) -> list[tuple[str, bool]]:
    """The lines to print, each with whether it holds a credential."""
    fk, admin, uo, crud = (sandbox.endpoint_config(n)
                           for n in ("flowkit", "flowkit_admin", "uois", "crud"))
    crud_header = next(iter(crud["headers"]))
    tokens = "expiry and audience checked" if strict_tokens else "signature only, like the real one"
    lines = [
        f"elt sandbox listening on {sandbox.url}  (store: {store_path})",
        f"FlowKit  base url   {fk['url']}   (heartbeat {fk['url']}/heartbeat)",
        f"         token url  {fk['auth']['token_url']}   audience {fk['auth']['audience']}",
        f"         updater    client_id {fk['auth']['client_id']}  (write:data read:free_data)",
        f"         admin      client_id {admin['auth']['client_id']}  (admin)",
        f"         secret     {fk['auth']['client_secret']}   tokens: {tokens}",
        f"UOIS     graphql    {uo['url']}{uo['graphql_path']}",
        f"         login3     {uo['auth']['login_url']}",
        f"         user       {uo['auth']['username']}  password {uo['auth']['password']}",
        f"CRUD     base url   {crud['url']}   (POST /items, PUT/PATCH/DELETE/GET /items/{{id}})",
        f"         header     {crud_header}: {crud['headers'][crud_header]}   (an API key)",
        f"Control  {sandbox.url}/_sandbox/stats  /_sandbox/faults  /_sandbox/reset",
        "Press Ctrl-C (or send SIGTERM) to stop.",
    ]
    return [(line, " secret " in line or " password " in line or " header " in line)
            for line in lines]

