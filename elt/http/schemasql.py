"""A JSON Schema compiled into one DuckDB expression: every body checked by the database.

`Compiler(document).compile(schema, body).sql` is a SQL expression of type
`STRUCT(path, rule, message)[]`: the rules the body (a JSON value) breaks, in the order
jsonschema.Validator finds them (the same paths, rules and messages: tests/
test_schemasql.py holds them equal), so `payload_matches_schema` and `publish --dry-run`
check a whole model in one query (json_type / json_extract / regexp / try_cast, lambdas
over arrays and keys; an object's keys extracted in one call, so it is parsed once), no
Python loop over rows.

What SQL does not express here, and is left to the streamed Python validator instead
(`Compiled.python_only` says why): a `pattern` DuckDB's RE2 refuses (look-arounds,
back-references), and a `$ref` that refers to itself (a recursive schema).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from elt.http.jsonschema import FORMATS, INT_RANGES, describe, resolve_ref

VIOLATION = "STRUCT(path VARCHAR, rule VARCHAR, message VARCHAR)"
EMPTY = f"CAST([] AS {VIOLATION}[])"
_INTS = "('BIGINT', 'UBIGINT', 'HUGEINT')"
_SQL_TYPES = {"null": "{t} = 'NULL'", "boolean": "{t} = 'BOOLEAN'", "string": "{t} = 'VARCHAR'",
              "array": "{t} = 'ARRAY'", "object": "{t} = 'OBJECT'",
              "number": f"({{t}} IN {_INTS} OR {{t}} = 'DOUBLE')",
              "integer": f"({{t}} IN {_INTS} OR ({{t}} = 'DOUBLE' AND "
                         "TRY_CAST({v} AS DOUBLE) = floor(TRY_CAST({v} AS DOUBLE))))"}
_TYPE_NAME = (f"CASE WHEN {{t}} IN {_INTS} THEN 'integer' WHEN {{t}} = 'DOUBLE' THEN 'number' "
              "WHEN {t} = 'VARCHAR' THEN 'string' ELSE lower({t}) END")


def lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def short(v: str) -> str:
    """The value as JSON text, cut at 60 characters (jsonschema._short)."""
    s = f"CAST({v} AS VARCHAR)"
    return f"(CASE WHEN length({s}) > 60 THEN {s}[1:57] || '...' ELSE {s} END)"


def _key(name: str) -> str:
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass
class Compiled:
    sql: str                                   # STRUCT(path, rule, message)[]
    python_only: list[str] = field(default_factory=list)  # why SQL could not check it


class Compiler:
    """Compiles schemas of one document (resolving its local `$ref`s)."""

    def __init__(self, document: dict[str, Any], regex_ok: Any = None) -> None:
        self.document = document
        self.regex_ok = regex_ok or (lambda pattern: True)  # does RE2 take this pattern?
        self._lambdas = 0
        self.python_only: list[str] = []

    def compile(self, schema: dict[str, Any] | None, body: str) -> Compiled:
        self.python_only = []
        sql = EMPTY if not schema else self._node(schema, body, "'$'", ())
        return Compiled(sql, list(dict.fromkeys(self.python_only)))

    def _ref(self, pointer: str) -> dict[str, Any]:
        return resolve_ref(self.document, pointer)

    def _var(self) -> str:
        self._lambdas += 1
        return f"x{self._lambdas}"

    # -- one schema, one value -----------------------------------------------------------
    def _node(self, schema: Any, v: str, p: str, refs: tuple[str, ...]) -> str:
        """Violations of value `v` (JSON, SQL NULL when absent) at path `p` (a SQL text)."""
        if not isinstance(schema, dict):
            return EMPTY
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in refs:
                self.python_only.append(f"$ref {ref} refers to itself")
                return EMPTY
            return self._node(self._ref(ref), v, p, (*refs, ref))
        t = f"json_type({v})"
        parts = [self._node(sub, v, p, refs) for sub in schema.get("allOf") or ()]
        rest = self._rest(schema, v, p, t, refs)
        if schema.get("nullable"):
            rest = f"CASE WHEN {t} = 'NULL' THEN {EMPTY} ELSE {rest} END"
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if options:
                ok = " OR ".join(f"len({self._node(o, v, p, refs)}) = 0" for o in options)
                shown = ", ".join(describe(o) for o in options)
                fail = _one(p, key, f"{short(v)} || {lit(' matches none of ' + shown)}")
                rest = f"CASE WHEN NOT ({ok}) THEN {fail} ELSE {rest} END"
                break
        return f"CASE WHEN {v} IS NULL THEN {EMPTY} ELSE {_concat([*parts, rest])} END"

    def _rest(self, schema: dict[str, Any], v: str, p: str, t: str,
              refs: tuple[str, ...]) -> str:
        """After allOf / anyOf: the type (which stops the rest when wrong), then the rules."""
        checks: list[str] = []
        if "enum" in schema:
            values = ", ".join(lit(_json(e)) for e in schema["enum"])
            shown = ", ".join(_json(e) for e in schema["enum"])
            checks.append(_rule(f"CAST({v} AS VARCHAR) NOT IN ({values})", p, "enum",
                                f"{short(v)} || {lit(' is not one of ' + shown)}"))
        if "const" in schema:
            checks.append(_rule(f"CAST({v} AS VARCHAR) <> {lit(_json(schema['const']))}", p,
                                "const", lit(f"expected {_json(schema['const'])}")))
        fmt = schema.get("format")
        if fmt:
            bad = _format_fails(fmt, v, t)
            if bad:
                checks.append(_rule(bad, p, "format",
                                    f"{short(v)} || {lit(' is not a valid ' + str(fmt))}"))
        checks += self._string(schema, v, p, t) + self._number(schema, v, p, t)
        checks += self._array(schema, v, p, t, refs) + self._object(schema, v, p, t, refs)
        body = _concat(checks)
        wanted = schema.get("type")
        if wanted is None:
            return body
        kinds = wanted if isinstance(wanted, list) else [wanted]
        ok = " OR ".join(_SQL_TYPES[k].format(t=t, v=v) for k in kinds if k in _SQL_TYPES)
        if not ok:
            return body
        got = _TYPE_NAME.format(t=t)
        message = (f"{lit('expected ' + ' or '.join(kinds) + ', got ')} || {got} || "
                   f"CASE WHEN {t} = 'NULL' THEN '' ELSE ' ' || {short(v)} END")
        return f"CASE WHEN NOT ({ok}) THEN {_one(p, 'type', message)} ELSE {body} END"

    def _string(self, schema: dict[str, Any], v: str, p: str, t: str) -> list[str]:
        s, out = f"json_extract_string({v}, '$')", []
        is_str = f"{t} = 'VARCHAR'"
        if "minLength" in schema:
            n = int(schema["minLength"])
            out.append(_rule(f"{is_str} AND length({s}) < {n}", p, "minLength",
                             f"length({s}) || {lit(f' characters, at least {n}')}"))
        if "maxLength" in schema:
            n = int(schema["maxLength"])
            out.append(_rule(f"{is_str} AND length({s}) > {n}", p, "maxLength",
                             f"length({s}) || {lit(f' characters, at most {n}')}"))
        pattern = schema.get("pattern")
        if pattern is not None:
            if self.regex_ok(str(pattern)):
                out.append(_rule(f"{is_str} AND NOT regexp_matches({s}, {lit(str(pattern))})",
                                 p, "pattern",
                                 f"{short(v)} || {lit(' does not match ' + str(pattern))}"))
            else:
                self.python_only.append(f"pattern {pattern} (not an RE2 expression)")
        return out

    def _number(self, schema: dict[str, Any], v: str, p: str, t: str) -> list[str]:
        out, num = [], f"TRY_CAST({v} AS DOUBLE)"
        is_num = f"({t} IN {_INTS} OR {t} = 'DOUBLE')"
        for key, op in (("minimum", "<"), ("maximum", ">")):
            if key in schema:
                bound = schema[key]
                out.append(_rule(f"{is_num} AND {num} {op} {float(bound)!r}", p, key,
                                 f"CAST({v} AS VARCHAR) || {lit(f' {op} {bound}')}"))
        return out

    def _array(self, schema: dict[str, Any], v: str, p: str, t: str,
               refs: tuple[str, ...]) -> list[str]:
        out, n = [], f"json_array_length({v})"
        for key, op, word in (("minItems", "<", "at least"), ("maxItems", ">", "at most")):
            if key in schema:
                k = int(schema[key])
                out.append(_rule(f"{t} = 'ARRAY' AND {n} {op} {k}", p, key,
                                 f"{n} || {lit(f' item(s), {word} {k}')}"))
        items = schema.get("items")
        if isinstance(items, dict):
            e, i = self._var(), self._var()
            inner = self._node(items, e, f"{p} || '[' || ({i} - 1) || ']'", refs)
            out.append(f"CASE WHEN {t} = 'ARRAY' THEN flatten(list_transform("
                       f"json_extract({v}, '$[*]'), lambda {e}, {i}: {inner})) "
                       f"ELSE {EMPTY} END")
        return out

    def _object(self, schema: dict[str, Any], v: str, p: str, t: str,
                refs: tuple[str, ...]) -> list[str]:
        out, is_obj = [], f"{t} = 'OBJECT'"
        props = schema.get("properties") or {}
        names = list(dict.fromkeys([*(schema.get("required") or ()), *props]))
        k = self._var()  # every named key extracted in one call: the object parsed once
        at = {n: f"{k}[{i + 1}]" for i, n in enumerate(names)}
        keyed: list[str] = []
        for name in schema.get("required") or ():
            keyed.append(_rule(f"{at[name]} IS NULL", f"{p} || {lit('.' + name)}",
                               "required", "'missing'"))
        for name, sub in props.items():
            keyed.append(self._node(sub, at[name], f"{p} || {lit('.' + name)}", refs))
        body = _concat(keyed)
        if body != EMPTY:
            paths = ", ".join(lit(_key(n)) for n in names)
            out.append(f"CASE WHEN {is_obj} THEN list_transform([json_extract({v}, "
                       f"[{paths}])], lambda {k}: {body})[1] ELSE {EMPTY} END")
        extra = schema.get("additionalProperties", True)
        if extra is False or isinstance(extra, dict):
            k = self._var()
            declared = ", ".join(lit(n) for n in props) or "NULL"
            path = f"{p} || '.' || {k}"
            if extra is False:
                each = _one(path, "additionalProperties", "'not declared by the schema'")
            else:
                each = self._node(extra, f"json_extract({v}, '$.\"' || {k} || '\"')", path,
                                  refs)
            out.append(f"CASE WHEN {is_obj} THEN flatten(list_transform(list_filter("
                       f"json_keys({v}), lambda {k}: NOT list_contains([{declared}], {k})), "
                       f"lambda {k}: {each})) ELSE {EMPTY} END")
        return out


def _one(path: str, rule: str, message: str) -> str:
    return f"[{{'path': {path}, 'rule': {lit(rule)}, 'message': {message}}}::{VIOLATION}]"


def _rule(fails: str, path: str, rule: str, message: str) -> str:
    return f"CASE WHEN {fails} THEN {_one(path, rule, message)} ELSE {EMPTY} END"


def _concat(parts: list[str]) -> str:
    parts = [x for x in parts if x != EMPTY]
    if not parts:
        return EMPTY
    return parts[0] if len(parts) == 1 else f"flatten([{', '.join(parts)}])"


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _format_fails(fmt: str, v: str, t: str) -> str | None:
    """SQL true when a value of that format is invalid (jsonschema._format_ok)."""
    s = f"json_extract_string({v}, '$')"
    if fmt in INT_RANGES:
        low, high = INT_RANGES[fmt]
        return f"{t} IN {_INTS} AND TRY_CAST({v} AS HUGEINT) NOT BETWEEN {low} AND {high}"
    if fmt == "date-time":
        return (f"{t} = 'VARCHAR' AND (try_cast({s} AS TIMESTAMPTZ) IS NULL OR NOT "
                rf"regexp_full_match({s}, '\d{{4}}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?"
                r"(Z|[+-]\d\d:?\d\d)?'))")
    if fmt == "date":
        return (f"{t} = 'VARCHAR' AND (try_cast({s} AS DATE) IS NULL OR NOT "
                rf"regexp_full_match({s}, '\d{{4}}-\d\d-\d\d'))")
    if fmt in FORMATS:
        return f"{t} = 'VARCHAR' AND NOT regexp_matches({s}, {lit(FORMATS[fmt].pattern)})"
    return None
