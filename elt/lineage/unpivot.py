"""DuckDB constructs sqlglot's lineage cannot see through, rewritten into plain SELECTs
that mean the same for lineage (never run: only traced).

- `UNPIVOT (inner) ON <columns> INTO NAME n VALUE v` becomes
  `SELECT <the other columns>, 'c1, c2, ...' AS n, COALESCE(c1, c2, ...) AS v FROM (inner)`:
  the value comes from the unpivoted columns, the name is their names (a constant), the
  rest pass through unchanged.
- `COLUMNS(*)` / `COLUMNS(* EXCLUDE (...))` / `COLUMNS('regex')` standing alone in a
  select list (or as UNPIVOT's ON list) becomes the columns it names.
Both need the inner relation's columns: a `SELECT *, expr AS alias FROM table` is expanded
with the table's columns (`columns(table)`, from the staging database); anything more
complex is left as it is (traced by name, as before).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sqlglot import exp

# columns(table) -> its column names, or None when unknown
Columns = Callable[[exp.Table], "list[str] | None"]


def rewrite(tree: exp.Expression, columns: Columns) -> exp.Expression:
    """The tree with every UNPIVOT and bare COLUMNS(...) it can expand rewritten."""
    tree = tree.copy()
    for pivot in list(tree.find_all(exp.Pivot)):
        if pivot.args.get("unpivot") and isinstance(pivot.this, exp.Subquery):
            plain = _unpivot(pivot, columns)
            if plain is not None:
                pivot.replace(plain)
    for select in list(tree.find_all(exp.Select)):
        _expand_columns(select, columns)
    return tree


def _output(select: exp.Expression, columns: Columns) -> list[str] | None:
    """The column names a SELECT yields (a star expanded), None when not known."""
    if not isinstance(select, exp.Select):
        return None
    source = select.args.get("from_") or select.args.get("from")
    table = source.this if source is not None else None
    out: list[str] = []
    for e in select.expressions:
        if isinstance(e, exp.Star) or isinstance(e, exp.Columns) and isinstance(e.this, exp.Star):
            star = e if isinstance(e, exp.Star) else e.this
            names = columns(table) if isinstance(table, exp.Table) and not select.args.get(
                "joins") else None
            if names is None:
                return None
            left_out = {c.name.lower() for c in star.args.get("except_") or
                        star.args.get("except") or ()}
            out += [n for n in names if n.lower() not in left_out]
        elif e.alias_or_name:
            out.append(e.alias_or_name)
        else:
            return None
    return out


def _named(on: list[exp.Expression], inner: list[str]) -> list[str] | None:
    """The columns an ON list (or a COLUMNS(...)) names, out of `inner`."""
    out: list[str] = []
    for e in on:
        if isinstance(e, exp.Columns) and isinstance(e.this, exp.Star):
            left_out = {c.name.lower() for c in e.this.args.get("except_") or
                        e.this.args.get("except") or ()}
            out += [n for n in inner if n.lower() not in left_out]
        elif isinstance(e, exp.Columns) and isinstance(e.this, exp.Literal):
            pattern = re.compile(e.this.name)
            out += [n for n in inner if pattern.search(n)]
        elif isinstance(e, exp.Column):
            out.append(e.name)
        else:
            return None
    return out


def _unpivot(pivot: exp.Pivot, columns: Columns) -> exp.Expression | None:
    into = pivot.args.get("into")
    values = into.expressions if isinstance(into, exp.UnpivotColumns) else []
    if len(values) != 1:
        return None
    inner = _output(pivot.this.this, columns)
    unpivoted = _named(pivot.expressions, inner) if inner is not None else None
    if not unpivoted or inner is None:
        return None
    kept = [c for c in inner if c not in unpivoted]
    name, value = into.this.name, values[0].name
    select = exp.select(
        *[exp.column(c, "_unpivot") for c in kept],
        exp.alias_(exp.Literal.string(", ".join(unpivoted)), name),
        exp.alias_(exp.func("COALESCE", *[exp.column(c, "_unpivot") for c in unpivoted]),
                   value),
    ).from_(exp.Subquery(this=pivot.this.this.copy(), alias=exp.TableAlias(
        this=exp.to_identifier("_unpivot"))))
    return exp.Subquery(this=select, alias=pivot.args.get("alias"))


def _expand_columns(select: exp.Select, columns: Columns) -> None:
    """`SELECT COLUMNS(* EXCLUDE (a)) FROM t` -> `SELECT b, c FROM t`."""
    bare = [e for e in select.expressions if isinstance(e, exp.Columns)]
    if not bare:
        return
    source = select.args.get("from_") or select.args.get("from")
    table = source.this if source is not None else None
    names = columns(table) if isinstance(table, exp.Table) and not select.args.get(
        "joins") else None
    if names is None:
        return
    expanded: list[exp.Expression] = []
    for e in select.expressions:
        picked = _named([e], names) if isinstance(e, exp.Columns) else None
        expanded += [exp.column(c) for c in picked] if picked is not None else [e]
    select.set("expressions", expanded)
