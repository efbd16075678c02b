"""Seeds into raw.*: every bad input is one clear line naming the file (and line, key, item)."""

from __future__ import annotations

from pathlib import Path

import pytest
from seed_helpers import (
    Con,
    config,
    load,
    load_error,
    rows,
    spec,
    state,
    write,
)

from elt.core.errors import ConfigError, LoadError
from elt.load.loader import load_seed
from elt.project.config import load_project
from elt.project.seeds import discover_seeds


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize("rel, content, expected", [
    ("bad.csv", "id,name\n1,a\n2,b,c\n",
     "seeds/bad.csv:3: Expected Number of Columns: 2 Found: 3 (row: '2,b,c')"),
    ("quote.csv", 'id,name\n1,"abc\n2,b\n', "seeds/quote.csv:2: Value with unterminated quote"),
    ("latin.csv", b"id,name\n1,caf\xe9\n", "seeds/latin.csv:2: invalid UTF-8 byte sequence"),
    ("empty.csv", "", "seeds/empty.csv: empty file (0 bytes)"),
    ("broken.csv.gz", None, "seeds/broken.csv.gz: Input is not a GZIP stream"),
    ("bad.parquet", "not parquet", "seeds/bad.parquet: File too small to be a Parquet file"),
    ("arr.json", '[{"a": 1}, {"a": 2}, 3]', "seeds/arr.json: item 2 is a number, expected an "
                                           "object"),
    ("nd.ndjson", '{"a": 1}\n"x"\n', "seeds/nd.ndjson: item 1 is a string, expected an object"),
    ("scalar.json", '"hello"', "seeds/scalar.json: expected a list of objects, found a string"),
    ("syntax.json", '[{"a": 1}, {"a": }]', "seeds/syntax.json:1: malformed JSON: Expecting "
                                           "value (column 18)"),
    ("doc.json", '{\n "users": [\n  {"a": 1}\n  {"a": 2}\n ]\n}\n',
     "seeds/doc.json:4: malformed JSON: Expecting ',' delimiter (column 3)"),
    ("lines.ndjson", '{"a": 1}\n\n{"a": 2}\n{"a": x}\n{"a": 4}\n',
     "seeds/lines.ndjson:4: malformed JSON: Expecting value (column 7)"),
    ("dup.csv", "id,name,Name\n1,a,b\n", "seeds/dup.csv:1: column 'Name' appears twice in the "
                                          "header (DuckDB would load the second as Name_1)"),
    ("semi.csv", "id;name;city\n1;a;b\n", "seeds/semi.csv:1: the header is one column, "
                                           "'id;name;city': a semicolon-separated file? "
                                           "seeds.yml reads it with ','"),
])
def test_file_errors_are_one_line(root: Path, con: Con, rel: str, content: str | bytes | None,
                                  expected: str) -> None:
    if content is None:
        (root / "seeds" / rel).write_bytes(b"not gzip at all")
    else:
        write(root, rel, content)
    message = load_error(con, root, rel.split(".")[0])
    assert message.startswith(expected), message
    assert "Possible" not in message and "file =" not in message and str(root) not in message


def test_cast_and_column_errors_name_file_line_and_column(root: Path, con: Con) -> None:
    config(root, "seeds:\n  c: {path: c.csv, columns: {amount: DOUBLE}}\n"
                 "  j: {path: j.ndjson, columns: {a: INTEGER}}\n"
                 "  s: {path: s.csv, columns: {b: INTEGER}}\n"
                 "  t: {path: t.csv, columns: {a: INTT}}\n")
    write(root, "c.csv", "id,amount\n1,1.5\n2,oops\n")
    write(root, "j.ndjson", '{"a": "1"}\n{"a": "x"}\n')
    write(root, "s.csv", "a;b;c\n1;2;3\n")  # the default delimiter is ","
    write(root, "t.csv", "a\n1\n")
    assert load_error(con, root, "c") == ("seeds/c.csv:3: column 'amount': cannot convert "
                                          "'oops' to DOUBLE")
    assert load_error(con, root, "j") == "seeds/j.ndjson: column 'a': cannot convert 'x' to INTEGER"
    assert load_error(con, root, "s") == ("seeds/s.csv:1: the header is one column, 'a;b;c': a "
                                          "semicolon-separated file? seeds.yml reads it with "
                                          "',' (set `delimiter:` for seed s)")
    message = load_error(con, root, "t")
    assert message.startswith(f"{root}/seeds/seeds.yml: seed 't': bad type in `columns:`")
    assert "INTT" in message


