"""Partitioned incremental models (`partition_by:`): rebuild only the partitions whose
input rows changed, and always give what a full refresh would.

The model's SQL is read with every view it references expanded (recursively), so its
inputs are the relations that hold rows: seeds, API sources and table models. For each,
the last build stored its version; a changed input has a known set of changed rows or
forces a full build:
- a seed or API source that only gained rows: the rows above the old `_elt_load_id` mark;
- a table model rebuilt once since: the rows that differ between its old and new table
  (`_elt."changes/<model>"`, both directions, EXCEPT ALL), recorded when it was swapped in
  because a partitioned model reads it (changes.py);
- anything else (rows replaced in a seed, two rebuilds, a changed view) -> full build.
An input whose changed rows are none (rebuilt to the same rows) takes no part. The
partitions to redo are the model run with one changed occurrence replaced by its
changed rows (the other changed inputs by their rows plus their changed rows, HAVING
dropped): a superset of the partitions that change, for SELECT/JOIN/WHERE/GROUP BY/UNION.
Occurrences where that does not hold (incremental.py's `_unsafe`, window/LIMIT) force a
full build when they change. The partitions are recomputed with a filter pushed down to
the deepest SELECT that still has the partition columns (so DuckDB reads only their rows),
then replaced in one transaction (DELETE + INSERT).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import Any

import duckdb
from sqlglot import exp

from elt.core.db import literal, quote
from elt.graph.dag import Graph, Node
from elt.project.modelfile import parse_select
from elt.transform import changes, nodestate
from elt.transform.incremental import LOAD_ID, _unsafe

_ORDER_BOUND = (exp.Window, exp.Limit, exp.Offset, exp.Fetch, exp.Qualify)


def partition_by(node: Node) -> list[str]:
    return list(node.config.get("partition_by") or [])


@dataclass
class Plan:
    """A full build (`reason`) or the SQL of the changed partitions' keys."""

    reason: str | None
    tree: exp.Expression
    state: dict[str, Any]
    keys_sql: str | None = None
    deltas: dict[str, str] = field(default_factory=dict)


def expand(graph: Graph, node: Node) -> exp.Expression:
    """The model's SELECT with every referenced view replaced by its SELECT (recursively)."""
    tree = parse_select(node.sql, node.name, str(node.path)).copy()
    for _ in range(50):
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
        views = [(t, v) for t in tree.find_all(exp.Table)
                 if (v := _node_of(graph, t, ctes)) is not None and v.materialized == "view"]
        if not views:
            return tree
        for table, view in views:
            sub = parse_select(view.sql, view.name, str(view.path))
            table.replace(exp.Subquery(this=sub, alias=exp.TableAlias(
                this=exp.to_identifier(table.alias_or_name))))
    return tree


def _node_of(graph: Graph, table: exp.Table, ctes: set[str]) -> Node | None:
    if not isinstance(table.this, exp.Identifier) or table.catalog:
        return None
    if not table.db and table.name.lower() in ctes:
        return None
    name = graph.resolve_table(table.db.lower(), table.name.lower())
    return graph.nodes[name] if name else None


def _inputs(graph: Graph, tree: exp.Expression) -> dict[str, list[exp.Table]]:
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found: dict[str, list[exp.Table]] = {}
    for table in tree.find_all(exp.Table):
        up = _node_of(graph, table, ctes)
        if up is not None:
            found.setdefault(up.name, []).append(table)
    return found


