"""API sources: lookups from REST and GraphQL endpoints, fetched into `raw.<name>` by `elt build`.

An API source is a DAG node like a seed, declared in any YAML file under models/ (not a
model's sidecar) with a top-level `api_sources:` mapping:

```yaml
api_sources:
  uois_internal_ids:                     # -> table raw.uois_internal_ids
    endpoint: uois                       # a name in the target's `endpoints:` (profiles.yml)
    kind: graphql                        # graphql | rest
    document: uois/internal_id.gql       # relative to this YAML file; one operation, one field
    for_each:                            # one call per distinct value tuple of these columns
      model: uois_externalids            # any relation: a model name or raw.<seed>
      columns: [type_id, outer_id]       # -> variables by name; rename with {var: column}
    batch_size: 50                       # graphql: aliased copies of the field per document
    result: result                       # dotted path into the field's data (REST: the body)
    max_age: 7d                          # re-ask answers older than this (s/m/h/d); default never
    stale_after: [uois_externalids]      # re-ask answers older than these publications' sends
    concurrency: 4                       # requests in flight (default: the endpoint's)
  flowkit_indicators:
    endpoint: flowkit
    kind: rest
    method: GET                          # GET (default) | POST | PUT | PATCH | DELETE
    path: /indicators_for_category/{category_id}   # {var} from for_each, URL-quoted
    params: {lang: en}                   # fixed query parameters ({var} allowed)
    headers: {X-Source: elt}
    for_each: {model: flowkit_categories, columns: [category_id]}
    result: indicators
  uois_user_page:
    endpoint: uois
    kind: graphql
    document: uois/user_page.gql         # declares $skip and $limit
    paging: {style: skip_limit, size: 100}
    result: result                       # must be a list: fetched until a short page
    variables: {}                        # fixed variables (for_each values override them)
```
REST variables not used in `path` go to the query string (GET/DELETE) or the JSON body
(merged over a fixed `body:` mapping). Paging: `skip_limit`/`offset` send `offset_param`
(default `skip` resp. `offset`) and `limit_param` (default `limit`) as GraphQL variables or
query parameters until a page has fewer than `size` items; `cursor` sends `cursor_param`
(default `cursor`) = the value at path `next` of the previous answer until it is empty
(and `limit_param` only if set).
Also: `headers`, `max_pages` (10000), `description`, `tags`.

Table raw.<name>: a VARCHAR column per variable, (paged only) `page` and `item`, `result`
JSON (the extracted value; paged: one row per item, or one row with page/item/result NULL
when there were none), `http_status` INTEGER, `error` VARCHAR (NULL when answered),
`fetched_at` TIMESTAMP (UTC), `_elt_load_id` BIGINT (new answers get a new id).
A build asks only tuples with no answer, an error, an answer older than max_age, or one
fetched before a publication it depends on (or one `stale_after:` names) last acknowledged
rows (fetch.published_inputs; `--full-refresh`: all); rows of tuples gone from for_each are
deleted. A failed re-ask
keeps the older good answer. Changing the request settings (document, path, result, ...)
recreates the table and asks everything again.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote as url_quote
from urllib.parse import urlencode

from elt.core.errors import ConfigError, EltError
from elt.http.messages import Request, encode_json, truncate
from elt.project.modelfile import checksum

KINDS = ("rest", "graphql")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PAGING_STYLES = ("skip_limit", "offset", "cursor")
RESERVED = ("page", "item", "result", "http_status", "error", "fetched_at", "_elt_load_id")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_KEYS = {"endpoint", "kind", "document", "for_each", "batch_size", "result", "max_age",
         "concurrency", "method", "path", "params", "headers", "body", "paging", "variables",
         "description", "tags", "max_pages", "stale_after"}


@dataclass(frozen=True)
class Paging:
    """How to walk the pages of one request (see the module docstring)."""

    style: str
    size: int
    offset_param: str
    limit_param: str | None
    cursor_param: str
    next: str | None


@dataclass
class SourceSpec:
    """One validated `api_sources:` entry."""

    name: str
    where: str
    endpoint: str
    kind: str
    model: str | None = None
    variables: list[tuple[str, str]] = field(default_factory=list)  # (variable, column)
    result: str | None = None
    max_age: float | None = None
    stale_after: list[str] = field(default_factory=list)  # publications that outdate answers
    concurrency: int | None = None
    batch_size: int = 1
    paging: Paging | None = None
    max_pages: int = 10_000
    method: str = "POST"
    path: str = ""
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)
    document_path: Path | None = None
    document_text: str = ""
    response_key: str = ""
    fixed_variables: dict[str, Any] = field(default_factory=dict)
    checksum: str = ""

    @property
    def label(self) -> str:
        """How messages name it: as the build names the node (`raw.<name>`)."""
        return f"raw.{self.name}"

    @property
    def var_names(self) -> list[str]:
        return [v for v, _ in self.variables]

    @property
    def columns(self) -> list[tuple[str, str]]:
        """The columns of raw.<name> and their types (see the module docstring)."""
        cols = [(v, "VARCHAR") for v in self.var_names]
        if self.paging:
            cols += [("page", "INTEGER"), ("item", "INTEGER")]
        return cols + [("result", "JSON"), ("http_status", "INTEGER"), ("error", "VARCHAR"),
                       ("fetched_at", "TIMESTAMP"), ("_elt_load_id", "BIGINT")]

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"api source {self.label}: {message}", where=self.where)

    def check_document(self) -> None:
        """Parse the GraphQL document and check it against the settings; sets response_key.
        Only here is graphql-core imported (~0.1 s): a build with nothing to ask skips it."""
        if self.kind == "graphql" and not self.response_key:
            _check_document(self)


def parse_max_age(value: Any, what: str = "max_age") -> float | None:
    """`7d`, `12h`, `30m`, `45s` or a number of seconds; None/`never` = answers never expire."""
    if value is None or value == "never":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    match = _AGE.match(str(value)) if isinstance(value, str) else None
    if not match:
        raise ValueError(f"{what} must look like 30s, 15m, 12h or 7d, not {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _positive(spec: SourceSpec, raw: dict, key: str, default: int | None) -> int | None:
    value = raw.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise spec.error(f"`{key}` must be a positive integer, not {value!r}")
    return value


def _mapping(spec: SourceSpec, raw: dict, key: str) -> dict[str, Any]:
    value = raw.get(key) or {}
    if not isinstance(value, dict):
        raise spec.error(f"`{key}` must be a mapping")
    return {str(k): v for k, v in value.items()}


def _columns(spec: SourceSpec, value: Any) -> list[tuple[str, str]]:
    """`[a, b]`, `{var: column}` or a list mixing names and one-key mappings."""
    items: list[Any] = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(items, list) or not items:
        raise spec.error("`for_each.columns` must be a non-empty list of column names")
    out: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, dict) and len(item) == 1:
            item = next(iter(item.items()))
        if isinstance(item, str):
            item = (item, item)
        if not (isinstance(item, tuple) and all(isinstance(x, str) and x for x in item)):
            raise spec.error(f"`for_each.columns`: bad entry {item!r}")
        out.append((str(item[0]), str(item[1])))
    names = [v for v, _ in out]
    clash = sorted({n for n in names if names.count(n) > 1 or n.lower() in RESERVED})
    if clash:
        raise spec.error(f"variable name(s) {', '.join(clash)} repeat or clash with the "
                         f"table's own columns ({', '.join(RESERVED)})")
    return out


def _paging(spec: SourceSpec, value: Any) -> Paging | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise spec.error("`paging` must be a mapping with `style:`")
    style = str(value.get("style") or "")
    if style not in PAGING_STYLES:
        raise spec.error(f"paging.style must be one of {', '.join(PAGING_STYLES)}, "
                         f"not {style!r}")
    size = _positive(spec, value, "size", 100) or 100
    if style == "cursor" and not value.get("next"):
        raise spec.error("paging style cursor needs `next:` (the path of the next cursor)")
    limit = value.get("limit_param", None if style == "cursor" else "limit")
    offset = value.get("offset_param") or ("skip" if style == "skip_limit" else "offset")
    return Paging(style, size, str(offset), str(limit) if limit else None,
                  str(value.get("cursor_param") or "cursor"), value.get("next"))


def parse_source(name: str, raw: Any, yaml_path: Path, where: str,
                 check: bool = True) -> SourceSpec:
    """Validate one `api_sources:` entry; read its GraphQL document and, with `check`, parse
    it too (else spec.check_document() must run before anything is sent)."""
    spec = SourceSpec(name=name, where=where, endpoint="", kind="")
    if not isinstance(raw, dict):
        raise spec.error("settings must be a mapping")
    unknown = sorted(set(map(str, raw)) - _KEYS)
    if unknown:
        raise spec.error(f"unknown setting(s) {', '.join(unknown)}")
    spec.endpoint = str(raw.get("endpoint") or "")
    if not spec.endpoint:
        raise spec.error("`endpoint:` is required (a name in the target's endpoints)")
    spec.kind = str(raw.get("kind") or "")
    if spec.kind not in KINDS:
        raise spec.error(f"`kind:` must be rest or graphql, not {spec.kind!r}")
    for_each = raw.get("for_each")
    if for_each is not None:
        if not isinstance(for_each, dict) or not for_each.get("model"):
            raise spec.error("`for_each` needs `model:` and `columns:`")
        spec.model = str(for_each["model"])
        spec.variables = _columns(spec, for_each.get("columns"))
    spec.result = str(raw["result"]) if raw.get("result") not in (None, "") else None
    try:
        spec.max_age = parse_max_age(raw.get("max_age"))
    except ValueError as exc:
        raise spec.error(str(exc)) from None
    stale = raw.get("stale_after") or []
    if isinstance(stale, str):
        stale = [stale]
    if not isinstance(stale, list) or not all(isinstance(x, str) for x in stale):
        raise spec.error("`stale_after:` must be a publication name or a list of them")
    spec.stale_after = list(stale)
    spec.concurrency = _positive(spec, raw, "concurrency", None)
    spec.batch_size = _positive(spec, raw, "batch_size", 1) or 1
    spec.max_pages = _positive(spec, raw, "max_pages", 10_000) or 10_000
    spec.paging = _paging(spec, raw.get("paging"))
    spec.headers = {k: str(v) for k, v in _mapping(spec, raw, "headers").items()}
    if spec.paging and spec.batch_size > 1:
        raise spec.error("a paged source cannot batch (drop batch_size or paging)")
    if spec.kind == "rest":
        _rest(spec, raw)
    else:
        _graphql(spec, raw, yaml_path)
    spec.checksum = checksum({k: v for k, v in raw.items()
                              if k not in ("description", "tags", "max_age", "concurrency",
                                           "stale_after")},
                             spec.document_text)
    if check:
        spec.check_document()
    return spec


def _rest(spec: SourceSpec, raw: dict) -> None:
    spec.method = str(raw.get("method") or "GET").upper()
    if spec.method not in METHODS:
        raise spec.error(f"`method` must be one of {', '.join(METHODS)}")
    spec.path = str(raw.get("path") or "")
    if spec.batch_size > 1:
        raise spec.error("batch_size applies to graphql sources only")
    spec.params = {k: str(v) for k, v in _mapping(spec, raw, "params").items()}
    spec.body = _mapping(spec, raw, "body")
    for text in (spec.path, *spec.params.values()):
        try:
            used = {f for _, f, _, _ in string.Formatter().parse(text) if f is not None}
        except ValueError as exc:
            raise spec.error(f"bad template {text!r}: {exc}") from None
        missing = sorted(used - set(spec.var_names))
        if missing:
            raise spec.error(f"{text!r} uses {{{missing[0]}}}, which is not a for_each variable")


def _graphql(spec: SourceSpec, raw: dict, yaml_path: Path) -> None:
    for key in ("path", "params", "body"):
        if key in raw:
            raise spec.error(f"`{key}` applies to rest sources only")
    if raw.get("method") not in (None, "POST"):
        raise spec.error("graphql sources always POST")
    if not raw.get("document"):
        raise spec.error("`document:` (a .gql file relative to this YAML) is required")
    spec.document_path = yaml_path.parent / str(raw["document"])
    try:
        spec.document_text = spec.document_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"api source {spec.label}: {spec.document_path}: cannot read "
                          f"GraphQL document: {exc.strerror or exc}") from None
    spec.fixed_variables = _mapping(spec, raw, "variables")


def _check_document(spec: SourceSpec) -> None:
    from elt.http.graphql import parse_document, single_field, variable_names

    source = str(spec.document_path)
    try:
        op, fld = single_field(parse_document(spec.document_text, source), source)
    except EltError as exc:  # already names the file (and line:col)
        raise ConfigError(f"api source {spec.label}: {exc}") from None
    spec.response_key = (fld.alias or fld.name).value
    declared = set(variable_names(op))
    wanted = set(spec.var_names)
    if spec.paging:
        p = spec.paging
        wanted |= ({p.cursor_param} if p.style == "cursor" else {p.offset_param})
        wanted |= {p.limit_param} if p.limit_param else set()
    missing = sorted(wanted - declared)
    if missing:
        raise spec.error(f"{spec.document_path} does not declare ${missing[0]} "
                         f"(declared: {', '.join(sorted(declared)) or 'none'})")


Key = tuple[str | None, ...]  # the VARCHAR values of the variable columns


@dataclass
class Answer:
    """What one variable tuple got: rows (page, item, result JSON text) or an error."""

    key: Key
    rows: list[tuple[int | None, int | None, str | None]] = field(default_factory=list)
    http_status: int | None = None
    error: str | None = None


@dataclass
class Tally:
    """Requests sent and the ones that failed (after retries), for the one-line error."""

    sent: int = 0
    failed: Counter[str] = field(default_factory=Counter)
    first: str | None = None
    field_errors: int = 0

    def summary(self, spec: SourceSpec, answered: int) -> str:
        """The one-line error: source, endpoint, statuses with counts, the first error."""
        parts = ", ".join(f"{label} for {n}" for label, n in self.failed.most_common())
        return (f"api source {spec.label}: endpoint {spec.endpoint} {parts} of {self.sent} "
                f"requests (first: {self.first}); {answered} answers kept, the rest is asked "
                "again next run")

    def fail(self, status: int | None, text: str | None) -> str:
        label = f"answered {status}" if status is not None else "gave no answer"
        self.failed[label] += 1
        text = truncate(text or label, 200) or label
        self.first = self.first or text
        return text


# -- requests and answers ---------------------------------------------------------------
def rest_request(spec: SourceSpec, values: dict[str, Any], extra: dict[str, Any]) -> Request:
    """One REST request: {var} in the path, other variables in the query or JSON body."""
    text = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    path = spec.path.format_map({k: url_quote(v, safe="") for k, v in text.items()})
    in_path = {n for n in spec.var_names if "{" + n + "}" in spec.path}
    params = {k: v.format_map(text) for k, v in spec.params.items()}
    rest = {k: v for k, v in values.items() if k not in in_path}
    headers = dict(spec.headers)
    content = b""
    if spec.method in ("GET", "DELETE"):
        params.update({k: text[k] for k in rest})
    elif rest or spec.body:
        content = encode_json({**spec.body, **rest})
        headers.setdefault("Content-Type", "application/json")
    params.update({k: str(v) for k, v in extra.items()})
    query = urlencode(params)
    return Request(spec.method, path + ("?" + query if query else ""), content, headers, ())


def graphql_request(spec: SourceSpec, query: str, variables: dict[str, Any]) -> Request:
    """One GraphQL POST (path "" = the endpoint's graphql_path); never compressed."""
    content = encode_json({"query": query, "variables": variables})
    return Request("POST", "", content, {"Content-Type": "application/json",
                                        **spec.headers}, ())


def dump(value: Any) -> str | None:
    """A value as compact JSON text for the `result` column; None stays SQL NULL."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)
