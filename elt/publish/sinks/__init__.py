"""Sink plug-ins, one module per publication kind (like dlt's one folder per destination).

A kind maps to "module:Class" and is imported on first use, so a new kind is one module
plus one line here (or a `register_sink` call), and unused kinds cost nothing.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from elt.core.errors import PublishError
from elt.http.messages import Request
from elt.publish.sinks.base import Outcome, Row, Sink

__all__ = ["Outcome", "Request", "Row", "Sink", "make_sink", "register_sink", "sink_kinds"]

_REGISTRY: dict[str, str | type[Sink]] = {
    "rest": "elt.publish.sinks.rest:RestSink",
    "graphql": "elt.publish.sinks.graphql:GraphQLSink",
}


def register_sink(kind: str, sink: str | type[Sink]) -> None:
    """Add (or replace) a kind: a Sink subclass or its "module:Class" path."""
    _REGISTRY[kind] = sink


def sink_kinds() -> list[str]:
    return sorted(_REGISTRY)


def make_sink(name: str, kind: str, config: dict, base_dir: Path) -> Sink:
    """The sink for one publication; unknown kinds name the publication and the known ones."""
    target = _REGISTRY.get(kind)
    if target is None:
        raise PublishError(f"unknown kind {kind!r}; expected one of: {', '.join(sink_kinds())}",
                           where=f"publication {name}")
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
    return target(name, config, Path(base_dir))
