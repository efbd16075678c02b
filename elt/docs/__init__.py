"""`elt docs`: a static site in target/docs/ (one index.html, no server needed).

Built from what elt already knows: the project's graph (the nodes target/manifest.json
lists), the last build's state (`_elt.nodes`, else target/run_results.json), the ledger
(`_elt.ledger` counts per publication) and the column lineage (elt/lineage). Everything is
embedded in the page as JSON; page.py draws it. `elt docs --serve` serves the folder on
loopback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from elt.core import db
from elt.docs.page import render
from elt.graph.dag import Graph
from elt.lineage import db_schema, publication_lineage
from elt.publish.spec import Publication

__all__ = ["collect", "write_site", "serve"]


def _read_json(path: Path) -> dict[str, Any]:
    """An artifact as a mapping; anything unreadable or unexpected counts as absent (other
    versions may add fields: only the ones used here are read)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _states(con: Any, target_dir: Path) -> dict[str, dict[str, Any]]:
    """Last status, rows, time and message per node: the database's, else run_results."""
    out: dict[str, dict[str, Any]] = {}
    results = _read_json(target_dir / "run_results.json").get("results")
    for r in results if isinstance(results, list) else []:
        if isinstance(r, dict) and isinstance(r.get("name"), str):
            out[r["name"]] = {"status": r.get("elt_status", r.get("status")),  # 2: dbt's words
                              "rows": r.get("rows"),
                              "message": r.get("message")}
    if con is not None and db.table_exists(con, db.STATE_SCHEMA, "nodes"):
        for name, status, rows, built, message in con.execute(
                "SELECT name, status, rows, CAST(built_at AS VARCHAR), message "
                "FROM _elt.nodes").fetchall():
            seen = out.get(name, {})
            if seen.get("status") in ("warn", "up_to_date"):
                status = seen["status"] if status == "success" else status
            out[name] = {"status": status, "rows": rows, "built_at": built, "message": message}
    return out


def _ledger(con: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    if con is None or not db.table_exists(con, db.STATE_SCHEMA, "ledger"):
        return out
    for pub, status, n in con.execute(
            "SELECT publication, status, count(*) FROM _elt.ledger "
            "WHERE NOT coalesce(deleted, false) GROUP BY ALL").fetchall():
        out.setdefault(pub, {})[status] = int(n)
    return out


def _columns(con: Any) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    if con is None:
        return out
    for schema, table, column, kind in con.execute(
            "SELECT table_schema, table_name, column_name, data_type FROM "
            "information_schema.columns WHERE table_catalog = current_database() "
            "ORDER BY table_schema, table_name, ordinal_position").fetchall():
        out.setdefault(f"{schema}.{table}", []).append((column, kind))
    return out


def _layers(nodes: dict[str, list[str]]) -> dict[str, int]:
    """Longest path from a node without inputs: the DAG's columns, left to right."""
    depth: dict[str, int] = {}

    def visit(name: str, trail: frozenset[str]) -> int:
        if name not in depth:
            deps = [d for d in nodes[name] if d in nodes and d not in trail]
            depth[name] = 1 + max((visit(d, trail | {name}) for d in deps), default=-1)
        return depth[name]

    for name in nodes:
        visit(name, frozenset())
    return depth


def collect(root: Path, graph: Graph, pubs: dict[str, Publication], con: Any,
            target_dir: Path) -> dict[str, Any]:
    """Everything the page shows, as one JSON-able mapping."""
    states, counts, columns = _states(con, target_dir), _ledger(con), _columns(con)
    lineage = {p["publication"]: p for p in publication_lineage(graph, pubs, db_schema(con))}
    deps: dict[str, list[str]] = {}
    nodes: list[dict[str, Any]] = []
    for name in graph.order:
        node = graph.nodes[name]
        inputs = list(node.depends_on)
        pub_name = node.identifier if node.kind == "published" else None
        if pub_name in pubs:  # a publication reads its model and sends to its endpoint
            model = lineage.get(pub_name, {}).get("model") or pubs[pub_name].model
            inputs = [model] if model in graph.nodes else []
        deps[name] = inputs
        described = {c: (spec or {}).get("description") for c, spec in node.columns.items()}
        cols = [{"name": c, "type": t, "description": described.get(c)}
                for c, t in columns.get(node.relation, [])] or [
            {"name": c, "type": None, "description": d} for c, d in described.items()]
        nodes.append({
            "name": name, "kind": node.kind, "relation": node.relation,
            "path": str(node.path.relative_to(root)) if node.path and node.path.is_relative_to(
                root) else None,
            "description": node.description, "sql": node.sql.strip() or None,
            "materialized": node.materialized, "tags": node.tags, "columns": cols,
            "tests": [{"name": t, **states.get(t, {})} for t in graph.tests_of.get(name, [])],
            "owner": node.owner, **states.get(name, {}),
        })
    for pub in pubs.values():
        endpoint = f"endpoint:{pub.endpoint}"
        if endpoint not in deps:
            deps[endpoint] = []
            nodes.append({"name": endpoint, "kind": "endpoint", "relation": pub.endpoint,
                          "tests": [], "columns": []})
        deps[endpoint].append(f"published.{pub.name.lower()}")
    depth = _layers(deps)
    for n in nodes:
        n["depends_on"], n["layer"] = deps.get(n["name"], []), depth.get(n["name"], 0)
    manifest = _read_json(target_dir / "manifest.json")
    publications = []
    for name, pub in pubs.items():
        ledger = counts.get(name, {})
        publications.append({
            "name": name, "node": f"published.{name.lower()}", "endpoint": pub.endpoint,
            "kind": pub.kind, "model": lineage.get(name, {}).get("model", pub.model),
            "operation": lineage.get(name, {}).get("operation"),
            "ledger": {"acknowledged": ledger.get("acknowledged", 0),
                       "already_there": ledger.get("already_there", 0),
                       "failed": ledger.get("failed", 0), "unknown": ledger.get("unknown", 0)},
            "fields": lineage.get(name, {}).get("fields", []),
        })
    return {"project": root.name, "generated_at": manifest.get("generated_at"),
            "nodes": nodes, "publications": publications}


def write_site(data: dict[str, Any], out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "data.json").write_text(json.dumps(data, indent=1, default=str),
                                       encoding="utf-8")
    index = out_dir / "index.html"
    index.write_text(render(data), encoding="utf-8")
    return index


def serve(directory: Path, host: str, port: int, announce: Any) -> None:
    """Serve the site on loopback until Ctrl-C (read-only files, no other route)."""
    import functools
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    with ThreadingHTTPServer((host, port), handler) as server:
        announce(f"serving {directory} at http://{host}:{server.server_address[1]}/ "
                 "(Ctrl-C to stop)")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
