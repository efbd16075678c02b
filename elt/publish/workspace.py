"""What publish needs of the project API, as a protocol (elt.context.Context satisfies it).

Publish sits below the Context: it receives the project, console, database, graph, endpoints,
a way to rebuild models and the target's engine (elt/transform/engine.py), which computes the
pending sets (in Spark for a Spark target), and never imports the Context itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import duckdb

from elt.core.console import Console
from elt.core.results import RunResults
from elt.graph.dag import Graph
from elt.http.endpoints import Endpoints
from elt.project.config import Project
from elt.transform.engine import Engine


class Workspace(Protocol):
    console: Console

    @property
    def project(self) -> Project: ...

    @property
    def endpoints(self) -> Endpoints: ...

    def connect(self, *, read_only: bool = False) -> duckdb.DuckDBPyConnection: ...

    def graph(self) -> Graph: ...

    def build(self, select: Sequence[str] = (), exclude: Sequence[str] = (),
              full_refresh: bool = False) -> RunResults: ...

    def engine(self, kind: str | None = None, work_dir: Path | None = None) -> Engine:
        """The target's engine (scratch files under work_dir)."""
        ...
