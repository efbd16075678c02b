"""The database phases of one publish run: begin (merge a crashed run's journal, record
the run, each publication's pending set classified in SQL and written to parquet), and
finish (merge the journal, record the run's end and the marks of what is all sent).

A mixin of runner.py's `_Run`, which does the sending in between. A publication's set is
computed while the database is open (all at the start, or, for one that needs answers of
this run first, just before it is sent), and what it finds of rows it does not send
(changed that cannot be updated, refused, undeletable, waiting for upstream rows, orphaned,
held) is kept for the publish's messages.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from elt.core.errors import EltError
from elt.core.results import RunResults
from elt.core.state import ensure_published_views
from elt.publish import journal as jr
from elt.publish import ledger, ledger_merge, marks, report, waits
from elt.publish.spec import Publication


class Preparing:
    """Begin, prepare, finish; the attributes are set by _Run.__init__."""

    pubs: dict[str, Publication]
    sinks: dict[str, Any]
    refresh: set[str]
    engine: Any
    run_dir: Path
    console: Any
    project: Any
    changed: dict[str, int]
    undeletable: dict[str, str]
    held: dict[str, tuple[int, float]]
    sent_marks: dict[str, tuple]
    waiting: dict[str, str]  # name -> what publish says of its rows that wait (waits.py)
    order: list[str]
    deps: dict[str, set[str]]
    deferred: set[str]
    prepared: dict[str, tuple[str, Any]]
    readbacks: dict[str, Any]
    publish_dir: Path
    run_id: str
    journal: jr.Journal | None
    results: RunResults
    totals: dict[str, int]

    def _connect(self, wait: float = 10.0) -> Any:
        """The database, with publish's memory and threads (runner.py)."""
        raise NotImplementedError

    def _begin(self) -> set[str]:
        """Merge a crashed run's journal, record the run, write the pending sets to parquet.

        Returns the endpoints that will be needed (none when nothing is pending: then no
        endpoint is contacted at all).
        """
        for stale in self.publish_dir.iterdir():
            if stale.is_dir():  # parquet of an earlier (maybe crashed) run: recomputed anyway
                shutil.rmtree(stale, ignore_errors=True)
        self.engine.ready()  # before the database is opened: Spark's start-up holds no lock
        con = self._connect()
        try:
            recovered = jr.recover(con, self.publish_dir)
            if recovered:
                self.console.info(f"merged {recovered:,} answers left in the journal by an "
                                  "interrupted run")
            self.journal = jr.Journal(self.publish_dir, self.run_id)
            ledger.ensure_ledger(con, {})
            ledger_merge.start_run(con, self.run_id, jr.utc_now(), self.order)
            active: set[str] = set()
            accepted: list[str] = []
            for name in self.order:
                entry = self._prepare(con, self.pubs[name], count_only=name in self.deferred)
                if entry[0] == "count":
                    accepted.append(name)
                if name not in self.deferred:
                    self.prepared[name] = entry
                if (entry[0] == "count" and entry[1]) or (
                        name in self.deferred and self.deps[name] & active):
                    active.add(name)
            # a refused publication (a key its model lacks ...) keeps its view as it was
            ensure_published_views(con, {n: self.pubs[n].key for n in accepted})
        finally:
            con.close()
        return {self.pubs[n].endpoint for n in active} | {
            r.endpoint for n in active if (r := self.readbacks.get(n)) is not None}

    def _prepare(self, con: Any, pub: Publication, count_only: bool = False
                 ) -> tuple[str, Any]:
        """("count", rows pending) with the parquet written, ("skip"|"error", message)."""
        try:
            reason = report.unpublishable(con, pub)
            if reason:
                return ("skip", reason)
            query = replace(
                report.pending_query(pub, self.project.target.endpoints.get(pub.endpoint)),
                params=self.sinks[pub.name].template_params(pub.key),
                full_refresh=pub.name in self.refresh)
            parquet = self.run_dir / f"{pub.name}.parquet"
            on_engine = self.engine.pending(con, query, parquet, count_only,
                                            self.console.info)
            if on_engine is not None:
                count, held = on_engine
                if count_only:
                    return ("count", count)
            else:
                schema, table = report.relation(pub)
                mark = marks.current(con, query, report.model_name(pub), schema, table)
                if (mark is not None and not query.full_refresh
                        and mark == marks.recorded(con, pub.name)):
                    return ("count", 0)  # as classified last time: nothing to send
                columns = ledger.check_model(con, query)
                if count_only:
                    return ("count", ledger.pending_counts(con, query, columns)["pending"])
                found: dict[str, Any] = {}
                ledger.record_delete_bodies(con, query, columns)
                count, held = ledger.copy_pending(con, query, parquet, columns, counts=found)
                self._say_orphaned(con, pub, query)
                unsent = found.get("unsent", 0)
                if unsent:
                    self.changed[pub.name] = unsent
                if found.get("undeletable"):
                    self.undeletable[pub.name] = report.undeletable_message(
                        pub, found["undeletable"], found["undeletable_first"])
                if found.get("refused"):
                    self.console.warn(report.refused_message(pub, found["refused"],
                                                             found["refused_first"]))
                if found.get("waiting"):
                    self.waiting[pub.name] = waits.message(
                        pub.name, found["waiting"], found["waiting_first"], pub.waits_on,
                        set(self.order))
                # rows that wait change class when the upstream's do, not the model: no mark
                marks.record(con, pub.name,
                             mark if count == 0 and not held and not unsent
                             and not found.get("refused") and not found.get("undeletable")
                             and not found.get("waiting") else None)
                if (mark is not None and count and not unsent and not found.get("waiting")
                        and not found.get("refused")):  # all acknowledged (_finish)
                    self.sent_marks[pub.name] = (query, report.model_name(pub), schema,
                                                 table, mark)
            if held:
                self.held[pub.name] = (held, query.settle)
            return ("count", count)
        except EltError as exc:
            return ("error", self.console.failure(exc))

    def _say_orphaned(self, con: Any, pub: Publication, query: ledger.PendingQuery) -> None:
        """Upsert never deletes: keys the model dropped stay at the endpoint. Said once."""
        if pub.mode != "upsert":
            return
        n = ledger.count_orphaned(con, query)
        if n:
            self.console.warn(f"publication {pub.name}: {n:,} key(s) acknowledged earlier are "
                              "no longer in the model and stay at the endpoint (mode upsert "
                              "never deletes; `mode: mirror` deletes them)")

    def _prepare_now(self, pub: Publication) -> tuple[str, Any]:
        with contextlib.closing(self._connect()) as con:
            return self._prepare(con, pub)

    def _held_message(self, pub: Publication) -> str | None:
        """Rows not sent because their earlier request may still be processing."""
        if pub.name not in self.held:
            return None
        n, settle = self.held[pub.name]
        return (f"{n:,} row(s) held: an earlier request for them got no answer and may still "
                f"be processing; they are sent again {settle:g} s after it (endpoint "
                f"{pub.endpoint} `settle:`), by the next publish")

    def _finish(self, status: str) -> None:
        if self.journal is None:  # _begin failed before anything was sent
            return
        self.journal.close()
        jr.rotate_file(self.publish_dir)
        try:
            con = self._connect(wait=30.0)
        except EltError as exc:
            self.console.warn(f"answers stay in the journal ({exc}); the next publish merges "
                              "them")
            return
        try:
            jr.merge_files(con, self.publish_dir)
            ledger_merge.finish_run(con, self.run_id, jr.utc_now(), self.totals["sent"],
                              self.totals["acknowledged"], self.totals["failed"], status)
            for result in self.results.results:
                if result.status == "success" and result.name in self.sent_marks:
                    marks.after_send(con, *self.sent_marks[result.name])
        finally:
            con.close()
        shutil.rmtree(self.run_dir, ignore_errors=True)
