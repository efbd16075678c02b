"""`elt ledger forget` (elt/publish/forget.py) against the crud receiver: forgotten rows go
again; a --where that is no condition, or names no column, is one clear line and the ledger
stays as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from own_api import KEY_VAR, OwnApi, crud_stats, new_statuses, put_upsert

import elt.sandbox.crud as crud
from elt.sandbox.server import Sandbox

ITEMS = "SELECT * FROM (VALUES (1, 'bolt'), (2, 'nut'), (3, 'washer')) t(id, name)"
PUB = put_upsert(created="[200, 201]", replaced="[200, 201]")


@pytest.fixture
def published(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[OwnApi, Sandbox]:
    monkeypatch.setenv(KEY_VAR, crud.API_KEY)
    with Sandbox(tmp_path / "sb.duckdb") as sb:
        p = OwnApi(tmp_path / "proj", f"{sb.url}/crud", ITEMS, PUB)
        p.build()
        assert not p.publish().failed, p.out.getvalue()
        yield p, sb


@pytest.mark.parametrize(("where", "says"), [
    ("id = ", "--where 'id =' is not an SQL condition: "),
    ("nosuch = 1", "--where 'nosuch = 1': Binder Error"),
    ("true; DROP TABLE _elt.ledger", "one condition on the ledger's columns, no statements"),
    ("id IN (SELECT key FROM _elt.ledger)", "no statements or subqueries"),
    ("", "--where is empty"),
])
def test_a_bad_where_is_one_line_and_the_ledger_stays(
        published: tuple[OwnApi, Sandbox], where: str, says: str) -> None:
    p, _ = published
    before = p.ledger()
    run = p.cli("ledger", "forget", "-s", "items", "--where", where)
    assert run.code == 1, run.output
    [line] = run.error_lines()
    assert says in line, run.output
    assert "Col: 19" not in line  # a column of the user's text (col 4), not of a wrapper
    assert "Traceback" not in run.output and len(run.stderr.strip().splitlines()) == 1
    assert p.ledger() == before and len(before) == 3


def test_forget_where_sends_those_rows_again(published: tuple[OwnApi, Sandbox]) -> None:
    p, sb = published
    dry = p.cli("ledger", "forget", "-s", "items", "--where", "id = '2' OR status = 'failed'",
                "--dry-run")
    assert dry.code == 0 and "would forget 1 row(s)" in dry.output, dry.output
    assert len(p.ledger()) == 3
    assert "say which publication" in p.cli("ledger", "forget").output
    done = p.cli("ledger", "forget", "-s", "items", "--where", "id = '2'")
    assert done.code == 0 and "forgot 1 row(s)" in done.output, done.output
    assert [k for k, *_ in p.ledger()] == ["[1]", "[3]"]
    before = crud_stats(sb)
    assert not p.publish().failed
    assert new_statuses(before, crud_stats(sb)) == {"200": 1}  # the PUT of item 2, again
    assert [k for k, *_ in p.ledger()] == ["[1]", "[2]", "[3]"]
