"""The SQL that reads a seed's files (one place knows every option) and the strict re-reads
and JSON checks that turn what DuckDB would accept silently into "file:line: why"."""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path
from typing import Any

from elt.core.db import literal, quote
from elt.project.seeds import SeedSpec

# DuckDB rejects a JSON value larger than maximum_object_size (16 MB by default) and
# reserves buffers of about twice that size up front: a fixed large value fails under any
# memory_limit below it, so it is sized from the files (no value is larger than its file)
MIN_OBJECT_SIZE = 16 * 1024 * 1024
_GZ_CHUNK = 1 << 20


def object_size(paths: list[Path]) -> int:
    """maximum_object_size for these files: the largest (uncompressed) file, at least 16 MB."""
    largest = 0
    for path in paths:
        try:
            largest = max(largest, _uncompressed_size(path))
        except OSError:
            continue  # the read itself then names the file
    return max(MIN_OBJECT_SIZE, largest + 1)


def _uncompressed_size(path: Path) -> int:
    if not path.name.lower().endswith(".gz"):
        return path.stat().st_size
    size = 0  # the gzip trailer holds the size mod 2**32 of the last member only: count
    with gzip.open(path, "rb") as fh:
        while chunk := fh.read(_GZ_CHUNK):
            size += len(chunk)
    return size


def reader_sql(spec: SeedSpec, files: list[Path], *, types: dict[str, str] | None = None,
               cast: bool = True, exhaustive: bool = False) -> str:
    """A SELECT of the files' rows plus `_elt_source_file` (the absolute path, as given).

    `types` fixes CSV column types (the existing table's, so increments match it); `cast`
    applies the configured `columns:` types (off: to see what the file itself holds).
    """
    o = spec.options
    paths = "[" + ", ".join(literal(p.as_posix()) for p in files) + "]"
    common = "union_by_name = true, filename = '_elt_source_file'"
    fmt = o["format"]
    forced = dict(o["columns"])
    if fmt in ("csv", "tsv"):
        args = [paths, f"delim = {literal(o['delimiter'])}", f"header = {str(o['header']).lower()}",
                "skip = 0", "quote = '\"'", "escape = '\"'", common]
        if o["null_strings"]:
            args.append("nullstr = [" + ", ".join(literal(n) for n in o["null_strings"]) + "]")
        if o["date_format"]:
            args.append(f"dateformat = {literal(o['date_format'])}")
        if o["all_varchar"]:
            args.append("all_varchar = true")
        if o.get("null_padding"):  # exports with short rows: missing trailing cells are NULL
            args.append("null_padding = true")
        if exhaustive:
            args.append("sample_size = -1")
        merged = {**(types or {}), **(forced if cast else {})}
        if merged:
            args.append("types = {" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in
                                                merged.items()) + "}")
        return f"SELECT * FROM read_csv({', '.join(args)})"
    if fmt == "parquet":
        inner = f"SELECT * FROM read_parquet({paths}, {common})"
    elif fmt == "document":
        return (f"SELECT json AS content, filename AS _elt_source_file FROM read_json_objects("
                f"{paths}, format = 'unstructured', filename = true, "
                f"maximum_object_size = {object_size(files)})")
    else:
        args = [paths, "records = true", common, f"maximum_object_size = {object_size(files)}",
                "map_inference_threshold = -1", "field_appearance_threshold = 0"]
        if fmt == "ndjson":
            args.append("format = 'newline_delimited'")
        if o["date_format"]:
            args.append(f"dateformat = {literal(o['date_format'])}")
        if exhaustive:
            args.append("sample_size = -1")
        inner = f"SELECT * FROM read_json({', '.join(args)})"
        if o["json_key"]:
            inner = (f"SELECT unnest(__elt_item), _elt_source_file FROM (SELECT unnest("
                     f"{quote(o['json_key'])}) AS __elt_item, _elt_source_file "
                     f"FROM ({inner}))")
    if forced and cast:
        casts = ", ".join(f"CAST({quote(c)} AS {t}) AS {quote(c)}" for c, t in forced.items())
        inner = f"SELECT * REPLACE ({casts}) FROM ({inner})"
    return inner


JSON_KIND = {"VARCHAR": "a string", "BIGINT": "a number", "UBIGINT": "a number",
             "DOUBLE": "a number", "BOOLEAN": "a boolean", "NULL": "null", "ARRAY": "a list",
             "OBJECT": "an object"}


def json_objects(paths: list[Path], fmt: str = "unstructured") -> str:
    """read_json_objects over the files: raw JSON values, no type inference."""
    listed = "[" + ", ".join(literal(p.as_posix()) for p in paths) + "]"
    return (f"read_json_objects({listed}, format = '{fmt}', filename = true, "
            f"maximum_object_size = {object_size(paths)})")


