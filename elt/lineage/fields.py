"""The JSON fields a body column builds, read off its SQL expression.

A payload is built in SQL either with JSON constructors (`json_object('k', v, ...)`,
`struct_pack(k := v)`, `{'k': v}`, wrapped in `to_json`/casts) or as text:
`'{"metadata":' || json_object(...)::VARCHAR || ',"data_input":' || data_input || '}'`.
Both are read here: constructors by their keys, text by scanning the literal pieces of the
concatenation for `"key":`, `{`, `[`, `,` and the closing brackets, the pieces between them
being the values. A column whose own definition (in a CTE, a subquery or another model) is
such a fragment is spliced in, so `data_input[].spatial_unit_ids` is found two models away.
What SQL cannot tell (a value built by a UDF, a JSON column read as it is) stays one field
whose sources are the columns its expression reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlglot import exp

# resolve(column, context) -> (definition, its context) when the column is defined by an
# expression that builds JSON (so its fields belong to the body), else None
Resolver = Callable[[exp.Column, object], "tuple[exp.Expression, object] | None"]
ARRAY = "[]"


@dataclass
class Field:
    """One leaf of the body: its JSON path, the SQL computing it and where that SQL lives."""

    path: tuple[str, ...]
    expression: exp.Expression | None  # None: a literal fragment (a constant value)
    context: object                    # what `resolve` and the tracer need to follow columns
    constant: str | None = None

    @property
    def name(self) -> str:
        return ".".join(self.path).replace(".[]", "[]")


def _unwrap(e: exp.Expression) -> exp.Expression:
    """to_json(x), json(x), x::JSON, x::VARCHAR, (x) -> x: they change no field."""
    while True:
        if isinstance(e, exp.Paren | exp.Alias | exp.Order):  # string_agg(x ORDER BY y)
            e = e.this
        elif isinstance(e, exp.Cast | exp.TryCast | exp.ParseJSON | exp.JSONFormat):
            e = e.this
        elif isinstance(e, exp.Anonymous) and e.name.lower() in ("to_json", "json") \
                and len(e.expressions) == 1:
            e = e.expressions[0]
        else:
            return e


def _pairs(e: exp.Expression) -> list[tuple[str, exp.Expression]] | None:
    """(key, value) of a JSON object or struct constructor; None for anything else."""
    if isinstance(e, exp.JSONObject):
        out = []
        for kv in e.expressions:
            if isinstance(kv, exp.JSONKeyValue) and isinstance(kv.this, exp.Literal):
                out.append((kv.this.name, kv.expression))
        return out
    if isinstance(e, exp.Struct):
        out = []
        for item in e.expressions:
            if isinstance(item, exp.PropertyEQ | exp.Slice | exp.EQ):
                out.append((item.this.name, item.expression))
            elif isinstance(item, exp.Alias):
                out.append((item.alias, item.this))
        return out
    if isinstance(e, exp.Anonymous) and e.name.lower() == "json_object":
        args = e.expressions
        return [(k.name, v) for k, v in zip(args[::2], args[1::2], strict=False)
                if isinstance(k, exp.Literal)]
    return None


def _pieces(e: exp.Expression) -> list[exp.Expression]:
    """The operands of a text concatenation, left to right."""
    e = e.this if isinstance(e, exp.Paren) else e
    if isinstance(e, exp.DPipe):
        return _pieces(e.this) + _pieces(e.expression)
    if isinstance(e, exp.Concat):
        return [p for a in e.expressions for p in _pieces(a)]
    return [e]


def _is_fragment(e: exp.Expression) -> bool:
    """A concatenation with a literal holding JSON punctuation: text that builds JSON."""
    parts = _pieces(_unwrap(e))
    return len(parts) > 1 and any(
        isinstance(p, exp.Literal) and p.is_string and any(c in p.name for c in '{}[]":')
        for p in parts)


def builds_json(e: exp.Expression) -> bool:
    inner = _unwrap(e)
    return _pairs(inner) is not None or _is_fragment(inner) or (
        isinstance(inner, exp.GroupConcat | exp.ArrayAgg) and builds_json(inner.this))


def body_fields(e: exp.Expression, context: object, resolve: Resolver) -> list[Field]:
    """Every field the expression puts in the body (the whole value: one field `$`)."""
    found = _fields(e, (), context, resolve, depth=0)
    return found or [Field((), e, context)]


def _fields(e: exp.Expression, path: tuple[str, ...], ctx: object, resolve: Resolver,
            depth: int) -> list[Field]:
    inner = _unwrap(e)
    if depth > 20:  # a definition that refers to itself through a recursive CTE
        return [Field(path, e, ctx)]
    pairs = _pairs(inner)
    if pairs is not None:
        return [f for k, v in pairs for f in _fields(v, (*path, k), ctx, resolve, depth + 1)]
    if isinstance(inner, exp.GroupConcat | exp.ArrayAgg) and builds_json(inner.this):
        # string_agg(<element text>, ',') between '[' and ']': the element repeated
        return _fields(inner.this, path, ctx, resolve, depth + 1)
    if isinstance(inner, exp.Column):
        defined = resolve(inner, ctx)
        if defined is not None:
            return _fields(defined[0], path, defined[1], resolve, depth + 1)
        return [Field(path, e, ctx)]
    if _is_fragment(inner):
        return _Scanner(path, resolve, depth).scan(_pieces(inner), ctx)
    if isinstance(inner, exp.Literal | exp.Null | exp.Boolean):
        return [Field(path, None, ctx, constant=inner.sql())]
    return [Field(path, e, ctx)]


class _Scanner:
    """Walks the pieces of a JSON text concatenation, keeping the path of the open brackets."""

    def __init__(self, base: tuple[str, ...], resolve: Resolver, depth: int) -> None:
        self.stack: list[tuple[str, tuple[str, ...]]] = [("", base)]  # (bracket, its path)
        self.key: str | None = None
        self.in_string = False
        self.text = ""           # a string being read across pieces
        self.valued = False      # that string got its value from an expression piece
        self.resolve, self.depth = resolve, depth
        self.out: list[Field] = []

    def _path(self) -> tuple[str, ...]:
        bracket, path = self.stack[-1]
        if bracket == "[":
            return (*path, ARRAY)
        return (*path, self.key) if self.key is not None else path

    def scan(self, pieces: list[exp.Expression], ctx: object) -> list[Field]:
        for piece in pieces:
            if isinstance(piece, exp.Literal) and piece.is_string:
                self._literal(piece.name, ctx)
                continue
            defined = self.resolve(piece, ctx) if isinstance(piece, exp.Column) else None
            if defined is not None and _is_fragment(defined[0]):  # a fragment: splice it
                self.scan(_pieces(_unwrap(defined[0])), defined[1])
                continue
            agg = _unwrap(piece)
            if isinstance(agg, exp.GroupConcat) and _is_fragment(agg.this):
                self.scan(_pieces(_unwrap(agg.this)), ctx)  # elements joined by the separator
                continue
            self.out += _fields(piece, self._path(), ctx, self.resolve, self.depth + 1)
            if self.in_string:  # '"' || name || '"': the string's text is this value
                self.valued = True
            else:
                self.key = None
        return self.out

    def _literal(self, text: str, ctx: object) -> None:
        i = 0
        while i < len(text):
            c = text[i]
            if self.in_string:
                if c == "\\":
                    self.text += text[i:i + 2]
                    i += 2
                    continue
                if c == '"':
                    self.in_string = False
                    self._string_end(text[i + 1:], ctx)
                else:
                    self.text += c
            elif c == '"':
                self.in_string, self.text = True, ""
            elif c in "{[":
                self.stack.append((c, self._path()))
                self.key = None
            elif c in "}]":
                if len(self.stack) > 1:
                    self.stack.pop()
                self.key = None
            elif c == ",":
                self.key = None
            elif c not in " \n\t:" and self.key is not None:  # a literal number or word
                j = i
                while j < len(text) and text[j] not in ",}] ":
                    j += 1
                self.out.append(Field(self._path(), None, ctx, constant=text[i:j]))
                self.key = None
                i = j
                continue
            i += 1

    def _string_end(self, rest: str, ctx: object) -> None:
        """A string just closed: a key when a colon follows, else a constant value."""
        if self.valued:
            self.valued, self.key = False, None
        elif rest.lstrip().startswith(":") and self.stack[-1][0] != "[":
            self.key = self.text
        elif self.key is not None or self.stack[-1][0] == "[":
            self.out.append(Field(self._path(), None, ctx, constant=f'"{self.text}"'))
            self.key = None
