"""The up-to-date fast path: a no-op `elt build` decided from a stamp, before DuckDB loads.

A build that ends with every node fresh (success, up_to_date or warn) leaves
`target/build_stamp.json`: everything that could make the next build with the same
selection do any work, as digests, plus what that no-op would report per node. The next
`elt build` (not `--full-refresh`) compares the stamp with the files and, if all of it still
holds, prints and writes what the no-op would (node lines, run_results.json, manifest.json)
without importing duckdb or parsing a model. Any difference, or any doubt (a missing or
unreadable file, an unknown stamp format), means the normal build runs. The normal build
deletes the stamp before it opens the database, so an interrupted run never leaves one.

What the stamp holds (DESIGN.md, "Up-to-date fast path"):
- the selection (`--select`, `--exclude`) and the rendered target (name, type, path,
  threads, memory_limit) of profiles.yml;
- a digest of the content of profiles.yml and of every file under models/ (a build whose
  API sources read a GraphQL document from elsewhere leaves no stamp), and of size, mtime,
  ctime and inode of every file under seeds/;
- size, mtime and inode of the database file and of its WAL, taken after the build closed
  it: `elt publish`, `elt test` or any other tool writing to it changes them (`elt sql` opens
  it read-only and does not);
- when the first answer of an API source with `max_age` grows old (the build is not a
  no-op from then on; a source with anything to ask leaves no stamp at all);
- the engine: elt's version and the size and mtime of its modules and of duckdb's.

Module kept free of duckdb and the graph: importing it costs only the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import elt
from elt.core import log
from elt.core.console import Console
from elt.core.results import NodeResult, RunResults, summary_line
from elt.project.config import Project

STAMP_FILE = "build_stamp.json"
FORMAT = 1
FRESH = ("success", "up_to_date", "warn")
EXPIRY_MARGIN_S = 1.0  # an API answer this close to max_age counts as expired already
_MANIFEST_HEAD = re.compile(
    r'\A\{\n  "schema_version": (\d+),\n  "invocation_id": "[^"\n]*",\n'
    r'  "generated_at": "[^"\n]*",\n  "metadata": (\{[^\n]*\}),\n')


def now() -> float:
    """The clock the expiry is read against (one place, so a test can move it)."""
    return time.time()


def stamp_path(project: Project) -> Path:
    return project.target_dir / STAMP_FILE


# -- digests ------------------------------------------------------------------------------
def _walk(folder: Path, skip: tuple[str, ...] = ()) -> list[tuple[str, os.stat_result]]:
    """(relative path, stat) of every file under folder, sorted; symlinks followed for files."""
    found: list[tuple[str, os.stat_result]] = []
    if not folder.is_dir():
        return found
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        rel = os.path.relpath(here, folder)
        for name in sorted(files):
            path = os.path.join(here, name)
            try:
                st = os.stat(path)
            except OSError:
                continue  # a dangling link is no file discovery would read
            found.append((name if rel == "." else f"{rel}/{name}", st))
    return found


def _stat_key(st: os.stat_result) -> str:
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def seeds_digest(seeds_dir: Path) -> str:
    """Stat of every file under seeds/ (a new, removed, touched or rewritten file shows)."""
    h = hashlib.sha256()
    for rel, st in _walk(seeds_dir):
        h.update(f"{rel}\0{_stat_key(st)}\n".encode())
    return h.hexdigest()


def files_digest(project: Project, profiles: Path) -> str:
    """Content of profiles.yml and of every file under models/."""
    h = hashlib.sha256()
    models = project.models_dir
    paths = [(str(profiles), profiles)]
    paths += [(f"models/{rel}", models / rel) for rel, _ in _walk(models)]
    for label, path in paths:
        h.update(f"{label}\0".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())  # OSError: the caller's doubt
    return h.hexdigest()


def engine_digest() -> str:
    """elt's version and modules, and the installed duckdb: an upgrade or an edited engine
    may change what a build does with the same files."""
    h = hashlib.sha256(elt.__version__.encode())
    for rel, st in _walk(Path(elt.__file__).parent, skip=("__pycache__",)):
        if rel.endswith(".py"):
            h.update(f"{rel}\0{st.st_size}:{st.st_mtime_ns}\n".encode())
    try:
        from importlib.util import find_spec

        spec = find_spec("duckdb")
        origin = spec.origin if spec else None
        h.update(_stat_key(os.stat(origin)).encode() if origin else b"no duckdb")
    except (ImportError, OSError, ValueError):
        h.update(b"no duckdb")
    return h.hexdigest()


def database_stat(path: Path) -> list[str] | None:
    """Size, mtime, inode of the database file and of its WAL (None: no database)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    try:
        wal = os.stat(f"{path}.wal")
        wal_key = f"{wal.st_size}:{wal.st_mtime_ns}:{wal.st_ino}"
    except OSError:
        wal_key = "no wal"
    return [f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}", wal_key]


