"""Which rows an incremental build must redo, so that it always equals a full refresh.

New rows of an input (those with `_elt_load_id` above the watermark) change the output
rows whose unique_key they reach. Which keys those are is found by running the model with
one input occurrence at a time replaced by its new rows (HAVING dropped: a group may only
pass it with its old rows): for SELECT / JOIN / WHERE / GROUP BY / DISTINCT / UNION /
EXISTS / IN this is a superset of the keys that change. Those keys are then recomputed
from *all* input rows (the model's SELECT, semi-joined to them) and replace the old ones,
so an aggregate over rows arriving in several files is never left partial. A model that is
row by row over one input (no aggregate, GROUP BY or DISTINCT) needs no recompute: the new
rows' result is the merge.

Some occurrences make the key set unknowable: on the NULL side of an outer join, under NOT
(NOT EXISTS, NOT IN), in EXCEPT, in a scalar subquery. When such an input has new rows the
model is rebuilt fully. Window functions, QUALIFY and LIMIT/OFFSET over a watermarked input
let a new row change any other row's result: such a model is refused (it is a table, not an
incremental model); over a model read whole they are fine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from elt.core.db import quote
from elt.core.errors import ModelError
from elt.graph.dag import Node
from elt.project.modelfile import parse_select, strip_sql

LOAD_ID = "_elt_load_id"
_DERIVED = exp.From | exp.Join | exp.SetOperation  # where a subquery is a set of rows


@dataclass
class Shape:
    """What the model's SQL allows, for the inputs read by watermark."""

    tree: exp.Expression
    refs: list[exp.Table] = field(default_factory=list)  # occurrences of watermarked inputs
    unsafe: dict[str, str] = field(default_factory=dict)  # relation -> why new rows force
    # a full build
    row_level: bool = False


def analyse(node: Node, watermarked: set[str], aggregates: set[str]) -> Shape:
    """Find the watermarked input occurrences and what they allow; refuse impossible SQL.

    `aggregates`: the database's aggregate function names, for those sqlglot does not know.
    """
    tree = parse_select(node.sql, node.name, str(node.path))
    reads = _reads_watermarked(tree, watermarked)
    for kind, why in ((exp.Window, "a window function"), (exp.Qualify, "QUALIFY"),
                      (exp.Limit, "LIMIT"), (exp.Offset, "OFFSET"), (exp.Fetch, "FETCH")):
        for found in tree.find_all(kind):  # over rows read whole (a model) it is fine
            scope = found.find_ancestor(exp.Select) or tree
            if reads(scope):
                raise ModelError(f"model {node.name}: materialized: incremental cannot use "
                                 f"{why} over {', '.join(sorted(watermarked))}: a new input "
                                 "row may change any other row's result, so merging the new "
                                 "rows' result would differ from a full build; use "
                                 "materialized: table", where=str(node.path))
    shape = Shape(tree, _occurrences(tree, watermarked))
    for ref in shape.refs:
        why = _unsafe(ref)
        if why:
            shape.unsafe.setdefault(relation_of(ref), why)
    grouped = any(tree.find(kind) is not None for kind in (exp.AggFunc, exp.Group, exp.Distinct))
    grouped = grouped or any(f.name.lower() in aggregates for f in tree.find_all(exp.Anonymous))
    shape.row_level = (len(shape.refs) == 1 and not shape.unsafe and not grouped
                       and not _in_expression(shape.refs[0]))
    return shape


def _reads_watermarked(tree: exp.Expression, watermarked: set[str]) -> Callable[[exp.Expression],
                                                                                  bool]:
    """A test: does this part of the SQL read a watermarked input, directly or by a CTE?"""
    tainted: set[str] = set()

    def reads(part: exp.Expression) -> bool:
        return any(relation_of(t) in watermarked or (not t.db and t.name.lower() in tainted)
                   for t in part.find_all(exp.Table))

    for cte in tree.find_all(exp.CTE):  # in order: a CTE sees only those before it
        if reads(cte.this):
            tainted.add(cte.alias_or_name.lower())
    return reads


def relation_of(table: exp.Table) -> str:
    return f"{table.db.lower() or 'main'}.{table.name.lower()}"


