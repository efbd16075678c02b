"""Helpers shared by the end-to-end test files (publish e2e, faults, kill, bad inputs, secrets).

- write_files / E2E: temp projects (a FlowKit + UOIS project whose `local` target points at a
  sandbox started by the test, with optional endpoint overrides such as a small `timeout`);
- elt / elt_process / elt_argv / Watched: the CLI in-process (click's CliRunner) or as a
  subprocess, returning exit code and output (Watched: collect output while it runs, kill -9);
- stats / snapshot / check_published: the sandbox counters, table contents, and the
  publish invariants (nothing accepted twice, ledger answers = what the receiver stored).
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
from click.testing import CliRunner

from elt.cli import cli
from elt.context import Context
from elt.core.console import Console
from elt.core.results import RunResults
from elt.sandbox.server import Sandbox
from elt.sandbox.uois_types import DEMO_GROUPTYPES

REPO = Path(__file__).resolve().parents[1]

# -- the FlowKit + UOIS test project ---------------------------------------------------------
CONFIG = {"languages": [{"code": "en", "name": "English", "flag": "gb", "default": True}],
          "data_providers": [], "categories": [{"category_id": "residents"}],
          "indicators": [{"category_id": "residents", "indicator_id": "residents.residents"}],
          "temporal_resolutions": [{"trid": 2, "label": "Month"}],
          "spatial_resolutions": [{"srid": 3, "label": "Communal section"}]}
DATASETS = """SELECT 'residents' AS category_id, 'residents.residents' AS indicator_id,
  3 AS srid, 2 AS trid,
  strftime(TIMESTAMP '{start}' + to_days(i::INTEGER), '%Y-%m-%d %H:%M:%S') AS dt,
  json_object('metadata', json_object('revision', 'v1', 'category_id', category_id,
    'indicator_id', indicator_id, 'srid', srid, 'trid', trid, 'dt', dt),
    'data_type', 'single_location',
    'data_input', json_array(json_object('spatial_unit_ids', json_array('HT0111-01'),
                                         'data', {value}))) AS payload
FROM range({n}) t(i)"""
SCOPES = """SELECT 'public' AS scope, answer::BIGINT AS mdid,
  json_object('scope', 'public', 'mdid', answer::BIGINT) AS body
FROM published.flowkit_data WHERE status = 'acknowledged'"""
USERS = """SELECT md5('user' || i)::UUID::VARCHAR AS id, 'Name' || i AS name,
  'Sur' || i AS surname, 'u' || i || '@uni.test' AS email FROM range({n}) t(i)"""
GROUPS = f"""SELECT md5('group' || i)::UUID::VARCHAR AS id, 'Group ' || i AS name,
  '{DEMO_GROUPTYPES[0][0]}' AS grouptype_id FROM range(3) t(i)"""  # a fresh sandbox's type
MEMBERSHIPS = """SELECT md5('m' || i)::UUID::VARCHAR AS id, md5('user' || i)::UUID::VARCHAR
  AS user_id, md5('group' || (i % 3))::UUID::VARCHAR AS group_id, true AS valid
FROM range({n}) t(i)"""
GQL = {
    "user": "mutation ($id: UUID!, $name: String!, $surname: String!, $email: String!) {\n"
            "  result: userInsert(user: {id: $id, name: $name, surname: $surname, email: $email})"
            " { id msg result: user { id lastchange } } }\n",
    "group": "mutation ($id: UUID!, $name: String!, $grouptype_id: UUID!) {\n"
             "  result: groupInsert(group: {id: $id, name: $name, grouptypeId: $grouptype_id})"
             " { id msg result: group { id lastchange } } }\n",
    "membership": "mutation ($id: UUID!, $user_id: UUID!, $group_id: UUID!, $valid: Boolean) {"
                  "\n  result: membershipInsert(membership: {id: $id, userId: $user_id, groupId:"
                  " $group_id, valid: $valid}) { id msg result: membership { id lastchange } } }\n",
}
FLOWKIT_REST = ("{insert: {method: POST, path: /data}, update: {method: PATCH, path: /data}, "
                "delete: {method: DELETE, path: /data}, success: [201, 204], "
                "already_there: [303], compression: gzip}")
GRAPHQL = "{{document: uois/{doc}.gql, result: result.msg, success: ok, already_there: [fail], " \
          "already_there_errors: [UniqueViolation], answer: result.id}}"
# The three FlowKit publications (setup, datasets, scope mappings) of the test projects.
FLOWKIT_PUBLICATIONS = f"""
publications:
  flowkit_setup:
    {{model: flowkit_config, endpoint: flowkit_admin, kind: rest, key: [id], mode: upsert,
     body: body, rest: {{insert: {{method: POST, path: /setup}},
                        update: {{method: POST, path: /setup}}, success: [204],
                        compression: gzip}}}}
  flowkit_data:
    {{model: flowkit_datasets, endpoint: flowkit, kind: rest, mode: upsert, body: payload,
     key: [category_id, indicator_id, srid, trid, dt], depends_on: [flowkit_setup],
     rest: {FLOWKIT_REST}}}
  flowkit_scopes:
    {{model: flowkit_scope_mappings, endpoint: flowkit, kind: rest, key: [scope, mdid],
     body: body, rest: {{insert: {{method: POST, path: /scope_mapping}}, success: [201],
                        already_there: [303]}}}}
