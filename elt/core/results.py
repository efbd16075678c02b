"""Per-node results and the artifacts every run leaves in target/.

Both artifacts carry `schema_version` (bumped when a field changes meaning or goes away, so
a scheduler's parser can refuse what it does not understand) and the run's
`invocation_id` (the same id the log file's lines carry). Both have dbt's shape too
(run-results v6, manifest v12: `metadata`, unique ids `model.<project>.<name>`, dbt's status
words) so tools that read dbt's artifacts read elt's; elt's own fields stay beside them.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from elt.core.log import INVOCATION_ID

STATUSES = ("success", "up_to_date", "warn", "error", "skipped")
RUN_RESULTS_SCHEMA = 2  # 2: dbt's shape; `status` is dbt's word, elt's is `elt_status`
MANIFEST_SCHEMA = 2     # 2: dbt's shape; nodes keyed by unique_id
DBT_SCHEMAS = {"manifest": "https://schemas.getdbt.com/dbt/manifest/v12.json",
               "run_results": "https://schemas.getdbt.com/dbt/run-results/v6.json"}
DBT_VERSION = "1.8.0"  # the dbt release whose artifact versions these are
STATE_DIR = "state"    # target/state/manifest.json: each node as its last good build left it
# elt kinds -> dbt resource types (API sources and published answers are what models read
# from outside: dbt sources; a publication sends a model somewhere: a dbt exposure)
RESOURCE_TYPES = {"model": "model", "seed": "seed", "test": "test", "api": "source",
                  "published": "source", "publication": "exposure"}


def unique_id(project: str, kind: str, name: str) -> str:
    """dbt's unique_id of an elt node: `model.<project>.<name>`, `seed.<project>.<file>`,
    `source.<project>.raw.<name>`, `exposure.<project>.<publication>`."""
    rtype = RESOURCE_TYPES.get(kind, kind)
    if kind == "seed":
        name = name.removeprefix("raw.")
    return f"{rtype}.{project}.{name}"


def dbt_status(kind: str, status: str, rows: int | None) -> str:
    """elt's status in dbt's words: tests pass/fail/warn/error, the rest success/error/
    skipped (up_to_date is a success: the relation is as a build would leave it)."""
    if kind == "test":
        if status in ("success", "up_to_date"):
            return "pass"
        if status == "error":
            return "fail" if rows else "error"
        return status
    return "success" if status in ("success", "up_to_date", "warn") else status


def dbt_metadata(artifact: str, generated_at: str, project: str | None = None,
                 adapter: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"dbt_schema_version": DBT_SCHEMAS[artifact],
                            "dbt_version": DBT_VERSION, "generated_at": generated_at,
                            "invocation_id": INVOCATION_ID, "env": {}}
    if artifact == "manifest":
        meta.update({"project_name": project, "project_id": None, "user_id": None,
                     "send_anonymous_usage_stats": False, "adapter_type": adapter})
    return meta


@dataclass
class NodeResult:
    """What happened to one node (seed, model, test, api source, publication) in a run."""

    name: str
    kind: str
    status: str
    rows: int | None = None
    seconds: float = 0.0
    message: str | None = None
    finished: float = field(default_factory=time.time, compare=False, repr=False)

    @property
    def failed(self) -> bool:
        return self.status == "error"


@dataclass
class RunResults:
    command: str
    started: float = field(default_factory=time.time)
    results: list[NodeResult] = field(default_factory=list)
    skips_fail: bool = False  # publish: a skipped publication (failed tests/upstream) fails
    project: str | None = None  # dbt's package name in unique ids (None: the manifest's)

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
        project = self.project or _manifest_project(target_dir) or target_dir.resolve().parent.name
        now = datetime.now(UTC).isoformat()
        elapsed = round(time.time() - self.started, 3)
        doc: dict[str, Any] = {
            "schema_version": RUN_RESULTS_SCHEMA,
            "invocation_id": INVOCATION_ID,
            "command": self.command,
            "started": datetime.fromtimestamp(self.started, UTC).isoformat(),
            "elapsed": elapsed,
            "counts": counts,
            "metadata": {**dbt_metadata("run_results", now),
                         "invocation_started_at": _iso(self.started)},
            "elapsed_time": elapsed,
            "args": {"which": self.command},
            "results": [_result(r, project) for r in self.results],
        }
        _write_json_atomic(path, doc)
        return path


def _result(r: NodeResult, project: str) -> dict[str, Any]:
    """One entry of results[]: dbt's fields, then elt's (name, kind, elt_status, rows ...)."""
    timing = [{"name": "execute", "started_at": _iso(r.finished - r.seconds),
               "completed_at": _iso(r.finished)}] if r.status != "skipped" else []
    response = {"_message": f"{r.rows} rows", "rows_affected": r.rows} if (
        r.rows is not None) else {}
    return {
        "unique_id": unique_id(project, r.kind, r.name),
        "status": dbt_status(r.kind, r.status, r.rows),
        "timing": timing, "thread_id": "elt", "execution_time": round(r.seconds, 3),
        "adapter_response": response, "message": r.message,
        "failures": r.rows if r.kind == "test" else None,
        "compiled": r.kind in ("model", "test"), "compiled_code": None, "relation_name": None,
        "name": r.name, "kind": r.kind, "elt_status": r.status, "rows": r.rows,
        "seconds": r.seconds,
    }


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _manifest_project(target_dir: Path) -> str | None:
    """The project name the last manifest recorded (a publish writes no manifest)."""
    try:
        with open(target_dir / "manifest.json", encoding="utf-8") as f:
            head = f.read(4096)
    except OSError:
        return None
    found = _PROJECT.search(head)
    return json.loads(found.group(1)) if found else None


def summary_line(results: RunResults) -> str | None:
    """`Done: 3 success, 51 up_to_date in 0.42s` (None when no node ran)."""
    counts = {s: sum(r.status == s for r in results.results) for s in STATUSES}
    parts = ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s])
    return f"Done: {parts} in {time.time() - results.started:.2f}s" if parts else None


def manifest_head(schema_version: int = MANIFEST_SCHEMA,
                  metadata: dict[str, Any] | None = None) -> str:
    """The per-run lines manifest.json starts with, exactly as write_manifest formats them
    (the up-to-date fast path swaps them in front of an unchanged body): elt's header and
    dbt's `metadata` on one line, with this run's invocation id and time."""
    now = datetime.now(UTC).isoformat()
    meta = {**(metadata or {}), "generated_at": now, "invocation_id": INVOCATION_ID}
    return (f'{{\n  "schema_version": {schema_version},\n'
            f'  "invocation_id": {json.dumps(INVOCATION_ID)},\n'
            f'  "generated_at": {json.dumps(now)},\n'
            f'  "metadata": {json.dumps(meta, default=str)},\n')


def write_manifest(target_dir: Path, body: dict[str, Any]) -> Path:
    """target/manifest.json: the header, then the graph's sections (graph/manifest.py)."""
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / "manifest.json"
    meta = body.pop("metadata", None) or dbt_metadata("manifest", "")
    text = json.dumps(body, indent=2, default=str)
    _write_text_atomic(path, manifest_head(MANIFEST_SCHEMA, meta) + text[2:])
    return path


