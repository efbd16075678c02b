"""Running the DAG: seeds, API sources, models and their tests, in dependency order.

Independent nodes run concurrently on `target.threads` workers, each with its own DuckDB
cursor. Heavy SELECTs run in parallel; everything that writes shared state (seed loads, the
swap of a model, `_elt.nodes`) is serialised by one lock so transactions never conflict.
A node is skipped when nothing it reads changed since its last success (see DESIGN.md).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from elt.core import db, diskfull
from elt.core.console import Console
from elt.core.errors import EltError
from elt.core.results import (
    NodeResult,
    RunResults,
    save_state,
    summary_line,
    write_manifest,
)
from elt.graph.dag import Graph, Node
from elt.http.endpoints import Endpoints
from elt.project.config import Project
from elt.project.modelfile import str_list
from elt.transform import compiled, materialize, nodestate
from elt.transform.engine import Engine, Step
from elt.transform.nodestate import NodeState
from elt.transform.snapshot import Snapshot

FAILED = ("error", "skipped")


@dataclass
class Outcome:
    """What a worker reports back to the scheduler for one node."""

    status: str                       # success | up_to_date | error
    rows: int | None = None
    message: str | None = None
    display: str | None = None        # console status when it differs (tests: pass/fail/warn)
    details: list[str] = field(default_factory=list)
    seconds: float = 0.0


def run_build(
    con: duckdb.DuckDBPyConnection,
    project: Project,
    graph: Graph,
    console: Console,
    *,
    select: Sequence[str] = (),
    exclude: Sequence[str] = (),
    full_refresh: bool = False,
    command: str = "build",
    endpoints: Endpoints | None = None,
    engine: Engine,
) -> RunResults:
    """Build (or, for command="test", only test) the selected nodes with `engine` (DuckDB
    or Spark, elt/engines/); never raises per node."""
    results = RunResults(command=command, project=graph.project_name)
    deferred: db.DeferredCheckpoint | None = None
    unwritten: EltError | None = None
    try:
        names = plan(graph, select, exclude, command)
        prepare(con, graph, console)
        if not names:
            console.info("nothing selected")
        else:
            deferred = db.DeferredCheckpoint(con, project.target.checkpoint_every)
            endpoints = endpoints or Endpoints(project, console)
            endpoints.offline = bool(exclude) and ("kind:api" in exclude or any(
                graph.nodes[n].kind == "api" for n in graph.select(exclude)))  # no API calls
            engine.start(con, graph, names)
            _Runner(con, project, graph, console, results, full_refresh, command,
                    endpoints, engine, deferred).run(names)
    finally:
        console.plan(0)  # later lines (publish) are not part of this run's `N of M`
        if deferred is not None:  # the tables first: run_results.json may find no space
            unwritten = _checkpoint(deferred, console, project.db_path)
        results.write(project.target_dir)
        write_manifest(project.target_dir, graph.manifest())
        if command == "build" and unwritten is None:
            save_state(project.target_dir, results)
    _summary(console, results)
    if unwritten is not None:  # the run's tables never reached the file: not a success
        raise unwritten
    return results


def _checkpoint(deferred: db.DeferredCheckpoint, console: Console,
                path: Path) -> EltError | None:
    """Write what the run committed into the database file (until then it is in the WAL,
    or without one (a build) only in DuckDB's buffer pool); the error when that failed."""
    try:
        seconds = deferred.finish()
    except duckdb.Error as exc:
        full = diskfull.describe(exc, path)
        if full:
            return EltError(full)
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        return EltError(f"the build's tables could not be written to the database file "
                        f"(checkpoint failed: {first}); the last checkpointed tables stay "
                        "readable and the next build redoes the rest", where=str(path))
    if seconds >= 1.0:
        console.info(f"database file written (checkpoint) in {seconds:.1f}s")
    return None


def plan(graph: Graph, select: Sequence[str], exclude: Sequence[str], command: str) -> list[str]:
    """Selected nodes plus the tests of selected models (dbt's eager indirect selection),
    minus exclusions, in DAG order; an excluded model takes its tests with it."""
    chosen = set(graph.select(select, exclude))
    excluded = set(graph.select(exclude)) if exclude else set()
    kinds = {n: graph.nodes[n].kind for n in chosen}
    if command == "test":
        run = {n for n in chosen if kinds[n] == "test"}
    else:
        run = {n for n in chosen if kinds[n] != "published"}
    run |= set(graph.tests_for(n for n in chosen if kinds[n] != "test"))
    run -= excluded | set(graph.tests_for(excluded))
    return [n for n in graph.order if n in run]


def prepare(con: duckdb.DuckDBPyConnection, graph: Graph, console: Console) -> None:
    """Schemas, state tables, the ledger views models may read; drop a crashed run's temps."""
    from elt.core.state import ensure_ledger
    from elt.load import loader as load

    load.ensure_state(con)
    db.ensure_schemas(con)
    nodestate.ensure(con)
    publications = {node.identifier: str_list(node.config.get("key"), "key", str(node.path))
                    for node in graph.nodes.values() if node.kind == "published"}
    ensure_ledger(con, publications)
    for name in materialize.drop_leftovers(con):
        console.warn(f"dropped {name} left over by an interrupted run")


def _summary(console: Console, results: RunResults) -> None:
    line = summary_line(results)
    if line:
        console.info(line)
    for result in results.results:
        if result.status == "error":
            console.error(result.message or f"{result.kind} {result.name} failed")


class _Runner:
    """Schedules nodes on a thread pool as their dependencies finish."""

    def __init__(self, con: duckdb.DuckDBPyConnection, project: Project, graph: Graph,
                 console: Console, results: RunResults, full_refresh: bool,
                 command: str, endpoints: Endpoints, engine: Engine,
                 deferred: db.DeferredCheckpoint | None = None) -> None:
        self.con, self.project, self.graph, self.console = con, project, graph, console
        self.results, self.full_refresh, self.command = results, full_refresh, command
        self.endpoints, self.engine, self.deferred = endpoints, engine, deferred
        self.lock = threading.Lock()
        self.workers = max(1, min(int(project.target.threads or 1),
                                  engine.workers or int(project.target.threads or 1)))
        self.test_status: dict[str, dict[str, str]] = {}
        self.in_run: set[str] = set()
        self.snapshot = Snapshot(con)

    # -- scheduling ----------------------------------------------------------------------
    def run(self, names: list[str]) -> None:
        in_run = self.in_run = set(names)
        deps = {n: [d for d in self.graph.run_after(n) if d in in_run] for n in names}
        done: dict[str, str] = {}
        blame: dict[str, str] = {}
        pending = list(names)
        running: dict[Future[Outcome], tuple[str, Any]] = {}
        self.console.plan(len(names))
        with ThreadPoolExecutor(self.workers, thread_name_prefix="elt-build") as pool:
            try:
                while pending or running:
                    progressed = True
                    while progressed:
                        progressed = False
                        for name in [n for n in pending if all(d in done for d in deps[n])]:
                            pending.remove(name)
                            bad = next((d for d in deps[name] if done[d] in FAILED), None)
                            if bad is not None:
                                blame[name] = blame.get(bad, bad)
                                done[name] = self._skip(name, blame[name], done[blame[name]])
                                progressed = True
                            else:
                                cur = db.LoggedCursor(self.con.cursor(), name)
                                self.console.node_start(self.graph.nodes[name].kind, name)
                                running[pool.submit(self._execute, name, cur)] = (name, cur)
                    if not running:
                        if pending:
                            raise RuntimeError(f"scheduler stuck on {', '.join(pending)}")
                        break
                    finished, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in finished:
                        name, cur = running.pop(future)
                        cur.close()
                        done[name] = self._finish(name, future.result())
            except BaseException:
                for _, cur in running.values():
                    cur.interrupt()
                raise

    def _skip(self, name: str, culprit: str, culprit_status: str) -> str:
        node = self.graph.nodes[name]
        up = self.graph.nodes[culprit]
        verb = "failed" if culprit_status == "error" else "was skipped"
        message = f"upstream {up.kind} {culprit} {verb}"
        with self.lock:
            nodestate.record_status(self.con, name=name, kind=node.kind, status="skipped",
                                    message=message)
        self.console.node(node.kind, name, "skipped", message=message)
        self.results.add(NodeResult(name, node.kind, "skipped", None, 0.0, message))
        self.snapshot.dirty.add(name)
        self._track_test(node, "skipped")
        return "skipped"

    def _finish(self, name: str, out: Outcome) -> str:
        """Report a finished node (main thread only, so output lines never interleave)."""
        node = self.graph.nodes[name]
        if out.display == "warn" and out.message:
            self.console.warn(out.message)
        self.console.node(node.kind, name, out.display or out.status, rows=out.rows,
                          seconds=out.seconds, message=out.message)
        for line in out.details:
            self.console.info(f"      {line}")
        self.results.add(NodeResult(name, node.kind, out.status, out.rows,
                                    round(out.seconds, 3), out.message))
        self._track_test(node, out.status)
        if out.status != "up_to_date":
            self.snapshot.dirty.add(name)  # its dependents, scheduled after this, re-read it
            self._durable()
        return out.status

    def _durable(self) -> None:
        """A checkpoint between nodes when one is due (db.DeferredCheckpoint.due)."""
        if self.deferred is None:
            return
        try:
            with self.lock:
                self.deferred.due()
        except duckdb.Error as exc:  # the run goes on; its end checkpoints again
            self.console.warn(f"checkpoint failed, retried at the end of the run: {exc}")

    def _track_test(self, node: Node, status: str) -> None:
        """Set the owner's tests_ok once its tests have answered (false on any failure)."""
        if node.kind != "test" or not node.owner:
            return
        seen = self.test_status.setdefault(node.owner, {})
        seen[node.name] = status
        expected = self.graph.tests_of.get(node.owner, [])
        if status == "error":
            ok: bool | None = False
        elif len(seen) == len(expected) and all(s in ("success", "up_to_date", "warn")
                                                for s in seen.values()):
            ok = True if any(s in ("success", "warn") for s in seen.values()) else None
        else:
            ok = None  # still waiting, or a test was skipped: leave it as it is
        if ok is not None:
            with self.lock:
                nodestate.set_tests_ok(self.con, node.owner, ok)

    # -- one node (worker thread) --------------------------------------------------------
    def _execute(self, name: str, cur: db.LoggedCursor) -> Outcome:
        node = self.graph.nodes[name]
        started = time.monotonic()
        label = f"{'api source' if node.kind == 'api' else node.kind} {name}"
        try:
            missing = self._missing_inputs(cur, node)
            if missing:
                out = Outcome("skipped", message=f"needs {missing}, which is not selected "
                              "and has not been built yet")
            else:
                runner = {"seed": self._seed, "api": self._api, "model": self._model,
                          "test": self._test}[node.kind]
                out = runner(cur, node, started)
            if node.kind in ("model", "test"):
                for sql in self.engine.ran(cur, node):
                    compiled.write(self.project.target_dir, name, sql)
                    db.sql_log.info("%s ran:\n%s", name, sql.rstrip(), extra={"node": name})
        except EltError as exc:
            text = self.console.failure(exc)
            named = re.search(rf"\b{re.escape(node.identifier)}\b", text) or name in text
            out = Outcome("error", message=text if named else f"{label}: {text}")
        except duckdb.Error as exc:
            self.console.failure(exc)
            message, details = compiled.describe_error(exc, node, cur.failed_sql,
                                                       self.project.root, label)
            out = Outcome("error", message=message, details=details)
        out.seconds = time.monotonic() - started
        if out.status in FAILED:
            with self.lock:
                nodestate.record_status(cur, name=name, kind=node.kind, status=out.status,
                                        message=out.message, seconds=round(out.seconds, 3))
        return out

    def _seed(self, cur: duckdb.DuckDBPyConnection, node: Node, started: float) -> Outcome:
        from elt.load import loader as load

        with self.lock:
            loaded = load.load_seed(cur, self.project, node.spec, full_refresh=self.full_refresh,
                                    console=self.console)
            stored = nodestate.read(cur, node.name)
            if loaded.status != "up_to_date" or stored is None or stored.status != "success":
                nodestate.record_success(
                    cur, name=node.name, kind="seed", checksum=node.checksum,
                    version=load.seed_version(cur, node.spec.name), inputs={},
                    rows=loaded.rows, seconds=round(time.monotonic() - started, 3),
                    message=loaded.message)
        self.engine.handed(cur, node)
        return Outcome(loaded.status, rows=loaded.rows, message=loaded.message)

    def _api(self, cur: duckdb.DuckDBPyConnection, node: Node, started: float) -> Outcome:
        # lazily: httpx and graphql cost imports
        from elt.sources.fetch import fetch_source, published_inputs

        inputs = self._inputs(cur, node)
        self.engine.before_fetch(cur, node)
        # Not under the lock: fetching is network-bound; sources write their own raw table.
        fetched = fetch_source(cur, self.project, node, self.console, self.endpoints,
                               full_refresh=self.full_refresh,
                               published=published_inputs(self.graph, node))
        with self.lock:
            stored = nodestate.read(cur, node.name)
            if fetched.status != "up_to_date" or stored is None or stored.status != "success":
                nodestate.record_success(
                    cur, name=node.name, kind="api", checksum=node.checksum,
                    version=(stored.version or 0) + 1 if stored else 1, inputs=inputs,
                    rows=fetched.rows, seconds=round(time.monotonic() - started, 3),
                    message=fetched.message)
        self.engine.handed(cur, node)
        return Outcome(fetched.status, rows=fetched.rows, message=fetched.message)

    def _model(self, cur: duckdb.DuckDBPyConnection, node: Node, started: float) -> Outcome:
        stored = self.snapshot.state(cur, node.name)
        inputs = self._inputs(cur, node)
        if self._fresh(cur, node, stored, inputs):
            self.engine.keep(cur, node)
            return Outcome("up_to_date", rows=stored.rows if stored else None)
        built = self.engine.materialize(cur, self._step(node, stored, inputs, started))
        return Outcome("success", rows=built.rows, message=built.message)

    def _step(self, node: Node, stored: NodeState | None, inputs: dict[str, int | None],
              started: float) -> Step:
        return Step(node, stored, inputs, self.full_refresh, self.lock, started, self.command)

    def _test(self, cur: duckdb.DuckDBPyConnection, node: Node, started: float) -> Outcome:
        stored = self.snapshot.state(cur, node.name)
        inputs = self._inputs(cur, node)
        if self.command == "build" and self._fresh(cur, node, stored, inputs):
            return Outcome("up_to_date", rows=stored.rows if stored else None, display=None)
        tested = self.engine.run_test(cur, self._step(node, stored, inputs, started))
        # the engine's mark on a pass (a warning is run again where the engine has a mark)
        note = self.engine.mark if self.engine.mark and tested.status == "pass" \
            else tested.message
        seconds = round(time.monotonic() - started, 3)
        with self.lock:
            if tested.status == "fail":
                nodestate.record_status(cur, name=node.name, kind="test", status="error",
                                        message=tested.message, seconds=seconds)
            else:
                nodestate.record_success(
                    cur, name=node.name, kind="test", checksum=node.checksum,
                    version=(stored.version or 0) + 1 if stored else 1, inputs=inputs,
                    rows=tested.failures, seconds=seconds, message=note)
        status = {"fail": "error", "warn": "warn"}.get(tested.status, "success")
        return Outcome(status, rows=tested.failures,
                       message=tested.message, display=tested.status, details=tested.samples)

    def _missing_inputs(self, cur: duckdb.DuckDBPyConnection, node: Node) -> str | None:
        """An input left out of this run (e.g. `--exclude kind:api` offline) that was never
        built: the node is skipped, not failed, so a partial build stays a clean run."""
        for dep in node.depends_on:
            up = self.graph.nodes[dep]
            if dep in self.in_run or up.kind == "published":
                continue
            if not self._exists(cur, up):
                return f"{up.kind} {dep}"
        return None

    # -- up-to-date ------------------------------------------------------------------------
    def _inputs(self, cur: duckdb.DuckDBPyConnection, node: Node) -> dict[str, int | None]:
        """Current version of everything the node reads (DESIGN.md: versions)."""
        return nodestate.input_versions(cur, self.graph, node, self.snapshot.seed_version,
                                        self.snapshot.state)

    def _fresh(self, cur: duckdb.DuckDBPyConnection, node: Node, stored: NodeState | None,
               inputs: dict[str, int | None]) -> bool:
        """Same checksum, same input versions as at the last success, relation still there."""
        if self.full_refresh or stored is None or stored.status != "success":
            return False
        if stored.checksum != node.checksum or (stored.inputs or {}) != inputs:
            return False
        if not self.engine.fresh(node, stored):
            return False  # e.g. built by another engine on a shared state file
        return node.kind == "test" or self._exists(cur, node)

    def _exists(self, cur: duckdb.DuckDBPyConnection, node: Node) -> bool:
        return self.engine.exists(cur, node, lambda n: self.snapshot.exists(cur, n))