"""
PUBLICATIONS = FLOWKIT_PUBLICATIONS + f"""\
  uois_users:
    {{model: uois_users, endpoint: uois, kind: graphql, key: [id], batch_size: 4,
     graphql: {GRAPHQL.format(doc="user")}}}
  uois_groups:
    {{model: uois_groups, endpoint: uois, kind: graphql, key: [id],
     graphql: {GRAPHQL.format(doc="group")}}}
  uois_memberships:
    {{model: uois_memberships, endpoint: uois, kind: graphql, key: [id], batch_size: 5,
     depends_on: [uois_users, uois_groups], graphql: {GRAPHQL.format(doc="membership")}}}
"""
FLOWKIT_LABEL = "residents|residents.residents|3|2|2020-01-{:02d} 00:00:00"
ENDPOINTS = ("flowkit", "flowkit_admin", "uois")


def write_files(root: Path, files: dict[str, str | bytes | None]) -> None:
    """Write files below root (text is dedented; bytes are written as they are; None deletes)."""
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip("\n"), encoding="utf-8")


def sandbox_endpoints(sandbox: Sandbox, names: tuple[str, ...] = ENDPOINTS,
                      **overrides: Any) -> dict[str, dict[str, Any]]:
    """Endpoint mappings for a running sandbox, each with `overrides` (timeout, ...) applied."""
    return {name: {**sandbox.endpoint_config(name), **overrides} for name in names}


def write_spark_profile(root: Path, endpoints: dict[str, Any], *, duck_path: str,
                        target: str) -> None:
    """profiles.yml with a `duck` output (DuckDB at duck_path) and a `spark` output whose
    state file is target/elt.duckdb, both on `endpoints` (local[2], 2 shuffle partitions:
    the session the whole test run shares, see conftest.spark_jvm)."""
    duck = {"type": "duckdb", "path": duck_path, "endpoints": endpoints}
    spark = {"type": "spark", "master": "local[2]", "path": "target/elt.duckdb",
             "warehouse": "target/warehouse", "endpoints": endpoints,
             "conf": {"spark.sql.shuffle.partitions": 2, "spark.default.parallelism": 2}}
    doc = {"elt": {"target": target, "outputs": {"duck": duck, "spark": spark}}}
    (root / "profiles.yml").write_text(json.dumps(doc), encoding="utf-8")


def write_profile(root: Path, endpoints: dict[str, Any], *, target: str = "local",
                  **outputs: dict[str, Any]) -> None:
    """profiles.yml (JSON is YAML) with a `local` output using `endpoints`, plus `outputs`."""
    local = {"type": "duckdb", "path": "target/elt.duckdb", "threads": 2,
             "endpoints": endpoints}
    doc = {"elt": {"target": target, "outputs": {"local": local, **outputs}}}
    (root / "profiles.yml").write_text(json.dumps(doc, indent=1), encoding="utf-8")


class E2E:
    """A FlowKit + UOIS project whose `local` target points at a running sandbox.

    `n` datasets (one per day from `start`), `users` UOIS users; `overrides` go into every
    endpoint mapping (timeout, max_attempts, concurrency ...).
    """

    def __init__(self, root: Path, sandbox: Sandbox | None, n: int = 12, users: int = 6,
                 start: str = "2020-01-01", **overrides: Any) -> None:
        self.root, self.n, self.users, self.start = root, n, users, start
        models = root / "models"
        (models / "uois").mkdir(parents=True, exist_ok=True)
        local = sandbox_endpoints(sandbox, **overrides) if sandbox else {}
        write_profile(root, local, embedded={
            "type": "duckdb", "path": "target/elt.duckdb",
            "endpoints": {k: {"sandbox": k} for k in ENDPOINTS}})
        (models / "publications.yml").write_text(PUBLICATIONS)
        for doc, text in GQL.items():
            (models / "uois" / f"{doc}.gql").write_text(text)
        sql = {"flowkit_config": f"SELECT 1 AS id, '{json.dumps(CONFIG)}'::JSON AS body",
               "flowkit_scope_mappings": SCOPES, "uois_groups": GROUPS,
               "uois_memberships": MEMBERSHIPS.format(n=users)}
        for name, text in sql.items():
            (models / f"{name}.sql").write_text(text)
        self.set_datasets()
        self.set_users(users)
        self.out = io.StringIO()

    def set_datasets(self, value: str = "i + 1", n: int | None = None) -> None:
        self.n = self.n if n is None else n
        (self.root / "models" / "flowkit_datasets.sql").write_text(
            DATASETS.format(n=self.n, value=value, start=self.start))

    def set_users(self, n: int) -> None:
        self.users = n
        (self.root / "models" / "uois_users.sql").write_text(USERS.format(n=n))

    def ctx(self, target: str = "local") -> Context:
        return Context(self.root, target=target, console=Console(self.out, self.out))

    def build(self) -> None:
        assert not self.ctx().build().failed, self.out.getvalue()

    def publish(self, target: str = "local", **kw: Any) -> RunResults:
        return self.ctx(target).publish(**kw)

    def relax_timeouts(self, seconds: float = 60.0) -> None:
        """Give the `local` endpoints a generous timeout once a fault phase is over: a short
        timeout provokes the fault, but on a busy machine a healthy request may take longer
        than it, and the recovery runs must not depend on the machine's speed."""
        path = self.root / "profiles.yml"
        doc = json.loads(path.read_text(encoding="utf-8"))
        for endpoint in doc["elt"]["outputs"]["local"]["endpoints"].values():
            if "timeout" in endpoint:
                endpoint["timeout"] = seconds
        path.write_text(json.dumps(doc, indent=1), encoding="utf-8")

    def cli(self, *args: str) -> list[str]:
        return elt_argv(self.root, *args)

    @property
    def db(self) -> Path:
        return self.root / "target" / "elt.duckdb"

    def sql(self, query: str) -> list[tuple]:
        return db_query(self.db, query)


