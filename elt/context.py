"""The project API: one method per CLI command (like SQLMesh's Context).

The CLI only parses options and calls these; tests, notebooks and schedulers can call them
directly (README: "Python API"). Each method opens the staging database for as short a
time as it needs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from elt.core.console import Console
from elt.core.results import RunResults
from elt.project.config import Project, load_project

READ_WAIT = 600.0  # seconds `elt sql`/`show`/`status` wait for a build or publish to finish

if TYPE_CHECKING:  # imported where used: a no-op build decided from its stamp needs neither
    from elt.graph.dag import Graph
    from elt.http.endpoints import Endpoints, RunningSandbox
    from elt.publish.verify import Verified
    from elt.transform.engine import Engine


def start_sandbox(store: Path) -> RunningSandbox:
    """The embedded sandbox for `{sandbox: kind}` endpoints, on a free loopback port."""
    from elt.sandbox.server import Sandbox

    return Sandbox(store, "127.0.0.1", 0).start()


class Context:
    def __init__(
        self,
        project_dir: str | Path | None = None,
        profiles_dir: str | Path | None = None,
        target: str | None = None,
        console: Console | None = None,
        state: str | Path | None = None,
    ) -> None:
        self._project_dir = project_dir
        self._profiles_dir = profiles_dir
        self._target = target
        self._state = state  # `state:` selectors' manifest (None: target/state/)
        self.console = console or Console()

    @cached_property
    def project(self) -> Project:
        return load_project(self._project_dir, self._profiles_dir, self._target)

    @cached_property
    def endpoints(self) -> Endpoints:
        """Endpoints by name; `{sandbox: kind}` ones start the embedded sandbox on demand."""
        from elt.http.endpoints import Endpoints

        return Endpoints(self.project, self.console, start_sandbox)

    def connect(self, *, read_only: bool = False, wal: bool = True):  # noqa: ANN201
        """The staging database; wal=False for builds (db.connect says why). Reading
        while a build or publish holds the file waits for it, saying so."""
        if read_only:
            return self.project.connect(read_only=True, wal=wal, wait_seconds=READ_WAIT,
                                        on_wait=self.console.note)
        return self.project.connect(read_only=read_only, wal=wal, warn=self.console.warn)

    def graph(self) -> Graph:
        from elt.graph.discover import discover_graph

        graph = discover_graph(self.project)
        graph.state_dir = Path(self._state) if self._state else None
        return graph

    # -- build half ----------------------------------------------------------------
    def build(
        self,
        select: Sequence[str] = (),
        exclude: Sequence[str] = (),
        full_refresh: bool = False,
    ) -> RunResults:
        """Load changed seeds, fetch API sources, build models and run their tests, in DAG order.

        Unless full_refresh, a build whose stamp (elt/transform/upto.py) still holds is answered
        from it: the same node lines and artifacts, without opening the database."""
        from elt.graph.selection import uses_method
        from elt.transform import upto

        spark = self.project.target.type == "spark"  # never the fast path (DESIGN.md)
        stateful = uses_method(select, "state") or uses_method(exclude, "state", "--exclude")
        if not full_refresh and not spark and not stateful:
            replayed = upto.replay(self.project, select, exclude, self.console,
                                   self._profiles_dir)
            if replayed is not None:
                return replayed
        from elt.transform.runner import run_build  # duckdb: not imported by a replayed no-op

        watch = None if spark else upto.Watch.start(self.project, select, exclude,
                                                     self._profiles_dir)
        graph = self.graph()
        with self.connect(wal=False) as con:
            results = run_build(con, self.project, graph, self.console, select=select,
                                exclude=exclude, full_refresh=full_refresh, command="build",
                                endpoints=self.endpoints, engine=self.engine())
            settled = None if watch is None else upto.settle(con, self.project, graph,
                                                            results)
        if watch is not None and settled is not None:
            watch.save(results, *settled)
        return results

    def engine(self, kind: str | None = None, work_dir: Path | None = None) -> Engine:
        """The engine that builds, tests, compiles and computes pending sets for the target
        (kind: another one, `elt compile --engine spark`); work_dir: publish's scratch."""
        if (kind or self.project.target.type) == "spark":
            from elt.engines.spark.engine import SparkEngine

            return SparkEngine(self.project, self.console, self.graph, work_dir)
        from elt.engines.duckdb import DuckDBEngine

        return DuckDBEngine(self.project, self.endpoints)

    def compile(self, select: Sequence[str] = (), exclude: Sequence[str] = (),
                engine: str | None = None) -> list[Path]:
        """Write the SELECT the next build runs for each selected model and test (incremental
        rewrites included) to target/compiled/<node>.sql; returns the files written.
        engine="spark" (or a spark target): Spark SQL to target/compiled/spark/, each model
        checked by Spark's analyzer."""
        from elt.transform.runner import plan

        graph = self.graph()
        names = plan(graph, select, exclude, "build")
        chosen = self.engine(engine)
        con = self.connect(read_only=True) if self.project.db_path.exists() else None
        written = []
        try:
            for name in names:
                path = chosen.compile(con, graph, graph.nodes[name])
                if path is not None:
                    written.append(path)
        finally:
            if con is not None:
                con.close()
        where = written[0].parent if written else self.project.target_dir / "compiled"
        self.console.info(f"compiled {len(written)} node(s) into {where}")
        return written

    def test(self, select: Sequence[str] = (), exclude: Sequence[str] = ()) -> RunResults:
        """Run data tests only, against the tables as they are."""
        from elt.transform.runner import run_build

        graph = self.graph()
        with self.connect(wal=False) as con:
            return run_build(con, self.project, graph, self.console, select=select,
                             exclude=exclude, full_refresh=False, command="test",
                             endpoints=self.endpoints, engine=self.engine())

    def sql(self, query: str, fmt: str = "table", limit: int | None = None,
            database: Path | None = None) -> None:
        """Read-only SQL on the staging database (or another DuckDB file, e.g. the sandbox's)."""
        from elt.core import db
        from elt.core.readonly import lock_down, refuse_writes
        from elt.inspect import render, run_query

        refuse_writes(query)
        with (db.connect(database, read_only=True) if database else
              self.connect(read_only=True)) as con:
            lock_down(con, self.project.root)
            columns, rows = run_query(con, query, limit=limit)
        render(self.console, columns, rows, fmt)

    def show(self, model: str, limit: int = 10, fmt: str = "table") -> None:
        from elt.core.readonly import lock_down
        from elt.inspect import render, show_relation

        graph = self.graph()
        with self.connect(read_only=True) as con:
            lock_down(con, self.project.root)
            columns, rows = show_relation(con, graph, model, limit)
        render(self.console, columns, rows, fmt)

    def ls(self, select: Sequence[str] = (), exclude: Sequence[str] = (),
           fmt: str = "table") -> None:
        from elt.inspect import list_nodes, render

        graph = self.graph()
        con = self.connect(read_only=True) if self.project.db_path.exists() else None
        try:
            columns, rows = list_nodes(con, graph, select, exclude)
        finally:
            if con is not None:
                con.close()
        render(self.console, columns, rows, fmt)

    def dag(self, fmt: str = "text") -> None:
        from elt.inspect import render_dag

        self.console.result(render_dag(self.graph(), fmt))

    def lineage(self, target: str | None = None, fmt: str = "text") -> list:
        """Column lineage of the publications' fields (elt/lineage): printed as a chain,
        or as JSON (also written to target/lineage.json)."""
        from elt import lineage
        from elt.publish.spec import load_publications

        graph = self.graph()
        pubs = load_publications(self.project)
        con = self.connect(read_only=True) if self.project.db_path.exists() else None
        try:
            schema = lineage.db_schema(con)
        finally:
            if con is not None:
                con.close()
        chosen = lineage.select_fields(lineage.publication_lineage(graph, pubs, schema), target)
        if fmt == "json":
            import json

            lineage.write_json(chosen, self.project.target_dir / "lineage.json")
            self.console.result(json.dumps(chosen, indent=2))
        else:
            self.console.result(lineage.render_text(chosen))
        return chosen

    def docs(self, serve: bool = False, port: int = 8080) -> Path:
        """Write the static docs site to target/docs/ (elt/docs); serve it on loopback."""
        from elt import docs
        from elt.publish.spec import load_publications

        graph = self.graph()
        pubs = load_publications(self.project)
        con = self.connect(read_only=True) if self.project.db_path.exists() else None
        try:
            data = docs.collect(self.project.root, graph, pubs, con, self.project.target_dir)
        finally:
            if con is not None:
                con.close()
        index = docs.write_site(data, self.project.target_dir / "docs")
        self.console.info(f"wrote {index} ({len(data['nodes'])} nodes, "
                          f"{len(data['publications'])} publications)")
        if serve:
            docs.serve(index.parent, "127.0.0.1", port, self.console.info)
        return index

    # -- publish half --------------------------------------------------------------
    def publish(
        self,
        select: Sequence[str] = (),
        exclude: Sequence[str] = (),
        dry_run: bool = False,
        concurrency: int | None = None,
        export_results: Path | None = None,
        full_refresh: bool = False,
        confirm: Callable[[str], bool] | None = None,
    ) -> RunResults:
        """Send what is new, changed or failed to each publication's endpoint;
        `full_refresh`: every row again, once `confirm(question)` agrees (None: no question)."""
        from elt.publish.runner import run_publish

        return run_publish(self, select=select, exclude=exclude, dry_run=dry_run,
                           concurrency=concurrency, export_results=export_results,
                           full_refresh=full_refresh, confirm=confirm)

    def verify(self, select: Sequence[str] = (), repair: bool = False) -> Verified:
        """`elt verify`: read back what each endpoint holds and compare it with the model and
        the ledger (verify.py); `repair`: send what differs through the normal publish,
        then check again. The result's `failed` says something still differs."""
        from elt.publish.verify import mark_for_repair, verify

        found = verify(self, select)
        if not repair or not found.failed:
            return found
        names = mark_for_repair(self, found)
        if not names:
            return found
        self.publish(select=names)
        self.console.info("verify after the repair:")
        again = verify(self, select)
        again.repaired = names
        return again

    def forget(self, select: Sequence[str], where: str | None = None,
               dry_run: bool = False) -> dict[str, int]:
        """`elt ledger forget`: the ledger forgets rows (all, or those matching `where`)."""
        from elt.publish.forget import forget_rows

        counts = forget_rows(self, select, where, dry_run)
        verb = "would forget" if dry_run else "forgot"
        for name, n in counts.items():
            self.console.info(f"publication {name}: {verb} {n:,} row(s); the next publish "
                              "sends them as new")
        return counts

    def clean(self, dry_run: bool = False) -> list[str]:
        """`elt clean`: drop relations and state rows of nodes the project no longer has."""
        from elt.transform import clean

        graph = self.graph()
        with self.connect(read_only=dry_run) as con:
            found = clean.leftovers(con, graph)
            if found and not dry_run:
                clean.drop(con, found)
        lines = [item.describe() for item in found]
        for line in lines:
            self.console.info(("would " if dry_run else "") + line)
        self.console.info(f"{'would clean' if dry_run else 'cleaned'} {len(lines)} "
                          "leftover(s)" if lines else "nothing to clean")
        return lines

    def status(self, fmt: str = "table") -> None:
        from elt.inspect import render
        from elt.publish.runner import publication_status

        columns, rows = publication_status(self)
        render(self.console, columns, rows, fmt)

    def debug(self) -> bool:
        """Check the profile, the database and every endpoint and credential; send no data."""
        from elt.publish.runner import check_endpoints

        return check_endpoints(self)

    def sandbox_serve(self, host: str, port: int, fresh: bool,
                      strict_tokens: bool = False) -> None:
        from elt.project.config import SANDBOX_FILE, find_root
        from elt.sandbox.serve import serve

        here = Path(self._project_dir or ".").resolve()
        target = (find_root(here) or here) / "target"
        serve(host, port, target / "sandbox.duckdb", fresh, self.console.info,
              reveal=self.console.result, strict_tokens=strict_tokens,
              address_file=target / SANDBOX_FILE)
