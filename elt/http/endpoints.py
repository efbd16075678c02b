"""Endpoint configs by name, for `elt build` (API sources) and `elt publish`.

An endpoint in profiles.yml is either a full mapping (url, auth, ...) or `{sandbox: kind}`
(flowkit | flowkit_admin | uois | crud), which means: run the embedded sandbox in this process on a
free loopback port, storing into `target/sandbox.duckdb`, and fill in its url and
credentials; other keys beside `sandbox:` (timeout, concurrency, ...) override the filled-in
ones. One sandbox serves every caller at a time: API sources fetched on parallel build
threads share it (reference-counted), and it stops when the last one is done.

The HTTP layer does not import the sandbox (a peer, not a dependency): whoever builds the
`Endpoints` (the Context) hands it a `start_sandbox` function.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from elt.core.console import Console
from elt.core.errors import PublishError
from elt.project.config import Project

__all__ = ["Endpoints", "RunningSandbox", "open_endpoints", "resolve_configs"]


class RunningSandbox(Protocol):
    """What endpoints need of a started sandbox (elt.sandbox.server.Sandbox)."""

    url: str

    def endpoint_config(self, kind: str) -> dict[str, Any]: ...

    def stop(self) -> None: ...


StartSandbox = Callable[[Path], RunningSandbox]

_lock = threading.Lock()
_running: dict[Path, list[Any]] = {}  # store path -> [sandbox, number of users]


class Endpoints:
    """The endpoints of one project target, opened by name (see the module docstring)."""

    def __init__(self, project: Project, console: Console,
                 start_sandbox: StartSandbox | None = None) -> None:
        self.project, self.console, self.start_sandbox = project, console, start_sandbox
        self.offline = False  # a build told to leave the APIs alone (`--exclude kind:api`)

    def resolve(self, names: Iterable[str]) -> dict[str, dict[str, Any]]:
        return resolve_configs(self.project, names)

    def open(self, names: Iterable[str]) -> Any:
        return open_endpoints(self.project, names, self.console, self.start_sandbox)



def resolve_configs(project: Project, names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The raw configs of the requested endpoints; an unknown name lists the known ones."""
    configured = project.target.endpoints or {}
    out: dict[str, dict[str, Any]] = {}
    for name in sorted(set(names)):
        if name not in configured:
            known = ", ".join(sorted(configured)) or "none"
            raise PublishError(f"unknown endpoint {name!r}; target {project.target.name} "
                               f"defines: {known}", where="profiles.yml")
        raw = configured[name]
        unset = getattr(raw, "error", None)  # config.UnsetEndpoint: needed now, so raise
        if unset is not None:
            raise unset
        if not isinstance(raw, dict):
            raise PublishError("endpoint must be a mapping (url, auth, ...) or "
                               "{sandbox: flowkit|flowkit_admin|uois|crud}",
                               where=f"endpoint {name}")
        out[name] = dict(raw)
    return out


@contextmanager
def open_endpoints(project: Project, names: Iterable[str], console: Console,
                   start_sandbox: StartSandbox | None = None
                   ) -> Iterator[dict[str, dict[str, Any]]]:
    """Yield {name: endpoint config}; start the embedded sandbox only if one of them needs it."""
    configs = resolve_configs(project, names)
    needs_sandbox = [name for name, cfg in configs.items() if cfg.get("sandbox")]
    if needs_sandbox and start_sandbox is None:
        raise PublishError("no embedded sandbox available here",
                           where=f"endpoint {needs_sandbox[0]}")
    store = project.target_dir / "sandbox.duckdb"
    sandbox = _acquire(store, console, start_sandbox) if needs_sandbox and start_sandbox else None
    try:
        resolved: dict[str, dict[str, Any]] = {}
        for name, cfg in configs.items():
            kind = cfg.get("sandbox")
            if not kind:
                resolved[name] = cfg
                continue
            assert sandbox is not None
            try:
                base = sandbox.endpoint_config(str(kind))
            except ValueError as exc:
                raise PublishError(str(exc), where=f"endpoint {name}") from None
            resolved[name] = {**base, **{k: v for k, v in cfg.items() if k != "sandbox"}}
        yield resolved
    finally:
        if sandbox is not None:
            _release(store, console)


def _acquire(store: Path, console: Console, start_sandbox: StartSandbox) -> RunningSandbox:
    """Start the sandbox for `store`, or join the one already running in this process."""
    with _lock:
        entry = _running.get(store)
        if entry is None:
            sandbox = start_sandbox(store)
            console.info(f"sandbox started at {sandbox.url}")
            entry = _running[store] = [sandbox, 0]
        entry[1] += 1
        return entry[0]


def _release(store: Path, console: Console) -> None:
    with _lock:
        entry = _running[store]
        entry[1] -= 1
        if entry[1] == 0:
            del _running[store]
            url = entry[0].url
            entry[0].stop()
            console.info(f"sandbox at {url} stopped")