# -- running the CLI ---------------------------------------------------------------------------
@dataclass
class CliRun:
    """Exit code and output of one CLI run."""

    code: int
    stdout: str
    stderr: str
    exception: BaseException | None = None  # in-process only: an exception click caught

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def elt(root: Path, *args: str, env: dict[str, str | None] | None = None,
        stdin: str | None = None) -> CliRun:
    """`elt ARGS --project-dir root` in this process (click's CliRunner)."""
    result = CliRunner().invoke(cli, [*args, "--project-dir", str(root)], input=stdin, env=env)
    exc = result.exception
    if isinstance(exc, SystemExit):
        exc = None
    return CliRun(result.exit_code, result.stdout, result.stderr, exc)


def elt_argv(root: Path, *args: str) -> list[str]:
    """argv for `python -m elt.cli ARGS --project-dir root` (for subprocesses)."""
    return [sys.executable, "-m", "elt.cli", *args, "--project-dir", str(root)]


def elt_process(root: Path, *args: str, env: dict[str, str] | None = None,
                timeout: float = 120) -> CliRun:
    """`elt ARGS` as a subprocess (fresh process: real env vars, real exit code)."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(elt_argv(root, *args), capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=root)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


class Watched:
    """A subprocess whose output lines are collected as they come (for kill decisions)."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True, env=env)
        self.lines: list[str] = []
        self.started = time.monotonic()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition() and self.proc.poll() is None:
            assert time.monotonic() < deadline, "\n".join(self.lines)
            time.sleep(0.002)

    def kill(self) -> bool:
        """SIGKILL; True when the process was still running (a real kill -9)."""
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)
        return self.proc.returncode == -signal.SIGKILL

    def output(self) -> str:
        return "\n".join(self.lines)


