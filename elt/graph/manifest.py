"""The graph as target/manifest.json's body, in dbt's shape (manifest v12) plus elt's fields.

Tools that read dbt artifacts (lineage viewers, CI summaries, state comparison) walk
`nodes`/`sources`/`exposures` keyed by unique_id, `depends_on.nodes` and `parent_map`; elt's
own fields stay beside dbt's (`kind`, `relation`, `materialized`, `unique_key`) and, where
dbt gives a key another meaning, under `elt` (elt's node name, dependency names, path,
checksum). Models, seeds and tests go to `nodes`, API sources and published answers (which
models read) to `sources`, and each publication is an exposure of the model it sends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from elt.core.results import dbt_metadata, unique_id
from elt.graph.nodeselect import Graph, Node, node_config
from elt.project.modelfile import relative

# empty in elt, required by dbt's manifest schema
_EMPTY_SECTIONS = ("macros", "docs", "metrics", "groups", "selectors", "disabled", "group_map",
                   "saved_queries", "semantic_models", "unit_tests")


def manifest_body(graph: Graph) -> dict[str, Any]:
    """Every section of the manifest but its per-run header (results.write_manifest)."""
    project = graph.project_name
    uid = {name: unique_id(project, node.kind, name) for name, node in graph.nodes.items()}
    nodes: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    exposures: dict[str, Any] = {}
    parents: dict[str, list[str]] = {}
    for name in graph.order:
        node = graph.nodes[name]
        entry = _entry(graph, node, uid)
        (sources if node.kind in ("api", "published") else nodes)[uid[name]] = entry
        parents[uid[name]] = [uid[d] for d in node.depends_on]
        if node.kind == "published":
            exposure = _exposure(graph, node, uid)
            exposures[exposure["unique_id"]] = exposure
            parents[exposure["unique_id"]] = exposure["depends_on"]["nodes"]
    children: dict[str, list[str]] = {u: [] for u in parents}
    for child, ups in parents.items():
        for up in ups:
            children.setdefault(up, []).append(child)
    return {"metadata": dbt_metadata("manifest", "", project, "duckdb"),
            "nodes": nodes, "sources": sources, "exposures": exposures,
            **{section: {} for section in _EMPTY_SECTIONS},
            "parent_map": parents, "child_map": {u: sorted(c) for u, c in children.items()}}


def _common(graph: Graph, node: Node, unique: str, name: str) -> dict[str, Any]:
    path = relative(node.path, graph.root) if node.path else ""
    under = path.split("/", 1)[1] if "/" in path else path  # dbt: relative to models/ seeds/
    return {
        "unique_id": unique, "resource_type": unique.split(".", 1)[0],
        "package_name": graph.project_name, "name": name,
        "fqn": [graph.project_name, *Path(under).parent.parts, name],
        "path": under, "original_file_path": path,
        "description": node.description or "", "tags": list(node.tags), "meta": {},
    }


def _entry(graph: Graph, node: Node, uid: dict[str, str]) -> dict[str, Any]:
    entry = _common(graph, node, uid[node.name], node.identifier)
    entry.update({
        "database": None, "schema": node.schema, "alias": node.identifier,
        "relation_name": node.qualified,
        "checksum": {"name": "sha256", "checksum": node.checksum},
        "config": node_config(node),
        "columns": {c: {"name": c, "description": spec.get("description") or "",
                        "data_type": spec.get("data_type"), "meta": {}, "tags": [],
                        **{k: v for k, v in spec.items() if k not in ("tests", "data_tests")}}
                    for c, spec in node.columns.items()},
        "depends_on": {"macros": [], "nodes": [uid[d] for d in node.depends_on]},
        "refs": [{"name": d, "package": None, "version": None} for d in node.depends_on
                 if graph.nodes[d].kind == "model"],
        "sources": [d.split(".", 1) for d in node.depends_on
                    if graph.nodes[d].kind in ("api", "published")],
        "language": "sql", "raw_code": node.sql,
        "compiled": bool(node.sql), "compiled_code": node.sql or None,
        # elt's own
        "kind": node.kind, "relation": node.relation, "materialized": node.materialized,
        "unique_key": node.unique_key,
        "elt": {"name": node.name, "depends_on": node.depends_on, "checksum": node.checksum,
                "path": entry["original_file_path"] or None},
    })
    if node.kind == "test":
        entry["attached_node"] = uid[node.owner] if node.owner else None
    if node.kind in ("api", "published"):
        entry.update({"source_name": node.schema, "source_description": "",
                      "loader": "elt api source" if node.kind == "api" else "elt publish",
                      "identifier": node.identifier, "loaded_at_field": None,
                      "freshness": None})
    return entry


def _exposure(graph: Graph, node: Node, uid: dict[str, str]) -> dict[str, Any]:
    """A publication as a dbt exposure: the application its model's rows are sent to."""
    model = graph.resolve(str(node.config.get("model", "")))
    exposure = _common(graph, node, unique_id(graph.project_name, "publication",
                                              node.identifier), node.identifier)
    exposure.update({
        "type": "application", "label": node.identifier, "maturity": None, "url": None,
        "owner": {"name": str(node.config.get("endpoint") or ""), "email": None},
        "config": {"enabled": True}, "refs": [{"name": model, "package": None,
                                                "version": None}] if model else [],
        "depends_on": {"macros": [], "nodes": [uid[model]] if model else []},
        "kind": "publication", "elt": {"name": node.identifier, "relation": node.relation},
    })
    return exposure
