"""Publication marks (elt/publish/marks.py): which relations may skip a no-op classification."""

from __future__ import annotations

import duckdb
import pytest

from elt.core.state import ensure_ledger
from elt.publish import ledger, marks
from elt.transform import nodestate


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE SCHEMA _elt")
    c.execute(nodestate.NODES_DDL)
    c.execute("CREATE TABLE t AS SELECT 1 AS k, '{}' AS body")
    c.execute("CREATE VIEW v AS SELECT * FROM t")
    ensure_ledger(c, {"p": ["k"]})
    yield c
    c.close()


def _node(con: duckdb.DuckDBPyConnection, name: str, status: str, version: int = 1) -> None:
    con.execute("INSERT OR REPLACE INTO _elt.nodes (name, kind, version, status, built_at) "
                "VALUES (?, 'model', ?, ?, TIMESTAMP '2026-01-01')", [name, version, status])


def test_only_a_base_table_built_by_elt_has_a_mark(con: duckdb.DuckDBPyConnection) -> None:
    q = ledger.PendingQuery("p", 'main."t"', ("k",), "upsert", "body")
    assert marks.current(con, q, "t", "main", "t") is None  # elt did not build it
    _node(con, "t", "error")
    assert marks.current(con, q, "t", "main", "t") is None  # its last build failed
    _node(con, "t", "success")
    first = marks.current(con, q, "t", "main", "t")
    assert first is not None
    _node(con, "v", "success")  # a view: its version does not move with its inputs
    assert marks.current(con, q, "v", "main", "v") is None
    _node(con, "t", "success", version=2)
    assert marks.current(con, q, "t", "main", "t") != first
    other = ledger.PendingQuery("p", 'main."t"', ("k",), "mirror", "body")
    assert marks.current(con, other, "t", "main", "t") != marks.current(con, q, "t", "main", "t")


def test_recorded_mark_is_kept_or_forgotten(con: duckdb.DuckDBPyConnection) -> None:
    assert marks.recorded(con, "p") is None  # no table yet
    marks.record(con, "p", None)
    marks.record(con, "p", "m1")
    marks.record(con, "p", "m2")
    assert marks.recorded(con, "p") == "m2"
    marks.record(con, "p", None)
    assert marks.recorded(con, "p") is None


@pytest.mark.parametrize("then, marked", [
    ("nothing", True),
    ("UPDATE _elt.ledger SET status = 'failed'", False),  # sent again by the next run
    ("UPDATE _elt.ledger SET status = 'unknown'", False),  # held or resent
    ("UPDATE _elt.nodes SET version = 2", False),  # rebuilt while the rows were being sent
])
def test_after_send_records_the_mark_only_when_nothing_is_left_to_send(
        con: duckdb.DuckDBPyConnection, then: str, marked: bool) -> None:
    q = ledger.PendingQuery("p", 'main."t"', ("k",), "upsert", "body")
    _node(con, "t", "success")
    before = marks.current(con, q, "t", "main", "t")
    assert before is not None
    con.execute("INSERT INTO _elt.ledger (publication, key, hash, status, op, seq) "
                "VALUES ('p', '[1]', 'h', 'acknowledged', 'insert', 1)")  # the send's answer
    if then != "nothing":
        con.execute(then)
    marks.after_send(con, q, "t", "main", "t", before)
    assert marks.recorded(con, "p") == (marks.current(con, q, "t", "main", "t") if marked
                                        else None)
    assert marks.clean(con, q, "t", "main", "t") is marked
