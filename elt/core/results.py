"""Per-node results and the artifacts every run leaves in target/.

Both artifacts carry `schema_version` (bumped when a field changes meaning or goes away, so
a scheduler's parser can refuse what it does not understand) and the run's
`invocation_id` (the same id the log file's lines carry).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elt.core.log import INVOCATION_ID

STATUSES = ("success", "up_to_date", "warn", "error", "skipped")
RUN_RESULTS_SCHEMA = 1
MANIFEST_SCHEMA = 1


@dataclass
class NodeResult:
    """What happened to one node (seed, model, test, api source, publication) in a run."""

    name: str
    kind: str
    status: str
    rows: int | None = None
    seconds: float = 0.0
    message: str | None = None

    @property
    def failed(self) -> bool:
        return self.status == "error"


@dataclass
class RunResults:
    command: str
    started: float = field(default_factory=time.time)
    results: list[NodeResult] = field(default_factory=list)
    skips_fail: bool = False  # publish: a skipped publication (failed tests/upstream) fails

    @property
    def failed(self) -> bool:
        return any(r.failed or (self.skips_fail and r.status == "skipped")
                   for r in self.results)

    def add(self, result: NodeResult) -> None:
        self.results.append(result)

    def write(self, target_dir: Path) -> Path:
        target_dir.mkdir(parents=True, exist_ok=True)
        path = target_dir / "run_results.json"
        counts = {s: sum(r.status == s for r in self.results) for s in STATUSES}
        doc: dict[str, Any] = {
            "schema_version": RUN_RESULTS_SCHEMA,
            "invocation_id": INVOCATION_ID,
            "command": self.command,
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "elapsed": round(time.time() - self.started, 3),
            "counts": counts,
            "results": [asdict(r) for r in self.results],
        }
        _write_json_atomic(path, doc)
        return path


def summary_line(results: RunResults) -> str | None:
    """`Done: 3 success, 51 up_to_date in 0.42s` (None when no node ran)."""
    counts = {s: sum(r.status == s for r in results.results) for s in STATUSES}
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    return f"Done: {parts} in {time.time() - results.started:.2f}s" if parts else None


def manifest_head(schema_version: int = MANIFEST_SCHEMA) -> str:
    """The per-run lines manifest.json starts with, exactly as write_manifest formats them
    (the up-to-date fast path swaps them in front of an unchanged body)."""
    return (f'{{\n  "schema_version": {schema_version},\n'
            f'  "invocation_id": {json.dumps(INVOCATION_ID)},\n'
            f'  "generated_at": {json.dumps(datetime.now(UTC).isoformat())},\n')


def write_manifest(target_dir: Path, nodes: list[dict[str, Any]]) -> Path:
    """target/manifest.json: every node with kind, path, dependencies, config and checksum."""
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / "manifest.json"
    doc = {
        "schema_version": MANIFEST_SCHEMA,
        "invocation_id": INVOCATION_ID,
        "generated_at": datetime.now(UTC).isoformat(),
        "nodes": {n["name"]: n for n in nodes},
    }
    _write_json_atomic(path, doc)
    return path


def _write_json_atomic(path: Path, doc: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two runs never share one
    tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)
