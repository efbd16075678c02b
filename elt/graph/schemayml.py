"""dbt's `schema.yml` (`version: 2`, `models:`) read beside elt's own model headers.

A dbt user copies their property files into models/ unchanged: descriptions and column
tests land on the model node as if written in its header, so the one test compiler
(elt/graph/tests.py) serves both. dbt's spellings are translated here: `data_tests:` for
`tests:`, a test's `config:` / `arguments:` blocks, `to: ref('x')`. Every error names the
file and line, because the user fixes the YAML, not the node.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml

from elt.core.errors import ConfigError
from elt.graph.dag import Graph
from elt.graph.tests import GENERIC
from elt.project.modelfile import relative

MODEL_KEYS = {"name", "description", "columns", "tests", "data_tests", "meta", "docs"}
COLUMN_KEYS = {"name", "description", "tests", "data_tests", "meta", "data_type", "quote",
               "tags", "docs"}
TEST_CONFIG_KEYS = {"severity", "where", "meta"}
_REF = re.compile(r"""\A\s*ref\(\s*(['"])(?P<name>[^'"]+)\1\s*\)\s*\Z""")
_SOURCE = re.compile(r"""\A\s*source\(\s*(['"])(?P<s>[^'"]+)\1\s*,"""
                     r"""\s*(['"])(?P<t>[^'"]+)\3\s*\)\s*\Z""")


def apply_schema_yml(docs: list[tuple[Path, dict[str, Any]]], graph: Graph, root: Path) -> None:
    """Merge each `models:` entry of a dbt property file into its model node."""
    for path, doc in docs:
        if "models" not in doc:
            continue
        where = relative(path, root)
        tree = yaml.compose(path.read_text(encoding="utf-8"))
        version = doc.get("version", 2)
        if version != 2:
            raise ConfigError(f"dbt property files are `version: 2`, not {version!r}",
                              where=f"{where}:{_line(tree, 'version')}")
        entries = doc.get("models") or []
        models_node = _child(tree, "models")
        if not isinstance(entries, list):
            raise ConfigError("`models:` must be a list of `- name: ...` entries",
                              where=f"{where}:{_line(tree, 'models')}")
        for i, entry in enumerate(entries):
            node_tree = models_node.value[i] if isinstance(models_node, yaml.SequenceNode) else None
            _apply_model(entry, node_tree, graph, where)


def _apply_model(entry: Any, tree: Any, graph: Graph, where: str) -> None:
    at = f"{where}:{_start(tree)}"
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ConfigError("a `models:` entry is a mapping with `name:`", where=at)
    name = entry["name"].lower()
    _check_keys(entry, MODEL_KEYS, f"model {name}", tree, where)
    model = graph.nodes.get(name)
    if model is None or model.kind != "model":
        raise ConfigError(f"unknown model {entry['name']}{graph.suggest(name, ('model',))}",
                          where=f"{where}:{_line(tree, 'name')}")
    if entry.get("description"):
        model.description = str(entry["description"])
    tests = _tests(entry, tree, f"model {name}", graph, where)
    if tests:
        model.config = {**model.config, "tests": [*(model.config.get("tests") or []), *tests]}
    columns = entry.get("columns") or []
    columns_tree = _child(tree, "columns")
    if not isinstance(columns, list):
        raise ConfigError(f"model {name}: `columns:` must be a list of `- name: ...` entries",
                          where=f"{where}:{_line(tree, 'columns')}")
    merged = dict(model.columns)
    for i, column in enumerate(columns):
        col_tree = columns_tree.value[i] if isinstance(columns_tree, yaml.SequenceNode) else None
        if not isinstance(column, dict) or not isinstance(column.get("name"), str):
            raise ConfigError(f"model {name}: a column is a mapping with `name:`",
                              where=f"{where}:{_start(col_tree)}")
        what = f"model {name}: column {column['name']}"
        _check_keys(column, COLUMN_KEYS, what, col_tree, where)
        spec = dict(merged.get(column["name"]) or {})
        if column.get("description"):
            spec["description"] = str(column["description"])
        col_tests = _tests(column, col_tree, what, graph, where)
        if col_tests:
            spec["tests"] = [*(spec.get("tests") or []), *col_tests]
        merged[column["name"]] = spec
    model.columns = merged


def _tests(entry: dict[str, Any], tree: Any, what: str, graph: Graph, where: str) -> list[Any]:
    """`tests:` or `data_tests:` (dbt 1.8's name) as elt test entries."""
    out: list[Any] = []
    for key in ("tests", "data_tests"):
        items = entry.get(key)
        if items is None:
            continue
        items_tree = _child(tree, key)
        if not isinstance(items, list):
            raise ConfigError(f"{what}: `{key}:` must be a list",
                              where=f"{where}:{_line(tree, key)}")
        for i, item in enumerate(items):
            item_tree = items_tree.value[i] if isinstance(items_tree, yaml.SequenceNode) else None
            out.append(_test(item, item_tree, what, graph, where))
    return out


def _test(item: Any, tree: Any, what: str, graph: Graph, where: str) -> Any:
    """One dbt test entry -> elt's `{kind: {args}}` (config and arguments flattened)."""
    at = f"{where}:{_start(tree)}"
    if isinstance(item, str):
        kind, args = item, {}
    elif isinstance(item, dict) and len(item) == 1:
        kind, args = next(iter(item.items()))
        args = args if args is not None else {}
    else:
        raise ConfigError(f"{what}: a test is a name or a one-key mapping, got {item!r}",
                          where=at)
    if kind not in GENERIC:
        close = difflib.get_close_matches(str(kind), GENERIC, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"{what}: unknown test {kind!r}{hint} (one of {', '.join(GENERIC)})",
                          where=at)
    if not isinstance(args, dict):
        return {kind: args}
    args_tree = _child(tree, kind) if isinstance(tree, yaml.MappingNode) else None
    opts = {k: v for k, v in args.items() if k not in ("config", "arguments")}
    arguments = args.get("arguments") or {}
    if not isinstance(arguments, dict):
        raise ConfigError(f"{what}: test {kind}: `arguments:` must be a mapping",
                          where=f"{where}:{_line(args_tree, 'arguments')}")
    opts.update(arguments)
    config = args.get("config") or {}
    if not isinstance(config, dict):
        raise ConfigError(f"{what}: test {kind}: `config:` must be a mapping",
                          where=f"{where}:{_line(args_tree, 'config')}")
    _check_keys(config, TEST_CONFIG_KEYS, f"{what}: test {kind}: config",
                _child(args_tree, "config"), where)
    opts.update({k: v for k, v in config.items() if k != "meta"})
    if isinstance(opts.get("severity"), str):
        opts["severity"] = opts["severity"].lower()
    if kind == "relationships":
        opts["to"] = _target(opts.get("to"), f"{what}: test relationships", graph,
                             f"{where}:{_line(args_tree, 'to')}")
    return {kind: opts}


def _target(value: Any, what: str, graph: Graph, at: str) -> str:
    """`ref('customers')` / `source('raw', 'x')` / a bare name -> a table elt resolves."""
    text = str(value or "")
    ref, source = _REF.match(text), _SOURCE.match(text)
    name = ref["name"] if ref else f"{source['s']}.{source['t']}" if source else text
    schema, _, table = name.lower().rpartition(".")
    if not table or graph.resolve_table(schema, table) is None:
        raise ConfigError(f"{what}: unknown `to:` {text or '(missing)'}{graph.suggest(name)}",
                          where=at)
    return name


def _check_keys(entry: dict[str, Any], allowed: set[str], what: str, tree: Any,
                where: str) -> None:
    unknown = [k for k in entry if k not in allowed]
    if unknown:
        key = str(unknown[0])
        close = difflib.get_close_matches(key, sorted(allowed), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        allowed_list = ", ".join(sorted(allowed))
        raise ConfigError(f"{what}: unknown key {key}{hint} (allowed: {allowed_list})",
                          where=f"{where}:{_line(tree, key)}")


def _child(tree: Any, key: str) -> Any:
    if isinstance(tree, yaml.MappingNode):
        for k, v in tree.value:
            if k.value == key:
                return v
    return None


def _line(tree: Any, key: str) -> int:
    """1-based line of `key:` in a mapping node (the mapping's own line when absent)."""
    if isinstance(tree, yaml.MappingNode):
        for k, _ in tree.value:
            if k.value == key:
                return k.start_mark.line + 1
    return _start(tree)


def _start(tree: Any) -> int:
    return tree.start_mark.line + 1 if tree is not None else 1