def current_state(cur: duckdb.DuckDBPyConnection, graph: Graph,
                  tree: exp.Expression) -> dict[str, Any]:
    """What the next build compares with: the expanded SQL and each input's version/mark."""
    from elt.load import loader as load

    state: dict[str, Any] = {"sql": hashlib.sha256(tree.sql("duckdb").encode()).hexdigest(),
                             "inputs": {}}
    for name in sorted(_inputs(graph, tree)):
        up = graph.nodes[name]
        entry: dict[str, Any] = {}
        if up.kind == "seed":
            entry["version"] = load.seed_version(cur, up.spec.name)
        else:
            stored = nodestate.read(cur, name)
            entry["version"] = stored.version if stored else None
        if up.kind in ("seed", "api") and LOAD_ID in {
                r[0].lower() for r in cur.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
                    "AND table_name = ?", [up.schema, up.identifier]).fetchall()}:
            row = cur.execute(f"SELECT coalesce(max({LOAD_ID}), 0), count(*) "
                              f"FROM {up.qualified}").fetchone() or (0, 0)
            mark = int(row[0])
            if up.kind == "seed":  # removals leave no rows behind, only a load event
                mark = max(mark, int(entry["version"] or 0))
            entry["mark"], entry["rows"] = mark, int(row[1])
        state["inputs"][name] = entry
    return state


def plan(cur: duckdb.DuckDBPyConnection, graph: Graph, node: Node, stored: Any,
         full_refresh: bool, table_exists: bool) -> Plan:
    tree = expand(graph, node)
    now = current_state(cur, graph, tree)
    old = (stored.watermark or {}) if stored is not None else {}
    result = Plan(None, tree, now)
    if full_refresh:
        result.reason = "--full-refresh"
    elif stored is None or "sql" not in old:
        result.reason = "first build"
    elif stored.checksum != node.checksum or old["sql"] != now["sql"]:
        result.reason = "SQL or config changed"
    elif not table_exists:
        result.reason = "table missing"
    elif set(old["inputs"]) != set(now["inputs"]):
        result.reason = "inputs changed"
    if result.reason:
        return result
    refs = _inputs(graph, tree)
    for name, entry in now["inputs"].items():
        before = old["inputs"][name]
        if before.get("version") == entry.get("version"):
            continue
        delta = _delta(cur, graph.nodes[name], before, entry)
        why = None if delta else "its changed rows are not known"
        why = why or next((w for ref in refs[name] if (w := _unsafe(ref) or _bound(ref))), None)
        if why:
            result.reason = f"{name} changed and {why}" if delta else f"{name}: {why}"
            return result
        if _has_rows(cur, delta):  # rebuilt to the same rows: it changes no partition
            result.deltas[name] = delta
    result.keys_sql = _keys_sql(graph, tree, result.deltas, partition_by(node))
    return result


def _bound(ref: exp.Table) -> str | None:
    for select in _ancestors(ref):
        if any(select.find(kind) for kind in _ORDER_BOUND):
            return "is read under a window function or LIMIT"
    return None


def _ancestors(ref: exp.Expression) -> list[exp.Select]:
    out, parent = [], ref.parent
    while parent is not None:
        if isinstance(parent, exp.Select):
            out.append(parent)
        parent = parent.parent
    return out


def _delta(cur: duckdb.DuckDBPyConnection, up: Node, before: dict[str, Any],
           now: dict[str, Any]) -> str | None:
    """SQL of the input's changed rows since `before`, or None when they are unknown."""
    if up.kind in ("seed", "api"):
        mark, rows = before.get("mark"), before.get("rows")
        if mark is None:
            return None
        row = cur.execute(f"SELECT count(*) FROM {up.qualified} WHERE {LOAD_ID} <= ?",
                          [int(mark)]).fetchone()
        if not row or int(row[0]) != int(rows):
            return None  # rows were replaced or removed: which ones is not known
        return f"SELECT * FROM {up.qualified} WHERE {LOAD_ID} > {int(mark)}"
    return changes.delta_sql(cur, up, before.get("version"), now.get("version"))


def _has_rows(cur: duckdb.DuckDBPyConnection, delta: str | None) -> bool:
    """Whether an input's changed rows are any: a pass over the model for an input rebuilt
    to the same rows (an upstream table whose inputs moved but not its result) would scan
    every other input for no partition."""
    if not delta:
        return False
    row = cur.execute(f"SELECT EXISTS ({delta})").fetchone()
    return bool(row and row[0])


