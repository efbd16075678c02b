"""DuckDB model SQL -> Spark SQL: a schema-aware rewrite of the sqlglot tree, then sqlglot's
Spark dialect.

sqlglot transpiles every model of this project to Spark without a warning, yet most of them
fail there: DuckDB constructs that have no Spark spelling (COLUMNS(* EXCLUDE), UNPIVOT ON
COLUMNS, json_object, ...) are passed through as they are. Each such construct has one named
rule below. Rules that must know a relation's columns (a star to expand, a column's type)
ask `Columns`, a callback that analyzes a Spark SELECT and returns its (name, type) pairs:
Spark itself is the schema oracle, so a CTE's columns are known once the CTEs before it are
rewritten. What no rule handles is reported by `missing()`: an error naming the construct,
instead of a Spark error far from its cause.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

import sqlglot
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
    """A DuckDB construct without a Spark rule."""

    def __init__(self, construct: str) -> None:
        super().__init__(construct)
        self.construct = construct


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
            node.replace(exp.ArraySize(this=node.this.copy()))
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


SELECT_RULES = [rule_unpivot_columns, rule_columns_exclude, rule_json_keys_row, rule_len_list,
                rule_unnest_in_expression]


# -- rules on single expressions (no schema needed) ---------------------------------------------
def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _json_text(value: exp.Expression) -> exp.Expression:
    """The JSON text of a value: JSON already (`->`) as it is, anything else via to_json."""
    if isinstance(value, exp.JSONExtract):
        return value
    return _scalar_json(value)


def _scalar_json(value: exp.Expression) -> exp.Expression:
    """to_json of any value: Spark's to_json takes structs/arrays/maps only, so wrap the value
    in a one-element array and strip the brackets (strings, numbers, lists alike)."""
    text = _fn("to_json", exp.Array(expressions=[value]))
    return exp.Substring(this=text, start=exp.Literal.number(2),
                         length=exp.Sub(this=exp.Length(this=text.copy()),
                                        expression=exp.Literal.number(2)))


def rule_json_object(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """json_object('k', v, ...) -> the JSON text built by concatenation, keys in order, as
    DuckDB prints it (no spaces; JSON values embedded, NULL as null)."""
    if not isinstance(node, exp.JSONObject):
        return node
    parts: list[exp.Expression] = []
    for i, kv in enumerate(node.expressions):
        if not isinstance(kv, exp.JSONKeyValue) or not isinstance(kv.this, exp.Literal):
            raise MissingRule("json_object with computed keys")
        parts.append(exp.Literal.string(("{" if i == 0 else ",") + json.dumps(kv.this.name)
                                        + ":"))
        parts.append(exp.Coalesce(this=_json_text(kv.expression),
                                  expressions=[exp.Literal.string("null")]))
    parts.append(exp.Literal.string("}" if parts else "{}"))
    rw.fired.append("json_object")
    return exp.Concat(expressions=parts)


def rule_to_json_scalar(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """to_json(scalar or list) -> to_json(array(x)) without its brackets."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "to_json" \
            and len(node.expressions) == 1 and not isinstance(node.parent, exp.JSONKeys):
        rw.fired.append("to_json_scalar")
        return _scalar_json(node.expressions[0])
    return node


