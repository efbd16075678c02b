"""Publications: what to send where, declared under `publications:` in YAML beside the models.

Everything a publish needs to know is checked here, before any database is opened or request
sent, so a typo fails fast with the YAML file and publication named instead of half-way through
a run. Selection (`name`, `name+`, `+name`) and ordering follow `depends_on`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from elt.core.errors import ConfigError
from elt.graph.selection import ItemUniverse, evaluate
from elt.project.config import Project
from elt.project.modelfile import project_yaml
from elt.publish import waits

KINDS = ("rest", "graphql")
MODES = ("append", "upsert", "mirror")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ALLOWED = {"model", "endpoint", "kind", "key", "mode", "depends_on", "body", "batch_size",
            "rest", "graphql", "description", "tags", "delete_body", "wave", "scopes",
            "read", "on_change", "refuse"}
ON_CHANGE = ("error", "warn", "ignore")


@dataclass(frozen=True)
class Publication:
    """One validated `publications:` entry."""

    name: str
    model: str
    endpoint: str
    kind: str
    key: tuple[str, ...]
    mode: str
    path: Path
    depends_on: tuple[str, ...] = ()
    # row-level depends_on (waits.py): resolved against the upstream keys after parsing
    waits_on: tuple[Any, ...] = field(default=(), hash=False, compare=False)
    body: str | None = None
    batch_size: int = 1
    delete_body: str | None = None   # column recorded on acknowledgement, sent on delete
    wave: str | None = None          # rows go in ascending waves of this column (parents first)
    scopes: tuple[str, ...] = ()     # token scopes the endpoint requires (checked first)
    tags: tuple[str, ...] = ()       # for selection: `elt publish -s tag:uois`
    # rows changed since acknowledged that the publication cannot update: error|warn|ignore
    on_change: str = "error"
    refuse: str | None = None  # column: a non-NULL text is why a row is never sent
    read: dict[str, Any] | None = field(default=None, hash=False, compare=False)  # readback.py
    config: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def base_dir(self) -> Path:
        """Relative paths in the sub-config (a GraphQL document) are relative to the YAML."""
        return self.path.parent

    def sink_config(self) -> dict[str, Any]:
        """The rest/graphql sub-config handed to make_sink, plus batch size and mode."""
        return {**self.config, "batch_size": self.batch_size, "mode": self.mode}


def load_publications(project: Project) -> dict[str, Publication]:
    """Every publication of the project, validated, in declaration order."""
    return parse_publications(project_yaml(project), project.target.endpoints)


def parse_publications(
    docs: Iterable[tuple[Path, Any]], endpoints: dict[str, Any]
) -> dict[str, Publication]:
    """Validate the `publications:` sections of YAML documents against the target's endpoints."""
    pubs: dict[str, Publication] = {}
    for path, doc in docs:
        if not isinstance(doc, dict) or "publications" not in doc:
            continue
        section = doc["publications"]
        if section is None:
            continue
        if not isinstance(section, dict):
            raise ConfigError("`publications:` must be a mapping of name -> settings",
                              where=str(path))
        for name, raw in section.items():
            pub = _parse_one(path, str(name), raw, endpoints)
            if pub.name in pubs:
                raise ConfigError(f"publication {pub.name!r} is also defined in "
                                  f"{pubs[pub.name].path}", where=str(path))
            pubs[pub.name] = pub
    _check_dependencies(pubs)
    return pubs


def _parse_one(path: Path, name: str, raw: Any, endpoints: dict[str, Any]) -> Publication:
    def fail(message: str) -> ConfigError:
        return ConfigError(f"publication {name!r}: {message}", where=str(path))

    if not _NAME.match(name):
        raise fail("name must be letters, digits and underscores (it becomes a view name)")
    if not isinstance(raw, dict):
        raise fail("expected a mapping of settings")
    unknown = sorted(set(raw) - _ALLOWED)
    if unknown:
        allowed = ", ".join(sorted(_ALLOWED))
        raise fail(f"unknown setting(s) {', '.join(unknown)} (allowed: {allowed})")
    model = raw.get("model")
    if not isinstance(model, str) or not model:
        raise fail("`model:` (the table to send) is required")
    endpoint = raw.get("endpoint")
    if not isinstance(endpoint, str) or not endpoint:
        raise fail("`endpoint:` is required")
    if endpoint not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none"
        raise fail(f"endpoint {endpoint!r} is not in the target's endpoints ({known})")
    kind = raw.get("kind") or next((k for k in KINDS if k in raw), None)
    if kind not in KINDS:
        raise fail(f"`kind:` must be one of {', '.join(KINDS)}, not {kind!r}")
    other = next(k for k in KINDS if k != kind)
    if other in raw:
        raise fail(f"has a `{other}:` section but kind is {kind}")
    config = raw.get(kind) or {}
    if not isinstance(config, dict):
        raise fail(f"`{kind}:` must be a mapping")
    key = raw.get("key")
    if isinstance(key, str):
        key = [key]
    if not isinstance(key, list) or not key or not all(isinstance(k, str) and k for k in key):
        raise fail("`key:` must be a column name or a non-empty list of column names")
    if len(set(key)) != len(key):
        raise fail("`key:` lists a column twice")
    mode = raw.get("mode", "append")
    if mode not in MODES:
        raise fail(f"`mode:` must be one of {', '.join(MODES)}, not {mode!r}")
    depends, row_level = waits.parse(raw.get("depends_on"), fail)
    body = raw.get("body")
    if body is not None and (not isinstance(body, str) or not body):
        raise fail("`body:` must be a column name")
    batch_size = raw.get("batch_size", 1)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise fail("`batch_size:` must be a positive integer")
    columns = {}
    for option in ("delete_body", "wave", "refuse"):
        value = raw.get(option)
        if value is not None and (not isinstance(value, str) or not value):
            raise fail(f"`{option}:` must be a column name")
        columns[option] = value
    if columns["refuse"] in key:
        raise fail("`refuse:` names a column whose text says why a row is not sent; it cannot "
                   "be a key column")
    if columns["delete_body"] and mode != "mirror":
        raise fail("`delete_body:` is only used by mode mirror (which deletes)")
    tags = raw.get("tags") or []
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, list) or not all(isinstance(s, str) for s in tags):
        raise fail("`tags:` must be a list of names")
    scopes = raw.get("scopes") or []
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise fail("`scopes:` must be a list of token scopes")
    on_change = raw.get("on_change", "error")
    if on_change not in ON_CHANGE:
        raise fail(f"`on_change:` must be one of {', '.join(ON_CHANGE)}, not {on_change!r}")
    read = raw.get("read")
    if read is not None and not isinstance(read, dict):
        raise fail("`read:` must be a mapping (a query document or a request; see README)")
    return Publication(name=name, model=model, endpoint=endpoint, kind=kind, key=tuple(key),
                       mode=mode, path=path, depends_on=tuple(depends), body=body,
                       batch_size=batch_size, delete_body=columns["delete_body"],
                       wave=columns["wave"], scopes=tuple(scopes), tags=tuple(tags),
                       config=dict(config), on_change=on_change, read=read,
                       refuse=columns["refuse"], waits_on=tuple(row_level))


