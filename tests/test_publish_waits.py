"""Row-level `depends_on` (elt/publish/waits.py), published for real against the sandbox's
UOIS: one group that fails holds back only its own memberships (they wait, named, counted in
`elt status`), and the rule holds when the upstream publication is not selected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import DEMO_GROUPTYPES, E2E, PUBLICATIONS, elt, statuses

from elt.core.errors import ConfigError
from elt.sandbox.server import Sandbox

ROW_LEVEL = PUBLICATIONS.replace(
    "depends_on: [uois_users, uois_groups]",
    "depends_on: {uois_users: {user_id: id}, uois_groups: {group_id: id}}")
GROUP = "md5('group' || {i})::UUID::VARCHAR"
# group 1 has no name: groupInsert refuses it ($name: String!), alone (one group a request)
BAD_GROUP = f"""SELECT md5('group' || i)::UUID::VARCHAR AS id,
  CASE WHEN i = 1 THEN NULL ELSE 'Group ' || i END AS name,
  '{DEMO_GROUPTYPES[0][0]}' AS grouptype_id FROM range(3) t(i)"""  # a type UOIS has


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def project(root: Path, sb: Sandbox) -> E2E:
    p = E2E(root, sb, n=2, users=6)  # memberships i: user i, group i % 3
    (root / "models" / "publications.yml").write_text(ROW_LEVEL)
    return p


def stored_memberships(sb: Sandbox) -> set[str]:
    assert sb.store is not None
    return {r["id"] for r in sb.store.query("SELECT id FROM uois_memberships")}


def membership_ids(p: E2E, group: int | None = None) -> set[str]:
    where = "" if group is None else f" WHERE group_id = {GROUP.format(i=group)}"
    return {r[0] for r in p.sql(f"SELECT id FROM uois_memberships{where}")}


def status_row(p: E2E, name: str) -> dict:
    run = elt(p.root, "status", "--format", "json")
    assert run.code == 0, run.output
    return next(r for r in json.loads(run.stdout) if r["publication"] == name)


def test_a_failed_group_holds_back_only_its_memberships(tmp_path: Path, sb: Sandbox) -> None:
    p = project(tmp_path, sb)
    (tmp_path / "models" / "uois_groups.sql").write_text(BAD_GROUP)
    p.build()
    results = p.publish(select=["uois_users", "uois_groups", "uois_memberships"])
    got = statuses(results)
    assert got["uois_groups"] == "error" and got["uois_memberships"] == "warn", got
    waiting = membership_ids(p, group=1)
    assert len(waiting) == 2
    assert stored_memberships(sb) == membership_ids(p) - waiting  # the other groups' 4 went
    message = {r.name: r.message for r in results.results}["uois_memberships"]
    first = sorted(waiting)[0]
    group = p.sql(f"SELECT {GROUP.format(i=1)}")[0][0]
    assert message.startswith("4/4 acknowledged"), message
    assert (f'2 row(s) wait for rows of uois_users, uois_groups not acknowledged yet (first: '
            f'["{first}"] needs uois_groups ["{group}"]') in message, message
    row = status_row(p, "uois_memberships")
    assert (row["waiting"], row["pending"], row["acknowledged"]) == (2, 0, 4), row
    assert p.sql("SELECT count(*) FROM _elt.ledger WHERE publication = 'uois_memberships' "
                 "AND key IN (SELECT json_array(id)::VARCHAR FROM uois_memberships WHERE "
                 f"group_id = {GROUP.format(i=1)})") == [(0,)]  # never sent

    # the group is fixed: it goes, and its memberships after it, in the same run
    (tmp_path / "models" / "uois_groups.sql").write_text(BAD_GROUP.replace("NULL", "'One'"))
    p.build()
    results = p.publish()
    assert statuses(results)["uois_memberships"] == "success", p.out.getvalue()
    assert stored_memberships(sb) == membership_ids(p)
    assert status_row(p, "uois_memberships")["waiting"] == 0


def test_rows_wait_for_an_upstream_that_is_not_selected(tmp_path: Path, sb: Sandbox) -> None:
    p = project(tmp_path, sb)
    p.build()
    results = p.publish(select=["uois_memberships"])
    [result] = results.results
    assert (result.status, result.rows) == ("warn", 0)
    assert "6 row(s) wait for rows of uois_users, uois_groups" in result.message
    assert "uois_users, uois_groups not selected: `-s +uois_memberships` publishes it first" \
        in result.message, result.message
    assert stored_memberships(sb) == set()
    # users published, groups not yet: still none goes (each needs its group too)
    assert not p.publish(select=["uois_users"]).failed
    assert statuses(p.publish(select=["uois_memberships"])) == {"uois_memberships": "warn"}
    assert stored_memberships(sb) == set()
    assert not p.publish(select=["uois_groups"]).failed
    assert statuses(p.publish(select=["uois_memberships"])) == {"uois_memberships": "success"}
    assert stored_memberships(sb) == membership_ids(p)


@pytest.mark.parametrize(("depends", "says"), [
    ("{uois_groups: {group_id: name}}", "maps to name; it must map one column of this model "
                                         "to each key column of uois_groups (id)"),
    ("{uois_groups: group_id}", "must map this model's columns to uois_groups's key columns"),
    ("{nosuch: {group_id: id}}", "depends_on unknown publication 'nosuch'"),
])
def test_row_level_depends_on_is_checked_at_load(tmp_path: Path, depends: str,
                                                 says: str) -> None:
    p = E2E(tmp_path, None)
    (tmp_path / "models" / "publications.yml").write_text(PUBLICATIONS.replace(
        "depends_on: [uois_users, uois_groups]", f"depends_on: {depends}"))
    with pytest.raises(ConfigError, match="publication 'uois_memberships'") as err:
        p.publish(target="embedded", dry_run=True)
    assert says in str(err.value)
