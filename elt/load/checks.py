"""Checks of what DuckDB's readers would accept silently, with errors naming the file and the
line, or the key and the index of the first bad JSON item (set-based: one query per file
set; CSV headers: the first line of each file to load)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from elt.core.errors import LoadError
from elt.project import seedsql as ss
from elt.project.seeds import SeedSpec


@dataclass
class SeedFile:
    """One file of a seed with its fingerprint."""

    rel: str  # relative to seeds/, as in _elt_source_file
    path: Path
    size: int
    mtime: float
    sha256: str


def empty_error(spec: SeedSpec, where: str, what: str) -> LoadError:
    """A file that gives no rows: loading it would empty raw.<seed> and the models over it."""
    return LoadError(f"{what}, so no rows for raw.{spec.name}: its last good rows are kept "
                     "(`allow_empty: true` in seeds.yml if an empty export is expected)",
                     where=where)


def _empty(spec: SeedSpec, where: str, what: str, warnings: list[str]) -> None:
    if not spec.allow_empty:
        raise empty_error(spec, where, what)
    warnings.append(f"{where}: {what}; no rows for raw.{spec.name}")


def check_keyed(con: duckdb.DuckDBPyConnection, spec: SeedSpec, files: list[SeedFile],
                warnings: list[str]) -> list[SeedFile]:
    """A json_key file: one object whose key is a list of objects (or missing/empty)."""
    key = spec.options["json_key"]
    found = {r[0]: r[1:] for r in con.execute(
        ss.keyed_check_sql([f.path for f in files], key)).fetchall()}
    keep: list[SeedFile] = []
    for f in files:
        where = f"seeds/{f.rel}"
        nv, top, kt, n, bi, bt = found.get(f.path.as_posix(), (0, None, None, 0, None, None))
        if nv != 1 or top != "OBJECT":
            what = f"{nv} JSON values" if nv != 1 else ss.JSON_KIND.get(top, top)
            raise LoadError(f"expected one JSON object with key {key!r}, found {what}",
                            where=where)
        if kt not in (None, "ARRAY"):
            raise LoadError(f"key {key!r} is {ss.JSON_KIND.get(kt, kt)}, expected a list of "
                            "objects", where=where)
        if kt is None or n == 0:
            state = "is missing" if kt is None else "is an empty list"
            _empty(spec, where, f"key {key!r} {state}", warnings)
        elif bi is not None:
            raise LoadError(f"key {key!r} item {bi} is {ss.JSON_KIND.get(bt, bt)}, expected "
                            "an object", where=where)
        else:
            keep.append(f)
    return keep


def check_items(con: duckdb.DuckDBPyConnection, spec: SeedSpec, files: list[SeedFile],
                warnings: list[str]) -> list[SeedFile]:
    """A JSON array or NDJSON file: every item an object; an empty one gives no rows."""
    ndjson = spec.options["format"] == "ndjson"
    found = {r[0]: r[1:] for r in con.execute(
        ss.items_check_sql([f.path for f in files], ndjson)).fetchall()}
    keep: list[SeedFile] = []
    for f in files:
        n, bad = found.get(f.path.as_posix(), (0, 0))
        if bad:  # exact index: json_each in one array, else the value's position
            count, top = con.execute(f"SELECT count(*), any_value(json_type(json)) "
                                          f"FROM {ss.json_objects([f.path])}").fetchone()
            if count == 1 and top != "ARRAY":
                raise LoadError(f"expected a list of objects, found {ss.JSON_KIND.get(top)}",
                                where=f"seeds/{f.rel}")
            i, kind = con.execute(ss.first_bad_sql(f.path, count == 1)).fetchone()
            raise LoadError(f"item {i} is {ss.JSON_KIND.get(kind, kind)}, expected an "
                            "object", where=f"seeds/{f.rel}")
        if n == 0:
            _empty(spec, f"seeds/{f.rel}", "no objects (empty list)", warnings)
        else:
            keep.append(f)
    return keep


_OTHER_DELIMITERS = {";": "semicolon", "\t": "tab", "|": "pipe", ",": "comma"}


def check_headers(spec: SeedSpec, files: list[SeedFile], fresh: set[str],
                  table: list[str], warnings: list[str]) -> None:
    """A CSV header DuckDB would read without a word but wrongly: a repeated name (the
    second copy becomes `<name>_1`), one column holding another delimiter (a `;` export
    read with `,`), both errors; a new or changed file (`fresh`) lacking columns raw.<seed>
    has (`table`: its rows get NULL there), a warning. A new column is no warning: the
    table grows (schema evolution)."""
    if not spec.options["header"]:
        return
    delim, headers = spec.options["delimiter"], {}
    for f in files:
        try:
            headers[f.rel] = ss.first_line_cells(f.path, delim)
        except (OSError, EOFError):
            continue  # not readable as text (a broken .gz): the read names the file
    for f in files:
        if f.rel not in headers:
            continue
        names, seen = headers[f.rel], set()
        for name in names:
            if name and name.casefold() in seen:  # DuckDB's names ignore case
                raise LoadError(f"column {name!r} appears twice in the header (DuckDB would "
                                f"load the second as {name}_1)", where=f"seeds/{f.rel}:1")
            seen.add(name.casefold())
        other = next((d for d in _OTHER_DELIMITERS if d != delim and len(names) == 1
                      and d in names[0]), None)
        if other:
            raise LoadError(f"the header is one column, {names[0][:60]!r}: a "
                            f"{_OTHER_DELIMITERS[other]}-separated file? seeds.yml reads it "
                            f"with {delim!r} (set `delimiter:` for seed {spec.name})",
                            where=f"seeds/{f.rel}:1")
    for f in files:
        if f.rel not in fresh or f.rel not in headers:
            continue
        have = {n.casefold() for n in headers[f.rel]}
        lacking = [n for n in table if n.casefold() not in have]
        if lacking:
            warnings.append(f"seeds/{f.rel}: lacks column(s) {', '.join(lacking)[:120]} of "
                            f"raw.{spec.name}: its rows have no value there")
