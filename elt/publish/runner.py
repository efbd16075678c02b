"""`elt publish`: send what is new, changed or failed; record what each endpoint acknowledged.

Order of a run (see DESIGN.md "Ledger"): take the database's publish lock (one publisher
per database file: two would put a key in flight twice; lock.py), merge a crashed run's
journal, then per publication in dependency order: open the database briefly, write the
pending set to parquet, close, stream it (stream.py) while answers go to the journal
(journal.py), merged into the ledger every few seconds. Models reading `published.<name>`
are rebuilt before the publications that need them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TextIO

from elt.core import db
from elt.core.errors import EltError, PublishError
from elt.core.results import NodeResult, RunResults
from elt.publish import journal as jr
from elt.publish import ledger, report, waits
from elt.publish.interrupt import interruptible
from elt.publish.lock import publish_lock, state_dir
from elt.publish.prepare import Preparing
from elt.publish.sinks import make_sink
from elt.publish.spec import Publication, downstream, exclude_names, load_publications
from elt.publish.spec import select as select_pubs
from elt.publish.workspace import Workspace

MERGE_EVERY = 5.0  # seconds between journal merges while sending
# DuckDB memory for publish's own connections (pending sets, journal merges): they stream,
# so a small pool does; uncapped it caches the table's pages (0.5 GB). One thread: a scan
# of 50 kB bodies holds a 2,048-row vector per thread (~128 MiB); two ran out of 200MB.
PUBLISH_MEMORY = "200MB"
PUBLISH_THREADS = 1
__all__ = ["run_publish", "publication_status", "check_endpoints"]


def run_publish(ctx: Workspace, select: Sequence[str] = (), exclude: Sequence[str] = (),
                dry_run: bool = False, concurrency: int | None = None,
                export_results: Path | None = None, full_refresh: bool = False,
                confirm: Callable[[str], bool] | None = None) -> RunResults:
    """Publish the selected publications; one NodeResult (kind `publication`) each.

    `full_refresh`: every row of the selected publications goes again (through the update
    path; append mode: as an insert), after `confirm(question)` says yes (None: no question).
    """
    pubs = load_publications(ctx.project)
    graph = ctx.graph()
    readers = report.published_readers(ctx, pubs, graph)
    deps = report.effective_deps(pubs, readers)
    order = select_pubs(pubs, select, exclude, deps)
    if not order:
        ctx.console.info("no publications declared (models/**/*.yml `publications:`)")
        return RunResults("publish")
    # every document and REST path now, pending rows or not; the run sends through these
    sinks = {name: make_sink(name, pub.kind, pub.sink_config(), pub.base_dir)
             for name, pub in pubs.items()}
    refresh = set(order) if full_refresh else set()
    if refresh and not dry_run and confirm is not None and not confirm(
            f"--full-refresh sends every row of {', '.join(order)} again, as if the endpoint "
            "had none of them. Continue?"):
        raise PublishError("--full-refresh not confirmed: nothing sent")
    followers = report.followers(pubs, readers, order, exclude_names(pubs, exclude, deps))
    order = [n for n in select_pubs(pubs, (), (), deps) if n in set(order) | followers]
    for name in sorted(followers):
        sources = sorted(x for x in deps[name] if x in order)
        ctx.console.info(f"also publishing {name}: it reads the answers of "
                         f"{', '.join(sources)} (--exclude {name} to leave it)")
    if dry_run:  # counts and gates what a real run would send: followers included
        return report.dry_run(ctx, pubs, order, deps, readers, graph, frozenset(refresh))
    if concurrency is not None and concurrency < 1:
        raise PublishError("--concurrency must be at least 1")
    export = _open_export(export_results)  # before anything is sent: a bad path fails now
    with contextlib.ExitStack() as stack:
        if export is not None:
            stack.enter_context(export)
        stack.enter_context(interruptible(ctx.console.note))
        stack.enter_context(publish_lock(ctx.project.target.path, ctx.project.root))
        report.rebuild_stale_readers(ctx, pubs, order, readers, graph)
        results = _Run(ctx, pubs, sinks, order, deps, readers, concurrency,
                       export, refresh).execute()
    results.write(ctx.project.target_dir)
    for result in results.results:  # one error line per failed publication, like the build
        if result.status == "error":
            text = result.message or "failed"
            named = f"publication {result.name}" in text or f"publication {result.name!r}" in text
            ctx.console.error(text if named else f"publication {result.name} "
                              f"(endpoint {pubs[result.name].endpoint}): {text}")
    return results


def _open_export(path: Path | None) -> TextIO | None:
    """The --export-results file, opened for writing, or a one-line error naming it."""
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 (closed by the run)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
        raise PublishError(f"cannot write --export-results {path}: "
                           f"{exc.strerror or type(exc).__name__}{where}") from exc


class _Run(Preparing):
    """State of one publish run."""

    def __init__(self, ctx: Workspace, pubs: dict[str, Publication], sinks: dict[str, Any],
                 order: list[str],
                 deps: dict[str, set[str]], readers: dict[str, set[str]],
                 concurrency: int | None, export: TextIO | None,
                 refresh: set[str] | None = None) -> None:
        self.ctx, self.pubs, self.order, self.deps = ctx, pubs, order, deps
        self.refresh = refresh or set()  # --full-refresh: every row of these goes again
        self.sinks = sinks
        from elt.publish.readback import make_readback

        self.readbacks = {n: rb for n in order if (rb := make_readback(pubs[n])) is not None}
        self.readers = readers
        self.concurrency = concurrency
        self.export = export  # one JSON line per row sent (--export-results)
        self.console = ctx.console
        self.project = ctx.project
        self.publish_dir = state_dir(self.project.target.path)
        self.memory_limit = db.smaller_limit(self.project.target.memory_limit, PUBLISH_MEMORY)
        self.run_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:6]
        self.run_dir = self.publish_dir / self.run_id
        self.results = RunResults("publish", skips_fail=True)
        self.totals = {"sent": 0, "acknowledged": 0, "failed": 0}
        self.journal: jr.Journal | None = None  # opened once a crashed run's journal is merged
        self.merge_lock: asyncio.Lock | None = None
        # A publication whose model reads `published.<x>` for an x of this run is prepared
        # only after x has answered and its readers were rebuilt.
        # So is one whose rows wait on rows of a publication of this run (waits.py).
        self.deferred = {n for n in order
                         if any(x != n and report.model_name(pubs[n]) in readers.get(x, ())
                                for x in order) or self._waits_in_run(n)}
        # an upstream's failure skips the publications downstream, except those whose rows
        # wait on its rows (only those rows wait)
        self.hard_deps = waits.hard_deps(pubs, deps)
        self.waiting: dict[str, str] = {}  # name -> what to say of its rows that wait
        self.prepared: dict[str, tuple[str, Any]] = {}  # name -> (count|skip|error, value)
        self.down: dict[str, str] = {}  # endpoint -> why it cannot be used this run
        self.held: dict[str, tuple[int, float]] = {}  # name -> (rows held, settle seconds)
        self.sent_marks: dict[str, tuple] = {}  # name -> marks.after_send's arguments
        self.changed: dict[str, int] = {}  # name -> rows changed since sent, no update declared
        self.undeletable: dict[str, str] = {}  # name -> why rows gone from it are not deleted
        # the target's engine computes the pending sets (DuckDB's: the ledger's SQL here)
        self.engine = ctx.engine(work_dir=self.run_dir)

    # -- database phases --------------------------------------------------------------
    def _connect(self, wait: float = 10.0) -> Any:
        return self.project.connect(wait_seconds=wait, memory_limit=self.memory_limit,
                                    threads=PUBLISH_THREADS, warn=self.console.warn)

    # -- run --------------------------------------------------------------------------
    def execute(self) -> RunResults:
        status = "error"
        try:
            needed = self._begin()
            with self.ctx.endpoints.open(needed) as endpoints:
                asyncio.run(self._main(endpoints))
            status = "error" if self.results.failed else "success"
        finally:
            self._finish(status)
        return self.results

    async def _main(self, endpoints: dict[str, dict[str, Any]]) -> None:
        from elt.http.transport import Transport

        self.merge_lock = asyncio.Lock()
        async with contextlib.AsyncExitStack() as stack:
            transports = {}
            for name, cfg in endpoints.items():
                transports[name] = await stack.enter_async_context(
                    Transport(name, cfg, concurrency=self.concurrency))
            needs = report.scope_needs(self.pubs[n] for n in self.order)
            self.down = await report.check_transports(self.console, transports, endpoints,
                                                      auth=True, needs=needs)
            export = self.export
            encoder = stack.enter_context(ThreadPoolExecutor(max(2, os.cpu_count() or 2),
                                                             thread_name_prefix="encode"))
            merger = asyncio.create_task(self._merge_periodically())
            try:
                await self._publish_all(transports, encoder, export)
            finally:
                merger.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await merger

    async def _publish_all(self, transports: dict[str, Any], encoder: ThreadPoolExecutor,
                           export: TextIO | None) -> None:
        blocked: dict[str, str] = {}
        answered: set[str] = set()  # got new answers that models read: rebuild them first
        for name in self.order:
            if name in blocked:
                self._add(NodeResult(name, "publication", "skipped", message=blocked[name]))
                continue
            stale = sorted(d for d in self.deps[name] if d in answered)
            result = await self._publish_one(self.pubs[name], stale, transports, encoder,
                                             export)
            answered -= set(stale)
            self._add(result)
            if result.status in ("error", "skipped"):
                for down in downstream(name, self.hard_deps):
                    blocked.setdefault(down, f"upstream publication {name} {result.status}")
            elif result.rows and self.readers.get(name):
                answered.add(name)

    def _waits_in_run(self, name: str) -> bool:
        return any(u in self.order and u != name for u, _ in self.pubs[name].waits_on)

    def _add(self, result: NodeResult) -> None:
        self.results.add(result)
        self.console.node("publish", result.name, result.status, rows=result.rows,
                          seconds=result.seconds, message=result.message)

    async def _publish_one(self, pub: Publication, stale: list[str], transports: dict[str, Any],
                           encoder: ThreadPoolExecutor, export: TextIO | None) -> NodeResult:
        started = time.monotonic()

        def result(status: str, message: str | None, rows: int = 0) -> NodeResult:
            return NodeResult(pub.name, "publication", status, rows,
                              time.monotonic() - started, message)

        if pub.name in self.deferred:
            try:
                if stale:
                    await self._rebuild(stale)
                elif self._waits_in_run(pub.name) and not await self.merge(wait=30.0):
                    raise PublishError("cannot record the answers its rows wait on: the "
                                       "database stays locked")
            except EltError as exc:
                return result("error", self.console.failure(exc))
            assert self.merge_lock is not None
            async with self.merge_lock:  # one in-process opener of the database at a time
                loop = asyncio.get_running_loop()
                self.prepared[pub.name] = await loop.run_in_executor(None, self._prepare_now,
                                                                     pub)
        kind, value = self.prepared[pub.name]
        if kind == "skip":
            return NodeResult(pub.name, "publication", "skipped", 0, 0.0, value)
        if kind == "error":
            return result("error", value)
        held = self._held_message(pub)
        if pub.name in self.undeletable:
            text = self.undeletable[pub.name]
            held = f"{held}; {text}" if held else text
        changed = self.changed.get(pub.name, 0)
        if changed and pub.on_change != "ignore":
            text = report.changed_message(pub, changed)
            if pub.on_change == "error":
                held = f"{held}; {text}" if held else text
            elif value == 0:
                return result("warn", text)
            else:
                self.console.warn(text)
        waiting = self.waiting.get(pub.name)
        if value == 0 and waiting and not held:
            return result("warn", waiting)
        if value == 0 and changed and not held:  # on_change: ignore
            return result("up_to_date", f"nothing to send; {changed:,} changed rows ignored "
                          "(on_change: ignore)")
        if value == 0:
            return result("error", held) if held else result("up_to_date",
                                                             "nothing new, changed or failed")
        if pub.endpoint in self.down:
            return result("error", self.down[pub.endpoint])
        transport = transports.get(pub.endpoint)
        if transport is None:  # cannot happen: _begin lists every endpoint that may send
            return result("error", f"endpoint {pub.endpoint} was not checked before sending")
        from elt.publish.stream import Tally, stream

        assert self.journal is not None
        progress = self.console.progress(f"publish {pub.name}", value)
        try:
            sink = self.sinks[pub.name]
            if hasattr(sink, "gzip_level"):
                sink.gzip_level = getattr(transport, "gzip_level", sink.gzip_level)
            workers = self.concurrency or getattr(transport, "concurrency", None) or 4
            parquet = self.run_dir / f"{pub.name}.parquet"
            readback = self.readbacks.get(pub.name)
            read_transport = transports.get(readback.endpoint) if readback else None
            read_send = read_transport.send if read_transport is not None else None
            tallies: list[Tally] = []
            # In waves (parents before children) when the publication says so: a wave starts
            # once every row of the one before it has its answer (and none if it was stopped)
            for wave in ledger.waves(parquet) if pub.wave else [None]:
                if tallies and tallies[-1].stopped:
                    break
                tallies.append(await stream(
                    publication=pub.name, parquet=parquet, sink=sink, send=transport.send,
                    journal=self.journal, encoder=encoder, concurrency=int(workers),
                    progress=progress, export=export, wave=wave, waved=bool(pub.wave),
                    readback=readback, read_send=read_send))
            tally = Tally.total(tallies)
        except EltError as exc:
            return result("error", self.console.failure(exc))
        finally:
            progress.close()
        seconds = time.monotonic() - started
        for k in self.totals:
            self.totals[k] += getattr(tally, k)
        message = report.summary(tally, seconds) + "".join(
            f"; {text}" for text in (held, waiting) if text)
        return result("error" if tally.failed or held else "warn" if waiting else "success",
                      message, tally.acknowledged)

    async def _rebuild(self, upstream: list[str]) -> None:
        """Rebuild the models that read `published.<upstream>` (they need the new answers)."""
        models = sorted(set().union(*(self.readers[u] for u in upstream)))
        if not await self.merge(wait=30.0):
            raise PublishError("cannot record answers before rebuilding "
                               f"{', '.join(models)}: the database stays locked")
        assert self.merge_lock is not None
        async with self.merge_lock:
            self.console.info(f"rebuilding {', '.join(models)} (they read published answers)")
            loop = asyncio.get_running_loop()
            built = await loop.run_in_executor(None, lambda: self.ctx.build(select=models))
        if built.failed:
            failed = ", ".join(r.name for r in built.results if r.failed)
            raise PublishError(f"rebuilding models that read published answers failed: {failed}")

    async def merge(self, wait: float) -> bool:
        """Rotate the journal and fold it into the ledger; False when the database is busy."""
        assert self.merge_lock is not None and self.journal is not None
        async with self.merge_lock:
            if self.journal.dirty:
                self.journal.rotate()
            loop = asyncio.get_running_loop()
            target = self.project.target
            return await loop.run_in_executor(
                None, lambda: jr.try_merge(target.path, self.publish_dir, wait_seconds=wait,
                                           memory_limit=self.memory_limit,
                                           row_group_size=target.row_group_size))

    async def _merge_periodically(self) -> None:
        while True:
            await asyncio.sleep(MERGE_EVERY)
            try:
                await self.merge(wait=0.2)  # a reader holds it: keep sending, retry later
            except Exception as exc:  # the journal keeps every answer: merge at the end
                self.console.warn(f"journal merge postponed: {exc}")


def publication_status(ctx: Workspace) -> tuple[list[str], list[tuple]]:
    """Per publication: rows in the model, acknowledged, failed, pending (read-only)."""
    return report.status(ctx, load_publications(ctx.project))


def check_endpoints(ctx: Workspace) -> bool:
    """`elt debug`: profile, database, and each endpoint's heartbeat and credentials."""
    from elt.publish.debug import debug

    return debug(ctx)
