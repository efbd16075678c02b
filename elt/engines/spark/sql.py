"""DuckDB model SQL -> Spark SQL: expression rules (spark_exprs), then the rules that need
the columns of a SELECT's relations (spark_rules), innermost SELECT first; what is left that
Spark cannot run is a MissingRule naming the construct."""

from __future__ import annotations

from collections.abc import Callable

import sqlglot
from sqlglot import exp

from elt.engines.spark.exprs import NODE_RULES
from elt.engines.spark.idioms import IDIOM_RULES
from elt.engines.spark.parity import PARITY_RULES
from elt.engines.spark.rules import SELECT_RULES, Columns, MissingRule, Rewrite

# DuckDB-only spellings sqlglot passes through unchanged and no rule rewrote
_UNSUPPORTED = (exp.Columns, exp.JSONObject)


def _depth(node: exp.Expression) -> int:
    d = 0
    while node.parent is not None:
        node, d = node.parent, d + 1
    return d


def missing(tree: exp.Expression, known_function: Callable[[str], bool]) -> str | None:
    """The first construct left that Spark cannot run, named as the model spells it."""
    for node in tree.walk():
        if isinstance(node, _UNSUPPORTED):
            return node.sql("duckdb")[:60]
        if isinstance(node, exp.Anonymous) and not node.name.startswith("__") \
                and not known_function(node.name):
            return f"{node.name}()"
        if isinstance(node, exp.Pivot) and any(isinstance(e, exp.Columns)
                                               for e in node.expressions):
            return "UNPIVOT ... ON COLUMNS(*)"
    return None


def _apply_wraps(rw: Rewrite, tree: exp.Expression) -> exp.Expression:
    """The wraps rules asked for (Rewrite.wrap), innermost first, on nodes still in the tree."""
    for node, around in reversed(rw.wraps):
        if node is not tree and node.root() is not tree:
            continue  # replaced as a whole by a later rule
        holder = exp.Null()
        if node is tree:
            tree = around(node)
            continue
        node.replace(holder)
        holder.replace(around(node))
    return tree


def to_spark(sql: str, columns: Columns, known_function: Callable[[str], bool]) -> tuple[str,
                                                                                        list]:
    """(Spark SQL, rules that fired) for one DuckDB SELECT; raises MissingRule."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    rw = Rewrite(columns)
    for node in list(tree.walk()):
        if isinstance(node, exp.Expression):
            for rule in PARITY_RULES + IDIOM_RULES + NODE_RULES:
                if node.parent is None and node is not tree:
                    break  # replaced by an earlier rule
                new = rule(rw, node)
                if new is not node:
                    if node is tree:
                        tree = new
                    else:
                        node.replace(new)
                    node = new
    tree = _apply_wraps(rw, tree)
    selects = sorted(enumerate(tree.find_all(exp.Select)), key=lambda p: (-_depth(p[1]), p[0]))
    for _, select in selects:
        for rule in SELECT_RULES:
            rule(rw, select)
    left = missing(tree, known_function)
    if left:
        raise MissingRule(left)
    return rw.spark(tree), sorted(set(rw.fired))