def _profiles_path(project: Project, profiles_dir: str | Path | None) -> Path:
    return Path(profiles_dir or project.root).resolve() / "profiles.yml"


def _key(project: Project, select: Sequence[str], exclude: Sequence[str]) -> dict[str, Any]:
    t = project.target
    return {"select": list(select), "exclude": list(exclude), "profile": project.profile_name,
            "target": [t.name, t.type, str(t.path), t.threads, t.memory_limit]}


# -- writing ---------------------------------------------------------------------------------
@dataclass
class Watch:
    """The stamp of one normal build: inputs fingerprinted before the build reads them, so
    a file changed while it runs shows as changed next time (never the other way round)."""

    project: Project
    key: dict[str, Any]
    profiles: Path
    seeds: str | None
    files: str | None
    engine: str

    @classmethod
    def start(cls, project: Project, select: Sequence[str], exclude: Sequence[str],
              profiles_dir: str | Path | None = None) -> Watch:
        """Fingerprint the inputs now (before discovery reads them) and delete the old
        stamp (best effort)."""
        forget(project)
        profiles = _profiles_path(project, profiles_dir)
        try:
            seeds: str | None = seeds_digest(project.seeds_dir)
            files: str | None = files_digest(project, profiles)
        except OSError:
            seeds = files = None
        return cls(project, _key(project, select, exclude), profiles, seeds, files,
                   engine_digest())

    def save(self, results: RunResults, expires: float | None,
             rows: dict[str, int | None]) -> bool:
        """Write the stamp when the build left nothing to do (rows: what the no-op reports
        per node, see settle); True if written."""
        if self.files is None or self.seeds is None or results.command != "build":
            return False
        if any(r.status not in FRESH for r in results.results):
            return False
        target = self.project.target_dir
        database = database_stat(self.project.db_path)
        manifest = _manifest_body(target / "manifest.json")
        if database is None or manifest is None:
            return False
        doc = {"format": FORMAT, "key": self.key, "engine": self.engine,
               "files": self.files, "seeds": self.seeds, "database": database,
               "expires": expires, "manifest": manifest,
               "results": [[r.name, r.kind, rows.get(r.name, r.rows)]
                           for r in results.results]}
        path = stamp_path(self.project)
        try:
            tmp = path.with_name(f".{STAMP_FILE}.{os.getpid()}")
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            os.replace(tmp, path)
        except OSError:
            return False
        return True


def settle(con: Any, project: Project, graph: Any, results: RunResults
           ) -> tuple[float | None, dict[str, int | None]] | None:
    """What the stamp of a clean build needs from the database while it is open: when its
    API sources are next due (sources_due) and the rows a no-op reports per model and test
    (their stored rows: a partitioned or incremental build reports the rows it rewrote).
    None: no stamp (a node failed or was skipped, or a source has something to ask)."""
    if any(r.status not in FRESH for r in results.results):
        return None
    expires = sources_due(con, project, graph, results)
    if expires == 0.0:
        return None
    from elt.transform import nodestate

    states = nodestate.read_all(con)
    rows = {r.name: states[r.name].rows if r.name in states else None
            for r in results.results if r.kind in ("model", "test")}
    return expires, rows


def sources_due(con: Any, project: Project, graph: Any, results: RunResults) -> float | None:
    """When the API sources of a build next have anything to ask (0.0: now, or cannot
    tell: no stamp then); None when never by age alone."""
    api = [r.name for r in results.results if r.kind == "api"]
    if not api:
        return None
    import duckdb

    from elt.core.errors import EltError

    models = project.models_dir.resolve()
    due: list[float] = []
    try:
        from elt.sources.fetch import due_at

        for name in api:
            node = graph.nodes[name]
            document = node.config.get("document")
            if document and not (node.path.parent / str(document)).resolve().is_relative_to(
                    models):
                return 0.0  # a document outside models/ is not in the stamp's digest
            when = due_at(con, project, graph, node)
            if when is not None:
                due.append(when)
    except (ImportError, EltError, duckdb.Error, OSError) as exc:
        log.root.info("no up-to-date stamp: cannot tell when API sources are due (%s)", exc)
        return 0.0
    return min(due) if due else None


