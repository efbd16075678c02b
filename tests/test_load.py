"""Seeds into raw.*: discovery, options, incremental state and atomicity.

Every test writes real files into a temporary project and loads them into a real DuckDB file.
"""

from __future__ import annotations

import io
import os
import time
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest
from seed_helpers import (
    Con,
    config,
    ids_by_file,
    load,
    load_error,
    rows,
    spec,
    state,
    types,
    write,
)

import elt.load.loader
from elt.core.console import Console, Progress
from elt.core.errors import LoadError
from elt.load.loader import load_seed, seed_version
from elt.project.config import load_project
from elt.project.seeds import discover_seeds


# -- discovery, naming, formats and options --------------------------------------------------
def test_default_names_formats_and_ignored_files(root: Path, con: Con) -> None:
    write(root, "flowkit/residents-2024.csv", "a,b\n1,x\n")
    write(root, "flowkit/indicators.csv.gz", "a,b\n1,x\n2,y\n")
    write(root, "data.tsv", "a\tb\n1\tx\n")
    write(root, "arr.json", '[{"a": 1}, {"a": 2}]')
    write(root, "nd.ndjson", '{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    write(root, "cfg.json", '{"x": {"y": [1, 2]}}')
    write(root, "doc.json.gz", '{"k": [1, 2, 3]}')
    write(root, "header_only.csv", "id,name\n")  # with allow_empty: 0 rows, the header's columns
    for ignored in ("README.md", "notes.yml", ".hidden/x.csv", "odd.xlsx"):
        write(root, ignored, "a\n1\n")
    (root / "seeds/pq").mkdir()
    con.execute(f"COPY (SELECT 1 AS a, 'p' AS b) TO '{root}/seeds/pq/part.parquet'")
    config(root, "seeds:\n  header_only: {allow_empty: true}\n")
    specs = {s.name: s for s in discover_seeds(load_project(root))}
    assert {n: s.options["format"] for n, s in specs.items()} == {
        "flowkit_residents_2024": "csv", "flowkit_indicators": "csv", "data": "tsv", "arr": "json",
        "nd": "ndjson", "cfg": "document", "doc": "document", "header_only": "csv",
        "pq_part": "parquet"}
    assert specs["flowkit_indicators"].pattern == "flowkit/indicators.csv.gz"
    assert specs["cfg"].config_path is None
    assert {n: load(con, root, n).rows for n in specs} == {
        "flowkit_residents_2024": 1, "flowkit_indicators": 2, "data": 1, "arr": 2, "nd": 3,
        "cfg": 1, "doc": 1, "header_only": 0, "pq_part": 1}
    assert rows(con, "SELECT DISTINCT _elt_source_file FROM raw.flowkit_indicators") == [
        ("flowkit/indicators.csv.gz",)]
    assert rows(con, "SELECT content->>'$.x.y[1]' FROM raw.cfg") == [("2",)]
    assert rows(con, "SELECT json_array_length(content, '$.k') FROM raw.doc") == [(3,)]
    assert rows(con, "SELECT a, b FROM raw.data") == [(1, "x")]
    assert list(types(con, "header_only")) == ["id", "name", "_elt_source_file", "_elt_load_id"]


def test_glob_unions_files_with_source_file(root: Path, con: Con) -> None:
    config(root, "seeds:\n  residents:\n    path: flowkit/residents_*.csv\n"
                 "    description: One row per month\n")
    write(root, "flowkit/residents_01.csv", "month,n\n2024-01-01,1\n2024-01-15,2\n")
    write(root, "flowkit/residents_02.csv", "month,n,extra\n2024-02-01,3,z\n")
    write(root, "flowkit/other.csv", "q\n1\n")
    specs = {s.name: s for s in discover_seeds(load_project(root))}
    assert set(specs) == {"residents", "flowkit_other"}
    assert specs["residents"].config_path == root / "seeds" / "seeds.yml"
    out = load(con, root, "residents")
    assert (out.status, out.rows, out.added, out.message) == ("success", 3, 2, "2 files added")
    assert rows(con, "SELECT _elt_source_file, count(*), count(extra) FROM raw.residents GROUP BY "
                     "1 ORDER BY 1") == [("flowkit/residents_01.csv", 2, 0),
                                         ("flowkit/residents_02.csv", 1, 1)]
    assert len({i for s in ids_by_file(con, "residents").values() for i in s}) == 1
    assert rows(con, "SELECT comment FROM duckdb_tables() WHERE table_name = 'residents'") == [
        ("One row per month",)]


def test_csv_options(root: Path, con: Con) -> None:
    config(root, """
seeds:
  semi:
    path: semi.csv
    delimiter: ";"
    null_strings: ["NA", ""]
    columns: {amount: "DECIMAL(10,2)", code: VARCHAR}
    date_format: "%d.%m.%Y"
  bare: {path: bare.csv, header: false}
  text: {path: text.csv, all_varchar: true}
  flowkit_rates: {delimiter: "|"}    # no path: configures the file named so by default
""")
    write(root, "semi.csv", "day;amount;code\n31.01.2024;1.25;007\n01.02.2024;NA;\n")
    write(root, "bare.csv", "1,x\n2,y\n")
    write(root, "text.csv", "a,b\n1,2024-01-01\n")
    write(root, "flowkit/rates.csv", "a|b\n1|2\n")
    for name in ("semi", "bare", "text", "flowkit_rates"):
        load(con, root, name)
    assert rows(con, "SELECT day, amount::VARCHAR, code FROM raw.semi ORDER BY day") == [
        (date(2024, 1, 31), "1.25", "007"), (date(2024, 2, 1), None, None)]
    assert types(con, "semi")["day"] == "DATE" and types(con, "semi")["amount"] == "DECIMAL(10,2)"
    assert rows(con, "SELECT column0, column1 FROM raw.bare ORDER BY 1") == [(1, "x"), (2, "y")]
    assert rows(con, "SELECT a, b FROM raw.text") == [("1", "2024-01-01")]
    assert spec(root, "flowkit_rates").pattern == "flowkit/rates.csv"
    assert rows(con, "SELECT a, b FROM raw.flowkit_rates") == [(1, 2)]


def test_checksum_follows_options_only(root: Path) -> None:
    write(root, "a.csv", "x\n1\n")
    before = spec(root, "a").checksum
    write(root, "a.csv", "x\n2\n")
    assert spec(root, "a").checksum == before
    config(root, "seeds:\n  a: {path: a.csv, header: true, delimiter: ','}\n")
    assert spec(root, "a").checksum == before  # the defaults, spelled out
    config(root, "seeds:\n  a: {path: a.csv, null_strings: [NA]}\n")
    assert spec(root, "a").checksum != before


def test_json_key_several_seeds_share_one_file(root: Path, con: Con) -> None:
    config(root, "seeds:\n  users: {path: uois/systemdata.json, json_key: users}\n"
                 "  groups: {path: uois/systemdata.json, json_key: groups}\n")
    write(root, "uois/systemdata.json", '{"users": [{"id": 1, "name": "a", "since": "2024-01-02"},'
          ' {"id": 2, "name": "b", "tags": {"x": 1}}], "groups": [{"gid": 7}], "meta": 3}')
    assert (load(con, root, "users").rows, load(con, root, "groups").rows) == (2, 1)
    assert rows(con, "SELECT id, name, since, tags.x FROM raw.users ORDER BY id") == [
        (1, "a", date(2024, 1, 2), None), (2, "b", None, 1)]
    assert rows(con, "SELECT gid, _elt_source_file FROM raw.groups") == [
        (7, "uois/systemdata.json")]


def test_allowed_missing_or_empty_lists_warn_and_make_empty_tables(root: Path, con: Con) -> None:
    config(root, "seeds:\n  roles: {path: sys.json, json_key: roles, columns: {id: INTEGER}, "
                 "allow_empty: true}\n  users: {path: sys.json, json_key: users, allow_empty: true}"
                 "\n  none: {allow_empty: true}\n")
    write(root, "sys.json", '{"users": []}')
    write(root, "none.json", "[]")
    err = io.StringIO()
    console = Console(out=io.StringIO(), err=err)
    out = load_seed(con, load_project(root), spec(root, "roles"), console=console)
    assert out.rows == 0 and "key 'roles' is missing" in (out.message or "")
    assert "warning: seeds/sys.json: key 'roles' is missing" in err.getvalue()
    assert list(types(con, "roles")) == ["id", "_elt_source_file", "_elt_load_id"]
    load_seed(con, load_project(root), spec(root, "users"), console=console)
    assert "key 'users' is an empty list" in err.getvalue()
    assert list(types(con, "users")) == ["_elt_source_file", "_elt_load_id"]
    assert load_seed(con, load_project(root), spec(root, "none"), console=console).rows == 0
    assert "seeds/none.json: no objects" in err.getvalue()
    write(root, "sys.json", '{"users": [{"id": 5}], "roles": [{"id": "6", "r": "x"}]}')
    assert load(con, root, "roles").rows == 1  # new columns -> rebuilt fully
    assert rows(con, "SELECT id, r FROM raw.roles") == [(6, "x")]
    assert load(con, root, "users").rows == 1


# -- incremental -----------------------------------------------------------------------------
def daily(root: Path) -> None:
    config(root, "seeds:\n  daily: {path: 'drops/*.csv'}\n")
    for day in (1, 2, 3):
        write(root, f"drops/d{day}.csv", f"id,amount\n{day}1,{day}.5\n{day}2,{day}.25\n")


def test_unchanged_files_are_up_to_date(root: Path, con: Con) -> None:
    daily(root)
    assert load(con, root, "daily").rows == 6
    before, table = state(con, "daily"), rows(con, "SELECT * FROM raw.daily ORDER BY id")
    again = load(con, root, "daily")
    assert (again.status, again.rows, again.message) == ("up_to_date", 6, None)
    assert state(con, "daily") == before
    assert seed_version(con, "daily") == max(f[5] for f in before[0]) > 0
    assert seed_version(con, "unknown") == 0
    # same content, new mtime: still up to date, no event, but the new mtime is remembered
    path = root / "seeds/drops/d2.csv"
    os.utime(path, (time.time() + 100, time.time() + 100))
    assert load(con, root, "daily").status == "up_to_date"
    files, loads = state(con, "daily")
    assert loads == before[1]
    assert [f[3] for f in files if f[1] == "drops/d2.csv"] == [path.stat().st_mtime]
    assert rows(con, "SELECT * FROM raw.daily ORDER BY id") == table
    con.close()  # the spec checksum and fingerprints survive a reopen
    with duckdb.connect(str(root / "target" / "elt.duckdb")) as reopened:
        assert load(reopened, root, "daily").status == "up_to_date"


def test_changed_new_and_removed_files_touch_only_their_rows(root: Path, con: Con) -> None:
    daily(root)
    load(con, root, "daily")
    ids, version = ids_by_file(con, "daily"), seed_version(con, "daily")
    write(root, "drops/d2.csv", "id,amount\n21,9.5\n22,2.25\n23,1\n")
    out = load(con, root, "daily")
    assert (out.added, out.replaced, out.removed, out.rows) == (0, 1, 0, 7)
    assert out.message == "1 file replaced"
    now = ids_by_file(con, "daily")
    assert now["drops/d1.csv"] == ids["drops/d1.csv"] and now["drops/d3.csv"] == ids["drops/d3.csv"]
    assert now["drops/d2.csv"] != ids["drops/d2.csv"]
    assert seed_version(con, "daily") == max(now["drops/d2.csv"]) > version
    assert rows(con, "SELECT amount FROM raw.daily WHERE id = 21") == [(9.5,)]
    assert rows(con, "SELECT path, kind, rows FROM _elt.loads WHERE load_id = ?",
                [seed_version(con, "daily")]) == [("drops/d2.csv", "replaced", 3)]
    assert rows(con, "SELECT rows FROM _elt.files WHERE path = 'drops/d2.csv'") == [(3,)]
    ids = ids_by_file(con, "daily")
    write(root, "drops/d4.csv", "id,amount\n41,4\n")  # integers into a DOUBLE column
    out = load(con, root, "daily")
    assert (out.added, out.replaced, out.rows, out.message) == (1, 0, 8, "1 file added")
    assert {k: v for k, v in ids_by_file(con, "daily").items() if k != "drops/d4.csv"} == ids
    assert types(con, "daily")["amount"] == "DOUBLE"
    (root / "seeds/drops/d1.csv").unlink()
    out = load(con, root, "daily")
    assert (out.removed, out.rows, out.message) == (1, 6, "1 file removed")
    assert "drops/d1.csv" not in ids_by_file(con, "daily")
    assert rows(con, "SELECT kind, rows FROM _elt.loads WHERE path = 'drops/d1.csv' ORDER BY "
                     "load_id") == [("added", 2), ("removed", 2)]
    assert rows(con, "SELECT count(*) FROM _elt.files WHERE path = 'drops/d1.csv'") == [(0,)]
    assert seed_version(con, "daily") == rows(con, "SELECT max(load_id) FROM _elt.loads")[0][0]


def test_full_reloads(root: Path, con: Con) -> None:
    """full_refresh, a spec change, a new column or a type that no longer fits: all of it."""
    daily(root)
    load(con, root, "daily")
    first = {i for s in ids_by_file(con, "daily").values() for i in s}
    assert load(con, root, "daily", full_refresh=True).message == "full reload: 3 files replaced"
    second = {i for s in ids_by_file(con, "daily").values() for i in s}
    assert len(second) == 1 and second.isdisjoint(first)
    write(root, "drops/d4.csv", "id,amount,note\n41,4.5,hi\n")
    out = load(con, root, "daily")
    assert out.message == "full reload: 1 file added, 3 replaced" and out.rows == 7
    assert rows(con, "SELECT count(note) FROM raw.daily") == [(1,)]
    write(root, "drops/d5.csv", "id,amount\nx5,1\n")  # id no longer fits BIGINT
    out = load(con, root, "daily")
    assert out.rows == 8 and (out.message or "").startswith("full reload")
    assert types(con, "daily")["id"] == "VARCHAR"
    config(root, "seeds:\n  daily: {path: 'drops/*.csv', columns: {amount: VARCHAR}}\n")
    out = load(con, root, "daily")
    assert out.replaced == 5 and (out.message or "").startswith("full reload")
    assert types(con, "daily")["amount"] == "VARCHAR"
    assert load(con, root, "daily").status == "up_to_date"
    # a value after DuckDB's type sample: the full load is redone with whole-file inference
    con.execute(f"COPY (SELECT range::VARCHAR AS id FROM range(30000) UNION ALL SELECT 'x') "
                f"TO '{root}/seeds/deep.csv'")
    assert load(con, root, "deep").rows == 30001 and types(con, "deep")["id"] == "VARCHAR"


def test_json_key_drops_load_incrementally(root: Path, con: Con) -> None:
    config(root, "seeds:\n  users: {path: 'uois/systemdata_*.json.gz', json_key: users, "
                 "allow_empty: true}\n")
    write(root, "uois/systemdata_1.json.gz", '{"users": [{"id": 1}, {"id": 2}]}')
    write(root, "uois/systemdata_2.json.gz", '{"users": [{"id": 3}]}')
    assert load(con, root, "users").rows == 3
    ids = ids_by_file(con, "users")
    write(root, "uois/systemdata_2.json.gz", '{"users": [{"id": 3}, {"id": 4}]}')
    write(root, "uois/systemdata_3.json.gz", '{"groups": []}')
    out = load(con, root, "users")
    assert (out.added, out.replaced, out.rows) == (1, 1, 4)
    assert "systemdata_3.json.gz: key 'users' is missing" in (out.message or "")
    first = "uois/systemdata_1.json.gz"
    assert ids_by_file(con, "users")[first] == ids[first]
    assert rows(con, "SELECT rows FROM _elt.files WHERE path LIKE '%_3.json.gz'") == [(0,)]


def test_parquet_increment_is_cast_to_the_table(root: Path, con: Con) -> None:
    (root / "seeds/pq").mkdir()
    con.execute(f"COPY (SELECT 1::BIGINT AS id, 1.5::DOUBLE AS v) TO '{root}/seeds/pq/a.parquet'")
    config(root, "seeds:\n  pq: {path: 'pq/*.parquet'}\n")
    load(con, root, "pq")
    con.execute(f"COPY (SELECT 2::INTEGER AS id, 2::INTEGER AS v) TO '{root}/seeds/pq/b.parquet'")
    out = load(con, root, "pq")
    assert (out.message, out.rows) == ("1 file added", 2)
    assert list(types(con, "pq").values()) == ["BIGINT", "DOUBLE", "VARCHAR", "BIGINT"]


# -- atomicity, progress, speed --------------------------------------------------------------
def test_failing_file_leaves_table_and_state_untouched(root: Path, con: Con) -> None:
    daily(root)
    load(con, root, "daily")
    table, before = rows(con, "SELECT * FROM raw.daily ORDER BY id"), state(con, "daily")
    write(root, "drops/d1.csv", "id,amount\n11,7.5\n")  # a good change ...
    write(root, "drops/d2.csv", "id,amount\n21,1\n22,2,3\n")  # ... and a bad one
    write(root, "drops/d9.csv", "id,amount\n91,1\n")
    assert load_error(con, root, "daily").startswith("seeds/drops/d2.csv:3: ")
    for full in (False, True):
        with pytest.raises(LoadError):
            load(con, root, "daily", full_refresh=full)
        assert rows(con, "SELECT * FROM raw.daily ORDER BY id") == table
        assert state(con, "daily") == before
    assert rows(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '__elt%'") == [
        (0,)]


def test_crash_during_bookkeeping_rolls_back(root: Path, con: Con,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    daily(root)
    load(con, root, "daily")
    table, before = rows(con, "SELECT * FROM raw.daily ORDER BY id"), state(con, "daily")
    write(root, "drops/d3.csv", "id,amount\n31,0\n")

    def boom(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(elt.load.loader._Job, "_record", boom)
    for full in (False, True):
        with pytest.raises(KeyboardInterrupt):
            load(con, root, "daily", full_refresh=full)
        assert rows(con, "SELECT * FROM raw.daily ORDER BY id") == table
        assert state(con, "daily") == before


def test_progress_for_big_loads(root: Path, con: Con) -> None:
    (root / "seeds/big").mkdir()
    for i in range(3):
        con.execute(f"COPY (SELECT range AS id, 'name' || range AS name FROM range({i * 40000}, "
                    f"{(i + 1) * 40000})) TO '{root}/seeds/big/p{i}.csv'")
    config(root, "seeds:\n  big: {path: 'big/*.csv'}\n")
    bars: list[Progress] = []

    class Recording(Console):
        def progress(self, label: str, total: int | None = None, unit: str = "rows") -> Progress:
            bars.append(super().progress(label, total, unit))
            return bars[-1]

    console = Recording(out=io.StringIO())
    # set here (DuckDB's defaults depend on the terminal): the load turns the bar on and
    # its printing off for itself, and must put both back
    con.execute("SET enable_progress_bar = false; SET enable_progress_bar_print = true")
    settings = "SELECT current_setting('enable_progress_bar'), " \
               "current_setting('enable_progress_bar_print')"
    assert load_seed(con, load_project(root), spec(root, "big"), console=console).rows == 120000
    assert [(b.label, b.total, b.unit, b.done) for b in bars] == [("raw.big", 3, "files", 3)]
    assert bars[0].bytes > 1_000_000
    assert rows(con, settings) == [(False, True)]
