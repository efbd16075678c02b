"""`elt verify [-s PUB] [--repair]`: read back what each endpoint holds and compare it with
the model and the ledger.

For every publication with a `read:` (readback.py): each model row a publish would send is
asked for (batched, as the read declares), and counted
- missing: the endpoint holds none (of which `lost`: the ledger says it was delivered),
- stale: held once, but a `read.compare` field differs, or the held answer (`read.answer`,
  e.g. FlowKit's mdid) is not the one the ledger recorded (another writer replaced it),
- duplicated: held more than once (two writers inserted it at once),
- extra: the ledger remembers the key as delivered, the model no longer has it, and the
  endpoint still holds it. Only keys the ledger remembers are checkable: a read asks by key,
  it cannot list everything an endpoint holds.
- unreadable: the read itself failed (nothing is known of the row).

The model's rows and the ledger's are first copied to parquet and the database closed (a
build or publish may run meanwhile); the rows then stream in chunks: never a whole table
in memory. `--repair` marks what differs in the ledger so the normal publish path sends it:
missing rows are forgotten (sent as new), stale ones marked changed (sent as updates),
extra ones in mirror mode marked undeleted (sent as deletes). Duplicates are only reported:
which copy to remove is a decision for a person.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from elt.core import db
from elt.core.errors import EltError, PublishError
from elt.core.state import LEDGER, ensure_ledger
from elt.publish import journal, ledger, report
from elt.publish.readback import Found, ReadBack, make_readback, same
from elt.publish.spec import Publication, load_publications
from elt.publish.spec import select as select_pubs
from elt.publish.workspace import Workspace

KINDS = ("missing", "stale", "duplicated", "extra", "unreadable")
SAMPLES = 3  # keys shown per kind
CHUNK = 256  # model rows per fetch (bodies can be large)
DELIVERED = ("acknowledged", "already_there")
REPAIRS = {"forget": "forgotten by the ledger (sent as new)",
           "stale": "marked changed (sent as updates)",
           "undelete": "marked not deleted (sent as deletes)"}
STALE_HASH = "verify:stale"  # a ledger hash no body has: the row classifies as changed


@dataclass
class Check:
    """What one publication's endpoint holds against its model and ledger."""

    publication: str
    checked: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    lost: int = 0  # missing rows the ledger records as delivered
    gone: int = 0  # ledger keys gone from the model that were read (extra candidates)
    samples: dict[str, list[str]] = field(default_factory=dict)
    fix: dict[str, list[str]] = field(default_factory=dict)  # forget|stale|undelete -> keys
    error: str | None = None  # the publication could not be checked at all

    def add(self, kind: str, key: str, why: str | None = None) -> None:
        self.counts[kind] += 1
        shown = self.samples.setdefault(kind, [])
        if len(shown) < SAMPLES:
            shown.append(f"{key} ({why})" if why else key)

    @property
    def differs(self) -> bool:
        return self.error is not None or any(self.counts.values())

    def line(self) -> str:
        if self.error:
            return f"verify {self.publication}: not checked: {self.error}"
        c = self.counts
        lost = f" ({self.lost:,} the ledger records as delivered)" if self.lost else ""
        text = (f"verify {self.publication}: {self.checked:,} checked, {c['missing']:,} "
                f"missing{lost}, {c['stale']:,} stale, {c['duplicated']:,} duplicated, "
                f"{c['extra']:,} extra (of {self.gone:,} keys gone from the model)")
        return text + (f", {c['unreadable']:,} unreadable" if c["unreadable"] else "")


@dataclass
class Verified:
    """The checks of one `elt verify`; `failed` (exit non-zero) when anything differs."""

    checks: list[Check] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # publications without `read:`
    repaired: list[str] = field(default_factory=list)   # publications marked for a resend

    @property
    def failed(self) -> bool:
        return any(c.differs for c in self.checks)