def test_json_key_and_document_errors(root: Path, con: Con) -> None:
    config(root, "seeds:\n  users: {path: uois/systemdata.json, json_key: users}\n"
                 "  cfg: {path: uois/cfg.json, json_key: users}\n"
                 "  lst: {path: uois/list.json, json_key: users}\n"
                 "  many: {path: many.json, format: document}\n"
                 "  num: {path: num.json, format: document}\n")
    write(root, "uois/systemdata.json",
          '{"users": [{"id": 1}, {"id": 2}, {"id": 3}, "dave", {"id": 5}]}')
    write(root, "uois/cfg.json", '{"users": {"id": 1}}')
    write(root, "uois/list.json", '[{"users": []}]')
    write(root, "many.json", '{"a": 1}\n{"a": 2}\n')
    write(root, "num.json", '42\n')  # a config.json overwritten by mistake
    assert load_error(con, root, "users") == (
        "seeds/uois/systemdata.json: key 'users' item 3 is a string, expected an object")
    assert load_error(con, root, "cfg") == (
        "seeds/uois/cfg.json: key 'users' is an object, expected a list of objects")
    assert load_error(con, root, "lst") == (
        "seeds/uois/list.json: expected one JSON object with key 'users', found a list")
    assert load_error(con, root, "many").startswith(
        "seeds/many.json: expected one JSON document, found 2 values")
    assert load_error(con, root, "num") == (
        "seeds/num.json: expected a JSON object or list, found a number")
    assert rows(con, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'num'") == [(0,)]


# -- empty exports: an error keeping the last good rows, unless the seed allows them -----------
EMPTY = "(`allow_empty: true` in seeds.yml if an empty export is expected)"


@pytest.mark.parametrize("rel, good, empty, expected", [
    ("uois/sys.json", '{"users": [{"id": 1}], "groups": []}', '{"groups": [{"id": 1}]}',
     "seeds/uois/sys.json: key 'users' is missing, so no rows for raw.users"),
    ("uois/sys.json", '{"users": [{"id": 1}]}', '{"users": []}',
     "seeds/uois/sys.json: key 'users' is an empty list, so no rows for raw.users"),
    ("a.csv", "id,name\n1,x\n", "id,name\n",
     "seeds/a.csv: only a header, so no rows for raw.a"),
    ("a.json", '[{"id": 1}]', "[]", "seeds/a.json: no objects (empty list), so no rows for raw.a"),
    ("a.ndjson", '{"id": 1}\n', "\n", "seeds/a.ndjson: no objects (empty list), so no rows"),
    ("a.parquet", "SELECT 1 AS id", "SELECT 1 AS id WHERE false",
     "seeds/a.parquet: no data, so no rows for raw.a"),
])
def test_an_empty_export_is_an_error_keeping_the_last_good_rows(
        root: Path, con: Con, rel: str, good: str, empty: str, expected: str) -> None:
    name = "users" if rel.startswith("uois") else "a"

    def declare(extra: str) -> None:
        config(root, f"seeds:\n  users: {{path: {rel}, json_key: users{extra}}}\n"
               if name == "users" else f"seeds:\n  a: {{path: {rel}{extra}}}\n")

    def put(content: str) -> None:
        if rel.endswith(".parquet"):
            con.execute(f"COPY ({content}) TO '{root}/seeds/{rel}'")
        else:
            write(root, rel, content)
    declare("")
    put(good)
    assert load(con, root, name).rows == 1
    before = rows(con, f"SELECT * FROM raw.{name}"), state(con, name)
    put(empty)
    message = load_error(con, root, name)
    assert message.startswith(expected) and message.endswith(EMPTY), message
    assert (rows(con, f"SELECT * FROM raw.{name}"), state(con, name)) == before
    # declared: an empty export is loaded (0 rows), with a warning for JSON
    declare(", allow_empty: true")
    assert load(con, root, name).rows == 0


def test_an_empty_drop_among_others_is_an_error_too(root: Path, con: Con) -> None:
    config(root, "seeds:\n  daily: {path: 'drops/*.csv'}\n")
    write(root, "drops/d1.csv", "id,v\n1,a\n")
    assert load(con, root, "daily").rows == 1
    write(root, "drops/d2.csv", "id,v\n")
    assert load_error(con, root, "daily").startswith(
        "seeds/drops/d2.csv: only a header, so no rows for raw.daily")
    assert rows(con, "SELECT id FROM raw.daily") == [(1,)]
    write(root, "drops/d2.csv", "id,v\n2,b\n")
    assert load(con, root, "daily").rows == 2


def test_file_gone_after_discovery(root: Path, con: Con) -> None:
    write(root, "gone.csv", "a\n1\n")
    gone = spec(root, "gone")
    (root / "seeds/gone.csv").unlink()
    with pytest.raises(LoadError, match=r"^seeds/gone.csv: file not found$"):
        load_seed(con, load_project(root), gone)


@pytest.mark.parametrize("text, files, expected", [
    ("seeds:\n  a: [unclosed\n", {}, r"seeds\.yml:\d+: invalid YAML"),
    ("seeds:\n  ok: {path: a.csv}\n  bad:\n    path: a.csv\n    delimeter: ';'\n", {"a.csv": "x\n"},
     r"seeds\.yml:3: seed 'bad': unknown option 'delimeter'"),
    ("seeds:\n  residents: {path: 'flowkit/res_*.csv'}\n", {"a.csv": "x\n"},
     r"seeds\.yml:2: seed 'residents': path 'flowkit/res_\*\.csv' matches no file"),
    ("seeds:\n  a: {path: one.csv}\n", {"one.csv": "x\n", "a.csv": "x\n"},
     r"two seeds load into raw\.a"),
    ("", {"a.csv": "x\n", "a.json": "[]"}, r"two seeds load into raw\.a"),
    ("seeds:\n  x: {path: a.csv}\n  x: {path: a.csv}\n", {"a.csv": "x\n"},
     r"seeds\.yml:3: seed 'x' is defined twice"),
    ("seeds:\n  j: {path: a.json, delimiter: ';'}\n", {"a.json": "[]"},
     r"seed 'j': option 'delimiter' applies to csv/tsv only"),
    ("seeds:\n  j: {path: a.csv, format: excel}\n", {"a.csv": "x\n"}, r"format 'excel'"),
    ("seeds:\n  j: {path: a.csv, json_key: k}\n", {"a.csv": "x\n"}, r"json_key needs format json"),
    ("seeds:\n  bad-name: {path: a.csv}\n", {"a.csv": "x\n"}, r"not a valid table name"),
    ("seeds:\n  j: {path: ../a.csv}\n", {}, r"relative to seeds/"),
    ("tables: {}\n", {}, r"seeds\.yml:1: expected a top-level `seeds:`"),
    ("seeds:\n  a: {path: a.csv, allow_empty: 'yes'}\n", {"a.csv": "x\n"},
     r"seeds\.yml:2: seed 'a': allow_empty must be true or false"),
    ("seeds:\n  a: {path: a.csv, columns: {amount: DECIMAL(10,2)}}\n", {"a.csv": "x\n"},
     r"column '2\)': type None is not a DuckDB type; quote a type holding a comma"),
])
def test_bad_seeds_yml(root: Path, text: str, files: dict[str, str], expected: str) -> None:
    config(root, text)
    for rel, content in files.items():
        write(root, rel, content)
    with pytest.raises(ConfigError, match=expected) as info:
        discover_seeds(load_project(root))
    assert "\n" not in str(info.value)


def test_a_bad_header_keeps_the_last_good_rows(root: Path, con: Con) -> None:
    config(root, "seeds:\n  exp: {path: 'exp/*.csv'}\n")
    write(root, "exp/a.csv", "id,name\n1,a\n")
    load(con, root, "exp")
    table, before = rows(con, "SELECT * FROM raw.exp"), state(con, "exp")
    write(root, "exp/a.csv", "id;name\n2;b\n")  # an export saved with `;` this time
    for full in (False, True):
        with pytest.raises(LoadError, match="semicolon-separated"):
            load(con, root, "exp", full_refresh=full)
        assert rows(con, "SELECT * FROM raw.exp") == table and state(con, "exp") == before


def test_a_file_lacking_columns_of_the_others_loads_with_a_warning(root: Path,
                                                                   con: Con) -> None:
    config(root, "seeds:\n  days: {path: 'days/*.csv'}\n")
    write(root, "days/d1.csv", "day,a,b\n1,10,20\n")
    write(root, "days/d2.csv", "day,a,b\n2,11,21\n")
    assert "lacks" not in (load(con, root, "days").message or "")
    write(root, "days/d3.csv", "day,a\n3,12\n")  # b missing from the new drop
    outcome = load(con, root, "days")
    assert outcome.status == "success" and outcome.added == 1
    assert "seeds/days/d3.csv: lacks column(s) b of raw.days: its rows have no value there" in \
        (outcome.message or "")
    assert rows(con, "SELECT day, b FROM raw.days ORDER BY day") == [
        (1, 20), (2, 21), (3, None)]
    write(root, "days/d4.csv", "day,b,a,c\n4,23,13,1\n")  # reordered, and a new column:
    assert "lacks" not in (load(con, root, "days").message or "")  # the table grows
