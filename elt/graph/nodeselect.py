"""What each selector method picks among a project's nodes (elt/graph/selection.py parses
and applies the graph operators).

`state:` compares with a manifest: the one `--state DIR` names, else the last clean state
(target/state/manifest.json: each node as its last successful build left it, written by
the artifact writer). Nodes are matched by dbt's unique_id, so a manifest from another
checkout compares the same way.
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

from elt.core.errors import ConfigError
from elt.core.results import STATE_DIR, unique_id
from elt.graph.selection import Atom, did_you_mean, matches_value, unknown_method
from elt.project.modelfile import relative

# Graph and Node (elt/graph/dag.py, which imports this module) are typed Any here
Graph = Node = Any
KINDS = ("seed", "api", "model", "published", "test")

METHODS = ("name", "tag", "path", "file", "kind", "resource_type", "config.<key>", "state",
           "test_type")
STATES = ("new", "modified", "modified.body", "modified.configs", "old", "unmodified")
# dbt's resource types -> elt kinds (api sources and published answers are dbt sources)
RESOURCE_TYPES = {"model": ("model",), "seed": ("seed",), "test": ("test",),
                  "source": ("api", "published")}


class NodeUniverse:
    """The graph's nodes as selection.Universe sees them."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self._state: dict[str, dict[str, Any]] | None = None

    def parents(self, name: str) -> list[str]:
        return self.graph.nodes[name].depends_on

    def children(self, name: str) -> list[str]:
        return self.graph.children[name]

    def match(self, atom: Atom, option: str) -> set[str]:
        method, value, nodes = atom.method, atom.value, self.graph.nodes
        if method == "name":
            return self._by_name(value, option)
        if method == "state":
            return self._by_state(atom, option)
        if method == "tag":
            found = {n for n, node in nodes.items()
                     if any(fnmatch.fnmatchcase(t, value) for t in node.tags)}
        elif method in ("kind", "resource_type"):
            found = self._by_kind(atom, option)
        elif method == "path":
            found = {n for n, node in nodes.items() if self._path_matches(node, value)}
        elif method == "file":
            found = {n for n, node in nodes.items() if node.path is not None and any(
                fnmatch.fnmatchcase(f, value) for f in (node.path.name, node.path.stem))}
        elif method == "test_type":
            if value not in ("generic", "singular"):
                raise ConfigError(f"{option} {atom.text}: test_type is generic or singular")
            found = {n for n, node in nodes.items()
                     if node.kind == "test" and _singular(node) == (value == "singular")}
        elif method.startswith("config."):
            found = self._by_config(atom, option)
        else:
            raise unknown_method(atom, option, METHODS)
        if not found:  # a typo in a tag or path must not quietly build (or publish) nothing
            raise ConfigError(f"{option} {atom.text}: matches no node")
        return found

    def _by_name(self, value: str, option: str) -> set[str]:
        graph = self.graph
        if any(ch in value for ch in "*?["):
            found = {n for n in graph.nodes if fnmatch.fnmatch(n, value.lower())}
        else:
            resolved = graph.resolve(value)
            found = {resolved} if resolved else set()
        if not found:
            raise ConfigError(f"{option} {value}: no such node{graph.suggest(value)}")
        return found

    def _by_kind(self, atom: Atom, option: str) -> set[str]:
        if atom.method == "kind":
            kinds: tuple[str, ...] | None = (atom.value,) if atom.value in KINDS else None
            known: tuple[str, ...] = KINDS
        else:
            kinds, known = RESOURCE_TYPES.get(atom.value), tuple(RESOURCE_TYPES)
        if kinds is None:
            raise ConfigError(f"{option} {atom.text}: unknown {atom.method.replace('_', ' ')} "
                              f"{atom.value!r}{did_you_mean(atom.value, known)} "
                              f"(one of {', '.join(known)})")
        return {n for n, node in self.graph.nodes.items() if node.kind in kinds}

    def _by_config(self, atom: Atom, option: str) -> set[str]:
        key = atom.method.removeprefix("config.")
        configs = {n: node_config(node) for n, node in self.graph.nodes.items()}
        known = {k for c in configs.values() for k in c}
        if key not in known:
            raise ConfigError(f"{option} {atom.text}: no node has config {key!r}"
                              f"{did_you_mean(key, known)}")
        return {n for n, c in configs.items() if key in c and matches_value(c[key], atom.value)}

    def _path_matches(self, node: Node, value: str) -> bool:
        value = value.rstrip("/")
        for path in [node.path, *node.paths]:
            if path is None:
                continue
            rel = relative(path, self.graph.root)
            if rel == value or rel.startswith(value + "/") or fnmatch.fnmatch(rel, value):
                return True
        return False

    # -- state: ---------------------------------------------------------------------------
    def _by_state(self, atom: Atom, option: str) -> set[str]:
        if atom.value not in STATES:
            raise ConfigError(f"{option} {atom.text}: unknown state {atom.value!r}"
                              f"{did_you_mean(atom.value, STATES)} (one of {', '.join(STATES)})")
        old = self._load_state(option, atom.text)
        graph, out = self.graph, set()
        for name, node in graph.nodes.items():
            before = old.get(unique_id(graph.project_name, node.kind, name))
            if atom.value == "new":
                hit = before is None
            elif atom.value == "old":
                hit = before is not None
            else:
                body = before is None or (  # the SQL, a header's blank lines aside
                    str(before.get("raw_code") or "").strip() != node.sql.strip() if node.sql
                    else _checksum(before) != node.checksum)
                configs = before is None or _jsonable(before.get("config")) != _jsonable(
                    node_config(node))
                changed = body or configs or _checksum(before) != node.checksum
                hit = {"modified": changed, "modified.body": body,
                       "modified.configs": configs, "unmodified": not changed}[atom.value]
            if hit:
                out.add(name)
        return out

    def _load_state(self, option: str, text: str) -> dict[str, dict[str, Any]]:
        if self._state is not None:
            return self._state
        given = self.graph.state_dir
        folder = Path(given) if given else self.graph.root / "target" / STATE_DIR
        path = folder / "manifest.json" if folder.is_dir() or not given else folder
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            hint = ("" if given else "; a clean `elt build` leaves one, or pass --state DIR "
                    "holding another build's manifest.json")
            raise ConfigError(f"{option} {text}: no manifest to compare with at "
                              f"{relative(path, self.graph.root)}{hint}") from None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{option} {text}: cannot read {path}: {exc}") from None
        entries: dict[str, dict[str, Any]] = {}
        for section in ("nodes", "sources"):
            for uid, entry in (doc.get(section) or {}).items():
                if isinstance(entry, dict):
                    entries[uid] = entry
        self._state = entries
        return entries


def node_config(node: Node) -> dict[str, Any]:
    """A node's config as selectors and the manifest see it: what its file says plus what
    elt fills in (materialized, severity; seeds and tests materialize as `seed` and `test`,
    as in dbt)."""
    config = {"enabled": True, **{k: v for k, v in node.config.items()
                                  if k not in ("columns", "tests", "description")}}
    materialized = node.materialized or {"seed": "seed", "test": "test"}.get(node.kind)
    if materialized:
        config["materialized"] = materialized
    if node.kind == "test":
        config["severity"] = node.severity
    if node.tags:
        config["tags"] = list(node.tags)
    return config


def _singular(node: Node) -> bool:
    return node.path is not None and node.path.name.endswith(".test.sql")


def _checksum(entry: dict[str, Any]) -> Any:
    value = entry.get("checksum")
    return value.get("checksum") if isinstance(value, dict) else value


def _jsonable(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