def _check_dependencies(pubs: dict[str, Publication]) -> None:
    for pub in list(pubs.values()):
        for dep in pub.depends_on:
            if dep not in pubs:
                raise ConfigError(f"publication {pub.name!r}: depends_on unknown publication "
                                  f"{dep!r}", where=str(pub.path))
            if dep == pub.name:
                raise ConfigError(f"publication {pub.name!r}: depends on itself",
                                  where=str(pub.path))
        if pub.waits_on:
            def fail(message: str, pub: Publication = pub) -> ConfigError:
                return ConfigError(f"publication {pub.name!r}: {message}", where=str(pub.path))

            pubs[pub.name] = replace(pub, waits_on=tuple(
                waits.resolve(up, cols, pubs[up].key, fail) for up, cols in pub.waits_on))
    toposort(pubs, {n: set(p.depends_on) for n, p in pubs.items()})


def toposort(pubs: dict[str, Publication], deps: dict[str, set[str]]) -> list[str]:
    """Names in dependency order, ties in declaration order; a cycle is an error."""
    order = {name: i for i, name in enumerate(pubs)}
    remaining = {n: {d for d in deps.get(n, set()) if d in pubs} for n in pubs}
    done: list[str] = []
    while remaining:
        ready = sorted((n for n, d in remaining.items() if not d), key=order.__getitem__)
        if not ready:
            cycle = _find_cycle(remaining)
            first = pubs[cycle[0]]
            raise ConfigError(f"publication {first.name!r}: depends_on cycle "
                              f"{' -> '.join(cycle)}", where=str(first.path))
        name = ready[0]
        done.append(name)
        del remaining[name]
        for d in remaining.values():
            d.discard(name)
    return done


def _find_cycle(remaining: dict[str, set[str]]) -> list[str]:
    start = next(iter(remaining))
    seen: list[str] = [start]
    node = start
    while True:
        node = sorted(remaining[node])[0]
        if node in seen:
            return [*seen[seen.index(node):], node]
        seen.append(node)


def select(
    pubs: dict[str, Publication],
    include: Sequence[str] = (),
    exclude: Sequence[str] = (),
    deps: dict[str, set[str]] | None = None,
) -> list[str]:
    """Selected publication names in run order, in dbt's selector syntax as nodes have it
    (elt/graph/selection.py): names, globs, `tag:x`, `path:`, `config.<key>:`, `name+`,
    `+name`, `n+name+n`, `@name`, `a,b`; a pattern that matches nothing is an error."""
    deps = deps if deps is not None else {n: set(p.depends_on) for n, p in pubs.items()}
    universe = _universe(pubs, deps)
    chosen = set(pubs) if not include else evaluate(universe, include, "--select")
    if exclude:
        chosen -= evaluate(universe, exclude, "--exclude")
    return [n for n in toposort(pubs, deps) if n in chosen]


def exclude_names(pubs: dict[str, Publication], exclude: Sequence[str],
                  deps: dict[str, set[str]]) -> set[str]:
    """The publications --exclude names (never added back as followers)."""
    return evaluate(_universe(pubs, deps), exclude, "--exclude") if exclude else set()


def _universe(pubs: dict[str, Publication], deps: dict[str, set[str]]) -> ItemUniverse:
    def fields(p: Publication) -> dict[str, Any]:
        return {**p.config, "model": p.model, "endpoint": p.endpoint, "kind": p.kind,
                "mode": p.mode, "key": list(p.key), "batch_size": p.batch_size,
                "wave": p.wave, "on_change": p.on_change, "tags": list(p.tags)}

    return ItemUniverse(pubs, deps, "publication", fields)


def _reverse(deps: dict[str, set[str]]) -> dict[str, set[str]]:
    rev: dict[str, set[str]] = {}
    for name, ds in deps.items():
        for d in ds:
            rev.setdefault(d, set()).add(name)
    return rev


def _closure(start: set[str], edges: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    stack = list(start)
    while stack:
        for nxt in edges.get(stack.pop(), set()):
            if nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return seen


def downstream(name: str, deps: dict[str, set[str]]) -> set[str]:
    """Publications that (transitively) depend on `name`."""
    return _closure({name}, _reverse(deps))
