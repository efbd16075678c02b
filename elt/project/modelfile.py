"""Reading model files: the `/* elt ... */` header or sidecar YAML, and table references.

Kept apart from graph.py so that the DAG logic does not drown in file-format details; every
error here names the file (and line when known) because users fix files, not nodes.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elt.core.errors import ConfigError, ModelError
from elt.project.config import Project, parse_yaml

if TYPE_CHECKING:  # sqlglot is imported when a model is parsed (a no-op build need not)
    from sqlglot import exp

MODEL_KEYS = {"materialized", "unique_key", "partition_by", "tags", "description", "columns",
              "tests"}
SINGULAR_TEST_KEYS = {"severity", "tags", "description"}
PROJECT_YAML_KEYS = {"publications", "api_sources", "version", "models"}  # +dbt schema.yml
MATERIALIZATIONS = ("view", "table", "incremental")
# Schemas a model may read without it being a dependency (state and catalogs).
EXTERNAL_SCHEMAS = {"_elt", "information_schema", "pg_catalog"}

_HEADER = re.compile(r"\A\s*/\*\s*elt(?=\s)")
_MISSING = re.compile(r"Required keyword: '\w+' missing for <class '(?:[\w.]+\.)?(\w+)'>")
_TOKEN = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+, col: \d+.*?>")


def relative(path: Path, root: Path) -> str:
    """Paths in messages and the manifest are relative to the project root."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def checksum(*parts: Any) -> str:
    """A stable hash of text and JSON-able config (dict key order does not matter)."""
    digest = hashlib.sha256()
    for part in parts:
        text = part if isinstance(part, str) else json.dumps(part, sort_keys=True, default=str)
        digest.update(text.encode("utf-8") + b"\0")
    return digest.hexdigest()[:16]


def split_header(text: str, where: str) -> tuple[dict[str, Any] | None, str]:
    """Return (header config or None, SQL body) of a model file."""
    match = _HEADER.match(text)
    if not match:
        return None, text
    end = text.find("*/", match.end())
    if end < 0:
        line = text.count("\n", 0, match.start()) + 1
        raise ConfigError("unterminated `/* elt` header (missing `*/`)", where=f"{where}:{line}")
    yaml_text = text[match.end():end]
    offset = text.count("\n", 0, match.end())
    config = parse_yaml(yaml_text, where, line_offset=offset)
    if config is None:
        config = {}
    if not isinstance(config, dict):
        raise ConfigError("the `/* elt` header must be a YAML mapping", where=where)
    # Keep the header's newlines so DuckDB/sqlglot line numbers still match the file.
    body = "\n" * text.count("\n", 0, end + 2) + text[end + 2:]
    return config, body


def read_sql_file(path: Path, root: Path) -> tuple[dict[str, Any], str]:
    """Config (header or sidecar `<stem>.yml`, not both) and SQL body of a model or test."""
    where = relative(path, root)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read: {exc}", where=where) from exc
    header, body = split_header(text, where)
    sidecars = [p for p in sidecar_paths(path) if p.exists()]
    if header is not None and sidecars:
        raise ConfigError(f"config given twice: in the `/* elt` header and in "
                          f"{relative(sidecars[0], root)}; keep one", where=where)
    if len(sidecars) > 1:
        raise ConfigError("both .yml and .yaml sidecars exist; keep one", where=where)
    if sidecars:
        side_where = relative(sidecars[0], root)
        config = parse_yaml(sidecars[0].read_text(encoding="utf-8"), side_where) or {}
        if not isinstance(config, dict):
            raise ConfigError("model config must be a YAML mapping", where=side_where)
        return config, body
    return header or {}, body


def sidecar_paths(sql_path: Path) -> list[Path]:
    stem = sql_path.name[: -len(".sql")]
    return [sql_path.with_name(stem + ".yml"), sql_path.with_name(stem + ".yaml")]


def strip_sql(body: str) -> str:
    """The statement without trailing semicolons, ready to wrap in CREATE ... AS."""
    text = body.rstrip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    return text


def check_config_keys(config: dict[str, Any], allowed: set[str], what: str, where: str) -> None:
    """Unknown keys of a model's or test's header are errors, with a did-you-mean."""
    unknown = sorted(set(config) - allowed)
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), sorted(allowed), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{what}: unknown config key(s) {', '.join(map(str, unknown))}{hint} "
                          f"(allowed: {', '.join(sorted(allowed))})", where=where)


