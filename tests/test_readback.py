"""The read layer (elt/publish/readback.py) and GraphQL updates, over loopback against the
sandbox: a changed UOIS user goes out as one userUpdate with the lastchange read just before;
a stale lastchange ("changed meanwhile") is read again once; an append publication without an
update reports its changed rows and exits non-zero (on_change)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import elt, sandbox_endpoints, stats, write_files, write_profile

import elt.publish.readback as rb
from elt.http.messages import Request
from elt.publish.readback import ReadBack
from elt.sandbox.server import Sandbox

USERS = "id,name,surname,email\n" + "".join(
    f"00000000-0000-0000-0000-00000000000{i},N{i},S{i},u{i}@x.org\n" for i in range(1, 6))
INSERT = """mutation ($id: UUID!, $name: String!, $surname: String!, $email: String!) {
  result: userInsert(user: {id: $id, name: $name, surname: $surname, email: $email}) {
    id msg result: user { id lastchange } } }"""
UPDATE = """mutation ($id: UUID!, $lastchange: DateTime!, $name: String!, $surname: String!,
                     $email: String!) {
  result: userUpdate(user: {id: $id, lastchange: $lastchange, name: $name, surname: $surname,
                            email: $email}) { id msg result: user { id lastchange } } }"""
READ = "query ($id: UUID!) { result: userById(id: $id) { id name surname email lastchange } }"


def _project(root: Path, sb: Sandbox, *, update: bool = True, on_change: str = "error") -> None:
    graphql = {"document": "user_insert.gql", "result": "msg", "success": "ok",
               "already_there_errors": ["UniqueViolation"], "answer": "id"}
    if update:
        graphql |= {"update": "user_update.gql", "changed_meanwhile": ["fail"]}
    pub = {"model": "users", "endpoint": "uois", "kind": "graphql", "key": ["id"],
           "batch_size": 2, "on_change": on_change, "graphql": graphql,
           "read": {"document": "user_by_id.gql", "result": "result",
                    "provides": {"lastchange": "lastchange"},
                    "compare": {"name": "name", "surname": "surname", "email": "email"},
                    "answer": "id"}}
    write_files(root, {
        "seeds/users.csv": USERS,
        "models/users.sql": "SELECT * FROM raw.users",
        "models/user_insert.gql": INSERT, "models/user_update.gql": UPDATE,
        "models/user_by_id.gql": READ,
        "models/publications.yml": json.dumps({"publications": {"users": pub}}),
    })
    write_profile(root, sandbox_endpoints(sb, ("uois",)))


@pytest.fixture
def sb(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sb.duckdb") as sandbox:
        yield sandbox


def _change_surname(root: Path) -> None:
    (root / "seeds/users.csv").write_text(USERS.replace("S3,", "Changed,"), encoding="utf-8")


def _published_then_changed(tmp_path: Path, sb: Sandbox) -> Path:
    """A project published once whose model then has one changed user."""
    root = tmp_path / "p"
    _project(root, sb)
    assert elt(root, "build").code == 0 and elt(root, "publish").code == 0
    _change_surname(root)
    assert elt(root, "build").code == 0
    return root


def _updates(sb: Sandbox) -> int:
    counters = stats(sb)["uois"]
    return sum(v.get("updated", 0) for v in counters.values() if isinstance(v, dict))


def test_changed_user_sends_one_update_with_lastchange(tmp_path: Path, sb: Sandbox) -> None:
    root = tmp_path / "p"
    _project(root, sb)
    assert elt(root, "build").code == 0
    run = elt(root, "publish")
    assert run.code == 0, run.stdout + run.stderr
    _change_surname(root)
    assert elt(root, "build").code == 0
    status = elt(root, "status")
    assert "changed" in status.stdout.splitlines()[0]
    run = elt(root, "publish")
    assert run.code == 0, run.stdout + run.stderr
    assert "1/1 acknowledged" in run.stdout
    assert sb.store.scalar("SELECT surname FROM uois_users WHERE id = "
                           "'00000000-0000-0000-0000-000000000003'") == "Changed"
    assert _updates(sb) == 1
    again = elt(root, "publish")
    assert "nothing new, changed or failed" in again.stdout and _updates(sb) == 1


def test_changed_row_without_update_is_reported_and_fails(tmp_path: Path, sb: Sandbox) -> None:
    root = tmp_path / "p"
    _project(root, sb, update=False)
    assert elt(root, "build").code == 0 and elt(root, "publish").code == 0
    _change_surname(root)
    assert elt(root, "build").code == 0
    status = elt(root, "status", "--format", "json")
    assert status.code == 0, status.stderr
    (row,) = json.loads(status.stdout)
    assert row["changed"] == 1 and row["pending"] == 0
    run = elt(root, "publish")
    assert run.code != 0
    text = run.stdout + run.stderr
    assert "1 rows of users changed since sent; users declares no update" in text
    assert "nothing new, changed or failed" not in text
    again = elt(root, "publish")  # no clean mark hides it on the next run either
    assert again.code != 0 and "changed since sent" in again.stdout + again.stderr


def test_on_change_warn_and_ignore(tmp_path: Path, sb: Sandbox) -> None:
    root = tmp_path / "p"
    _project(root, sb, update=False, on_change="warn")
    assert elt(root, "build").code == 0 and elt(root, "publish").code == 0
    _change_surname(root)
    assert elt(root, "build").code == 0
    run = elt(root, "publish")
    assert run.code == 0 and "changed since sent" in run.stdout + run.stderr
    _project(root, sb, update=False, on_change="ignore")
    run = elt(root, "publish")
    assert run.code == 0 and "changed rows ignored" in run.stdout
    assert "nothing new, changed or failed" not in run.stdout


def test_changed_meanwhile_reads_again_once(tmp_path: Path, sb: Sandbox,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The first update is refused as stale (another writer touched the row between the read
    and the update): the row is read again and the second update goes through."""
    root = _published_then_changed(tmp_path, sb)
    real = rb.ReadBack.read
    calls: list[int] = []

    async def stale_first(self, send, rows):  # type: ignore[no-untyped-def]
        found = await real(self, send, rows)
        calls.append(len(rows))
        if len(calls) == 1:  # another writer changes the row right after our read
            sb.store.query("UPDATE uois_users SET lastchange = lastchange + INTERVAL 1 SECOND")
        return found

    monkeypatch.setattr(rb.ReadBack, "read", stale_first)
    run = elt(root, "publish")
    assert run.code == 0, run.stdout + run.stderr
    assert calls == [1, 1] and _updates(sb) == 1