# -- state and invariants ----------------------------------------------------------------------
def stats(sandbox: Sandbox) -> dict[str, Any]:
    """The sandbox counters (GET /_sandbox/stats; control routes are not counted)."""
    return httpx.get(f"{sandbox.url}/_sandbox/stats", timeout=10).json()


def quiet_stats(sandbox: Sandbox, timeout: float = 30) -> dict[str, Any]:
    """The counters once every request the sandbox started has been answered and processed (a
    killed client leaves requests in flight that the server still completes; a write behind
    a gateway's 504 goes on after it)."""
    deadline = time.monotonic() + timeout
    while True:
        counters = stats(sandbox)
        if (sum(counters["by_status"].values()) == counters["requests"]
                and not counters.get("in_flight")):
            return counters
        assert time.monotonic() < deadline, "the sandbox never went quiet"
        time.sleep(0.01)


# A settle long enough that no machine, however busy, lets it pass by itself: tests that
# check rows are held use it, then let it pass with `let_settle` (the fake clock's tick).
LONG_SETTLE = 3600.0


def let_settle(p: E2E, sandbox: Sandbox, seconds: float = LONG_SETTLE) -> None:
    """Let an endpoint's `settle` pass without sleeping: once the sandbox has processed every
    request it started (the stalled first copies are done), move the ledger's `last_sent`
    of unanswered rows back by `seconds` (what waiting would have done, on any machine)."""
    quiet_stats(sandbox, timeout=120)
    _age_journal(p.root / "target" / "elt.duckdb.publish", seconds + 1)  # a killed run's
    con = duckdb.connect(str(p.db))
    try:
        con.execute("UPDATE _elt.ledger SET last_sent = last_sent - to_seconds(?) "
                    "WHERE status = 'unknown'", [seconds + 1])
    finally:
        con.close()


def _age_journal(directory: Path, seconds: float) -> None:
    """The unanswered lines a killed run left in its journal (not merged yet), made older."""
    from datetime import datetime, timedelta

    for path in directory.glob("journal*.ndjson") if directory.is_dir() else []:
        lines = []
        for line in path.read_text().splitlines():
            entry = json.loads(line) if line.strip() else None
            if entry and entry.get("status") == "unknown" and entry.get("ts"):
                then = datetime.fromisoformat(entry["ts"]) - timedelta(seconds=seconds)
                entry["ts"] = then.isoformat(timespec="microseconds")
                line = json.dumps(entry, separators=(",", ":"))
            lines.append(line)
        path.write_text("".join(f"{x}\n" for x in lines))


