"""DuckDB model SQL -> Spark SQL: a schema-aware rewrite of the sqlglot tree, then sqlglot's
Spark dialect.

sqlglot transpiles every model of this project to Spark without a warning, yet most of them
fail there: DuckDB constructs that have no Spark spelling (COLUMNS(* EXCLUDE), UNPIVOT ON
COLUMNS, json_object, ...) are passed through as they are. Each such construct has one
named rule: here those that need a relation's columns, in spark_exprs.py those on single
expressions; spark_sql.to_spark runs both. Rules that must know a relation's columns (a
star to expand, a column's type) ask `Columns`, a callback that analyzes a Spark SELECT and
returns its (name, type) pairs: Spark itself is the schema oracle, so a CTE's columns are
known once the CTEs before it are rewritten. What no rule handles is reported by
`spark_sql.missing()`: an error naming the construct, instead of a Spark error far from
its cause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

Columns = Callable[[str], list[tuple[str, str]]]  # Spark SELECT -> [(name, spark type)]
_RAW = "__elt_spark_raw_{}__"


@dataclass
class Rewrite:
    """State of one model's rewrite: Spark text fragments sqlglot cannot spell (kept as
    placeholder tables) and the rules that fired."""

    columns: Columns
    raw: dict[str, str] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    wraps: list[tuple[exp.Expression, Callable[[exp.Expression], exp.Expression]]] = \
        field(default_factory=list)

    def wrap(self, node: exp.Expression,
             around: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
        """Put `around(node)` in node's place once the walk is done: node keeps its place
        meanwhile, so the rules still rewrite it and its children (a copy would not be)."""
        node.set("_elt_wrapped", True)
        self.wraps.append((node, around))
        return node

    def spark(self, node: exp.Expression) -> str:
        text = node.sql("spark")
        for name, fragment in self.raw.items():
            text = text.replace(name, fragment)
        return text

    def placeholder(self, fragment: str) -> exp.Table:
        name = _RAW.format(len(self.raw))
        self.raw[name] = fragment
        return exp.to_table(name)


class MissingRule(Exception):
    """A DuckDB construct without a Spark rule; `instead` says what to write in its place
    when the construct has a spelling that gives the same result on both engines."""

    def __init__(self, construct: str, instead: str = "") -> None:
        super().__init__(construct)
        self.construct = construct
        self.instead = instead


# -- where a SELECT reads from ------------------------------------------------------------------
def _visible_ctes(node: exp.Expression) -> list[exp.CTE]:
    """The CTEs `node` may read, in order (those of enclosing WITHs before its own CTE)."""
    out: list[exp.CTE] = []
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            ctes = list(parent.expressions)
            if isinstance(child, exp.CTE):
                ctes = ctes[: ctes.index(child)] if not parent.args.get("recursive") \
                    else ctes[: ctes.index(child) + 1]
            out = ctes + out
        elif isinstance(parent, exp.Query) and parent.args.get("with_") is not None \
                and child is not parent.args["with_"]:
            out = list(parent.args["with_"].expressions) + out
        child, parent = parent, parent.parent
    return out


def _with_prefix(rw: Rewrite, node: exp.Expression) -> str:
    ctes = _visible_ctes(node)
    if not ctes:
        return ""
    return "WITH " + ", ".join(rw.spark(c) for c in ctes) + " "


def relation_columns(rw: Rewrite, source: exp.Expression) -> list[tuple[str, str]]:
    """Columns of a FROM/JOIN source (a table, CTE or subquery), asked of Spark."""
    if isinstance(source, exp.Table):
        name = ".".join(p.name for p in source.parts)
        return rw.columns(_with_prefix(rw, source) + f"SELECT * FROM {_quote(name)}")
    if isinstance(source, exp.Subquery):
        return rw.columns(_with_prefix(rw, source) + rw.spark(source.this))
    raise MissingRule(f"columns of {source.key}")


def _quote(dotted: str) -> str:
    return ".".join(f"`{p}`" for p in dotted.split("."))


def _from_source(select: exp.Select) -> exp.Expression | None:
    src = select.args.get("from_")
    return src.this if src is not None else None


def _source_named(select: exp.Select, alias: str) -> exp.Expression | None:
    sources = [_from_source(select)] + [j.this for j in select.args.get("joins") or []]
    for s in sources:
        if s is not None and (s.alias_or_name or "").lower() == alias.lower():
            return s
    return None


def column_type(rw: Rewrite, node: exp.Expression, column: exp.Column) -> str | None:
    """Spark's type of a column read by node's SELECT, asked of Spark over its FROM/JOIN
    sources; None when it cannot be told (no such column, a source Spark cannot analyze)."""
    select = node.parent_select
    if select is None:
        return None
    sources = [s for s in [_from_source(select)] + [j.this for j in select.args.get("joins")
                                                     or []] if s is not None]
    if column.table:
        sources = [s for s in sources
                   if (s.alias_or_name or "").lower() == column.table.lower()]
    for source in sources:
        try:
            types = {n.lower(): t for n, t in relation_columns(rw, source)}
        except Exception:  # noqa: BLE001, S112 - a source Spark cannot analyze yet: next one
            continue
        if column.name.lower() in types:
            return types[column.name.lower()]
    return None


# -- rules that need the columns of the FROM relation ------------------------------------------
def _excluded(columns_node: exp.Columns) -> set[str]:
    star = columns_node.this
    if not isinstance(star, exp.Star):
        raise MissingRule("COLUMNS(<regex or lambda>)")
    return {c.name.lower() for c in star.args.get("except_") or []}


def _expand(rw: Rewrite, select: exp.Select, node: exp.Columns) -> list[str]:
    source = _from_source(select)
    if source is None:
        raise MissingRule("COLUMNS(*) without FROM")
    drop = _excluded(node)
    return [n for n, _ in relation_columns(rw, source) if n.lower() not in drop]


def rule_columns_exclude(rw: Rewrite, select: exp.Select) -> None:
    """COLUMNS(* EXCLUDE (...)) in a projection -> one projection per remaining column of the
    FROM relation, named after it (as DuckDB names them); `[*COLUMNS(...)]` -> an array."""
    if not any(isinstance(n, exp.Columns) for n in select.find_all(exp.Columns)):
        return
    out: list[exp.Expression] = []
    for proj in select.expressions:
        cols = list(proj.find_all(exp.Columns))
        if not cols or any(c.args.get("unpack") for c in cols):
            out.append(proj)
            continue
        names = _expand(rw, select, cols[0])
        for name in names:
            copy = proj.copy()
            if isinstance(copy, exp.Columns):
                copy = exp.column(name, quoted=True)
            for c in list(copy.find_all(exp.Columns)):
                c.replace(exp.column(name, quoted=True))
            out.append(exp.alias_(copy.unalias() if isinstance(copy, exp.Alias) else copy,
                                  name, quoted=True))
    select.set("expressions", out)
    for arr in list(select.find_all(exp.Array)):
        items: list[exp.Expression] = []
        for item in arr.expressions:
            if isinstance(item, exp.Columns) and item.args.get("unpack"):
                items += [exp.column(n, quoted=True) for n in _expand(rw, select, item)]
            else:
                items.append(item)
        arr.set("expressions", items)
    rw.fired.append("columns_exclude")


def rule_unpivot_columns(rw: Rewrite, select: exp.Select) -> None:
    """UNPIVOT t ON COLUMNS(* EXCLUDE ...) INTO NAME n VALUE v -> Spark's
    `t UNPIVOT (v FOR n IN (...))` over the columns of t (NULLs dropped, as in DuckDB)."""
    for pivot in list(select.find_all(exp.Pivot)):
        if not pivot.args.get("unpivot") or pivot.parent_select is not select:
            continue
        into = pivot.args.get("into")
        ons = pivot.expressions
        if not any(isinstance(o, exp.Columns) for o in ons) and into is None:
            continue  # standard UNPIVOT (v FOR k IN (...)): Spark's own spelling
        if into is None or len(ons) != 1 or not isinstance(ons[0], exp.Columns):
            raise MissingRule("UNPIVOT without ON COLUMNS(*) ... INTO NAME ... VALUE")
        table = pivot.this
        drop = _excluded(ons[0])
        names = [n for n, _ in relation_columns(rw, table) if n.lower() not in drop]
        name_col, value_col = into.this.name, into.expressions[0].name
        fragment = (f"(SELECT * FROM {rw.spark(table)} UNPIVOT (`{value_col}` FOR "
                    f"`{name_col}` IN ({', '.join(f'`{n}`' for n in names)})))")
        target = pivot.parent if isinstance(pivot.parent, exp.Subquery) else pivot
        alias = target.alias if isinstance(target, exp.Subquery) else ""
        holder = rw.placeholder(fragment)
        if alias:
            holder.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))
        target.replace(holder)
        rw.fired.append("unpivot_columns")


def rule_json_keys_row(rw: Rewrite, select: exp.Select) -> None:
    """json_keys(to_json(r)) of a row alias r -> an array of r's column names."""
    for keys in list(select.find_all(exp.JSONKeys)):
        inner = keys.this
        if not (isinstance(inner, exp.Anonymous) and inner.name.lower() == "to_json"
                and isinstance(inner.expressions[0], exp.Column)):
            continue
        source = _source_named(select, inner.expressions[0].name)
        if source is None:
            continue
        names = [n for n, _ in relation_columns(rw, source)]
        keys.replace(exp.Array(expressions=[exp.Literal.string(n) for n in names]))
        rw.fired.append("json_keys_row")