def rule_trunc(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """trunc(x) -> x - x % 1: sqlglot's CAST AS BIGINT overflows under ANSI casts."""
    if isinstance(node, exp.Trunc) and not node.args.get("decimals"):
        rw.fired.append("trunc")
        x = node.this
        return exp.Paren(this=exp.Sub(this=x.copy(), expression=exp.Mod(
            this=x.copy(), expression=exp.Literal.number(1))))
    return node


def _array_path(path: exp.Expression) -> str | None:
    """'$.a.b[*]' -> '$.a.b' (a JSON path naming a whole array), else None."""
    if not isinstance(path, exp.JSONPath):
        return None
    parts = path.expressions
    if not parts or not isinstance(parts[-1], exp.JSONPathSubscript) \
            or not isinstance(parts[-1].this, exp.JSONPathWildcard):
        return None
    return exp.JSONPath(expressions=[p.copy() for p in parts[:-1]]).sql("spark").strip("'") \
        or "$"


def rule_unnest_json_array(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """unnest(json_extract(j, '$.a[*]')) -> explode(from_json(get_json_object(j, '$.a'),
    'array<string>')): each element as JSON text, as DuckDB's JSON values are."""
    if not isinstance(node, (exp.Explode, exp.Unnest)):
        return node
    inner = node.this if isinstance(node, exp.Explode) else (node.expressions or [None])[0]
    if isinstance(inner, exp.JSONExtract):
        path = _array_path(inner.expression)
        if path is None:
            return node
        rw.fired.append("unnest_json_array")
        obj = exp.JSONExtract(this=inner.this.copy(),
                              expression=exp.Literal.string(path)) if path != "$" \
            else inner.this.copy()
        return exp.Explode(this=_fn("from_json", obj, exp.Literal.string("array<string>")))
    if isinstance(inner, exp.Cast) and inner.to.is_type(exp.DataType.Type.ARRAY) \
            and isinstance(inner.this, exp.JSONExtract) \
            and not isinstance(inner.this.expression, (exp.JSONPath, exp.Literal)):
        # json_extract(j, <key column>)::JSON[]: a key that is data, not a path
        rw.fired.append("unnest_json_array")
        value = exp.Bracket(this=_fn("from_json", inner.this.this.copy(),
                                     exp.Literal.string("map<string,string>")),
                            expressions=[inner.this.expression.copy()])
        return exp.Explode(this=_fn("from_json", value, exp.Literal.string("array<string>")))
    return node


_FORMATS = {"%Y": "yyyy", "%m": "MM", "%d": "dd", "%H": "HH", "%M": "mm", "%S": "ss"}


def _spark_format(fmt: str) -> str:
    for duck, spark in _FORMATS.items():
        fmt = fmt.replace(duck, spark)
    if "%" in fmt:
        raise MissingRule(f"strptime format {fmt!r}")
    return fmt


def rule_try_strptime(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """try_strptime(x, [f1, f2]) -> coalesce(try_to_timestamp(x, f1'), ...)."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "try_strptime"):
        return node
    x, formats = node.expressions
    items = formats.expressions if isinstance(formats, exp.Array) else [formats]
    calls = [_fn("try_to_timestamp", x.copy(), exp.Literal.string(_spark_format(f.name)))
             for f in items]
    rw.fired.append("try_strptime")
    return calls[0] if len(calls) == 1 else exp.Coalesce(this=calls[0], expressions=calls[1:])


def rule_isfinite(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """isfinite(x) -> NOT isnan(x) AND abs(x) <> Infinity."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "isfinite"):
        return node
    x = node.expressions[0]
    rw.fired.append("isfinite")
    inf = exp.cast(exp.Literal.string("Infinity"), "double")
    return exp.Paren(this=exp.and_(exp.not_(_fn("isnan", x.copy())),
                                   exp.NEQ(this=exp.Abs(this=x.copy()), expression=inf)))


def rule_list_count(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """list_count(a) -> size(filter(a, v -> v IS NOT NULL))."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "list_count"):
        return node
    rw.fired.append("list_count")
    v = exp.to_identifier("__v")
    keep = exp.Lambda(this=exp.Not(this=exp.Is(this=exp.column("__v"), expression=exp.Null())),
                      expressions=[v])
    return exp.ArraySize(this=exp.ArrayFilter(this=node.expressions[0].copy(),
                                              expression=keep))


def rule_cast_json_list(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """CAST/TRY_CAST(json AS T[]) -> from_json(json, 'array<t>') (NULL where it does not fit)."""
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.ARRAY) \
            and isinstance(node.this, exp.JSONExtract) \
            and isinstance(node.this.expression, (exp.JSONPath, exp.Literal)):
        rw.fired.append("cast_json_list")
        return _fn("from_json", node.this, exp.Literal.string(node.to.sql("spark").lower()))
    return node


def rule_json_type(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """json_type(j [, path]) -> DuckDB's type name, read off the JSON text (ARRAY, OBJECT,
    UBIGINT/BIGINT, DOUBLE, BOOLEAN, VARCHAR, NULL); a string of digits reads as a number."""
    if not (isinstance(node, exp.JSONType)
            or (isinstance(node, exp.Anonymous) and node.name.lower() == "json_type")):
        return node
    args = [node.this, node.args.get("expression")] if isinstance(node, exp.JSONType) \
        else node.expressions
    j = args[0].copy()
    if len(args) > 1 and args[1] is not None:
        j = exp.JSONExtract(this=j, expression=args[1].copy())
    text = rw.spark(j)
    rw.fired.append("json_type")
    return sqlglot.parse_one(
        f"CASE WHEN ({text}) IS NULL THEN NULL WHEN startswith(({text}), '[') THEN 'ARRAY' "
        f"WHEN startswith(({text}), '{{') THEN 'OBJECT' "
        f"WHEN ({text}) RLIKE '^[0-9]+$' THEN 'UBIGINT' WHEN ({text}) RLIKE '^-[0-9]+$' "
        f"THEN 'BIGINT' WHEN ({text}) RLIKE '^-?[0-9.]+([eE][-+]?[0-9]+)?$' THEN 'DOUBLE' "
        f"WHEN ({text}) IN ('true', 'false') THEN 'BOOLEAN' ELSE 'VARCHAR' END",
        read="spark")


def rule_regexp_full_match(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """regexp_full_match(s, p) -> s RLIKE '^(?:p)$' (Spark's RLIKE finds, DuckDB matches)."""
    if not isinstance(node, exp.RegexpFullMatch):
        return node
    rw.fired.append("regexp_full_match")
    pattern = exp.Concat(expressions=[exp.Literal.string("^(?:"), node.expression.copy(),
                                      exp.Literal.string(")$")])
    return exp.RegexpLike(this=node.this.copy(), expression=pattern)


def rule_json_paths(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """json_extract_string(j, [p1, p2]) -> array(get_json_object(j, p1), ...); `j -> '$.p'`
    as a function argument -> get_json_object (sqlglot and Spark read it as a lambda)."""
    if isinstance(node, exp.JSONExtractScalar) and isinstance(node.expression, exp.Array):
        rw.fired.append("json_paths")
        return exp.Array(expressions=[_fn("get_json_object", node.this.copy(), p.copy())
                                      for p in node.expression.expressions])
    if isinstance(node, exp.Lambda) and isinstance(node.this, exp.Literal) \
            and node.this.is_string and node.this.name.startswith("$") \
            and len(node.expressions) == 1:
        # sqlglot reads `j -> '$.p'` as a function's argument as a lambda
        rw.fired.append("json_paths")
        return _fn("get_json_object", exp.column(node.expressions[0].name),
                   node.this.copy())
    return node


NODE_RULES = [rule_json_object, rule_to_json_scalar, rule_trunc, rule_unnest_json_array,
              rule_try_strptime, rule_isfinite, rule_list_count, rule_regexp_full_match,
              rule_cast_json_list, rule_json_type, rule_json_paths]
# DuckDB-only spellings sqlglot passes through unchanged and no rule above rewrote
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


def to_spark(sql: str, columns: Columns, known_function: Callable[[str], bool]) -> tuple[str,
                                                                                        list]:
    """(Spark SQL, rules that fired) for one DuckDB SELECT; raises MissingRule."""
    tree = sqlglot.parse_one(sql, read="duckdb")
    rw = Rewrite(columns)
    for node in list(tree.walk()):
        if isinstance(node, exp.Expression):
            for rule in NODE_RULES:
                if node.parent is None and node is not tree:
                    break  # replaced by an earlier rule
                new = rule(rw, node)
                if new is not node:
                    if node is tree:
                        tree = new
                    else:
                        node.replace(new)
                    node = new
    selects = sorted(enumerate(tree.find_all(exp.Select)), key=lambda p: (-_depth(p[1]), p[0]))
    for _, select in selects:
        for rule in SELECT_RULES:
            rule(rw, select)
    left = missing(tree, known_function)
    if left:
        raise MissingRule(left)
    return rw.spark(tree), sorted(set(rw.fired))