def stress(processes: int = 2) -> Callable[[], None]:
    """Busy the machine (a CPU-bound loop per process) until the returned stop() is called:
    the load the suite must pass under (`ELT_TEST_STRESS=N pytest`, see conftest.py)."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(processes)]

    def stop() -> None:
        for proc in procs:
            proc.kill()
            proc.wait()

    return stop


def statuses(results: RunResults) -> dict[str, str]:
    return {r.name: r.status for r in results.results}


def db_query(path: Path, sql: str, params: list[Any] | None = None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def _sortable(row: tuple) -> tuple:
    return tuple("\x00NULL" if v is None else repr(v) for v in row)


def snapshot(path: Path, schemas: tuple[str, ...] = ("main", "raw"),
             extra: tuple[str, ...] = ("_elt.ledger",)) -> dict[str, list[tuple]]:
    """Sorted rows of every base table in `schemas` plus the `extra` relations."""
    with duckdb.connect(str(path), read_only=True) as con:
        names = [f'"{s}"."{t}"' for s, t in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = "
            "'BASE TABLE' AND table_schema IN (SELECT unnest(?::VARCHAR[])) ORDER BY ALL",
            [list(schemas)]).fetchall()]
        names += [n for n in extra if con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema || '.' || "
            "table_name = ?", [n]).fetchone()[0]]
        return {n: sorted(con.execute(f"SELECT * FROM {n}").fetchall(), key=_sortable)
                for n in names}


DONE = ("acknowledged", "already_there")  # final ledger statuses of a sent row


def check_published(p: E2E, sandbox: Sandbox, *, complete: bool, users: bool = True) -> None:
    """The publish invariants for flowkit_data (and uois_users).

    Always: no two writes of one key were ever in flight together (races == 0), no key was
    stored twice ("Ambiguous dataset"), no key was inserted twice (an update after a 303 is
    not an insert), and every acknowledged ledger row names what the receiver stored (FlowKit:
    the mdid of that key; UOIS: the user's id). With complete=True also: every model row is
    acknowledged, stored once, and each key was inserted exactly once.
    """
    counters = quiet_stats(sandbox)
    assert counters["races"] == 0, counters["races"]
    assert counters["ambiguous"] == 0, counters["ambiguous_keys"]
    twice = {k: v for section in ("flowkit", "uois") for k, v in counters[section].items()
             if v["inserted"] > 1}
    assert not twice, f"inserted more than once: {twice}"
    store = sandbox.store
    assert store is not None
    found = store.query("SELECT strftime(dt, '%Y-%m-%d %H:%M:%S') AS dt, mdid "
                        "FROM flowkit_datasets")
    stored = {r["dt"]: str(r["mdid"]) for r in found}
    assert len(found) == len(stored), "a dataset key is stored twice"
    rows = p.sql("SELECT dt, status, answer FROM published.flowkit_data")
    acked = {dt: answer for dt, status, answer in rows if status == "acknowledged"}
    wrong = {dt: (answer, stored.get(dt)) for dt, answer in acked.items()
             if stored.get(dt) != answer}
    assert not wrong, f"ledger answer != stored mdid: {wrong}"
    if users:
        user_ids = {r["id"] for r in store.query("SELECT id FROM uois_users")}
        urows = p.sql("SELECT id, status, answer FROM published.uois_users")
        assert all(i in user_ids and answer in (i, None) for i, status, answer in urows
                   if status in DONE), urows
    if not complete:
        return
    expected = {r[0] for r in p.sql("SELECT dt FROM flowkit_datasets")}
    assert len(expected) == p.n
    pending = {dt for dt, status, _ in rows if status != "acknowledged"}
    assert set(acked) == expected, f"not acknowledged: {sorted(expected - set(acked))[:5]} " \
                                   f"{sorted(pending)[:5]}"
    assert set(stored) == expected
    labels = {f"residents|residents.residents|3|2|{dt}" for dt in expected}
    assert {counters["flowkit"][k]["inserted"] for k in labels} == {1}
    if users:
        ids = {r[0] for r in p.sql("SELECT id FROM uois_users")}
        assert len(ids) == p.users
        # already_there: created by an attempt whose answer was lost (UniqueViolation)
        assert {i for i, status, _ in urows if status in DONE} == ids
        assert user_ids == ids
        assert {counters["uois"][i]["inserted"] for i in ids} == {1}


def find_leaks(root: Path, outputs: list[str], marker: str = "canary-") -> list[str]:
    """Every place `marker` (a secret's prefix: a secret cut short is caught too) turns up:
    the outputs, raw bytes of the files below root, rows of its databases and parquet files."""
    found = []
    for i, output in enumerate(outputs):
        found += [f"output of run {i}"] if marker in output else []
    files = [p for p in root.rglob("*") if p.is_file()]
    for path in files:
        found += [str(path)] if marker.encode() in path.read_bytes() else []
    with duckdb.connect() as con:
        for path in files:
            if path.suffix == ".duckdb":
                con.execute(f"ATTACH '{path}' AS db (READ_ONLY)")
                relations = [f'db."{s}"."{t}"' for s, t in con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = "
                    "'db' UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE "
                    "database_name = 'db' AND NOT internal").fetchall()]
            elif path.suffix == ".parquet":
                relations = [f"read_parquet('{path}')"]
            else:
                continue
            assert relations or path.suffix == ".parquet"
            for relation in relations:
                hits = con.execute(f"SELECT count(*) FROM {relation} AS t "
                                   "WHERE contains(CAST(t AS VARCHAR), ?)", [marker]).fetchone()
                if hits[0]:
                    found.append(f"{relation} in {path.name}: {hits[0]} rows")
            if path.suffix == ".duckdb":
                con.execute("DETACH db")
    return found
