"""kill -9 at random moments (seeded), then a re-run: nothing lost, nothing twice.

Publish: one project and one sandbox, a chain of kill/resume cycles; each cycle adds rows,
kills `python -m elt.cli publish` once or twice (at startup, after k journal lines, after a
random delay: while the pending set is written, while rows are in flight, while answers are
merged ...), then resumes it; after every kill and every resume the sandbox counters show
no key inserted twice and no two copies of a key in flight together, and the ledger answers
are what the sandbox stored; after every resume everything is acknowledged.

Build: kill -9 while a big seed loads and while a slow model builds; the re-run leaves no
half table: no `__elt_tmp_*`/`__elt_new_*` relation, and every table equals the one of a
clean build in another directory (row count + order-independent hash of every row).
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
from helpers import (
    E2E,
    LONG_SETTLE,
    Watched,
    check_published,
    db_query,
    elt,
    elt_argv,
    let_settle,
    write_files,
)

from elt.sandbox.server import Sandbox

SEED = 20240611
SELECT = ("publish", "-s", "flowkit_data", "-s", "uois_users")
CYCLES, KILLS, MIN_KILLS = 8, 12, 10  # 12 kill attempts over 8 cycles (some kill the resume)
GROW_DATASETS, GROW_USERS = 40, 6


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(None) as sandbox:
        yield sandbox


# -- publish -----------------------------------------------------------------------------------
def _journal(directory: Path) -> list[dict]:
    """Every complete line of every journal file now (a torn last line is skipped)."""
    lines = []
    for path in directory.glob("journal*.ndjson"):
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def _kill_publish(p: E2E, rng: random.Random, pending: int) -> tuple[str, bool]:
    """Start a publish, kill it at a random moment; (what moment, whether it was killed)."""
    journal = p.root / "target" / "elt.duckdb.publish"
    old_runs = {line["run"] for line in _journal(journal)}  # a killed run's unmerged lines
    moment = rng.choice(["startup", "in_flight", "acknowledged", "delay"])
    proc = Watched(p.cli(*SELECT))
    try:
        if moment == "startup":  # imports, lock, journal recovery, pending set to parquet
            time.sleep(rng.uniform(0.05, 0.9))
        elif moment == "delay":
            time.sleep(rng.uniform(0.6, 1.4))
        else:
            k = rng.randrange(1, max(2, pending))
            status = "unknown" if moment == "in_flight" else "acknowledged"
            proc.wait_for(lambda: sum(1 for line in _journal(journal) if line["status"] == status
                                      and line["run"] not in old_runs) >= k)
            moment = f"{moment} #{k}"
        moment = f"{moment} after {time.monotonic() - proc.started:.2f}s"
    finally:
        killed = proc.kill()
    assert killed or proc.proc.returncode == 0, proc.output()
    assert "Traceback" not in proc.output()
    return moment, killed


def test_kill_9_publish_chain_then_resume(tmp_path: Path, sb: Sandbox) -> None:
    rng = random.Random(SEED)
    # Rows in flight at a kill are held (settle: LONG_SETTLE never passes by itself) until
    # the sandbox has processed every request it started; let_settle then ages them, so a
    # resend never meets a first copy still processing, however slow the machine.
    p = E2E(tmp_path, sb, n=GROW_DATASETS, users=GROW_USERS, concurrency=4,
            settle=LONG_SETTLE)
    kills: list[str] = []
    completed = 0  # runs that finished before their kill
    per_cycle = [1] * CYCLES
    for i in rng.sample(range(CYCLES), KILLS - CYCLES):
        per_cycle[i] = 2
    for cycle in range(CYCLES):
        if cycle:
            p.set_datasets(n=p.n + GROW_DATASETS)
            p.set_users(p.users + GROW_USERS)
        p.build()
        sb.set_faults(slow_rate=1.0, slow_seconds=0.03)  # each request ~30 ms in flight
        for attempt in range(per_cycle[cycle]):  # twice: the resume is killed too
            if attempt:
                let_settle(p, sb)
            moment, killed = _kill_publish(p, rng, GROW_DATASETS)
            if killed:
                kills.append(f"cycle {cycle}: {moment}")
            else:
                completed += 1
            try:
                check_published(p, sb, complete=False)
            except AssertionError as exc:
                raise AssertionError(f"after the kill at {moment} (seed {SEED}): {exc}") from exc
        leftover = any(line["status"] == "acknowledged"
                       for line in _journal(tmp_path / "target" / "elt.duckdb.publish"))
        sb.set_faults()
        let_settle(p, sb)  # the killed run's in-flight rows: processed, then due again
        run = elt(p.root, *SELECT, "--concurrency", "8")
        assert run.code == 0 and run.exception is None, f"{kills}\n{run.output}"
        if leftover:
            assert "left in the journal by an interrupted run" in run.stdout, run.output
        try:
            check_published(p, sb, complete=True)
        except AssertionError as exc:
            raise AssertionError(f"after the resume of cycle {cycle}: {kills}: {exc}") from exc
    assert len(kills) >= MIN_KILLS, kills
    runs = dict(p.sql("SELECT status, count(*) FROM _elt.publish_runs GROUP BY ALL"))
    # a run killed after it recorded its end counts as a success; none is left `running`
    assert set(runs) <= {"success", "crashed"}, runs
    assert CYCLES + completed <= runs["success"] and sum(runs.values()) <= CYCLES + KILLS, runs
    assert p.sql("SELECT count(*) FROM _elt.ledger WHERE status <> 'acknowledged'") == [(0,)]


# -- build -------------------------------------------------------------------------------------
BIG_ROWS = 800_000
SLOW = 9_000  # the slow model cross joins range(SLOW) with itself


def _big_csv(path: Path, rows: int, salt: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT i AS id, i % 50 AS grp, (i * 7919 + {salt}) % 10007 AS val, "
            f"'row ' || i || ', \"quoted\"' AS txt FROM range({rows}) t(i)) "
            f"TO '{path}' (HEADER)")


BUILD_FILES = {
    "profiles.yml": "p: {target: dev, outputs: {dev: {type: duckdb, path: target/elt.duckdb, "
                    "threads: 2}}}\n",
    "seeds/seeds.yml": "seeds:\n  big: {path: big.csv, columns: {val: INTEGER}}\n",
    "models/big_groups.sql": "SELECT grp, count(*) AS n, sum(val) AS total, max(txt) AS last "
                             "FROM raw.big GROUP BY grp",
    "models/big_recent.sql": """
        /* elt
        materialized: incremental
        unique_key: [id]
        */
        SELECT id, val, txt, _elt_load_id FROM raw.big WHERE id % 1000 = 7
        """,
    # slow: a cross join that starts once the seed is loaded (it reads its row count)
    "models/slow.sql": f"SELECT a.range % 97 AS k, count(*) AS n, "
                       f"sum((a.range * b.range) % 7) AS s FROM range({SLOW}) a, range({SLOW}) b "
                       "WHERE a.range < (SELECT count(*) FROM raw.big) GROUP BY 1",
    "models/final.sql": "SELECT g.grp, g.n, g.total, s.s FROM big_groups g JOIN slow s "
                        "ON g.grp = s.k",
}


def _tables(path: Path) -> list[tuple[str, str]]:
    return db_query(path, "SELECT table_schema, table_name FROM information_schema.tables "
                          "WHERE table_schema IN ('main', 'raw') ORDER BY ALL")


Fingerprints = dict[tuple[str, str], tuple[Any, ...]]


def _fingerprints(path: Path) -> Fingerprints:
    """Per relation in main/raw (temps aside): its columns, row count and an order-independent
    content hash (sum of row hashes; `_elt_load_id` is a load sequence number, not data)."""
    found: Fingerprints = {}
    with duckdb.connect(str(path), read_only=True) as con:
        for schema, name in _tables(path):
            if name.startswith(("__elt_tmp_", "__elt_new_")):
                continue
            cols = [r[0] for r in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
                "table_name = ? ORDER BY ordinal_position", [schema, name]).fetchall()
                if r[0] != "_elt_load_id"]
            quoted = ", ".join(f'"{c}"' for c in cols)
            count, total = con.execute(f'SELECT count(*), sum(hash({quoted})::HUGEINT) FROM '
                                       f'"{schema}"."{name}"').fetchone()
            found[(schema, name)] = (tuple(cols), count, total)
    return found


def _check_tables(built: Path, references: list[Fingerprints], *, all_there: bool) -> None:
    """Every table of `built` equals its version in one of the reference builds: nobody ever
    sees a half table. all_there: every table of the references exists in `built` too."""
    mine = _fingerprints(built)
    if all_there:
        assert set(mine) == set(references[-1]), (sorted(mine), sorted(references[-1]))
    assert set(mine) <= set(references[-1]), (sorted(mine), sorted(references[-1]))
    for relation, print_ in mine.items():
        assert any(ref.get(relation) == print_ for ref in references), \
            f"{relation} is a half table: {print_} vs {[r.get(relation) for r in references]}"


def test_kill_9_build_then_rerun_leaves_no_half_table(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    work, clean = tmp_path / "work", tmp_path / "clean"
    for root in (work, clean):
        write_files(root, BUILD_FILES)
    _big_csv(work / "seeds" / "big.csv", BIG_ROWS, 0)
    (clean / "seeds").mkdir(exist_ok=True)
    os.link(work / "seeds" / "big.csv", clean / "seeds" / "big.csv")
    assert elt(clean, "build").code == 0
    v1 = _fingerprints(clean / "target" / "elt.duckdb")
    db = work / "target" / "elt.duckdb"
    phases: list[str] = []

    def kill_build(*args: str, wait: Callable[[Watched], object], before: list[Fingerprints],
                   after: Fingerprints, all_there: bool) -> None:
        proc = Watched(elt_argv(work, "build", *args))
        try:
            wait(proc)
        finally:
            killed = proc.kill()
        assert killed, f"build finished before the kill:\n{proc.output()}"
        seed_done = any("raw.big" in line and " START " not in line for line in proc.lines)
        phases.append("model build" if seed_done else "seed load")
        if db.exists():  # what anyone sees right after the crash: old or new, never half
            _check_tables(db, before, all_there=all_there)
        again = elt(work, "build")
        assert again.code == 0 and "Traceback" not in again.output, again.output
        assert not [t for t in _tables(db) if t[1].startswith("__elt_")], _tables(db)
        _check_tables(db, [after], all_there=True)

    # 1. the first build, killed while the big CSV loads
    # (counted from the seed's START line, not from a fixed delay that a quiet machine outran)
    kill_build(wait=lambda proc: (
        proc.wait_for(lambda: any("raw.big" in x and " START " in x for x in proc.lines)),
        time.sleep(rng.uniform(0.0, 0.05))), before=[v1], after=v1, all_there=False)
    # 2. a full refresh, killed while the slow model runs (its temp table is being written)
    kill_build("--full-refresh", wait=lambda proc: (
        proc.wait_for(lambda: any("model    big_groups" in x and " START " not in x
                                  for x in proc.lines)),
        time.sleep(rng.uniform(0.05, 0.3))), before=[v1], after=v1, all_there=True)
    # 3. a changed seed (reload + incremental merge + rebuilds), killed at a random moment
    for root in (work, clean):
        (root / "seeds" / "big.csv").unlink()
    _big_csv(work / "seeds" / "big.csv", BIG_ROWS + 1000, 1)
    os.link(work / "seeds" / "big.csv", clean / "seeds" / "big.csv")
    assert elt(clean, "build").code == 0
    v2 = _fingerprints(clean / "target" / "elt.duckdb")
    kill_build(wait=lambda proc: time.sleep(rng.uniform(0.3, 1.2)), before=[v1, v2], after=v2,
               all_there=True)
    assert "seed load" in phases and "model build" in phases, phases


def test_kill_9_build_keeps_what_its_last_checkpoint_wrote(tmp_path: Path) -> None:
    """A build writes no WAL: it checkpoints between nodes once the profile's
    `checkpoint_every` seconds passed (0 here) and no other node is writing, so a kill
    during the slow model keeps the seed loaded before it, and the re-run does not load it
    again."""
    write_files(tmp_path, {**BUILD_FILES, "profiles.yml": BUILD_FILES["profiles.yml"].replace(
        "threads: 2", "threads: 2, checkpoint_every: 0")})
    _big_csv(tmp_path / "seeds" / "big.csv", BIG_ROWS // 4, 0)
    proc = Watched(elt_argv(tmp_path, "build"))
    try:
        proc.wait_for(lambda: any("model    big_groups" in x and " START " not in x
                                  for x in proc.lines))
        time.sleep(0.3)
    finally:
        killed = proc.kill()
    assert killed, f"build finished before the kill:\n{proc.output()}"
    db_file = tmp_path / "target" / "elt.duckdb"
    assert not Path(f"{db_file}.wal").exists()
    assert ("raw", "big") in _tables(db_file), _tables(db_file)
    assert "checkpoint failed" not in proc.output()  # busy is not a failure
    again = elt(tmp_path, "build")
    assert again.code == 0, again.output
    assert re.search(r"seed\s+raw\.big\s+up_to_date", again.output), again.output
    assert re.search(r"model\s+final\s+success", again.output), again.output