def keyed_check_sql(paths: list[Path], key: str) -> str:
    """Per file: number of values, top type, type and length of `key`, first non-object."""
    at = literal('$."' + key.replace('"', '\\"') + '"')
    return f"""
        WITH o AS (SELECT filename AS f, json AS j FROM {json_objects(paths)}),
        s AS (SELECT f, count(*) AS nv, any_value(json_type(j)) AS top,
              any_value(json_type(j, {at})) AS kt, any_value(json_array_length(j, {at})) AS n
              FROM o GROUP BY f),
        b AS (SELECT o.f, min(TRY_CAST(e.key AS BIGINT)) AS bi,
              arg_min(e.type, TRY_CAST(e.key AS BIGINT)) AS bt FROM o, json_each(o.j, {at}) e
              WHERE json_type(o.j, {at}) = 'ARRAY' AND e.type <> 'OBJECT' GROUP BY o.f)
        SELECT s.f, nv, top, kt, n, bi, bt FROM s LEFT JOIN b USING (f)"""


def items_check_sql(paths: list[Path], ndjson: bool) -> str:
    """Per file: number of items and of items that are not objects."""
    src = json_objects(paths, "newline_delimited" if ndjson else "auto")
    return (f"SELECT filename, count(*), count(*) FILTER (WHERE json_type(json) <> 'OBJECT') "
            f"FROM {src} GROUP BY 1")


def first_bad_sql(path: Path, single_value: bool) -> str:
    """Index of the first non-object: json_each in one array, else the value's position."""
    src = json_objects([path])
    query = (f"SELECT TRY_CAST(e.key AS BIGINT) AS i, e.type AS t FROM {src} o, "
             "json_each(o.json) e" if single_value else
             f"SELECT row_number() OVER () - 1 AS i, json_type(json) AS t FROM {src}")
    return f"SELECT i, t FROM ({query}) WHERE t <> 'OBJECT' ORDER BY i LIMIT 1"


def first_line_cells(path: Path, delim: str) -> list[str]:
    """The cells of a CSV file's first line (its header), split as the reader splits them."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
        first = fh.readline().rstrip("\r\n")
    if len(delim) == 1:
        return next(csv.reader([first], delimiter=delim), [])
    return first.split(delim)


def json_syntax_error(path: Path, ndjson: bool) -> tuple[str, int] | None:
    """Where a file DuckDB called malformed JSON breaks, by Python's parser: (why, line).
    DuckDB's own positions mislead (an NDJSON line one too far, a byte offset within a
    "record/value"). Runs only after a load failed, so reading the file again is fine."""
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
        if not ndjson:
            try:
                json.load(fh)
                return None
            except json.JSONDecodeError as exc:
                if not exc.msg.startswith("Extra data"):  # else: one value per line
                    return f"{exc.msg} (column {exc.colno})", exc.lineno
            fh.seek(0)
        for number, line in enumerate(fh, 1):
            try:
                if line.strip():
                    json.loads(line)
            except json.JSONDecodeError as exc:
                return f"{exc.msg} (column {exc.colno})", number
    return None


def strict_csv_sql(spec: SeedSpec, path: Path) -> str:
    """A read without sniffing, as wide as the first line: DuckDB then names the bad line."""
    o = spec.options
    width = len(first_line_cells(path, o["delimiter"]))
    columns = ", ".join(f"'c{i}': 'VARCHAR'" for i in range(max(width, 1)))
    return (f"SELECT count(*) FROM read_csv({literal(path.as_posix())}, auto_detect = false, "
            f"header = {str(o['header']).lower()}, delim = {literal(o['delimiter'])}, "
            f"quote = '\"', escape = '\"', skip = 0, columns = {{{columns}}})")


def one_line(text: str, path: Path | None) -> tuple[str, str | None]:
    """DuckDB's multi-line error -> (one-line message, line number if it gave one)."""
    line = re.search(r"CSV Error on Line: (\d+)", text)
    original = re.search(r"Original Line: (.*)", text)
    convert = re.search(r'Error when converting column "(.+?)"\. Could not convert string '
                        r'"(.*?)" to \'(.+?)\'', text)
    detail = re.search(r"(Expected Number of Columns: \d+ Found: \d+|Value with unterminated "
                       r"quote found\.|Maximum line size.*|Invalid unicode.*)", text)
    if convert:
        message = (f"column {convert.group(1)!r}: cannot convert {convert.group(2)!r} to "
                   f"{convert.group(3)}")
    elif detail and detail.group(1).startswith("Invalid unicode"):
        message = "invalid UTF-8 byte sequence (the file is not UTF-8 encoded)"
    elif detail:
        message = detail.group(1).rstrip(".")
    else:
        message = re.sub(r"^[A-Za-z ]*Error: ", "", text.strip().splitlines()[0]).strip()
        if path is not None:
            full = path.as_posix()
            for wrapper in (f' in file "{full}",', f' in file "{full}"', f' "{full}"',
                            f" '{full}'", f": {full}", f" {full}", full):
                message = message.replace(wrapper, "")
    if line and original and detail and not detail.group(1).startswith("Invalid unicode"):
        message += f" (row: {original.group(1).strip()[:80]!r})"
    return message, line.group(1) if line else None