def _occurrences(tree: exp.Expression, watermarked: set[str]) -> list[exp.Table]:
    """Table references (not CTE names) to watermarked inputs, in a stable order."""
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    found = []
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier) or table.catalog:
            continue
        if not table.db and table.name.lower() in ctes:
            continue
        if relation_of(table) in watermarked:
            found.append(table)
    return found


def _derived(sub: exp.Subquery) -> bool:
    """A subquery read as a set of rows: in FROM/JOIN, a set operation, or the relation an
    (UN)PIVOT turns (`UNPIVOT (SELECT ...) ON ...`)."""
    up = sub.parent
    return isinstance(up, _DERIVED) or (isinstance(up, exp.Pivot) and up.this is sub)


def _in_expression(node: exp.Expression) -> bool:
    """Inside EXISTS, IN or a scalar subquery (not a FROM/JOIN derived table)."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Exists | exp.In):
            return True
        if isinstance(parent, exp.Subquery) and not _derived(parent):
            return True
        parent = parent.parent
    return False


def _unsafe(ref: exp.Table) -> str | None:
    """Why new rows of this occurrence may change rows whose key it does not produce."""
    child, parent = ref, ref.parent
    while parent is not None:
        if isinstance(parent, exp.Join) and child is parent.this and parent.side in ("LEFT",
                                                                                       "FULL"):
            return "it is read on the NULL side of an outer join"
        if isinstance(parent, exp.Join) and (parent.kind or "").upper() == "ANTI":
            return "it is read by an ANTI JOIN"
        if isinstance(parent, exp.Select) and isinstance(child, exp.From | exp.Join) and any(
                j.side in ("RIGHT", "FULL") for j in parent.args.get("joins") or []):
            return "it is read on the NULL side of an outer join"
        if isinstance(parent, exp.Not):
            return "it is read under NOT (NOT EXISTS, NOT IN)"
        if isinstance(parent, exp.Except) and child is parent.expression:
            return "it is read by EXCEPT"
        if isinstance(parent, exp.Subquery) and not (_derived(parent)
                                                     or isinstance(parent.parent, exp.In)):
            return "it is read in a scalar subquery"
        child, parent = parent, parent.parent
    return None


def _newer(table: exp.Table, mark: int) -> exp.Expression:
    """`(SELECT * FROM rel WHERE _elt_load_id > mark) AS <alias>` for one occurrence."""
    source = table.copy()
    source.set("alias", None)
    newer = exp.GT(this=exp.column(LOAD_ID), expression=exp.Literal.number(mark))
    return exp.select("*").from_(source).where(newer).subquery(table.alias_or_name)


def delta_sql(shape: Shape, marks: dict[str, int]) -> str:
    """Row-level model: its SELECT over the one input's new rows (the rows to merge)."""
    tree = shape.tree.copy()
    [ref] = _occurrences(tree, set(marks))
    ref.replace(_newer(ref, marks[relation_of(ref)]))
    return tree.sql(dialect="duckdb")


def keys_sql(node: Node, shape: Shape, marks: dict[str, int], grown: set[str]) -> str:
    """The distinct unique_key tuples that new rows of the `grown` inputs can change."""
    keys = ", ".join(quote(k) for k in node.unique_key)
    parts = []
    for i, ref in enumerate(shape.refs):
        rel = relation_of(ref)
        if rel not in grown:
            continue
        tree = shape.tree.copy()
        copy = _occurrences(tree, set(marks))[i]
        copy.replace(_newer(copy, marks[rel]))
        for having in list(tree.find_all(exp.Having)):
            having.pop()
        parts.append(f"SELECT DISTINCT {keys} FROM ({tree.sql(dialect='duckdb')}) AS __elt_delta")
    if not parts:  # nothing new: no key changes
        return f"SELECT {keys} FROM ({strip_sql(node.sql)}) AS __elt_none WHERE false"
    return "\nUNION\n".join(parts)


def recompute_sql(node: Node, keys_table: str) -> str:
    """The model's rows for the given keys, computed from all input rows."""
    on = " AND ".join(f"m.{quote(k)} = k.{quote(k)}" for k in node.unique_key)
    return (f"SELECT m.* FROM ({strip_sql(node.sql)}\n) AS m SEMI JOIN {keys_table} AS k "
            f"ON {on}")
