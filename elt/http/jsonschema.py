"""A JSON Schema check for request bodies, as OpenAPI 3.x documents declare them.

The keywords request models use (what FastAPI/pydantic emit): `$ref` inside the document,
`type` (a list too, and OpenAPI 3.0's `nullable`), `required`, `properties`,
`additionalProperties`, `items`, `enum`, `const`, `format` (date-time, date, uuid, email,
int32, int64), `pattern`, `minimum`/`maximum`, `minLength`/`maxLength`,
`minItems`/`maxItems`, `allOf`/`anyOf`/`oneOf`. Every failure names the JSON path and the
rule, so a rejected row says what to change in its model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

FORMATS = {
    "uuid": re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                       r"[0-9a-fA-F]{12}$"),
    "email": re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$"),
}
# what a date-time / date looks like besides parsing (the SQL check, schemasql.py, agrees)
_DATE_TIME = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")
INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


@dataclass(frozen=True)
class Violation:
    path: str      # $.metadata.srid
    rule: str      # type, required, enum, format, ...
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.rule}: {self.message}"


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(value: Any, wanted: str) -> bool:
    have = _type_of(value)
    return have == wanted or (wanted == "number" and have == "integer") or (
        wanted == "integer" and have == "number" and float(value).is_integer())


def _format_ok(value: Any, fmt: str) -> bool:
    if fmt in INT_RANGES and isinstance(value, int) and not isinstance(value, bool):
        low, high = INT_RANGES[fmt]
        return low <= value <= high
    if not isinstance(value, str):
        return True
    if fmt == "date-time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return bool(_DATE_TIME.fullmatch(value))
    if fmt == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return False
        return bool(_DATE.fullmatch(value))
    pattern = FORMATS.get(fmt)
    return pattern is None or bool(pattern.match(value))


class Validator:
    """Checks instances against schemas of one document (whose `$ref`s it resolves)."""

    def __init__(self, document: dict[str, Any], limit: int = 5) -> None:
        self.document, self.limit = document, limit

    def ref(self, pointer: str) -> dict[str, Any]:
        return resolve_ref(self.document, pointer)

    def errors(self, value: Any, schema: dict[str, Any], path: str = "$") -> list[Violation]:
        out: list[Violation] = []
        self._check(value, schema, path, out, depth=0)
        return out[: self.limit]

    def _check(self, value: Any, schema: Any, path: str, out: list[Violation],
               depth: int) -> None:
        if len(out) >= self.limit or not isinstance(schema, dict) or depth > 64:
            return
        if "$ref" in schema:
            self._check(value, self.ref(schema["$ref"]), path, out, depth + 1)
            return
        for sub in schema.get("allOf") or ():
            self._check(value, sub, path, out, depth + 1)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if options and not any(not self.errors(value, o, path) for o in options):
                shown = ", ".join(describe(o) for o in options)
                out.append(Violation(path, key, f"{_short(value)} matches none of {shown}"))
                return
        if value is None and schema.get("nullable"):
            return
        wanted = schema.get("type")
        if wanted is not None:
            kinds = wanted if isinstance(wanted, list) else [wanted]
            if not any(_type_ok(value, k) for k in kinds):
                got = _type_of(value) + ("" if value is None else f" {_short(value)}")
                out.append(Violation(path, "type", f"expected {' or '.join(kinds)}, got {got}"))
                return
        if "enum" in schema and value not in schema["enum"]:
            out.append(Violation(path, "enum", f"{_short(value)} is not one of "
                                 f"{', '.join(map(_short, schema['enum']))}"))
        if "const" in schema and value != schema["const"]:
            out.append(Violation(path, "const", f"expected {_short(schema['const'])}"))
        if schema.get("format") and not _format_ok(value, schema["format"]):
            out.append(Violation(path, "format", f"{_short(value)} is not a valid "
                                 f"{schema['format']}"))
        if isinstance(value, str):
            self._string(value, schema, path, out)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                out.append(Violation(path, "minimum", f"{value} < {schema['minimum']}"))
            if "maximum" in schema and value > schema["maximum"]:
                out.append(Violation(path, "maximum", f"{value} > {schema['maximum']}"))
        elif isinstance(value, list):
            self._array(value, schema, path, out, depth)
        elif isinstance(value, dict):
            self._object(value, schema, path, out, depth)

    def _string(self, value: str, schema: dict[str, Any], path: str,
                out: list[Violation]) -> None:
        if "minLength" in schema and len(value) < schema["minLength"]:
            out.append(Violation(path, "minLength", f"{len(value)} characters, at least "
                                 f"{schema['minLength']}"))
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            out.append(Violation(path, "maxLength", f"{len(value)} characters, at most "
                                 f"{schema['maxLength']}"))
        if "pattern" in schema and not re.search(schema["pattern"], value):
            out.append(Violation(path, "pattern", f"{_short(value)} does not match "
                                 f"{schema['pattern']}"))

    def _array(self, value: list[Any], schema: dict[str, Any], path: str,
               out: list[Violation], depth: int) -> None:
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(Violation(path, "minItems", f"{len(value)} item(s), at least "
                                 f"{schema['minItems']}"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(Violation(path, "maxItems", f"{len(value)} item(s), at most "
                                 f"{schema['maxItems']}"))
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                self._check(item, items, f"{path}[{i}]", out, depth + 1)
                if len(out) >= self.limit:
                    return

    def _object(self, value: dict[str, Any], schema: dict[str, Any], path: str,
                out: list[Violation], depth: int) -> None:
        for name in schema.get("required") or ():
            if name not in value:
                out.append(Violation(f"{path}.{name}", "required", "missing"))
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties", True)
        for name, item in props.items():  # the schema's order, as the SQL check reports
            if name in value:
                self._check(value[name], item, f"{path}.{name}", out, depth + 1)
        for name, item in value.items():
            if name in props:
                continue
            if extra is False:
                out.append(Violation(f"{path}.{name}", "additionalProperties",
                                     "not declared by the schema"))
            elif isinstance(extra, dict):
                self._check(item, extra, f"{path}.{name}", out, depth + 1)


def resolve_ref(document: dict[str, Any], pointer: str) -> dict[str, Any]:
    """A local `$ref` (#/components/schemas/X) of the document."""
    if not pointer.startswith("#/"):
        raise ValueError(f"only local $ref are supported, not {pointer!r}")
    node: Any = document
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def describe(schema: Any) -> str:
    """An option of anyOf/oneOf, named in a message."""
    if isinstance(schema, dict) and "$ref" in schema:
        return schema["$ref"].rpartition("/")[2]
    if isinstance(schema, dict):
        return str(schema.get("type") or schema.get("format") or "schema")
    return "schema"


def _short(value: Any) -> str:
    """The value as JSON text (as DuckDB writes it), cut at 60 characters."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."
