"""Spark rules for result types and edge values (found by the differential corpus,
tests/test_spark_corpus.py): integer sums, date arithmetic, the sign of -0.0, integer
division, lists with NULL elements. Each rewrites the construct to DuckDB's answer on Spark
or refuses it at compile time saying what to write instead (spark_idioms.py has the rules
for the idioms people notice first; this module the ones that differ in type or edge rows)."""

from __future__ import annotations

from sqlglot import exp

from elt.engines.spark.idioms import _fraction_kind
from elt.engines.spark.rules import MissingRule, Rewrite, column_type

_INT_TYPES = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
              exp.DataType.Type.BIGINT}
_SPARK_INTS = {"tinyint", "smallint", "int", "bigint"}
HUGEINT = "decimal(38,0)"  # Spark's exact type for DuckDB's HUGEINT results


def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _cast(node: exp.Expression, to: str) -> exp.Expression:
    out = exp.cast(node, to, copy=False)
    out.set("_elt_spark", True)
    return out


def _cast_to(to: str):  # noqa: ANN202 - a Rewrite.wrap callback
    return lambda node: _cast(node, to)


def _int_type(rw: Rewrite, node: exp.Expression, x: exp.Expression) -> str | None:
    """Spark's integer type of x ('int', 'bigint', ...) when x is an integer, else None."""
    if isinstance(x, exp.Literal) and not x.is_string:
        return "int" if x.name.lstrip("-").isdigit() else None
    if isinstance(x, exp.Cast):
        return x.to.sql("spark").lower() if x.to.this in _INT_TYPES else None
    if isinstance(x, exp.Paren | exp.Neg):
        return _int_type(rw, node, x.this)
    if isinstance(x, exp.Add | exp.Sub | exp.Mul):
        left, right = _int_type(rw, node, x.this), _int_type(rw, node, x.expression)
        return "bigint" if left and right else None
    if isinstance(x, exp.Column):
        t = column_type(rw, node, x)
        return t if t in _SPARK_INTS else None
    return None


def _date_type(rw: Rewrite, node: exp.Expression, x: exp.Expression) -> str | None:
    """'date' / 'timestamp' when x is one (a column, a cast, a DATE literal), else None."""
    if isinstance(x, exp.Cast):
        return "date" if x.to.is_type(exp.DataType.Type.DATE) else (
            "timestamp" if x.to.is_type(*exp.DataType.TEMPORAL_TYPES) else None)
    if isinstance(x, exp.Column):
        t = column_type(rw, node, x) or ""
        return "date" if t == "date" else ("timestamp" if t.startswith("timestamp") else None)
    return None


