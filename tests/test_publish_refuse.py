"""A row its model refuses (`refuse: <column>`) is never sent and shows as refused.

The UOIS case (#29 point 2): an outer id UOIS already maps to another inner id. UOIS
would register a second mapping; the contract says the client must not send it. The
project's uois_externalids publication reads uois_externalids_to_send, whose `refused`
column names such rows; here a second checkout (the ledger forgotten) meets an export
that moved one outer id to another user."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import duckdb

from elt.context import Context
from elt.core.console import Console
from elt.publish.report import STATUS_COLUMNS
from elt.publish.runner import publication_status

REPO = Path(__file__).resolve().parent.parent


def context(root: Path) -> tuple[Context, io.StringIO]:
    out = io.StringIO()
    return Context(project_dir=root, target="sandbox",
                   console=Console(out=out, err=out, color=False)), out


def sandbox_mappings(root: Path, type_id: str, outer_id: str) -> list[str]:
    with duckdb.connect(str(root / "target" / "sandbox.duckdb"), read_only=True) as con:
        return [r[0] for r in con.execute(
            "SELECT inner_id FROM uois_externalids WHERE typeid_id = ? AND outer_id = ?",
            [type_id, outer_id]).fetchall()]


def test_an_outer_id_registered_to_another_user_is_refused_never_sent(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    for name in ("seeds", "models"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    ctx, out = context(root)
    assert not ctx.build(exclude=["tag:flowkit"]).failed, out.getvalue()
    assert not ctx.publish(select=["uois_users", "+uois_externalids"]).failed, out.getvalue()

    export = root / "seeds" / "uois" / "systemdata.json"
    data = json.loads(export.read_text())
    pairs = [(e["typeid_id"], e["outer_id"]) for e in data["externalids"]]
    moved = next(e for e in data["externalids"]
                 if pairs.count((e["typeid_id"], e["outer_id"])) == 1)
    others = [u["id"] for u in data["users"] if u["id"] != moved["inner_id"]]
    registered_to, moved["inner_id"] = moved["inner_id"], others[0]
    export.write_text(json.dumps(data))
    ctx, out = context(root)
    assert not ctx.build(exclude=["tag:flowkit"]).failed, out.getvalue()
    # a second checkout: its ledger knows none of them
    assert sum(ctx.forget(select=["uois_externalids"]).values()) > 0

    ctx, out = context(root)
    published = ctx.publish(select=["uois_externalids"])
    text = out.getvalue()
    assert not published.failed, text
    assert ("publication uois_externalids: 1 row(s) refused by column 'refused' of "
            "uois_externalids_to_send, never sent") in text, text
    assert f"registered in UOIS to another inner id ({registered_to})" in text, text
    type_id, outer_id = moved["typeid_id"].lower(), moved["outer_id"]
    assert sandbox_mappings(root, type_id, outer_id) == [registered_to]  # no second mapping

    columns, rows = publication_status(context(root)[0])
    [row] = [r for r in rows if r[0] == "uois_externalids"]
    status = dict(zip(columns, row, strict=True))
    assert status["refused"] == 1 and status["pending"] == 0, status
    assert status["acknowledged"] + status["already_there"] == status["total"] - 1, status
    assert {"refused", "waiting"} <= set(STATUS_COLUMNS)
    # a second publish sends nothing and still says it
    ctx, out = context(root)
    again = ctx.publish(select=["uois_externalids"])
    assert "1 row(s) refused" in out.getvalue() and not again.failed