def test_changed_meanwhile_twice_fails_the_row_with_the_answer(
        tmp_path: Path, sb: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _published_then_changed(tmp_path, sb)
    real = rb.ReadBack.read

    async def always_stale(self, send, rows):  # type: ignore[no-untyped-def]
        found = await real(self, send, rows)
        sb.store.query("UPDATE uois_users SET lastchange = lastchange + INTERVAL 1 SECOND")
        return found

    monkeypatch.setattr(rb.ReadBack, "read", always_stale)
    run = elt(root, "publish")
    assert run.code != 0
    assert "changed meanwhile" in run.stdout + run.stderr
    assert _updates(sb) == 0


def test_graphql_read_batches_and_counts(tmp_path: Path) -> None:
    (tmp_path / "r.gql").write_text(READ, encoding="utf-8")
    read = ReadBack("users", "graphql", {"document": "r.gql", "result": "result",
                                         "batch_size": 2}, tmp_path, "uois")
    rows = [{"id": f"id{i}"} for i in range(3)]
    requests = read.requests(rows)
    assert [len(r.rows) for r in requests] == [2, 1]
    body = json.loads(requests[0].content)
    assert body["variables"] == {"id_0": "id0", "id_1": "id1"}
    answer = json.dumps({"data": {"r0": {"id": "id0", "name": "a"}, "r1": None}}).encode()
    found = read.answers(requests[0], 200, answer)
    assert [f.n for f in found] == [1, 0] and found[0].value["name"] == "a"
    assert read.differs({"name": "b"}, found[0]) == []  # nothing declared to compare
    assert read.answers(Request("POST", "", b"", {}, ({},)), None, b"", "timeout")[0].error
