"""The ledger in real DuckDB: pending-set SQL per mode, journal merge, published views."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from elt.core.errors import PublishError
from elt.publish import ledger, ledger_merge

KEYS = ("cat", "srid")


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE TABLE m (cat VARCHAR, srid INTEGER, payload JSON, v INTEGER)")
    c.execute("""INSERT INTO m VALUES ('a', 1, '{"x": 1}', 1), ('b', 2, '{"x": 2}', 2),
                                      ('c', 3, '{"x": 3}', 3)""")
    ledger.ensure_ledger(c, {"p": list(KEYS)})
    yield c
    c.close()


def query(mode: str, body: str | None = "payload") -> ledger.PendingQuery:
    return ledger.PendingQuery("p", 'main."m"', KEYS, mode, body)


def pending(con: duckdb.DuckDBPyConnection, mode: str, body: str | None = "payload"
            ) -> dict[str, tuple]:
    """key -> (op, reason, retry_of_unknown, body)."""
    q = query(mode, body)
    cols = ledger.check_model(con, q)
    rows = con.execute(ledger.pending_sql(q, cols), ["p"]).fetchall()
    return {key: (op, reason, rou, b) for key, _kj, op, _h, b, rou, reason in rows}


class Journal:
    """Writes journal lines the way elt/publish/journal.py does."""

    def __init__(self, path: Path, run: str = "r1") -> None:
        self.path, self.run, self.n, self.lines = path, run, 0, []

    def line(self, key: str, status: str, op: str = "insert", answer: str | None = None,
             http: int | None = 201, attempts: int = 1, h: str = "h") -> Journal:
        self.n += 1
        cat, srid = json.loads(key)
        fields = {"run": self.run, "n": self.n, "pub": "p", "key": key, "op": op, "hash": h,
                  "status": status, "ts": f"2024-01-01T00:00:{self.n:02d}.000001",
                  "key_json": {"cat": cat, "srid": srid}}
        if status != "unknown":
            fields.update(http=http, answer=answer, attempts=attempts)
        self.lines.append(json.dumps(fields))
        return self

    def write(self) -> Path:
        self.path.write_text("".join(line + "\n" for line in self.lines))
        return self.path


def ack_all(con: duckdb.DuckDBPyConnection, tmp_path: Path, mode: str = "upsert",
            name: str = "j.ndjson") -> None:
    """Acknowledge the current pending set with its real hashes (answer = key's v)."""
    q = query(mode)
    rows = con.execute(ledger.pending_sql(q, ledger.check_model(con, q)), ["p"]).fetchall()
    j = Journal(tmp_path / name, run=name)
    for key, _kj, op, h, *_ in rows:
        j.line(key, "unknown", op=op, h=h).line(key, "acknowledged", op=op, h=h,
                                                 answer=f"id{key}")
    ledger_merge.merge_journal(con, j.write())


def test_views_empty_and_varchar_before_any_publish(con: duckdb.DuckDBPyConnection) -> None:
    rows = con.execute("DESCRIBE published.p").fetchall()
    assert [(r[0], r[1]) for r in rows] == [
        ("cat", "VARCHAR"), ("srid", "VARCHAR"), ("status", "VARCHAR"),
        ("http_status", "INTEGER"), ("answer", "VARCHAR"), ("seq", "BIGINT"),
        ("last_sent", "TIMESTAMP")]
    assert con.execute("SELECT count(*) FROM published.p").fetchall() == [(0,)]
    ledger.ensure_ledger(con, {"p": list(KEYS)})  # idempotent (the build calls it every run)


def test_new_rows_key_text_and_hash(con: duckdb.DuckDBPyConnection) -> None:
    q = query("append")
    rows = con.execute(ledger.pending_sql(q, ledger.check_model(con, q)), ["p"]).fetchall()
    assert [r[0] for r in rows] == ['["a",1]', '["b",2]', '["c",3]']
    key, key_json, op, h, body, rou, reason = rows[0]
    assert (key_json, op, body, rou, reason) == ('{"cat":"a","srid":1}', "insert", '{"x": 1}',
                                                 False, "new")
    # md5 of the body exactly as it is sent (not re-parsed: that costs memory on big bodies)
    (expected,), = con.execute("SELECT md5('{\"x\": 1}')").fetchall()
    assert h == expected


def test_row_as_object_when_no_body_column(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("ALTER TABLE m ADD COLUMN _elt_load_id BIGINT")
    body = pending(con, "append", body=None)['["a",1]'][3]
    assert json.loads(body) == {"cat": "a", "srid": 1, "payload": {"x": 1}, "v": 1}


def test_append_never_updates_and_retries_failed(con: duckdb.DuckDBPyConnection,
                                                 tmp_path: Path) -> None:
    ack_all(con, tmp_path, "append")
    assert pending(con, "append") == {}
    con.execute("""UPDATE m SET payload = '{"x": 20}' WHERE cat = 'b'""")
    con.execute("DELETE FROM m WHERE cat = 'c'")
    assert pending(con, "append") == {}  # append: changed and removed rows are not sent
    con.execute("""INSERT INTO m VALUES ('d', 4, '{"x": 4}', 4)""")
    Journal(tmp_path / "f.ndjson", "r2").line('["d",4]', "failed", http=400,
                                              answer="bad").write()
    ledger_merge.merge_journal(con, tmp_path / "f.ndjson")
    assert pending(con, "append") == {'["d",4]': ("insert", "failed", False, '{"x": 4}')}


def test_upsert_changed_unchanged_failed(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ack_all(con, tmp_path)
    con.execute("""UPDATE m SET payload = '{"x": 20}' WHERE cat = 'b'""")
    con.execute("""UPDATE m SET payload = '{"x": 3}' WHERE cat = 'c'""")  # same bytes
    con.execute("DELETE FROM m WHERE cat = 'a'")
    assert pending(con, "upsert") == {'["b",2]': ("update", "changed", False, '{"x": 20}')}
    j = Journal(tmp_path / "u.ndjson", "r2").line('["b",2]', "failed", op="update", http=500,
                                                  answer="Something went wrong")
    ledger_merge.merge_journal(con, j.write())
    assert pending(con, "upsert")['["b",2]'][:2] == ("update", "failed")
    counts = ledger.pending_counts(con, query("upsert"))
    assert (counts["failed"], counts["unchanged"], counts["pending"]) == (1, 1, 1)


def test_mirror_deletes_and_reinserts(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ack_all(con, tmp_path, "mirror")
    con.execute("DELETE FROM m WHERE cat = 'a'")
    assert pending(con, "mirror") == {
        '["a",1]': ("delete", "delete", False, '{"cat":"a","srid":1}')}
    assert pending(con, "upsert") == {}  # upsert never deletes
    Journal(tmp_path / "d.ndjson", "r2").line('["a",1]', "acknowledged", op="delete",
                                              http=204).write()
    ledger_merge.merge_journal(con, tmp_path / "d.ndjson")
    assert con.execute("SELECT deleted FROM _elt.ledger WHERE key = '[\"a\",1]'"
                       ).fetchall() == [(True,)]
    assert con.execute("SELECT cat FROM published.p ORDER BY cat").fetchall() == [("b",), ("c",)]
    assert pending(con, "mirror") == {}
    con.execute("""INSERT INTO m VALUES ('a', 1, '{"x": 1}', 1)""")
    assert pending(con, "mirror")['["a",1]'][:2] == ("insert", "new")


def test_unknown_rows_are_resent_flagged(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    ack_all(con, tmp_path)
    con.execute("""UPDATE m SET payload = '{"x": 20}' WHERE cat = 'b'""")
    con.execute("""INSERT INTO m VALUES ('d', 4, '{"x": 4}', 4)""")
    # a crashed run: both rows went out, no answer recorded
    j = Journal(tmp_path / "crash.ndjson", "r2")
    j.line('["b",2]', "unknown", op="update").line('["d",4]', "unknown", op="insert")
    ledger_merge.merge_journal(con, j.write())
    got = pending(con, "upsert")
    assert got['["b",2]'][:3] == ("update", "unknown", True)
    assert got['["d",4]'][:3] == ("insert", "unknown", True)
    # in flight keeps the answer acknowledged before (models keep reading the old mdid)
    assert con.execute("SELECT status, answer FROM published.p WHERE cat = 'b'").fetchall() == [
        ("unknown", 'id["b",2]')]


def test_merge_is_idempotent_and_attempts_accumulate(con: duckdb.DuckDBPyConnection,
                                                     tmp_path: Path) -> None:
    j = Journal(tmp_path / "j1.ndjson", "r1")
    j.line('["a",1]', "unknown").line('["a",1]', "failed", http=500, attempts=3, answer="x")
    path = j.write()
    assert ledger_merge.merge_journal(con, path) == 1
    before = con.execute("SELECT * FROM _elt.ledger").fetchall()
    assert ledger_merge.merge_journal(con, path) == 0
    assert con.execute("SELECT * FROM _elt.ledger").fetchall() == before
    j2 = Journal(tmp_path / "j2.ndjson", "r2")
    j2.line('["a",1]', "unknown").line('["a",1]', "acknowledged", attempts=2, answer="17")
    ledger_merge.merge_journal(con, j2.write())
    status, attempts, answer, first, last, seq = con.execute(
        "SELECT status, attempts, answer, first_sent, last_sent, seq FROM _elt.ledger"
    ).fetchall()[0]
    assert (status, attempts, answer) == ("acknowledged", 5, "17")
    assert first < last and seq > before[0][12]


def test_merge_ignores_a_torn_last_line(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    path = Journal(tmp_path / "t.ndjson").line('["a",1]', "acknowledged", answer="1").write()
    with open(path, "a") as f:
        f.write('{"run":"r1","n":2,"pub":"p","key":"[\\"b\\",2]","st')
    assert ledger_merge.merge_journal(con, path) == 1
    assert con.execute("SELECT key FROM _elt.ledger").fetchall() == [('["a",1]',)]


def test_check_model_rejects_bad_keys(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("""INSERT INTO m VALUES ('a', 1, '{}', 9)""")
    with pytest.raises(PublishError, match=r'key \["a",1\] appears 2 times'):
        ledger.check_model(con, query("append"))
    con.execute("DELETE FROM m WHERE v = 9")
    con.execute("""INSERT INTO m VALUES (NULL, 1, '{}', 9)""")
    with pytest.raises(PublishError, match="NULL key"):
        ledger.check_model(con, query("append"))
    with pytest.raises(PublishError, match="column 'nope' not in the model"):
        ledger.check_model(con, ledger.PendingQuery("p", 'main."m"', ("nope",), "append"))


def test_runs_table(con: duckdb.DuckDBPyConnection) -> None:
    ledger_merge.start_run(con, "r1", "2024-01-01T00:00:00", ["p"])
    ledger_merge.start_run(con, "r2", "2024-01-02T00:00:00", ["p"])  # r1 never finished: crashed
    ledger_merge.finish_run(con, "r2", "2024-01-02T00:01:00", 3, 2, 1, "error")
    assert con.execute("SELECT run_id, status, sent, acknowledged, failed FROM "
                       "_elt.publish_runs ORDER BY run_id").fetchall() == [
        ("r1", "crashed", 0, 0, 0), ("r2", "error", 3, 2, 1)]


def _copied_hashes(con: duckdb.DuckDBPyConnection, tmp_path: Path, name: str
                   ) -> dict[str, str | None]:
    path = tmp_path / name / "p.parquet"
    q = query("upsert")
    ledger.copy_pending(con, q, path, ledger.check_model(con, q))
    return dict(con.execute("SELECT key, hash FROM read_parquet(?)", [str(path)]).fetchall())


def test_copy_pending_reads_no_body_before_the_first_publish(con: duckdb.DuckDBPyConnection,
                                                             tmp_path: Path) -> None:
    """A first publish classifies on keys alone (the sender hashes what it sends); once the
    ledger knows rows, the known keys carry their model hash so a change is seen."""
    first = _copied_hashes(con, tmp_path, "first")
    assert set(first) == {'["a",1]', '["b",2]', '["c",3]'}
    assert set(first.values()) == {None}
    sql = ledger.classified_sql(query("upsert"), ledger.check_model(con, query("upsert")),
                                known=False)
    assert "payload" not in sql and "md5" not in sql
    ack_all(con, tmp_path)
    con.execute("""UPDATE m SET payload = '{"x": 20}' WHERE cat = 'b'""")
    con.execute("""INSERT INTO m VALUES ('d', 4, '{"x": 4}', 4)""")
    later = _copied_hashes(con, tmp_path, "later")
    (changed,), = con.execute("SELECT md5('{\"x\": 20}')").fetchall()
    assert later == {'["b",2]': changed, '["d",4]': None}


# README "Publishing to your own API", **Bodies.**: one model column of each type of the
# table's rows, and what its cell must encode to (the first is the table's example).
README_TYPES = {
    "VARCHAR, UUID, ENUM": [("'bolt'::VARCHAR", None), ("'bolt'::ENUM('bolt', 'nut')", None),
                            ("'5f0c6d3e-0000-4000-8000-000000000001'::UUID",
                             '"5f0c6d3e-0000-4000-8000-000000000001"')],
    "INTEGER, BIGINT, HUGEINT": [("12345678901234567890::HUGEINT", None),
                                 ("-7::INTEGER", "-7"), ("9007199254740993::BIGINT",
                                                         "9007199254740993")],
    "DOUBLE, REAL": [("0.1::DOUBLE", None), ("'NaN'::DOUBLE", "NaN"),
                     ("'inf'::REAL", "Infinity")],
    "DECIMAL(p, s)": [("1.50::DECIMAL(10, 2)", None), ("2.00::DECIMAL(15, 3)", "2.0"),
                      ("1.50::DECIMAL(16, 2)", "1.50"),
                      ("12345678901234567.89::DECIMAL(38, 2)", "12345678901234567.89")],
    "BOOLEAN": [("true", None), ("false", "false")],
    "NULL (any type)": [("NULL::VARCHAR", None), ("NULL::INTEGER[]", "null")],
    "DATE": [("DATE '2024-01-05'", None)],
    "TIMESTAMP": [("TIMESTAMP '2024-01-05 10:20:30.5'", None),
                  ("strftime(TIMESTAMP '2024-01-05 10:20:30', '%Y-%m-%dT%H:%M:%S')",
                   '"2024-01-05T10:20:30"')],
    "TIMESTAMPTZ": [("TIMESTAMPTZ '2024-01-05 10:20:30+00'", None)],
    "TIME, INTERVAL": [("TIME '10:20:30'", None), ("INTERVAL 3 DAY", '"3 days"')],
    "LIST, ARRAY": [("[1, 2]", None), ("[1, 2]::INTEGER[2]", "[1,2]")],
    "STRUCT, MAP (VARCHAR keys)": [("{'a': 1}", None), ("MAP {'a': 1}", '{"a":1}')],
    "JSON": [("'{\"x\": 1}'::JSON", None)],
    "BLOB": [("'ab'::BLOB", None)],
}


def readme_body_table() -> list[tuple[str, str]]:
    """(column type cell, example) of each row of the README's body encoding table."""
    from helpers import REPO

    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Publishing to your own API"):]
    table = section[section.index("| column type | JSON | example |"):].split("\n\n")[0]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]
    return [(cells[0], cells[2].split("`")[1]) for cells in rows]


def test_readme_body_table_rows_all_have_a_check() -> None:
    assert [t for t, _ in readme_body_table()] == list(README_TYPES)


@pytest.mark.parametrize(("cell", "example"), readme_body_table(),
                         ids=[t for t, _ in readme_body_table()])
def test_bodies_encode_each_type_as_the_readme_table_says(cell: str, example: str) -> None:
    """The body of a row without `body:` is what the endpoint gets, byte for byte."""
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")  # TIMESTAMPTZ: the session's zone
    checks = README_TYPES[cell]
    values = ", ".join(f"{sql} AS c{i}" for i, (sql, _) in enumerate(checks))
    con.execute(f"CREATE TABLE m AS SELECT 1 AS k, {values}")
    ledger.ensure_ledger(con, {"p": ["k"]})
    q = ledger.PendingQuery("p", 'main."m"', ("k",), "append")
    sql = ledger.pending_sql(q, ledger.check_model(con, q))
    [(body,)] = con.execute(f"SELECT body FROM ({sql})", ["p"]).fetchall()
    sent = body[len('{"k":1,'):-1]  # the row object's fields after the key, as sent
    value = example.split('":', 1)[1] if example.startswith('"email":') else example
    assert sent == ",".join(f'"c{i}":{value if want is None else want}'
                            for i, (_, want) in enumerate(checks))