def rule_integer_sums(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """sum(integers) and count_if are HUGEINT in DuckDB (128 bits, no overflow), BIGINT in
    Spark: cast to DECIMAL(38,0), Spark's exact type holding the same integers. A window or
    FILTER around the sum is cast as a whole (Spark refuses a cast between the two)."""
    if node.args.get("_elt_wrapped") or isinstance(node.parent, exp.Window | exp.Filter):
        return node
    inner = node.this if isinstance(node, exp.Window | exp.Filter) else node
    if isinstance(inner, exp.CountIf) or isinstance(inner, exp.Sum) \
            and _int_type(rw, node, inner.this):
        rw.fired.append("integer_sums")
        return rw.wrap(node, _cast_to(HUGEINT))
    return node


def rule_sign(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """sign(x) is TINYINT in DuckDB, DOUBLE in Spark."""
    if isinstance(node, exp.Sign) and not node.args.get("_elt_wrapped"):
        rw.fired.append("sign")
        return rw.wrap(node, _cast_to("tinyint"))
    return node


def rule_date_arithmetic(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """DATE + INTERVAL and generate_series of dates are TIMESTAMP in DuckDB, DATE in Spark;
    DATE - DATE is a BIGINT count of days in DuckDB, an INTERVAL in Spark."""
    if node.args.get("_elt_wrapped"):
        return node
    if isinstance(node, exp.Add | exp.Sub) and isinstance(node.expression, exp.Interval) \
            and _date_type(rw, node, node.this) == "date":
        rw.fired.append("date_arithmetic")
        return rw.wrap(node, _cast_to("timestamp"))
    if isinstance(node, exp.Sub) and _date_type(rw, node, node.this) == "date" \
            and _date_type(rw, node, node.expression) == "date":
        rw.fired.append("date_arithmetic")
        return _cast(_fn("datediff", node.this.copy(), node.expression.copy()), "bigint")
    if isinstance(node, exp.GenerateSeries) and isinstance(node.args.get("step"), exp.Interval) \
            and _date_type(rw, node, node.args["start"]) == "date":
        rw.fired.append("date_arithmetic")
        for part in ("start", "end"):
            node.set(part, exp.cast(node.args[part], "timestamp", copy=False))
        node.set("_elt_wrapped", True)
        return node
    return node


def _sign_kept(node: exp.Expression, x: exp.Expression) -> exp.Expression:
    """abs(f(x)) * signum(x): f's value with x's sign, so -0.4 and -0.0 give -0.0."""
    return exp.Paren(this=exp.Mul(this=exp.Abs(this=node), expression=_fn("signum", x.copy())))


def rule_negative_zero(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """round / floor / ceil / trunc of a DOUBLE keep the sign of zero in DuckDB (round(-0.4)
    is -0.0), Spark's give 0.0: the result takes the argument's sign."""
    if not isinstance(node, exp.Round | exp.Floor | exp.Ceil | exp.Trunc) \
            or node.args.get("_elt_wrapped") or _fraction_kind(rw, node, node.this) != "double":
        return node
    rw.fired.append("negative_zero")
    x = node.this
    if isinstance(node, exp.Trunc) and not node.args.get("decimals"):
        return _sign_kept(exp.Paren(this=exp.Sub(this=x.copy(), expression=exp.Mod(
            this=x.copy(), expression=exp.Literal.number(1)))), x)
    whole = isinstance(node, exp.Floor | exp.Ceil) and not node.args.get("decimals")
    return rw.wrap(node, lambda n: _sign_kept(exp.cast(n, "double", copy=False) if whole
                                              else n, x))


def rule_int_division(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """a // b keeps the integer type of its operands in DuckDB, BIGINT in Spark (DIV)."""
    if not isinstance(node, exp.IntDiv) or node.args.get("_elt_wrapped"):
        return node
    left, right = _int_type(rw, node, node.this), _int_type(rw, node, node.expression)
    if left and right and "bigint" not in (left, right):
        rw.fired.append("int_division")
        wider = max(left, right, key=["tinyint", "smallint", "int"].index)
        return rw.wrap(node, _cast_to(wider))
    return node


def _not_null(x: exp.Expression) -> exp.Expression:
    return exp.Not(this=exp.Is(this=x, expression=exp.Null()))


def _lambda(body: exp.Expression, name: str = "__x") -> exp.Lambda:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(name)])


def _without_nulls(array: exp.Expression) -> exp.Expression:
    return exp.ArrayFilter(this=array, expression=_lambda(_not_null(exp.column("__x"))))


def rule_lists_with_nulls(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """list_contains(l, x) is false when x is missing and l holds NULLs in DuckDB, NULL in
    Spark; list_distinct drops NULLs in DuckDB, array_distinct keeps one; len() of it."""
    if node.args.get("_elt_spark") or node.args.get("_elt_wrapped"):
        return node
    if isinstance(node, exp.ArrayContains):
        rw.fired.append("lists_with_nulls")
        lst, x = node.this.copy(), node.expression.copy()
        missing = exp.Or(this=exp.Is(this=lst, expression=exp.Null()),
                         expression=exp.Is(this=x, expression=exp.Null()))
        return rw.wrap(node, lambda n: exp.Case(
            ifs=[exp.If(this=missing, true=exp.Null())],
            default=exp.Coalesce(this=n, expressions=[exp.false()])))
    if isinstance(node, exp.Length) and isinstance(node.this, exp.ArrayDistinct):
        rw.fired.append("lists_with_nulls")
        return exp.ArraySize(this=rule_lists_with_nulls(rw, node.this))
    if isinstance(node, exp.ArrayDistinct):
        rw.fired.append("lists_with_nulls")
        out = exp.ArrayDistinct(this=_without_nulls(node.this.copy()))
        out.set("_elt_spark", True)
        return out
    return node


def rule_ordered_list(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """list(x ORDER BY o) keeps NULL elements in DuckDB, Spark's collect_list drops them:
    collect (null-flag, o, x) structs, sort them, keep x (one ordering key)."""
    if not isinstance(node, exp.ArrayAgg) or not isinstance(node.this, exp.Order) \
            or node.args.get("_elt_spark"):
        return node
    order = node.this
    if len(order.expressions) != 1:
        raise MissingRule("list(x ORDER BY a, b)", "order by one key (a struct or a "
                          "concatenation of the keys)")
    key = order.expressions[0]
    desc, nulls_first = bool(key.args.get("desc")), bool(key.args.get("nulls_first"))
    flag = exp.Is(this=key.this.copy(), expression=exp.Null())
    if desc != nulls_first:
        flag = exp.Not(this=flag)
    rw.fired.append("ordered_list")
    entries = exp.Struct(expressions=[exp.alias_(flag, "n"), exp.alias_(key.this.copy(), "o"),
                                      exp.alias_(order.this.copy(), "v")])
    collected = _fn("collect_list", entries)
    collected.set("_elt_spark", True)
    ordered = _fn("sort_array", collected, exp.false() if desc else exp.true())
    return _fn("transform", ordered, _lambda(exp.Dot(this=exp.column("__e"),
                                                     expression=exp.to_identifier("v")),
                                             "__e"))


def rule_json_values(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """json_array_length is UBIGINT in DuckDB (no Spark type): the length of the array at
    the path where its value is used (a comparison, a cast); refused as a column of its
    own, whose type would differ."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "json_array_length"):
        return node
    if isinstance(node.parent, exp.Alias | exp.Select):
        raise MissingRule("json_array_length()", "write CAST(json_array_length(j, path) AS "
                          "BIGINT): DuckDB's UBIGINT has no Spark type")
    args = node.expressions
    if len(args) == 2 and not node.args.get("_elt_wrapped"):  # in place: its parts keep rules
        rw.fired.append("json_values")
        node.set("expressions", [exp.JSONExtract(this=args[0], expression=args[1])])
        node.set("_elt_wrapped", True)
    return node


def rule_table_refusals(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """Table-level DuckDB spellings sqlglot turns into Spark SQL that fails or differs."""
    if isinstance(node, exp.Table) and isinstance(node.this, exp.GenerateSeries):
        raise MissingRule("range(n) / generate_series(...) as a table",
                          "write SELECT unnest(generate_series(a, b)) AS i")
    if isinstance(node, exp.Pivot) and node.args.get("using"):
        raise MissingRule("PIVOT ... ON ... USING", "write the standard "
                          "SELECT * FROM t PIVOT (agg(v) FOR k IN (...))")
    if isinstance(node, exp.Select) and node.args.get("qualify") is not None \
            and any(isinstance(p, exp.Star) for p in node.expressions):
        raise MissingRule("SELECT * ... QUALIFY", "name the columns, or filter the window "
                          "in an outer SELECT")
    return node


PARITY_RULES = [rule_table_refusals, rule_json_values, rule_lists_with_nulls,
                rule_ordered_list, rule_negative_zero, rule_integer_sums, rule_sign,
                rule_date_arithmetic, rule_int_division]