def forget(project: Project) -> None:
    try:
        stamp_path(project).unlink(missing_ok=True)
    except OSError:
        pass


def _manifest_parts(path: Path) -> tuple[str, str] | None:
    """manifest.json as (per-run header: schema, invocation id, time; the rest), or None."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    head = _MANIFEST_HEAD.match(text)
    return None if head is None else (text[:head.end()], text[head.end():])


def _manifest_body(path: Path) -> str | None:
    """Digest of manifest.json after its per-run header (invocation id, time)."""
    parts = _manifest_parts(path)
    return None if parts is None else hashlib.sha256(parts[1].encode()).hexdigest()


# -- the fast path ---------------------------------------------------------------------------
def replay(project: Project, select: Sequence[str], exclude: Sequence[str], console: Console,
           profiles_dir: str | Path | None = None) -> RunResults | None:
    """The no-op build from the stamp, or None when anything may differ (then build)."""
    started = time.time()
    reason = _stale(project, select, exclude, profiles_dir)
    if isinstance(reason, str):
        log.root.info("up-to-date check: %s; building", reason)
        return None
    doc = reason
    results = RunResults(command="build", started=started)
    for name, kind, rows in doc["results"]:
        results.add(NodeResult(name, kind, "up_to_date", rows, 0.0, None))
    target = project.target_dir
    if not _rewrite_manifest(target / "manifest.json", doc["manifest"]):
        log.root.info("up-to-date check: manifest.json changed; building")
        return None
    log.root.info("up-to-date check: nothing changed since the last build (%s)", STAMP_FILE)
    if not results.results:
        console.info("nothing selected")
    console.plan(len(results.results))
    for r in results.results:
        console.node_start(r.kind, r.name)
        console.node(r.kind, r.name, r.status, rows=r.rows, seconds=0.0)
    console.plan(0)
    results.write(target)
    line = summary_line(results)
    if line:
        console.info(line)
    return results


def _stale(project: Project, select: Sequence[str], exclude: Sequence[str],
           profiles_dir: str | Path | None) -> str | dict[str, Any]:
    """Why the stamp does not hold (a reason), or the stamp itself."""
    if project.target.type != "duckdb":
        return f"target type {project.target.type}"
    try:
        doc = json.loads(stamp_path(project).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "no stamp of an earlier build"
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        return "stamp of another format"
    if doc.get("key") != _key(project, select, exclude):
        return "selection or target changed"
    expires = doc.get("expires")
    if expires is not None and now() >= float(expires) - EXPIRY_MARGIN_S:
        return "an API source's answers reached max_age"
    if doc.get("database") != database_stat(project.db_path):
        return "the database was written since"
    if doc.get("engine") != engine_digest():
        return "elt or duckdb changed"
    try:
        files = files_digest(project, _profiles_path(project, profiles_dir))
        seeds = seeds_digest(project.seeds_dir)
    except OSError as exc:
        return f"cannot read {exc.filename or exc}"
    if doc.get("files") != files:
        return "profiles.yml or a file under models/ changed"
    if doc.get("seeds") != seeds:
        return "a file under seeds/ changed"
    if not isinstance(doc.get("results"), list):
        return "stamp without results"
    return doc


def _rewrite_manifest(path: Path, body_digest: str) -> bool:
    """manifest.json as the no-op writes it: same nodes, this run's invocation id and time."""
    parts = _manifest_parts(path)
    if parts is None or hashlib.sha256(parts[1].encode()).hexdigest() != body_digest:
        return False
    header, body = parts
    head = _MANIFEST_HEAD.match(header)
    assert head is not None
    from elt.core.results import manifest_head

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(manifest_head(int(head.group(1)), json.loads(head.group(2))) + body,
                       encoding="utf-8")
        tmp.replace(path)
    except OSError:
        return False
    return True