def _keys_sql(graph: Graph, tree: exp.Expression, deltas: dict[str, str],
              columns: list[str]) -> str:
    keys = ", ".join(quote(c) for c in columns)
    parts = []
    for name in sorted(deltas):
        count = len(_inputs(graph, tree)[name])
        for i in range(count):
            copy = tree.copy()
            refs = _inputs(graph, copy)
            for other in sorted(deltas):
                up = graph.nodes[other]
                if other == name or up.kind != "model":
                    continue  # a seed's new rows are in it already
                for ref in refs[other]:  # a model's rows now plus the rows it lost
                    _replace(ref, f"SELECT * FROM {up.qualified} UNION ALL {deltas[other]}")
            _only_branch(_replace(refs[name][i], deltas[name]))
            for having in list(copy.find_all(exp.Having)):
                having.pop()
            parts.append(f"SELECT DISTINCT {keys} FROM ({copy.sql('duckdb')}) AS __elt_delta")
    if not parts:
        return f"SELECT {keys} FROM ({tree.sql('duckdb')}) AS __elt_none WHERE false"
    return "\nUNION\n".join(parts)


def _replace(ref: exp.Table, sql: str) -> exp.Expression:
    sub = exp.Subquery(this=parse_select(sql, "delta", "delta"), alias=exp.TableAlias(
        this=exp.to_identifier(ref.alias_or_name)))
    ref.replace(sub)
    return sub


def _only_branch(node: exp.Expression) -> None:
    """Empty the other branches of every UNION above the changed rows: rows of a branch
    that does not read them are not changed by them (its own changes get their own pass)."""
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.Union):
            side = "expression" if child is parent.this else "this"
            other = parent.args[side]
            parent.set(side, parse_select(f"SELECT * FROM ({other.sql('duckdb')}) AS "
                                          "__elt_unchanged WHERE false", "delta", "delta"))
        child, parent = parent, parent.parent


def bounds(cur: duckdb.DuckDBPyConnection, columns: list[str],
           keys_table: str) -> list[str | None]:
    """Per partition column, `BETWEEN <min> AND <max>` of the keys as literals (None if a
    key is NULL): constants DuckDB pushes down to the scans, unlike the EXISTS."""
    out: list[str | None] = []
    for c in columns:
        lo, hi, kind, nulls = cur.execute(
            f"SELECT min({quote(c)})::VARCHAR, max({quote(c)})::VARCHAR, typeof(min({quote(c)})), "
            f"count(*) FILTER (WHERE {quote(c)} IS NULL) FROM {keys_table}").fetchone() or (
                None, None, None, 1)
        out.append(None if nulls or lo is None else
                   f"BETWEEN CAST({literal(lo)} AS {kind}) AND CAST({literal(hi)} AS {kind})")
    return out


def recompute_sql(tree: exp.Expression, columns: list[str], keys_table: str,
                  ranges: list[str | None] | None = None) -> str:
    """The model's rows of the given partitions, filtered as deep as the SQL allows
    (`ranges`: bounds() of the keys, to prune the scans too)."""
    copy = tree.copy()
    if _push_filter(copy, columns, keys_table, ranges or [None] * len(columns)):
        return copy.sql("duckdb")
    on = " AND ".join(f"m.{quote(c)} IS NOT DISTINCT FROM k.{quote(c)}" for c in columns)
    return f"SELECT m.* FROM ({tree.sql('duckdb')}) AS m SEMI JOIN {keys_table} AS k ON {on}"


class BatchSQL:
    """recompute_sql() for the batches of one full build: sqlglot copies and prints the
    model's tree once per shape of `ranges` (which columns have bounds), not per batch; each
    batch's bounds are filled into that text in one pass (a bound's own text is never
    searched again)."""

    SLOT = re.compile(r"BETWEEN __elt_lo(\d+) AND __elt_hi\1\b")

    def __init__(self, tree: exp.Expression, columns: list[str], keys_table: str) -> None:
        self.tree, self.columns, self.keys_table = tree, columns, keys_table
        self.made: dict[tuple[bool, ...], str | None] = {}

    def __call__(self, ranges: list[str | None]) -> str:
        shape = tuple(r is not None for r in ranges)
        if shape not in self.made:
            text = recompute_sql(self.tree, self.columns, self.keys_table,
                                 [self.slot(i) if on else None for i, on in enumerate(shape)])
            found = sorted(int(i) for i in self.SLOT.findall(text))
            self.made[shape] = text if found == [i for i, on in enumerate(shape) if on] else None
        text = self.made[shape]
        if text is None:  # printed otherwise than expected, or not pushed down: per batch
            return recompute_sql(self.tree, self.columns, self.keys_table, ranges)
        return self.SLOT.sub(lambda m: ranges[int(m.group(1))] or "", text)

    @staticmethod
    def slot(i: int) -> str:
        return f"BETWEEN __elt_lo{i} AND __elt_hi{i}"


