"""Pending bodies written in parts (elt/publish/bodies.py), in real DuckDB: every pending
body in exactly one part, parts announced in order while a reader waits for them, a view in
one part, failures and stops told to the reader instead of hanging it."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb
import pytest

from elt.core.errors import PublishError
from elt.publish import bodies, ledger

KEYS = ("cat", "n")


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    c = duckdb.connect(str(tmp_path / "state.duckdb"))
    c.execute("CREATE TABLE m AS SELECT 'c' || (i % 7) AS cat, i AS n, "
              "json_object('n', i, 'pad', repeat('x', 50)) AS payload FROM range(7000) t(i)")
    ledger.ensure_ledger(c, {"p": list(KEYS)})
    yield c
    c.close()


def query(relation: str = 'main."m"') -> ledger.PendingQuery:
    return ledger.PendingQuery("p", relation, KEYS, "upsert", "payload")


def read_all(parts: bodies.BodyParts) -> tuple[list[Path], list[tuple[str, str]]]:
    seen: list[Path] = []
    rows: list[tuple[str, str]] = []
    with duckdb.connect() as reader:
        for part in parts:
            seen.append(part)
            rows += reader.execute("SELECT key, body FROM read_parquet(?)",
                                   [str(part)]).fetchall()
    return seen, rows


def test_deferred_bodies_land_in_parts_each_pending_body_once(
        con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bodies, "ROWS_PER_PART", 1000)
    path = tmp_path / "run" / "p.parquet"
    count, held, copy = bodies.copy_pending(con, query(), path, defer_bodies=True)
    assert (count, held) == (7000, 0)
    assert path.is_file() and not bodies.bodies_path(path).exists()  # keys only, so far
    assert not copy.parts.finished
    # the reader waits for parts while another thread writes them
    writer = threading.Thread(target=copy.run)
    writer.start()
    seen, rows = read_all(copy.parts)
    writer.join()
    assert seen == [bodies.bodies_path(path, i) for i in range(7)]
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)) == 7000
    expected = dict(con.execute("SELECT json_array(cat, n)::VARCHAR, payload::VARCHAR "
                                "FROM m").fetchall())
    assert dict(rows) == expected
    # the pending set's temp table went with the last part
    assert con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE "
                       "'_elt_pending%'").fetchone() == (0,)


def test_a_view_and_an_immediate_copy_are_one_part(con: duckdb.DuckDBPyConnection,
                                                   tmp_path: Path) -> None:
    con.execute("CREATE VIEW v AS SELECT * FROM m WHERE n < 3000")
    path = tmp_path / "v" / "p.parquet"
    count, _, copy = bodies.copy_pending(con, query('main."v"'), path, defer_bodies=True)
    copy.run()
    seen, rows = read_all(copy.parts)
    assert count == 3000 and seen == [bodies.bodies_path(path)] and len(rows) == 3000
    _, _, now = bodies.copy_pending(con, query(), tmp_path / "now" / "p.parquet")
    assert now.parts.complete and len(now.parts.all()) == 1


def test_a_failed_copy_is_told_to_the_reader(con: duckdb.DuckDBPyConnection,
                                             tmp_path: Path) -> None:
    _, _, copy = bodies.copy_pending(con, query(), tmp_path / "p.parquet", defer_bodies=True)
    con.execute("DROP TABLE m")  # the model vanished before its bodies were copied
    copy.run()
    with pytest.raises(PublishError, match="could not be copied: .*m"):
        read_all(copy.parts)
    with pytest.raises(PublishError, match="cannot copy the bodies to send"):
        con.execute("CREATE TABLE m AS SELECT 'a' AS cat, 1 AS n, '{}' AS payload")
        con.execute("CREATE VIEW broken AS SELECT cat, n, payload::JSON AS payload FROM m")
        con.execute("UPDATE m SET payload = 'not json'")
        bodies.copy_pending(con, query('main."broken"'), tmp_path / "b" / "p.parquet")


def test_copies_left_when_the_run_stops_end_their_readers(con: duckdb.DuckDBPyConnection,
                                                          tmp_path: Path) -> None:
    later = bodies.LaterCopies()
    copies = [bodies.copy_pending(con, query(), tmp_path / d / "p.parquet",
                                  defer_bodies=True)[2] for d in ("a", "b")]
    for copy in copies:
        later.add(copy)
    assert later.hold(con)
    later.stop()  # e.g. every endpoint was down: nothing more will be sent
    later.run()
    for copy in copies:
        with pytest.raises(PublishError, match="stopped before they were copied"):
            read_all(copy.parts)
    assert later.con is None
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")  # closed by the copies' holder
    assert not bodies.LaterCopies().hold(duckdb.connect())  # nothing to copy: not held