def verify(ctx: Workspace, select: Sequence[str] = ()) -> Verified:
    """Check the selected publications (all with a `read:` when none is selected)."""
    pubs = load_publications(ctx.project)
    names = select_pubs(pubs, select) if select else list(pubs)
    out = Verified()
    reads: dict[str, ReadBack] = {}
    for name in names:
        rb = make_readback(pubs[name])
        if rb is None:
            out.unchecked.append(name)
        else:
            reads[name] = rb
    if out.unchecked:
        ctx.console.info(f"not checkable (no `read:`): {', '.join(out.unchecked)}")
    if not reads:
        if select:
            raise PublishError(f"none of {', '.join(names) or 'the selected publications'} "
                               "declares a `read:`: nothing to verify")
        return out
    with tempfile.TemporaryDirectory(dir=ctx.project.target_dir, prefix="verify-") as tmp:
        snapshots = _snapshot(ctx, pubs, reads, Path(tmp))
        with ctx.endpoints.open({rb.endpoint for rb in reads.values()}) as endpoints:
            out.checks = asyncio.run(_check_all(ctx, pubs, reads, snapshots, endpoints))
    for check in out.checks:
        ctx.console.info(check.line())
        for kind in KINDS:
            if check.samples.get(kind):
                ctx.console.info(f"  {kind}: {', '.join(check.samples[kind])}")
    differ = [c.publication for c in out.checks if c.differs]
    if differ:
        ctx.console.error(f"{', '.join(differ)}: the endpoint holds what the model and the "
                          "ledger do not say (`elt verify --repair` sends what differs)")
    return out


def _snapshot(ctx: Workspace, pubs: dict[str, Publication], reads: dict[str, ReadBack],
              tmp: Path) -> dict[str, tuple[Path, Path] | str]:
    """Per publication (model rows, ledger rows) as parquet, or why it cannot be checked."""
    out: dict[str, tuple[Path, Path] | str] = {}
    with contextlib.closing(ctx.connect(read_only=True)) as con:
        led = ledger.ledger_relation(con)
        for name in reads:
            pub = pubs[name]
            schema, table = report.relation(pub)
            if not db.table_exists(con, schema, table):
                out[name] = f"model {pub.model} is not built (run `elt build`)"
                continue
            q = report.pending_query(pub)
            try:
                columns = ledger.check_model(con, q)
            except EltError as exc:
                out[name] = str(exc)
                continue
            model, rows = tmp / f"{name}.model.parquet", tmp / f"{name}.ledger.parquet"
            con.execute(f"COPY ({ledger.model_rows_sql(q, columns)}) TO "
                        f"{db.literal(str(model))} (FORMAT parquet)")
            con.execute(f"COPY (SELECT key, key_json::VARCHAR AS key_json, status, answer, "
                        f"coalesce(deleted, false) AS deleted, tombstone FROM {led} WHERE "
                        f"publication = {db.literal(name)}) TO {db.literal(str(rows))} "
                        "(FORMAT parquet)")
            out[name] = (model, rows)
    return out


async def _check_all(ctx: Workspace, pubs: dict[str, Publication], reads: dict[str, ReadBack],
                     snapshots: dict[str, tuple[Path, Path] | str],
                     endpoints: dict[str, dict[str, Any]]) -> list[Check]:
    from elt.http.transport import Transport

    async with contextlib.AsyncExitStack() as stack:
        transports = {name: await stack.enter_async_context(Transport(name, cfg))
                      for name, cfg in endpoints.items()}
        down = await report.check_transports(ctx.console, transports, endpoints, auth=True)
        checks = []
        for name, rb in reads.items():
            check = Check(name)
            snap = snapshots[name]
            if isinstance(snap, str) or rb.endpoint in down:
                check.error = snap if isinstance(snap, str) else down[rb.endpoint]
            else:
                await _check(check, pubs[name], rb, transports[rb.endpoint].send, *snap)
            checks.append(check)
        return checks