def _push_filter(tree: exp.Expression, columns: list[str], keys_table: str,
                 ranges: list[str | None]) -> bool:
    """Add `EXISTS (keys matching the partition expressions)` to the deepest SELECT that
    computes the partition columns before any aggregation over other rows."""
    select = tree
    names = [c.lower() for c in columns]
    while True:
        if not isinstance(select, exp.Select) or any(select.find(k) for k in _ORDER_BOUND):
            return False
        projections = {p.alias_or_name.lower(): p for p in select.expressions
                       if not isinstance(p, exp.Star)}
        exprs = [projections[n].unalias() if n in projections else _through_star(select, n)
                 for n in names]
        if any(e is None for e in exprs):
            return False
        if any(e.find(exp.AggFunc) for e in exprs) or not _grouped_by(select, exprs, names):
            return False
        source = _single_cte(tree, select)
        if source is not None and all(isinstance(e, exp.Column) for e in exprs):
            select, names = source, [e.name.lower() for e in exprs]
            continue
        # the keys' columns are renamed so that the expressions bind to this SELECT's rows
        renamed = ", ".join(f"{quote(c)} AS __elt_p{i}" for i, c in enumerate(columns))
        cond = " AND ".join(f"__elt_k.__elt_p{i} IS NOT DISTINCT FROM ({e.sql('duckdb')})"
                            for i, e in enumerate(exprs))
        pruned = "".join(f"({e.sql('duckdb')}) {r} AND "
                         for e, r in zip(exprs, ranges, strict=True) if r)
        select.where(f"{pruned}EXISTS (SELECT 1 FROM (SELECT {renamed} FROM {keys_table}) "
                     f"AS __elt_k WHERE {cond})", dialect="duckdb", copy=False)
        return True


def _through_star(select: exp.Select, name: str) -> exp.Expression | None:
    """The column a bare `*` (or `* EXCLUDE (...)`) of a single-source SELECT passes on
    unchanged under this name, or None."""
    star = next((p for p in select.expressions if isinstance(p, exp.Star)), None)
    if star is None or select.args.get("joins") or star.args.get("replace") \
            or star.args.get("rename"):
        return None
    if name in {c.name.lower() for c in star.args.get("except_") or []}:
        return None
    return exp.column(name)


def _grouped_by(select: exp.Select, exprs: list[exp.Expression], names: list[str]) -> bool:
    group = select.args.get("group")
    if group is None:
        return not any(p.find(exp.AggFunc) for p in select.expressions)
    if group.args.get("all"):
        return True
    items = {g.sql("duckdb").lower() for g in group.expressions}
    return all(e.sql("duckdb").lower() in items or n in items
               for e, n in zip(exprs, names, strict=True))


def _single_cte(tree: exp.Expression, select: exp.Select) -> exp.Select | None:
    """The CTE this SELECT reads alone (no join), if nothing else reads it."""
    source = select.args.get("from_") or select.args.get("from")  # sqlglot 30: from_
    if source is None or select.args.get("joins") or not isinstance(source.this, exp.Table):
        return None
    name = source.this.name.lower()
    if source.this.db:
        return None
    ctes = [c for c in tree.find_all(exp.CTE) if c.alias_or_name.lower() == name]
    uses = [t for t in tree.find_all(exp.Table) if not t.db and t.name.lower() == name]
    if len(ctes) != 1 or len(uses) != 1 or not isinstance(ctes[0].this, exp.Select):
        return None
    return ctes[0].this