def rule_len_list(rw: Rewrite, select: exp.Select) -> None:
    """len(list column) -> size(): Spark's length() takes strings only."""
    lengths = [n for n in select.find_all(exp.Length) if isinstance(n.this, exp.Column)]
    if not lengths or _from_source(select) is None:
        return
    types = {n.lower(): t for n, t in relation_columns(rw, _from_source(select))}
    for node in lengths:
        if types.get(node.this.name.lower(), "").startswith("array"):
            node.replace(exp.ArraySize(this=node.this.copy()))  # BIGINT: cast by spark_idioms
            rw.fired.append("len_list")


def rule_unnest_in_expression(rw: Rewrite, select: exp.Select) -> None:
    """unnest(x) inside an expression (`unnest(...) ->> 'k'`) -> a LATERAL VIEW explode whose
    column the expression reads: Spark refuses a generator nested in an expression."""
    for i, explode in enumerate([e for e in select.find_all(exp.Explode)
                                 if e.parent_select is select]):
        parent = explode.parent
        if isinstance(parent, exp.Alias) or parent is select:
            continue
        alias = f"__elt_u{i}"
        select.append("laterals", exp.Lateral(
            this=explode.copy(), view=True,
            alias=exp.TableAlias(this=exp.to_identifier(alias),
                                 columns=[exp.to_identifier("value")])))
        explode.replace(exp.column("value", table=alias))
        rw.fired.append("unnest_in_expression")