async def _check(check: Check, pub: Publication, rb: ReadBack, send: Any, model: Path,
                 rows: Path) -> None:
    """Stream the model rows, read them back, then the ledger's keys gone from the model."""
    with duckdb.connect(config={"memory_limit": "128MB", "threads": "1"}) as con:
        lookup = con.cursor()
        con.execute("SELECT key, key_json, body, row FROM read_parquet(?)", [str(model)])
        while chunk := con.fetchmany(CHUNK):
            keys = [r[0] for r in chunk]
            known = {k: (status, answer) for k, status, answer in lookup.execute(
                "SELECT key, status, answer FROM read_parquet(?) WHERE key IN "
                "(SELECT unnest(?::VARCHAR[])) AND NOT deleted", [str(rows), keys]).fetchall()}
            values = [{**json.loads(row), **rb.row_values(kj, body)}
                      for _, kj, body, row in chunk]
            for key, vals, found in zip(keys, values, await rb.read(send, values), strict=True):
                check.checked += 1
                _judge(check, rb, key, vals, found, known.get(key))
        con.execute(
            "SELECT key, key_json, tombstone, deleted FROM read_parquet(?) WHERE status IN "
            "('acknowledged', 'already_there') AND key NOT IN (SELECT key FROM "
            "read_parquet(?))", [str(rows), str(model)])
        while chunk := con.fetchmany(CHUNK):
            values = [rb.row_values(kj, tomb) for _, kj, tomb, _ in chunk]
            for (key, _, _, deleted), found in zip(chunk, await rb.read(send, values),
                                                   strict=True):
                if found.error:
                    continue  # the read needs more than the key: not checkable
                check.gone += 1
                if found.n:
                    check.add("extra", key, "deleted per the ledger" if deleted else None)
                    if deleted and pub.mode == "mirror":
                        check.fix.setdefault("undelete", []).append(key)


def _judge(check: Check, rb: ReadBack, key: str, values: dict[str, Any], found: Found,
           known: tuple[str, str | None] | None) -> None:
    """Count one model row by what the endpoint holds for it."""
    delivered = known is not None and known[0] in DELIVERED
    if found.error:
        check.add("unreadable", key, found.error[:120])
    elif found.n == 0:
        check.add("missing", key)
        check.lost += delivered
        if known is not None:
            check.fix.setdefault("forget", []).append(key)
    elif found.n > 1:
        check.add("duplicated", key, f"{found.n} rows")
    else:
        why = ", ".join(rb.differs(values, found))
        held = rb.answer(found) if rb.answer_path else None
        if not why and delivered and held is not None and known is not None \
                and known[1] is not None and not same(held, known[1]):
            why = f"holds {held}, the ledger {known[1]}"
        if why:
            check.add("stale", key, why)
            if known is not None:
                check.fix.setdefault("stale", []).append(key)


def mark_for_repair(ctx: Workspace, verified: Verified) -> list[str]:
    """Mark the differing rows in the ledger so the next publish sends them; returns the
    publications to publish (under the publish lock, after merging a crashed run's journal)."""
    from elt.publish.lock import publish_lock, state_dir

    todo = [c for c in verified.checks if c.fix or (c.differs and not c.error)]
    if not todo:
        return []
    target = ctx.project.target
    with publish_lock(target.path, ctx.project.root), contextlib.closing(ctx.connect()) as con:
        journal.recover(con, state_dir(target.path))
        ensure_ledger(con, {})
        for check in todo:
            where = f"publication = {db.literal(check.publication)} AND key IN "
            sql = {"forget": f"DELETE FROM {LEDGER} WHERE {where}",
                   "stale": f"UPDATE {LEDGER} SET hash = '{STALE_HASH}' WHERE {where}",
                   "undelete": f"UPDATE {LEDGER} SET deleted = false, status = 'acknowledged' "
                               f"WHERE {where}"}
            for what, keys in check.fix.items():
                con.execute(sql[what] + "(SELECT unnest(?::VARCHAR[]))", [keys])
                ctx.console.info(f"verify {check.publication}: {len(keys):,} row(s) "
                                 f"{REPAIRS[what]}")
    return [c.publication for c in todo]
