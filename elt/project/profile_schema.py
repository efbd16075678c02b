"""What profiles.yml may contain: allowed keys and their types, in one table.

Used three ways: unknown keys are errors with a did-you-mean (a typo like `treads:` must not
silently fall back to a default); values rendered from `{{ env_var() }}` stay strings except
where the key expects a number or a boolean (`threads`, `timeout`, `retry_timeouts` ...), so
a password `007` stays "007"; and `json_schema()` publishes the same table for editors
(`elt/project/profiles.schema.json`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from elt.core.errors import ConfigError

# key -> type name ("str", "int", "number", "bool", or the name of a nested mapping below)
OUTPUT: dict[str, str] = {"type": "str", "path": "str", "threads": "int",
                          "memory_limit": "str", "row_group_size": "int",
                          "checkpoint_every": "number",
                          "endpoints": "endpoints",
                          "master": "str", "remote": "str", "warehouse": "str",
                          "conf": "conf"}
ENDPOINT: dict[str, str] = {
    "sandbox": "str", "url": "str", "heartbeat": "str", "graphql_path": "str",
    "timeout": "number", "concurrency": "int", "rate_limit": "number", "max_attempts": "int",
    "retry_timeouts": "bool", "settle": "number", "same_error_retries": "int", "auth": "auth",
    "gzip_level": "int", "openapi": "str", "graphql_schema": "str", "headers": "headers",
}
AUTH: dict[str, str] = {
    "type": "str", "token": "str", "token_url": "str", "client_id": "str",
    "client_secret": "str", "audience": "str", "login_url": "str", "username": "str",
    "password": "str", "token_in": "str",
}
PROFILE: dict[str, str] = {"target": "str", "outputs": "outputs"}
_NESTED = {"output": OUTPUT, "endpoint": ENDPOINT, "auth": AUTH, "profile": PROFILE}
_DESCRIPTIONS = {
    "threads": "models built in parallel", "timeout": "seconds per request",
    "row_group_size": "rows per DuckDB row group of the tables elt writes (a multiple of "
                      "2048; default 16384)",
    "checkpoint_every": "seconds of work a killed build may lose: a build checkpoints "
                        "between nodes once this long passed (default 60; 0: after every "
                        "node, more writes)",
    "concurrency": "requests in flight", "rate_limit": "requests per second, 0 = unlimited",
    "sandbox": "flowkit | flowkit_admin | uois | crud: use the embedded sandbox",
    "headers": "headers sent with every request to the endpoint (an API key: use env_var)",
    "settle": "seconds an unanswered request may still be processing before its rows go again",
    "same_error_retries": "times the same 5xx answer is retried before the row is failed",
    "gzip_level": "1-9: level of gzip-compressed bodies (1-3 ISA-L, 4-9 zlib; 1: least CPU, "
                  "9: fewest bytes)",
    "type": "output: duckdb (default) | spark; auth: the auth scheme",
    "path": "the DuckDB file (spark: holds raw seeds, _elt state and the ledger)",
    "master": "spark: local[*] or a cluster URL (spark://host:7077, yarn, k8s://...)",
    "remote": "spark: a Spark Connect server, sc://host:port (instead of master)",
    "warehouse": "spark: directory (or URI) of the models' parquet tables",
    "conf": "spark: extra Spark settings, e.g. spark.executor.memory: 4g",
}


def _suggest(key: str, allowed: dict[str, str]) -> str:
    close = difflib.get_close_matches(str(key), list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def check_keys(mapping: Any, kind: str, path: str, where: Any) -> None:
    """Raise on a key the `kind` mapping does not know; recurse into nested mappings.
    `where(path)` names the file and line of a dotted path."""
    if not isinstance(mapping, dict):
        return
    allowed = _NESTED[kind]
    for key, value in mapping.items():
        if key == "<<":
            continue
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise ConfigError(f"unknown key `{key}` in {path or kind}{_suggest(key, allowed)}; "
                              f"allowed: {known}", where=where(f"{path}.{key}".lstrip(".")))
        child = allowed[key]
        sub = f"{path}.{key}".lstrip(".")
        if child in _NESTED:
            check_keys(value, child, sub, where)
        elif child == "outputs" and isinstance(value, dict):
            for name, output in value.items():
                check_keys(output, "output", f"{sub}.{name}", where)
        elif child == "endpoints" and isinstance(value, dict):
            for name, endpoint in value.items():
                check_keys(endpoint, "endpoint", f"{sub}.{name}", where)
        elif child == "conf" and value is not None and not isinstance(value, dict):
            raise ConfigError(f"`{key}` must be a mapping of Spark settings",
                              where=where(sub))


# key -> (lowest, highest): checked when the profile is read, so a bad value stops every
# command, not only the one that happens to use it (`gzip_level: 0` used to pass `elt ls`)
RANGES: dict[str, tuple[float, float | None]] = {
    "threads": (1, None), "concurrency": (1, None), "max_attempts": (1, None),
    "gzip_level": (1, 9), "same_error_retries": (0, None), "rate_limit": (0, None),
    "settle": (0, None), "timeout": (0, None), "checkpoint_every": (0, None)}
_ABOVE_LOW = {"timeout"}  # the lowest value itself is not allowed (a timeout of 0)


def coerce(mapping: dict[str, Any], kind: str, path: str,
           where: Callable[[str], str]) -> dict[str, Any]:
    """Turn strings into numbers/booleans for the keys that expect them (env_var values),
    and check numbers against RANGES. `path` is the mapping's dotted key path;
    `where(path)` names the file and line."""
    allowed = _NESTED[kind]
    out = dict(mapping)
    for key, value in mapping.items():
        want = allowed.get(key)
        if want in ("int", "number", "bool"):
            out[key] = _scalar(value, want, f"{path}.{key}", where)
            _in_range(key, out[key], want, f"{path}.{key}", where)
        elif want in _NESTED and isinstance(value, dict):
            out[key] = coerce(value, want, f"{path}.{key}", where)
        elif want == "endpoints" and isinstance(value, dict):
            out[key] = {n: coerce(e, "endpoint", f"{path}.{key}.{n}", where)
                        if isinstance(e, dict) else e for n, e in value.items()}
    return out


def _in_range(key: str, value: Any, want: str, path: str, where: Callable[[str], str]) -> None:
    if key not in RANGES or value is None or want == "bool":
        return
    low, high = RANGES[key]
    whole = want == "int"
    kind = "a whole number" if whole else "a number"
    above = key in _ABOVE_LOW
    if isinstance(value, bool) or not isinstance(value, int if whole else int | float) or (
            value < low or (above and value == low) or (high is not None and value > high)):
        bounds = (f"from {low:g} to {high:g}" if high is not None else
                  f"above {low:g}" if above else f">= {low:g}")
        raise ConfigError(f"{path}: expected {kind} {bounds}, not {value!r}", where=where(path))


def _scalar(value: Any, want: str, path: str, where: Callable[[str], str]) -> Any:
    if not isinstance(value, str) or value == "":
        return value
    text = value.strip()
    try:
        if want == "bool":
            if text.lower() in ("true", "false", "yes", "no", "1", "0"):
                return text.lower() in ("true", "yes", "1")
            raise ValueError(text)
        number = float(text)
        if want == "int":
            if not number.is_integer():
                raise ValueError(text)
            return int(number)
        return int(number) if number.is_integer() else number
    except ValueError:
        kind = "true or false" if want == "bool" else ("a whole number" if want == "int"
                                                        else "a number")
        raise ConfigError(f"{path}: expected {kind}, not {value!r}", where=where(path)) from None


def json_schema() -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of profiles.yml for editors."""

    def obj(fields: dict[str, str]) -> dict[str, Any]:
        props = {k: _bounded(k, _type(t)) | ({"description": _DESCRIPTIONS[k]}
                                              if k in _DESCRIPTIONS else {})
                 for k, t in fields.items()}
        return {"type": "object", "properties": props, "additionalProperties": False}

    def _bounded(key: str, schema: dict[str, Any]) -> dict[str, Any]:
        if key not in RANGES:
            return schema
        low, high = RANGES[key]
        limits = {"exclusiveMinimum" if key in _ABOVE_LOW else "minimum": low}
        limits |= {"maximum": high} if high is not None else {}
        return {"anyOf": [schema["anyOf"][0] | limits, *schema["anyOf"][1:]]}

    def _type(name: str) -> dict[str, Any]:
        templated = {"type": "string", "pattern": r"\{\{\s*env_var\("}
        if name == "str":
            return {"type": "string"}
        if name in ("int", "number"):
            return {"anyOf": [{"type": "integer" if name == "int" else "number"}, templated]}
        if name == "bool":
            return {"anyOf": [{"type": "boolean"}, templated]}
        if name == "outputs":
            return {"type": "object", "additionalProperties": {"$ref": "#/$defs/output"}}
        if name == "conf":
            return {"type": "object", "additionalProperties": {"type": ["string", "number",
                                                                        "boolean"]}}
        if name == "headers":
            return {"type": "object", "additionalProperties": {"type": "string"}}
        if name == "endpoints":
            return {"type": "object", "additionalProperties": {"$ref": "#/$defs/endpoint"}}
        return {"$ref": f"#/$defs/{name}"}

    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "elt profiles.yml",
        "type": "object",
        "additionalProperties": {"$ref": "#/$defs/profile"},
        "$defs": {name: obj(fields) for name, fields in _NESTED.items()},
    }