def validate_model_config(config: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    """Check keys and types of a model's config; return it normalised."""
    check_config_keys(config, MODEL_KEYS, f"model {name}", where)
    out = dict(config)
    materialized = out.get("materialized", "table")
    if materialized not in MATERIALIZATIONS:
        raise ConfigError(f"model {name}: materialized must be one of "
                          f"{', '.join(MATERIALIZATIONS)}, not {materialized!r}", where=where)
    out["materialized"] = materialized
    out["unique_key"] = str_list(out.get("unique_key"), f"model {name}: unique_key", where)
    out["tags"] = str_list(out.get("tags"), f"model {name}: tags", where)
    partitioned = str_list(out.pop("partition_by", None), f"model {name}: partition_by", where)
    if partitioned:  # only when given: the checksum of every other model stays as it was
        out["partition_by"] = partitioned
    if partitioned and materialized != "incremental":
        raise ConfigError(f"model {name}: partition_by needs materialized: incremental",
                          where=where)
    if materialized == "incremental" and not out["unique_key"] and not partitioned:
        raise ConfigError(f"model {name}: materialized: incremental needs a unique_key "
                          "(or partition_by)", where=where)
    columns = out.get("columns") or {}
    if not isinstance(columns, dict):
        raise ConfigError(f"model {name}: columns must be a mapping", where=where)
    for column, spec in columns.items():
        if spec is not None and not isinstance(spec, dict):
            raise ConfigError(f"model {name}: column {column} must be a mapping "
                              "(description, tests)", where=where)
    out["columns"] = {str(c): (s or {}) for c, s in columns.items()}
    if not isinstance(out.get("tests") or [], list):
        raise ConfigError(f"model {name}: tests must be a list", where=where)
    return out


def str_list(value: Any, what: str, where: str) -> list[str]:
    """A YAML value that may be one string or a list of strings."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{what} must be a string or a list of strings", where=where)


def parse_select(sql: str, name: str, where: str, kind: str = "model") -> exp.Expression:
    """Parse one SELECT (duckdb dialect); errors name the model and the line."""
    import sqlglot
    from sqlglot import exp

    try:
        statements = [s for s in sqlglot.parse(sql, read="duckdb") if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        line = first.get("line")
        text = _TOKEN.sub(r"'\1'", str(first.get("description") or exc).splitlines()[0])
        text = text.replace("'SENTINEL'", "end of input")
        missing = _MISSING.match(text)
        if missing:  # sqlglot's AST wording, e.g. "Required keyword: 'this' missing for <class..>"
            near = first.get("highlight")
            text = f"incomplete {missing.group(1)} expression" + (
                f" near {near!r} (column {first.get('col')})" if near else "")
        at = f"{where}:{line}" if line else where
        raise ModelError(f"{kind} {name}: SQL syntax error: {text}", where=at) from exc
    except sqlglot.errors.SqlglotError as exc:
        raise ModelError(f"{kind} {name}: cannot parse SQL: {exc}", where=where) from exc
    if len(statements) != 1:
        raise ModelError(f"{kind} {name}: expected exactly one SELECT statement, "
                         f"found {len(statements)}", where=where)
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise ModelError(f"{kind} {name}: must be a SELECT, not "
                         f"{statement.key.upper()}", where=where)
    return statement


def table_refs(tree: exp.Expression) -> list[tuple[str, str]]:
    """(schema, table) of every real table a query reads: CTEs, functions, files excluded."""
    from sqlglot import exp

    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    refs: list[tuple[str, str]] = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or table.catalog:
            continue  # table functions (read_csv, range) and attached catalogs
        schema, name = table.db.lower(), table.name.lower()
        if not schema and name in ctes:
            continue
        if not schema and table.this.quoted and re.search(r"[./\\]", name):
            continue  # FROM 'file.csv': a replacement scan, not a relation
        if schema in EXTERNAL_SCHEMAS or (schema, name) in refs:
            continue
        refs.append((schema, name))
    return refs


def project_yaml(project: Project) -> list[tuple[Path, dict[str, Any]]]:
    """Every YAML file under models/ that is not a sidecar: publications, api_sources."""
    found: list[tuple[Path, dict[str, Any]]] = []
    if not project.models_dir.is_dir():
        return found
    for path in sorted(project.models_dir.rglob("*")):
        if path.suffix not in (".yml", ".yaml") or not path.is_file() or _hidden(path, project):
            continue
        if path.with_name(path.stem + ".sql").exists():
            continue  # sidecar config of a model or singular test
        where = relative(path, project.root)
        doc = parse_yaml(path.read_text(encoding="utf-8"), where)
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ConfigError("expected a mapping with `publications:` or `api_sources:`",
                              where=where)
        unknown = sorted(set(doc) - PROJECT_YAML_KEYS)
        if unknown:
            raise ConfigError(f"unknown top-level key(s) {', '.join(map(str, unknown))} "
                              f"(allowed: {', '.join(sorted(PROJECT_YAML_KEYS))}; "
                              "model config goes beside the model as <model>.yml)", where=where)
        found.append((path, doc))
    return found


def _hidden(path: Path, project: Project) -> bool:
    return any(part.startswith(".") for part in path.relative_to(project.root).parts)