def save_state(target_dir: Path, results: RunResults) -> None:
    """target/state/manifest.json, what `state:` selectors compare with: the manifest's
    entries of the nodes this build left good, the earlier ones of the rest (a node that
    failed, or was not selected, stays modified until a build succeeds with it)."""
    try:
        now = json.loads((target_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    project = results.project or (now.get("metadata") or {}).get("project_name") or ""
    good = {unique_id(project, r.kind, r.name) for r in results.results
            if r.status in ("success", "up_to_date", "warn")}
    path = target_dir / STATE_DIR / "manifest.json"
    try:
        before = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        before = {}
    doc = {"schema_version": now.get("schema_version"), "metadata": now.get("metadata")}
    for section in ("nodes", "sources"):
        kept = {u: e for u, e in (before.get(section) or {}).items()
                if u in (now.get(section) or {})}
        # published.* answers are never built: as the manifest has them (their settings)
        kept.update({u: e for u, e in (now.get(section) or {}).items()
                     if u in good or e.get("kind") == "published"})
        doc[section] = kept
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_json_atomic(path, doc)


def _write_json_atomic(path: Path, doc: Any) -> None:
    _write_text_atomic(path, json.dumps(doc, indent=2, default=str))


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # two runs never share one
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


_PROJECT = re.compile(r'"project_name": ("(?:[^"\\]|\\.)*")')
