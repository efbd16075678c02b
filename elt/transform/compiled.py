"""Compiled SQL (`target/compiled/<node>.sql`) and DuckDB errors mapped to model files.

`elt build` writes the SELECT each model and test actually ran (an incremental model's
rewrite included), taken from the statements its cursor executed; `elt compile` writes the
SELECT the next build would run, computed the same way the build computes it. A DuckDB
error keeps its detail (candidate bindings, the `LINE n` excerpt) and gets the model file
and line: the executed statement is `CREATE ... AS\n` + the file's body with its header
replaced by blank lines, so line numbers shift by the lines before the body only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import duckdb

from elt.graph.dag import Graph, Node
from elt.project.modelfile import relative, strip_sql
from elt.transform import materialize, nodestate

COMPILED_DIR = "compiled"
_CREATE_AS = re.compile(r"\ACREATE (?:OR REPLACE )?(?:TABLE|VIEW) \S+ AS\n", re.IGNORECASE)
_LINE = re.compile(r"^LINE (\d+):", re.MULTILINE)


def _normal(select: str) -> str:
    return select.strip("\n") + "\n"


def selects_run(statements: Sequence[str]) -> list[str]:
    """The SELECTs among a node's statements (`CREATE ... AS\\n<select>`), in order."""
    return [_normal(s[m.end():]) for s in statements if (m := _CREATE_AS.match(s))]


def write(target_dir: Path, name: str, sql: str) -> Path:
    folder = target_dir / COMPILED_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.sql"
    tmp = path.with_suffix(".sql.tmp")
    tmp.write_text(sql, encoding="utf-8")
    tmp.replace(path)
    return path


def compile_node(cur: duckdb.DuckDBPyConnection | None, graph: Graph, node: Node,
                 full_refresh: bool = False) -> str | None:
    """The SELECT the next `elt build` runs for a model or test (None for seeds/sources)."""
    if node.kind == "test":
        return _normal(strip_sql(node.sql))
    if node.kind != "model":
        return None
    if node.materialized != "incremental" or cur is None:
        return _normal(strip_sql(node.sql))
    stored = nodestate.read(cur, node.name)
    if node.config.get("partition_by"):
        from elt.transform import partitions

        exists = materialize.relation_type(cur, node.schema, node.identifier) == "BASE TABLE"
        pplan = partitions.plan(cur, graph, node, stored, full_refresh, exists)
        if pplan.reason is not None:
            return _normal(strip_sql(node.sql))
        keys = f'"{node.schema}"."{materialize.TMP_PREFIX}keys/{node.identifier}"'
        return _normal(partitions.recompute_sql(pplan.tree, partitions.partition_by(node), keys))
    # Inputs read whole are taken as unchanged: compile does not version them.
    inputs = dict(stored.inputs or {}) if stored else {}
    plan = materialize.plan_incremental(cur, graph, node, stored, inputs, full_refresh)
    return _normal(plan.select(node))


def describe_error(exc: duckdb.Error, node: Node, failed_sql: str | None, root: Path,
                   label: str) -> tuple[str, list[str]]:
    """(one-line message naming file:line, detail lines with DuckDB's excerpt renumbered)."""
    lines = [line for line in str(exc).splitlines() if line.strip()]
    head = lines[0] if lines else type(exc).__name__
    match = _LINE.search(str(exc))
    excerpt = lines[lines.index(next(x for x in lines if x.startswith("LINE "))):] \
        if match else []
    extra = [x.strip() for x in lines[1:] if x not in excerpt]
    where = relative(node.path, root) if node.path else None
    details = excerpt
    if match and failed_sql and where:
        body = strip_sql(node.sql)
        pos = failed_sql.find(body) if body else -1
        if pos >= 0:
            line = int(match.group(1)) - failed_sql.count("\n", 0, pos)
            where = f"{where}:{line}"
            details = _renumber(excerpt, match.group(0), f"line {line}:")
        else:  # an incremental rewrite: its line numbers are those of the compiled file
            extra.append(f"(line numbers of target/{COMPILED_DIR}/{node.name}.sql)")
    message = f"{label}: {head}" + (" " + " ".join(extra) if extra else "")
    return (f"{where}: {message}" if where else message), details


def _renumber(excerpt: list[str], old: str, new: str) -> list[str]:
    """Replace the `LINE n:` prefix, shifting the caret line below it to stay aligned."""
    if not excerpt:
        return excerpt
    shift = len(new) - len(old)
    out = [excerpt[0].replace(old, new, 1)]
    for rest in excerpt[1:]:
        out.append(" " * shift + rest if shift >= 0 else rest[-shift:])
    return out