def rule_star_replace(rw: Rewrite, select: exp.Select) -> None:
    """SELECT * [EXCLUDE (...)] REPLACE (expr AS c) -> the FROM relation's columns listed,
    c computed by expr in its place (Spark has EXCEPT, no REPLACE)."""
    for star in [p for p in select.expressions if isinstance(p, exp.Star)
                 and p.args.get("replace")]:
        source = _from_source(select)
        if source is None:
            raise MissingRule("* REPLACE without FROM")
        drop = {c.name.lower() for c in star.args.get("except_") or []}
        new = {a.alias.lower(): a for a in star.args["replace"]}
        items = [new[n.lower()].copy() if n.lower() in new else exp.column(n, quoted=True)
                 for n, _ in relation_columns(rw, source) if n.lower() not in drop]
        at = select.expressions.index(star)
        select.set("expressions", select.expressions[:at] + items
                   + select.expressions[at + 1:])
        rw.fired.append("star_replace")


def _grouping_keys(select: exp.Select, items: list[exp.Expression]) -> list[int]:
    """Indexes of the projections that are grouping keys (GROUP BY ALL: every one without
    an aggregate; else those equal to a GROUP BY expression or naming one's column)."""
    group = select.args["group"]
    if group.args.get("all"):
        return [i for i, p in enumerate(items) if not p.find(exp.AggFunc)]
    keys = {g.sql("spark").lower() for g in group.expressions}
    return [i for i, p in enumerate(items)
            if (p.unalias() if isinstance(p, exp.Alias) else p).sql("spark").lower() in keys
            or p.alias_or_name.lower() in keys]


def rule_grouped_negative_zero(rw: Rewrite, select: exp.Select) -> None:
    """A DOUBLE grouping key keeps -0.0 in DuckDB (the group shows the value it read) where
    Spark normalises grouping keys to 0.0: the key is output as -0.0 when every row of its
    group holds -0.0 (an aggregate's argument is not normalised), itself otherwise. The
    stars of the projection are listed and GROUP BY ALL spelled out, since a key output
    through an aggregate is no key for GROUP BY ALL any more."""
    if select.args.get("group") is None or select.args.get("distinct"):
        return
    try:
        out = rw.columns(_with_prefix(rw, select) + rw.spark(select))
    except Exception:  # noqa: BLE001 - not analyzable here: Spark's analyzer says it later
        return
    doubles = {n.lower() for n, t in out if t in ("double", "float")}
    items: list[exp.Expression] = []
    for proj in select.expressions:
        if isinstance(proj, exp.Star) and not proj.args.get("replace"):
            source = _from_source(select)
            drop = {c.name.lower() for c in proj.args.get("except_") or []}
            if source is None:
                return
            items += [exp.column(n, quoted=True) for n, _ in relation_columns(rw, source)
                      if n.lower() not in drop]
        else:
            items.append(proj)
    keys = [i for i in _grouping_keys(select, items)
            if items[i].alias_or_name.lower() in doubles]
    if not keys:
        return
    if select.args["group"].args.get("all"):
        select.set("group", exp.Group(expressions=[
            (items[i].unalias() if isinstance(items[i], exp.Alias) else items[i]).copy()
            for i in _grouping_keys(select, items)]))
    for i in keys:
        name = items[i].alias_or_name
        key = items[i].unalias() if isinstance(items[i], exp.Alias) else items[i]
        negative = exp.EQ(this=exp.cast(key.copy(), "STRING"),
                          expression=exp.Literal.string("-0.0"))
        items[i] = exp.alias_(exp.Case(ifs=[exp.If(
            this=exp.Anonymous(this="bool_and", expressions=[negative]),
            true=exp.cast(exp.Literal.string("-0.0"), "DOUBLE"))], default=key.copy()),
            name, quoted=True)
    select.set("expressions", items)
    rw.fired.append("grouped_negative_zero")


SELECT_RULES = [rule_star_replace, rule_unpivot_columns,
                rule_columns_exclude, rule_json_keys_row, rule_len_list,
                rule_unnest_in_expression, rule_grouped_negative_zero]
