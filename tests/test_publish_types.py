"""Types the API needs first (#30 point 6): a fresh UOIS has none of the export's group types
and external-id types, so with foreign keys checked every group and external id would fail.

The project publishes the export's types first (uois_grouptypes, uois_externalid_types, with
`depends_on` ordering the groups and external ids after them). A type the export names but
does not define cannot be created: the build asks UOIS for it, and when UOIS lacks it too,
the groups (with their memberships) of that type are refused, naming it, and never sent.
These run the repository's own project against a fresh sandbox store over loopback."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import duckdb

from elt.context import Context
from elt.core.console import Console
from elt.sandbox.uois_types import DEMO_GROUPTYPES

REPO = Path(__file__).resolve().parent.parent
UOIS = ["uois_grouptypes", "uois_externalid_types", "uois_users", "uois_groups",
        "uois_memberships", "uois_externalids"]


def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    for name in ("seeds", "models"):
        shutil.copytree(REPO / name, root / name)
    shutil.copy(REPO / "profiles.yml", root / "profiles.yml")
    return root


def run(root: Path, what: str, **kw: Any) -> tuple[bool, str]:
    out = io.StringIO()
    ctx = Context(project_dir=root, target="sandbox",
                  console=Console(out=out, err=out, color=False))
    results = getattr(ctx, what)(**kw)
    return not results.failed, out.getvalue()


def stored(root: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(root / "target" / "sandbox.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_fresh_uois_gets_the_types_first_and_every_group_succeeds(tmp_path: Path) -> None:
    root = project(tmp_path)
    export = json.loads((root / "seeds" / "uois" / "systemdata.json").read_text())
    ok, text = run(root, "build", exclude=["tag:flowkit"])
    assert ok, text
    ok, text = run(root, "publish", select=UOIS)
    assert ok, text
    for pub, n in (("uois_grouptypes", 5), ("uois_externalid_types", 3), ("uois_groups", 30),
                   ("uois_memberships", 619), ("uois_externalids", 539)):
        assert f"{n}/{n} acknowledged (100%)" in next(
            line for line in text.splitlines() if f" {pub} " in line), text
    types = {t["id"] for t in export["grouptypes"]}
    assert {r[0] for r in stored(root, "SELECT id FROM uois_grouptypes")} == types | {
        t[0] for t in DEMO_GROUPTYPES}  # the export's, beside the fresh installation's own
    assert stored(root, "SELECT count(*) FROM uois_groups") == [(30,)]
    # sent in order: every type (group or external id) before the first group or id of it
    [(last_type, first_group)] = stored(
        root, "SELECT (SELECT max(seq) FROM uois_grouptypes), (SELECT min(seq) FROM uois_groups)")
    assert last_type < first_group
    [(last_ext_type, first_ext)] = stored(
        root, "SELECT (SELECT max(seq) FROM uois_externalidtypes), "
              "(SELECT min(seq) FROM uois_externalids)")
    assert last_ext_type < first_ext


def test_a_type_that_cannot_be_created_is_named_and_none_of_its_groups_is_sent(
        tmp_path: Path) -> None:
    root = project(tmp_path)
    path = root / "seeds" / "uois" / "systemdata.json"
    export = json.loads(path.read_text())
    missing = "0badbeef-0000-4000-8000-00000000c0de"  # in neither the export nor UOIS
    demo = DEMO_GROUPTYPES[0][0]  # not in the export, but UOIS has it: usable
    lost = {"id": "0badbeef-0000-4000-8000-000000000001", "name": "Lost", "valid": True,
            "grouptype_id": missing, "mastergroup_id": None}
    kept = {"id": "0badbeef-0000-4000-8000-000000000002", "name": "Demo-typed", "valid": True,
            "grouptype_id": demo, "mastergroup_id": None}
    member = {"id": "0badbeef-0000-4000-8000-000000000003", "user_id": export["users"][0]["id"],
              "group_id": lost["id"], "valid": True}
    export["groups"] += [lost, kept]
    export["memberships"].append(member)
    path.write_text(json.dumps(export))
    ok, text = run(root, "build", exclude=["tag:flowkit"])
    assert ok, text
    ok, text = run(root, "publish", select=UOIS)
    assert ok, text
    assert ("publication uois_groups: 1 row(s) refused by column 'refused' of "
            f"uois_groups_to_send, never sent (first: [\"{lost['id']}\"]: group type {missing} is "
            "neither in the export nor in UOIS)") in text, text
    assert "publication uois_memberships: 1 row(s) refused" in text, text
    assert f"group {lost['id']} is refused: group type {missing}" in text, text
    groups = {r[0] for r in stored(root, "SELECT id FROM uois_groups")}
    assert lost["id"] not in groups and kept["id"] in groups and len(groups) == 31
    assert stored(root, f"SELECT count(*) FROM uois_groups WHERE grouptype_id = '{missing}'"
                  ) == [(0,)]
    assert stored(root, f"SELECT count(*) FROM uois_memberships WHERE id = '{member['id']}'"
                  ) == [(0,)]
