"""Seeds: which raw files exist, which raw table each feeds, with which options.

`seeds/seeds.yml` configures sources; every other data file under `seeds/` is a seed of its
own, named from its path. How DuckDB reads them (the SQL of every option) is seedsql.py.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from elt.core.errors import ConfigError
from elt.project.config import Project, load_yaml

SEEDS_FILE = "seeds.yml"
FORMATS = ("csv", "tsv", "json", "ndjson", "parquet", "document")
OPTIONS = ("format", "delimiter", "header", "null_strings", "columns", "date_format",
           "all_varchar", "null_padding", "json_key")
ENTRY_KEYS = ("path", "description", "allow_empty", *OPTIONS)
_EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".json": "json", ".ndjson": "ndjson",
               ".jsonl": "ndjson", ".parquet": "parquet"}
_CSV_ONLY = ("delimiter", "header", "null_strings", "all_varchar", "null_padding")
_NEVER_DATA = (".yml", ".yaml", ".md")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADER_VERSION = 1  # bump when the way files are read changes: every seed reloads fully


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
    # a file giving no rows (header only, missing/empty json_key) is an error unless True:
    # an empty export would otherwise empty raw.<name> and every model over it
    allow_empty: bool = False

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
    # libyaml's parser when present (as load_yaml): the pure-Python one costs ~10 ms per build
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    root = yaml.compose(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe
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
    allow_empty = entry.get("allow_empty", False)
    if not isinstance(allow_empty, bool):
        raise ConfigError(f"seed {name!r}: allow_empty must be true or false", where=where)
    options = {k: entry[k] for k in OPTIONS if entry.get(k) is not None}
    spec = _spec(name, pattern, paths, options, description, config_path, where)
    spec.allow_empty = allow_empty  # not in the checksum: it changes no row that is read
    return spec


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
            split = str(column).endswith(")") or str(sql_type).count("(") > str(
                sql_type).count(")")  # `{amount: DECIMAL(10,2)}`: YAML splits at the comma
            return (f"column {column!r}: type {sql_type!r} is not a DuckDB type"
                    + ("; quote a type holding a comma: 'DECIMAL(10,2)'" if split else ""))
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
