"""dbt's selector syntax, one evaluator for nodes (`elt build/test/ls/compile -s`) and for
publications (`elt publish -s`), so both read a selector the same way.

A selector is atoms joined by spaces (union; repeating `-s` is the same) and commas
(intersection). An atom is `[@][n+][method:]value[+n]`: `+` before takes ancestors, after
takes descendants (`n` limits the depth), `@` takes the descendants and every ancestor of
those. What a method means (name, tag:, path:, config.<key>:, state: ...) is the universe's
business (Universe.match); an atom that matches nothing is an error, so a typo never
quietly builds or publishes nothing (`state:` excepted: nothing modified is an answer).
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from elt.core.errors import ConfigError

__all__ = ["Atom", "ItemUniverse", "Universe", "did_you_mean", "evaluate", "matches_value",
           "parse_atom", "unknown_method", "uses_method"]

_ATOM = re.compile(r"\A(?P<at>@)?(?:(?P<up>\d*)\+)?(?:(?P<method>[A-Za-z_][\w.]*):)?"
                   r"(?P<value>.*?)(?:\+(?P<down>\d*))?\Z")


@dataclass(frozen=True)
class Atom:
    text: str
    method: str        # "name" when none is given
    value: str
    at: bool = False
    up: int | None = None     # None: no `+` before; -1: unlimited
    down: int | None = None


class Universe(Protocol):
    """What selectors run over: names, edges and what each method picks."""

    def parents(self, name: str) -> Iterable[str]: ...

    def children(self, name: str) -> Iterable[str]: ...

    def match(self, atom: Atom, option: str) -> set[str]:
        """Names the atom's method and value pick (before graph operators); raises
        ConfigError for an unknown method or a value that matches nothing."""
        ...


def parse_atom(text: str, option: str) -> Atom:
    found = _ATOM.match(text)
    if found is None or not found["value"]:
        raise ConfigError(f"{option} {text}: not a selector ([@][n+][method:]value[+n])")
    if found["at"] and found["up"] is not None:
        raise ConfigError(f"{option} {text}: `@` and a leading `+` cannot be combined")

    def depth(group: str | None) -> int | None:
        return None if group is None else int(group) if group else -1

    return Atom(text, found["method"] or "name", found["value"], bool(found["at"]),
                depth(found["up"]), depth(found["down"]))


def evaluate(universe: Universe, selectors: Sequence[str], option: str) -> set[str]:
    """The union of the selectors' space-separated parts, each the intersection of its
    comma-separated atoms."""
    out: set[str] = set()
    for selector in selectors:
        for token in selector.split():
            parts = [_atom(universe, parse_atom(a, option), option)
                     for a in token.split(",") if a]
            out |= set.intersection(*parts) if parts else set()
    return out


def uses_method(selectors: Iterable[str], method: str, option: str = "--select") -> bool:
    """Whether any atom uses `method` (a state: selection depends on a file outside)."""
    return any(parse_atom(a, option).method == method
               for s in selectors for token in s.split() for a in token.split(",") if a)


def _atom(universe: Universe, atom: Atom, option: str) -> set[str]:
    found = universe.match(atom, option)
    result = set(found)
    if atom.up is not None:
        result |= _walk(found, universe.parents, atom.up)
    if atom.at:
        below = _walk(found, universe.children, -1)
        result |= below | _walk(found | below, universe.parents, -1)
    elif atom.down is not None:
        result |= _walk(found, universe.children, atom.down)
    return result


def _walk(start: Iterable[str], step: Callable[[str], Iterable[str]], depth: int) -> set[str]:
    """Nodes reached from `start` in at most `depth` steps (-1: any number)."""
    seen: set[str] = set()
    frontier = set(start)
    while frontier and depth != 0:
        frontier = {n for f in frontier for n in step(f)} - seen
        seen |= frontier
        depth -= 1
    return seen


def matches_value(value: Any, wanted: str) -> bool:
    """A config value against a selector's value: lists by any element, booleans as
    true/false, the rest as text; globs allowed."""
    if isinstance(value, list | tuple | set):
        return any(matches_value(v, wanted) for v in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return value is not None and fnmatch.fnmatchcase(str(value).lower(), wanted.lower())


def did_you_mean(word: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, sorted(set(known)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_method(atom: Atom, option: str, methods: Sequence[str]) -> ConfigError:
    head, dot, rest = atom.method.partition(".")
    hint = did_you_mean(atom.method, methods)
    if dot and not hint:  # confg.materialized: did you mean config.materialized?
        close = did_you_mean(head, [m.partition(".")[0] for m in methods if "." in m])
        hint = close.replace("?)", f".{rest}?)") if close else ""
    return ConfigError(f"{option} {atom.text}: unknown selector method {atom.method!r}"
                       f"{hint}; methods: {', '.join(methods)}")


class ItemUniverse:
    """Named items with dependencies between them (publications): name or glob, `tag:`,
    `path:` (the file declaring them) and `config.<key>:` over `fields(item)`."""

    METHODS = ("name", "tag", "path", "config.<key>")

    def __init__(self, items: dict[str, Any], deps: dict[str, set[str]], what: str,
                 fields: Callable[[Any], dict[str, Any]]) -> None:
        self.items, self.deps, self.what, self.fields = items, deps, what, fields
        self.rdeps: dict[str, set[str]] = {n: set() for n in items}
        for name, ups in deps.items():
            for up in ups:
                self.rdeps.setdefault(up, set()).add(name)

    def parents(self, name: str) -> Iterable[str]:
        return self.deps.get(name, ())

    def children(self, name: str) -> Iterable[str]:
        return self.rdeps.get(name, ())

    def match(self, atom: Atom, option: str) -> set[str]:
        method, value, items = atom.method, atom.value, self.items
        if method == "name":
            found = {n for n in items if fnmatch.fnmatchcase(n, value)}
        elif method == "tag":
            found = {n for n, i in items.items()
                     if any(fnmatch.fnmatchcase(t, value) for t in getattr(i, "tags", ()))}
        elif method == "path":
            found = {n for n, i in items.items() if self._path_matches(i, value)}
        elif method.startswith("config."):
            key = method.removeprefix("config.")
            fields = {n: self.fields(i) for n, i in items.items()}
            known = {k for f in fields.values() for k in f}
            if key not in known:
                raise ConfigError(f"{option} {atom.text}: no {self.what} has config {key!r}"
                                  f"{did_you_mean(key, known)}")
            found = {n for n, f in fields.items() if key in f and matches_value(f[key], value)}
        else:
            raise unknown_method(atom, option, self.METHODS)
        if not found:
            known_names = ", ".join(items) or "none"
            raise ConfigError(f"--select/--exclude {atom.text!r} matches no {self.what} "
                              f"({known_names})")
        return found

    def _path_matches(self, item: Any, value: str) -> bool:
        path = getattr(item, "path", None)
        if path is None:
            return False
        rel, value = "/" + path.as_posix().lstrip("/"), value.strip("/")
        # no project root here: a path matches as the tail of the file's path (or a folder in it)
        return (rel.endswith("/" + value) or f"/{value}/" in rel
                or fnmatch.fnmatch(rel, "*/" + value))
