"""Finding the nodes of a project: seeds, model and test files, YAML-declared nodes.

Split from graph.py (which holds the DAG algorithms) because this part is all about files:
every error here names the file at fault. Dependencies are resolved only once every node is
known, so a model may read one declared later in the tree.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from elt.core import db
from elt.core.errors import ConfigError, ModelError
from elt.graph.dag import Graph, Node
from elt.graph.parsecache import ParseCache
from elt.graph.schemayml import apply_schema_yml
from elt.graph.tests import generic_tests
from elt.project.config import Project
from elt.project.modelfile import (
    SINGULAR_TEST_KEYS,
    check_config_keys,
    checksum,
    project_yaml,
    read_sql_file,
    relative,
    str_list,
    validate_model_config,
)
from elt.project.seeds import discover_seeds


def discover_graph(project: Project) -> Graph:
    """Discover every node of the project and infer its dependencies."""
    nodes: dict[str, Node] = {}

    def add(node: Node) -> None:
        if node.name in nodes:
            other = nodes[node.name]
            paths = " and ".join(relative(p, project.root) for p in (other.path, node.path) if p)
            raise ModelError(f"duplicate name {node.name!r}: {other.kind} and {node.kind} "
                             f"({paths})")
        nodes[node.name] = node

    for spec in discover_seeds(project):
        add(Node(name=f"raw.{spec.name.lower()}", kind="seed", schema="raw", identifier=spec.name,
                 path=spec.config_path or (spec.paths[0] if spec.paths else None),
                 config=dict(spec.options or {}), checksum=spec.checksum, spec=spec,
                 description=spec.description, paths=list(spec.paths)))
    docs = project_yaml(project)
    sections = _yaml_nodes(docs, project, add)
    sql_files = sorted(project.models_dir.rglob("*.sql")) if project.models_dir.is_dir() else []
    parsed: dict[str, list[tuple[str, str]]] = {}
    cache = ParseCache(project.target_dir)
    for path in sql_files:
        if any(part.startswith(".") for part in path.relative_to(project.root).parts):
            continue
        if path.name.endswith(".spark.sql"):  # a hand port for Spark targets, not a model
            continue
        node, refs = _sql_node(path, project, cache)
        add(node)
        parsed[node.name] = refs
    cache.save()
    graph = Graph(nodes, project.root)  # no edges yet: used to resolve references
    for name, refs in parsed.items():
        node = nodes[name]
        for schema, table in refs:
            target = graph.resolve_table(schema, table)
            if target is None:
                ref = f"{schema}.{table}" if schema else table
                raise ModelError(f"{node.kind} {name}: unknown table {ref}"
                                 f"{_hint(graph, ref)}", where=relative(node.path, project.root))
            if target not in node.depends_on:
                node.depends_on.append(target)
        node.depends_on.sort()
        if node.kind == "test" and len([d for d in node.depends_on
                                        if nodes[d].kind == "model"]) == 1:
            node.owner = next(d for d in node.depends_on if nodes[d].kind == "model")
    _link_yaml(graph, sections, project)
    apply_schema_yml(docs, graph, project.root)  # dbt's schema.yml: before tests compile
    for name in list(parsed):
        if nodes[name].kind == "model":
            for test in generic_tests(nodes[name], graph, project.root):
                if test.name in nodes:
                    raise ModelError(f"duplicate name {test.name!r}: test of model {name} and "
                                     f"{nodes[test.name].kind} {test.name}")
                nodes[test.name] = test
    return Graph(nodes, project.root, project.profile_name)


def _hint(graph: Graph, ref: str) -> str:
    candidates = {f"main.{n}" if node.kind == "model" else n: n
                  for n, node in graph.nodes.items() if node.kind != "test"}
    candidates.update({n: n for n, node in graph.nodes.items() if node.kind == "model"})
    close = difflib.get_close_matches(ref.lower(), list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {candidates[close[0]]}?)" if close else ""


def _sql_node(path: Path, project: Project,
              cache: ParseCache) -> tuple[Node, list[tuple[str, str]]]:
    """A model or singular test from its file and the tables it reads (resolved later)."""
    where = relative(path, project.root)
    is_test = path.name.endswith(".test.sql")
    name = path.name[: -len(".test.sql" if is_test else ".sql")].lower()
    config, body = read_sql_file(path, project.root)
    kind = "test" if is_test else "model"
    refs = cache.table_refs(body, name, where, kind)
    if is_test:
        check_config_keys(config, SINGULAR_TEST_KEYS, f"test {name}", where)
        severity = config.get("severity", "error")
        if severity not in ("error", "warn"):
            raise ConfigError(f"test {name}: severity must be error or warn", where=where)
        node = Node(name=name, kind="test", schema=db.FAILURES_SCHEMA, identifier=name,
                    path=path, sql=body, config=config, checksum=checksum(body, config),
                    tags=str_list(config.get("tags"), f"test {name}: tags", where),
                    severity=severity, description=config.get("description"))
        return node, refs
    config = validate_model_config(config, name, where)
    built = {k: v for k, v in config.items() if k not in ("tests", "columns", "description")}
    node = Node(name=name, kind="model", schema="main", identifier=name, path=path, sql=body,
                config=config, checksum=checksum(body, built), tags=config["tags"],
                materialized=config["materialized"], unique_key=config["unique_key"],
                description=config.get("description"), columns=config["columns"])
    return node, refs


def _yaml_nodes(docs: list[tuple[Path, dict[str, Any]]], project: Project,
                add: Any) -> list[tuple[str, Node, str]]:
    """api and published nodes from models/**/*.yml; returns links to check later."""
    links: list[tuple[str, Node, str]] = []
    for path, doc in docs:
        where = relative(path, project.root)
        for section, kind in (("api_sources", "api"), ("publications", "published")):
            entries = doc.get(section) or {}
            if not isinstance(entries, dict):
                raise ConfigError(f"`{section}` must be a mapping of name -> settings",
                                  where=where)
            for name, spec in entries.items():
                if not isinstance(spec, dict):
                    raise ConfigError(f"{section}.{name} must be a mapping", where=where)
                schema = "raw" if kind == "api" else db.PUBLISHED_SCHEMA
                node = Node(name=f"{schema}.{str(name).lower()}", kind=kind, schema=schema,
                            identifier=str(name), path=path, config=spec,
                            checksum=checksum(spec), description=spec.get("description"),
                            tags=str_list(spec.get("tags"), f"{section}.{name}.tags", where))
                add(node)
                if kind == "api":
                    target = (spec.get("for_each") or {}).get("model")
                else:
                    target = spec.get("model")
                    if not target:
                        raise ConfigError(f"publication {name}: `model:` is required",
                                          where=where)
                    if not str_list(spec.get("key"), f"publication {name}: key", where):
                        raise ConfigError(f"publication {name}: `key:` is required (the "
                                          "column(s) identifying a row)", where=where)
                if target:
                    links.append((section, node, str(target)))
    return links


def _link_yaml(graph: Graph, links: list[tuple[str, Node, str]], project: Project) -> None:
    """api sources depend on their for_each model; publications must name a real model.

    A publication does not depend on its model: `published.x` changes only when `elt
    publish` runs, so a model failing must not block models that read the answers.
    """
    for section, node, target in links:
        schema, _, table = target.lower().rpartition(".")
        resolved = graph.resolve_table(schema, table)
        if resolved is None:
            what = "api source" if section == "api_sources" else "publication"
            raise ConfigError(f"{what} {node.identifier}: unknown model {target}"
                              f"{_hint(graph, target)}", where=relative(node.path, project.root))
        if section == "api_sources":
            node.depends_on.append(resolved)
    for node in [n for n in graph.nodes.values() if n.kind == "api"]:
        stale = node.config.get("stale_after")
        for pub in [stale] if isinstance(stale, str) else stale or []:
            if f"published.{str(pub).lower()}" not in graph.nodes:
                hint = graph.suggest(f"published.{pub}", ["published"])
                raise ConfigError(f"api source {node.identifier}: stale_after names no "
                                  f"publication {pub!r}{hint}",
                                  where=relative(node.path, project.root))
