"""Paths (and header values) built from a row: `/customers/{customer_id}`, `/items/{answer}`.

One small module so every request that names a row in its URL (a REST publication's insert,
update and delete, later a REST `read:` lookup) fills its template the same way: each
`{name}` is a column of the model (or `answer`, what the endpoint answered for the row last
time), its value URL-encoded as one path segment (`/` and `?` too), the rest of the text
(a query string such as `?upsert=true`) kept as written. A row whose value is missing or
NULL cannot be sent: that is the row's error (`MissingValue`), not the batch's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

_FIELD = re.compile(r"\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ANSWER = "answer"  # the ledger's answer for the row (an id the endpoint assigned)


class TemplateError(ValueError):
    """A template that can never be filled (a stray brace, a field that is no name)."""


class MissingValue(ValueError):
    """The row has no value (or NULL) for a field of the template: this row's error."""

    def __init__(self, template: str, name: str) -> None:
        what = ("no answer recorded for this row yet" if name == ANSWER
                else f"column {name!r} is NULL or missing")
        super().__init__(f"cannot build {template}: {what}")
        self.name = name


@dataclass(frozen=True)
class Template:
    """A text with `{column}` fields, parsed once; `render` fills it for one row."""

    text: str
    parts: tuple[str, ...]   # literal, field, literal, field, ..., literal
    fields: tuple[str, ...]  # the field names, in order of appearance

    @classmethod
    def parse(cls, text: str) -> Template:
        parts: list[str] = []
        fields: list[str] = []
        last = 0
        for match in _FIELD.finditer(text):
            name = match.group(1).strip()
            if not _NAME.match(name):
                raise TemplateError(f"{text!r}: {{{match.group(1)}}} is not a column name")
            parts += [text[last:match.start()], name]
            fields.append(name)
            last = match.end()
        parts.append(text[last:])
        if any("{" in p or "}" in p for p in parts[::2]):
            raise TemplateError(f"{text!r}: unbalanced {{ or }}")
        return cls(text, tuple(parts), tuple(fields))

    @property
    def templated(self) -> bool:
        return bool(self.fields)

    def render(self, values: Mapping[str, Any], *, encode: bool = True) -> str:
        """The text with each field's value (URL-encoded when `encode`); MissingValue when
        one is absent or NULL."""
        if not self.fields:
            return self.text
        out = []
        for i, part in enumerate(self.parts):
            if i % 2 == 0:
                out.append(part)
                continue
            value = values.get(part)
            if value is None:
                raise MissingValue(self.text, part)
            text = scalar_text(value)
            out.append(quote(text, safe="") if encode else text)
        return "".join(out)


def scalar_text(value: Any) -> str:
    """A value as it appears in a URL: strings bare, booleans `true`/`false`, numbers as
    JSON writes them, anything nested as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def row_values(key_json: str | None, params: str | None, answer: str | None
               ) -> dict[str, Any]:
    """What a template can name for one row: its key columns, the other columns the
    templates need (a JSON object from the pending set) and its last answer."""
    values: dict[str, Any] = {}
    for text in (params, key_json):
        if text:
            decoded = json.loads(text)
            if isinstance(decoded, dict):
                values.update(decoded)
    if answer is not None:
        values[ANSWER] = answer
    return values
