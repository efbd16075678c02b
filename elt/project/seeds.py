"""Seeds: which raw files exist, which raw table each feeds, and how DuckDB should read them.

`seeds/seeds.yml` configures sources; every other data file under `seeds/` is a seed of its
own, named from its path. The reader SQL lives here too, so one place knows every option.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elt.core.db import literal, quote
from elt.core.errors import ConfigError
from elt.project.config import Project, load_yaml

SEEDS_FILE = "seeds.yml"
FORMATS = ("csv", "tsv", "json", "ndjson", "parquet", "document")
OPTIONS = ("format", "delimiter", "header", "null_strings", "columns", "date_format",
           "all_varchar", "null_padding", "json_key")
ENTRY_KEYS = ("path", "description", *OPTIONS)
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".ndjson": "ndjson",
               ".jsonl": "ndjson", ".parquet": "parquet"}
_CSV_ONLY = ("delimiter", "header", "null_strings", "all_varchar", "null_padding")
_NEVER_DATA = (".yml", ".yaml", ".md")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADER_VERSION = 1  # bump when the way files are read changes: every seed reloads fully
# a json_key file is one JSON value; DuckDB's 16 MB default would reject real exports
MAX_OBJECT_SIZE = 4_000_000_000


@dataclass
class SeedSpec:
    """One raw table and the files that feed it."""

    name: str
    pattern: str
    paths: list[Path]
    options: dict[str, Any]
    description: str | None
    checksum: str
    config_path: Path | None

    def rel(self, path: Path, seeds_dir: Path) -> str:
        """The path as stored in `_elt_source_file` (relative to seeds/, with `/`)."""
        return path.relative_to(seeds_dir).as_posix()


def discover_seeds(project: Project) -> list[SeedSpec]:
    """All seeds: the entries of seeds.yml, then every unclaimed data file under seeds/."""
    seeds_dir = project.seeds_dir
    if not seeds_dir.is_dir():
        return []
    files = sorted(p for p in seeds_dir.rglob("*") if p.is_file() and _maybe_data(p, seeds_dir))
    config_path = seeds_dir / SEEDS_FILE
    specs: list[SeedSpec] = []
    claimed: set[Path] = set()
    if config_path.is_file():
        for name, (entry, where) in _read_config(config_path).items():
            spec = _configured(seeds_dir, config_path, name, entry, where, files)
            claimed.update(spec.paths)
            specs.append(spec)
    for path in files:
        if path not in claimed and _format_of(path) is not None:
            rel = path.relative_to(seeds_dir).as_posix()
            specs.append(_spec(default_name(path, seeds_dir), rel, [path], {}, None, None,
                               str(path)))
    seen: dict[str, SeedSpec] = {}
    for spec in specs:
        other = seen.setdefault(spec.name.lower(), spec)
        if other is not spec:
            where = str(spec.config_path or other.config_path or seeds_dir)
            raise ConfigError(f"two seeds load into raw.{spec.name}: {other.pattern!r} and "
                              f"{spec.pattern!r}; rename one in seeds.yml", where=where)
    return sorted(specs, key=lambda s: s.name)


def default_name(path: Path, seeds_dir: Path) -> str:
    """`flowkit/residents-2024.csv.gz` -> `flowkit_residents_2024`."""
    rel = path.relative_to(seeds_dir).as_posix()
    if rel.endswith(".gz"):
        rel = rel[:-3]
    for ext in _EXTENSIONS:
        if rel.lower().endswith(ext):
            rel = rel[: -len(ext)]
            break
    return re.sub(r"[^0-9A-Za-z_]", "_", rel)


def _maybe_data(path: Path, seeds_dir: Path) -> bool:
    rel = path.relative_to(seeds_dir)
    hidden = any(part.startswith((".", "__")) for part in rel.parts)
    return not hidden and path.suffix.lower() not in _NEVER_DATA


def _format_of(path: Path) -> str | None:
    """Format from the extension; a `.json` holding one object is a document."""
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    fmt = _EXTENSIONS.get(suffixes[-1]) if suffixes else None
    if fmt == "json" and _first_char(path) == "{":
        return "document"
    return fmt


def _first_char(path: Path) -> str:
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as fh:
            head = fh.read(4096)
    except (OSError, EOFError):
        return ""
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    return text[:1]


def _read_config(path: Path) -> dict[str, tuple[dict[str, Any], str]]:
    """seeds.yml -> {seed: (entry, "file:line")}; syntax errors come from load_yaml."""
    doc = load_yaml(path)
    if doc is None:
        return {}
    lines = _key_lines(path)
    if not isinstance(doc, dict) or not set(doc) <= {"seeds", "version"}:
        raise ConfigError("expected a top-level `seeds:` mapping", where=f"{path}:1")
    seeds = doc.get("seeds") or {}
    if not isinstance(seeds, dict):
        raise ConfigError("`seeds:` must map seed names to options",
                          where=f"{path}:{lines.get('', 1)}")
    out: dict[str, tuple[dict[str, Any], str]] = {}
    for name, entry in seeds.items():
        where = f"{path}:{lines.get(str(name), 1)}"
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name):
            raise ConfigError(f"seed name {name!r} is not a valid table name", where=where)
        if entry is not None and not isinstance(entry, dict):
            raise ConfigError(f"seed {name!r}: expected a mapping of options", where=where)
        out[name] = (entry or {}, where)
    return out


def _key_lines(path: Path) -> dict[str, int]:
    """Line of `seeds:` and of each seed key, for messages; duplicate seeds are an error."""
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    lines: dict[str, int] = {}
    if not isinstance(root, yaml.MappingNode):
        return lines
    for key, value in root.value:
        if key.value != "seeds":
            continue
        lines[""] = key.start_mark.line + 1  # "" is no valid seed name
        if isinstance(value, yaml.MappingNode):
            for seed_key, _ in value.value:
                line = seed_key.start_mark.line + 1
                if seed_key.value in lines:
                    raise ConfigError(f"seed {seed_key.value!r} is defined twice",
                                      where=f"{path}:{line}")
                lines[seed_key.value] = line
    return lines


def _configured(seeds_dir: Path, config_path: Path, name: str, entry: dict[str, Any],
                where: str, files: list[Path]) -> SeedSpec:
    unknown = sorted(set(entry) - set(ENTRY_KEYS))
    if unknown:
        raise ConfigError(f"seed {name!r}: unknown option {unknown[0]!r} (allowed: "
                          f"{', '.join(ENTRY_KEYS)})", where=where)
    pattern = entry.get("path")
    if pattern is None:
        paths = [p for p in files if default_name(p, seeds_dir) == name]
        pattern = paths[0].relative_to(seeds_dir).as_posix() if paths else name
    elif not isinstance(pattern, str) or not pattern or Path(pattern).is_absolute() \
            or ".." in Path(pattern).parts:
        raise ConfigError(f"seed {name!r}: `path` must be a glob relative to seeds/",
                          where=where)
    else:
        paths = sorted(p for p in seeds_dir.glob(pattern)
                       if p.is_file() and _maybe_data(p, seeds_dir))
    if not paths:
        raise ConfigError(f"seed {name!r}: path {pattern!r} matches no file under "
                          f"{seeds_dir}", where=where)
    description = entry.get("description")
    if description is not None and not isinstance(description, str):
        raise ConfigError(f"seed {name!r}: description must be a string", where=where)
    options = {k: entry[k] for k in OPTIONS if entry.get(k) is not None}
    return _spec(name, pattern, paths, options, description, config_path, where)


def _spec(name: str, pattern: str, paths: list[Path], given: dict[str, Any],
          description: str | None, config_path: Path | None, where: str) -> SeedSpec:
    """Validate options, fill defaults, and checksum the canonical result."""
    fmt = given.get("format")
    if fmt is None:
        found = {_format_of(p) for p in paths}
        if given.get("json_key") is not None:
            found = {"json"} if found <= {"json", "document"} else found
        if len(found) != 1 or None in found:
            names = ", ".join(sorted(str(f) for f in found))
            raise ConfigError(f"seed {name!r}: cannot tell one format for {pattern!r} "
                              f"({names}); set `format:`", where=where)
        fmt = found.pop()
    problem = _check(fmt, given)
    if problem:
        raise ConfigError(f"seed {name!r}: {problem}", where=where)
    csv = fmt in ("csv", "tsv")
    options: dict[str, Any] = {
        "format": fmt,
        "delimiter": given.get("delimiter", "\t" if fmt == "tsv" else ",") if csv else None,
        "header": bool(given.get("header", True)) if csv else None,
        "null_strings": _as_list(given.get("null_strings")),
        "columns": {str(k): str(v) for k, v in (given.get("columns") or {}).items()},
        "date_format": given.get("date_format"),
        "all_varchar": bool(given.get("all_varchar", False)),
        "null_padding": bool(given.get("null_padding", False)),
        "json_key": given.get("json_key"),
    }
    canonical = json.dumps({"v": _LOADER_VERSION, "options": options}, sort_keys=True)
    checksum = hashlib.sha256(canonical.encode()).hexdigest()
    return SeedSpec(name, pattern, paths, options, description, checksum, config_path)


def _check(fmt: Any, given: dict[str, Any]) -> str | None:
    if fmt not in FORMATS:
        return f"format {fmt!r} is not one of {', '.join(FORMATS)}"
    if fmt not in ("csv", "tsv"):
        for key in _CSV_ONLY:
            if key in given:
                return f"option {key!r} applies to csv/tsv only (format is {fmt})"
    for key in ("json_key", "date_format", "delimiter"):
        if key in given and (not isinstance(given[key], str) or not given[key]):
            return f"{key} must be a non-empty string"
    if "json_key" in given and fmt != "json":
        return "json_key needs format json"
    if "date_format" in given and fmt in ("parquet", "document"):
        return f"date_format does not apply to {fmt}"
    columns = given.get("columns", {})
    if not isinstance(columns, dict) or (columns and fmt == "document"):
        return "columns must map column names to DuckDB types (not for documents)"
    for column, sql_type in columns.items():
        if not isinstance(sql_type, str) or re.search(r"[;'\n]|--", sql_type):
            return f"column {column!r}: type {sql_type!r} is not a DuckDB type"
    for key in ("header", "all_varchar", "null_padding"):
        if key in given and not isinstance(given[key], bool):
            return f"{key} must be true or false"
    nulls = given.get("null_strings", [])
    if not isinstance(nulls, str | list) or any(not isinstance(n, str) for n in _as_list(nulls)):
        return "null_strings must be a string or a list of strings"
    return None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


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
                f"maximum_object_size = {MAX_OBJECT_SIZE})")
    else:
        args = [paths, "records = true", common, f"maximum_object_size = {MAX_OBJECT_SIZE}",
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
            f"maximum_object_size = {MAX_OBJECT_SIZE})")


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


def strict_csv_sql(spec: SeedSpec, path: Path) -> str:
    """A read without sniffing, as wide as the first line: DuckDB then names the bad line."""
    o = spec.options
    opener: Any = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace", newline="") as fh:
        first = fh.readline()
    delim = o["delimiter"]
    width = (len(next(csv.reader([first], delimiter=delim), [])) if len(delim) == 1
             else len(first.split(delim)))
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
