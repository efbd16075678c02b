"""Endpoint configs by name, for `elt build` (API sources) and `elt publish`.

An endpoint in profiles.yml is either a full mapping (url, auth, ...) or `{sandbox: kind}`
(flowkit | flowkit_admin | uois), which means: run the embedded sandbox in this process on a
free loopback port, storing into `target/sandbox.duckdb`, and fill in its url and
credentials; other keys beside `sandbox:` (timeout, concurrency, ...) override the filled-in
ones. One sandbox serves every caller at a time: API sources fetched on parallel build
threads share it (reference-counted), and it stops when the last one is done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elt.config import Project
from elt.console import Console
from elt.errors import PublishError

if TYPE_CHECKING:
    from elt.sandbox import Sandbox

__all__ = ["open_endpoints", "resolve_configs"]

_lock = threading.Lock()
_running: dict[Path, list[Any]] = {}  # store path -> [Sandbox, number of users]


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
        if not isinstance(raw, dict):
            raise PublishError("endpoint must be a mapping (url, auth, ...) or "
                               "{sandbox: flowkit|flowkit_admin|uois}", where=f"endpoint {name}")
        out[name] = dict(raw)
    return out


@contextmanager
def open_endpoints(project: Project, names: Iterable[str],
                   console: Console) -> Iterator[dict[str, dict[str, Any]]]:
    """Yield {name: endpoint config}; start the embedded sandbox only if one of them needs it."""
    configs = resolve_configs(project, names)
    needs_sandbox = any(cfg.get("sandbox") for cfg in configs.values())
    store = project.target_dir / "sandbox.duckdb"
    sandbox = _acquire(store, console) if needs_sandbox else None
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


def _acquire(store: Path, console: Console) -> Sandbox:
    """Start the sandbox for `store`, or join the one already running in this process."""
    with _lock:
        entry = _running.get(store)
        if entry is None:
            from elt.sandbox import Sandbox

            sandbox = Sandbox(store, "127.0.0.1", 0).start()
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
