"""Spark rules for DuckDB idioms that Spark runs without an error but answers differently
(found by the differential corpus, tests/test_spark_corpus.py): each rewrites the construct
to what gives DuckDB's result, or refuses it at compile time saying what to write instead.
A silent difference is the one outcome these rules exist to rule out."""

from __future__ import annotations

import re

from sqlglot import exp

from elt.engines.spark.rules import MissingRule, Rewrite, column_type


def _fn(name: str, *args: exp.Expression) -> exp.Anonymous:
    return exp.Anonymous(this=name, expressions=list(args))


def _bigint(node: exp.Expression) -> exp.Cast:
    return exp.cast(exp.Paren(this=node), "bigint")


def _months(x: exp.Expression, per_year: int, part: str) -> exp.Expression:
    """year(x) * per_year + <part>(x): a count of calendar boundaries since year 0."""
    year = exp.Mul(this=exp.Year(this=x.copy()), expression=exp.Literal.number(per_year))
    return exp.Add(this=year, expression=_fn(part, x.copy())) if part else year


def rule_date_diff(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """date_diff('day'|'week'?|'month'|'quarter'|'year', a, b) -> the number of unit
    boundaries between a and b, as DuckDB counts them (Spark's DATEDIFF(MONTH, ...) counts
    complete units: 2024-01-31 -> 2024-02-01 is 1 month in DuckDB, 0 in Spark)."""
    if not (isinstance(node, exp.DateDiff) and node.args.get("date_part_boundary")):
        return node
    unit = (node.unit.name if node.unit is not None else "day").lower().rstrip("s")
    end, start = node.this, node.expression
    if unit == "day":
        out: exp.Expression = _fn("datediff", exp.cast(end.copy(), "date"),
                                  exp.cast(start.copy(), "date"))
    elif unit in ("month", "quarter", "year"):
        per_year, part = {"month": (12, "month"), "quarter": (4, "quarter"),
                          "year": (1, "")}[unit]
        out = exp.Sub(this=exp.Paren(this=_months(end, per_year, part)),
                      expression=exp.Paren(this=_months(start, per_year, part)))
    else:
        raise MissingRule(f"date_diff('{unit}', ...)",
                          "write date_diff('day', a, b) (or month/quarter/year), or "
                          "epoch(b) - epoch(a) for seconds")
    rw.fired.append("date_diff")
    return _bigint(out)


def _spark_replacement(text: str, shift: int) -> str:
    """DuckDB's (RE2) replacement text -> Java's: \\N -> $N (shifted past the groups the
    rewrite adds), a literal $ escaped."""
    if re.search(r"\\(?!\d)", text):
        raise MissingRule("regexp_replace with a backslash in the replacement",
                          "use a replacement of plain text or \\1-style groups only")
    text = text.replace("$", "\\$")
    return re.sub(r"\\(\d)", lambda m: f"${int(m.group(1)) + shift}", text)


def rule_regexp_replace(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """regexp_replace(s, p, r) without the 'g' option replaces the first match in DuckDB,
    every match in Spark: the first-match form becomes `^(.*?)(?:p)` replaced by `$1r`
    (anchored, so it matches once); both forms get Java's replacement spelling."""
    if not isinstance(node, exp.RegexpReplace) or node.args.get("_elt_spark"):
        return node
    repl, mods = node.args.get("replacement"), node.args.get("modifiers")
    options = mods.name if isinstance(mods, exp.Literal) and mods.is_string else \
        ("" if mods is None else "?")
    if not (isinstance(repl, exp.Literal) and repl.is_string) or set(options) - set("gi"):
        raise MissingRule("regexp_replace with a computed replacement or options other "
                          "than 'g' and 'i'", "use a literal replacement and the options "
                          "'g' / 'i' or none")
    first = "g" not in options
    pattern = node.expression.copy()
    if first or "i" in options:
        pattern = exp.Concat(expressions=[
            exp.Literal.string(("(?i)" if "i" in options else "")
                               + ("(?s)^(.*?)(?:" if first else "(?:")),
            pattern, exp.Literal.string(")")])
    text = ("$1" if first else "") + _spark_replacement(repl.name, 1 if first else 0)
    rw.fired.append("regexp_replace_first" if first else "regexp_replace")
    return exp.RegexpReplace(this=node.this.copy(), expression=pattern,
                             replacement=exp.Literal.string(text), _elt_spark=True)


def rule_arg_max_skips_null(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """arg_max(x, v) / arg_min skip rows where x is NULL in DuckDB; Spark's max_by returns
    NULL when the max row's x is: the ordering value is nulled where x is NULL (max_by
    skips NULL orderings)."""
    if not isinstance(node, (exp.ArgMax, exp.ArgMin)) or node.args.get("count"):
        return node
    value, order = node.this, node.expression
    if isinstance(order, exp.If) and order.args.get("_elt_spark"):
        return node
    guarded = exp.If(this=exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                     true=order.copy(), false=exp.Null(), _elt_spark=True)
    rw.fired.append("arg_max_skips_null")
    return type(node)(this=value.copy(), expression=guarded)


_INTEGERS = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT,
             exp.DataType.Type.BIGINT}


def _fraction_kind(rw: Rewrite, node: exp.Expression, x: exp.Expression) -> str | None:
    """'decimal' or 'double' when x is a fraction type, else None (integers and text:
    Spark casts them as DuckDB does)."""
    if isinstance(x, exp.Literal) and not x.is_string:
        return "double" if "e" in x.name.lower() else ("decimal" if "." in x.name else None)
    if isinstance(x, exp.Cast):
        if x.to.is_type(exp.DataType.Type.DECIMAL):
            return "decimal"
        if x.to.is_type(exp.DataType.Type.DOUBLE, exp.DataType.Type.FLOAT):
            return "double"
        return None
    if isinstance(x, exp.Div):
        return "double"
    if isinstance(x, exp.Paren | exp.Neg):
        return _fraction_kind(rw, node, x.this)
    if isinstance(x, exp.Column):
        t = column_type(rw, node, x) or ""
        return "decimal" if t.startswith("decimal") else (
            "double" if t in ("double", "float") else None)
    return None


def rule_cast_rounds(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """CAST(fraction AS INTEGER) rounds in DuckDB and truncates in Spark: a DECIMAL rounds
    half away from zero (ROUND), a DOUBLE half to even (BROUND), as DuckDB does."""
    if not isinstance(node, exp.Cast) or node.to.this not in _INTEGERS \
            or node.args.get("_elt_spark"):
        return node
    kind = _fraction_kind(rw, node, node.this)
    if kind is None:
        return node
    rounded = exp.Round(this=node.this.copy()) if kind == "decimal" \
        else _fn("bround", node.this.copy())
    rw.fired.append("cast_rounds")
    out = node.copy()
    out.set("this", rounded)
    out.set("_elt_spark", True)
    return out


def rule_hash(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """hash(x): DuckDB's 64-bit hash has no Spark spelling (Spark's hash() is another
    function, 32-bit murmur3): refused, saying what gives one value on both engines."""
    if isinstance(node, exp.Anonymous) and node.name.lower() == "hash":
        raise MissingRule("hash()", "use md5(CAST(x AS VARCHAR)) (the same text on both "
                          "engines) where a hash of the value is wanted")
    return node


def rule_epoch(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """epoch(ts) -> seconds as DOUBLE with the fraction (Spark's unix_timestamp is BIGINT
    whole seconds)."""
    if not isinstance(node, exp.TimeToUnix):
        return node
    rw.fired.append("epoch")
    micros = _fn("unix_micros", exp.cast(node.this.copy(), "timestamp_ltz"))
    return exp.Paren(this=exp.Div(this=exp.cast(micros, "double"),
                                  expression=exp.Literal.number(1000000)))


def rule_isnan_null(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """isnan(NULL) is NULL in DuckDB, false in Spark (a NULL row passed `WHERE NOT isnan(x)`
    on Spark only)."""
    if not isinstance(node, exp.IsNan) or node.args.get("_elt_spark"):
        return node
    rw.fired.append("isnan_null")
    inner = exp.IsNan(this=node.this.copy(), _elt_spark=True)
    return exp.Case(ifs=[exp.If(this=exp.Is(this=node.this.copy(), expression=exp.Null()),
                                true=exp.Null())], default=inner)


# functions whose integer result is BIGINT in DuckDB and INT in Spark
_BIGINT_RESULTS = (exp.Length, exp.StrPosition, exp.Year, exp.Month, exp.Day, exp.Extract,
                   exp.ArraySize, exp.DayOfWeek)
_BIGINT_WINDOWS = (exp.RowNumber, exp.Rank, exp.DenseRank, exp.Ntile)


def rule_bigint_results(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """length(), strpos(), year()/month()/day()/extract(), len() and row_number() / rank() /
    dense_rank() / ntile() are BIGINT in DuckDB, INT in Spark: cast to BIGINT."""
    if isinstance(node.parent, exp.Cast) and node.parent.args.get("_elt_spark"):
        return node
    if isinstance(node, exp.Window) and isinstance(node.this, _BIGINT_WINDOWS) \
            or isinstance(node, _BIGINT_RESULTS) and not isinstance(node.parent, exp.Window):
        rw.fired.append("bigint_results")
        out = exp.cast(node.copy(), "bigint")
        out.set("_elt_spark", True)
        return out
    return node


def rule_quantile_cont(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """quantile_cont(x, q) -> percentile(x, q): both interpolate linearly (Spark's
    percentile_cont takes the WITHIN GROUP form only)."""
    if isinstance(node, exp.PercentileCont) and node.args.get("expression") is not None:
        rw.fired.append("quantile_cont")
        return _fn("percentile", node.this.copy(), node.expression.copy())
    return node


def rule_list_index(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """l[i] is NULL past the end in DuckDB, an error in Spark (ANSI): try_element_at (both
    1-based, negative from the end)."""
    if isinstance(node, exp.Bracket) and len(node.expressions) == 1 \
            and isinstance(node.expressions[0], exp.Literal | exp.Neg) \
            and not node.expressions[0].is_string and not node.args.get("safe"):
        # sqlglot keeps DuckDB's index 0-based (l[1] as 0, l[-1] as -2): back to 1-based
        index = node.expressions[0]
        n = -int(index.this.name) if isinstance(index, exp.Neg) else int(index.name)
        rw.fired.append("list_index")
        return _fn("try_element_at", node.this.copy(), exp.Literal.number(n + 1))
    return node


def rule_refusals(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """Constructs Spark cannot give DuckDB's answer for, refused with what to write."""
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.INT128:
        raise MissingRule("HUGEINT", "use DECIMAL(38,0): Spark has no 128-bit integer")
    if isinstance(node, exp.First) and node.find(exp.Order) is not None:
        raise MissingRule("first(... ORDER BY ...)", "write arg_min(x, ordering) (or "
                          "arg_max for the last)")
    return node


def rule_date_parts(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """extract(dow ...) counts Sunday as 0 in DuckDB, 1 in Spark; date_trunc is TIMESTAMP
    in DuckDB, Spark's session-zoned TIMESTAMP; floor/ceil of a DOUBLE stay DOUBLE in
    DuckDB, BIGINT in Spark."""
    if isinstance(node, exp.Extract) and node.this.name.lower() in ("dow", "dayofweek"):
        rw.fired.append("date_parts")
        out = exp.cast(exp.Paren(this=exp.Sub(this=exp.DayOfWeek(this=node.expression.copy()),
                                              expression=exp.Literal.number(1))), "bigint")
        out.set("_elt_spark", True)
        return out
    if isinstance(node, exp.DateTrunc | exp.TimestampTrunc) \
            and not isinstance(node.parent, exp.Cast):
        rw.fired.append("date_parts")
        return exp.cast(node.copy(), "timestamp")
    if isinstance(node, exp.Floor | exp.Ceil) and not node.args.get("decimals") \
            and not node.args.get("_elt_wrapped") \
            and _fraction_kind(rw, node, node.this) == "double":
        rw.fired.append("date_parts")
        return exp.cast(node.copy(), "double")
    return node


def _double(text: str) -> exp.Expression:
    return exp.cast(exp.Literal.string(text), "double")


def rule_divide(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """x / 0 is IEEE in DuckDB (inf, -inf, NaN for 0/0), an error in Spark (ANSI)."""
    if not isinstance(node, exp.Div) or node.args.get("_elt_spark"):
        return node
    a, b = node.this, node.expression
    if isinstance(b, exp.Literal) and not b.is_string and float(b.name) != 0:
        return node
    rw.fired.append("divide")
    inner = node.copy()
    inner.set("_elt_spark", True)
    zero = exp.Case(ifs=[
        exp.If(this=exp.Is(this=a.copy(), expression=exp.Null()), true=exp.Null()),
        exp.If(this=exp.GT(this=a.copy(), expression=exp.Literal.number(0)),
               true=_double("Infinity")),
        exp.If(this=exp.LT(this=a.copy(), expression=exp.Literal.number(0)),
               true=_double("-Infinity"))], default=_double("NaN"))
    return exp.Paren(this=exp.Case(ifs=[exp.If(this=exp.EQ(this=b.copy(),
                                                          expression=exp.Literal.number(0)),
                                               true=zero)], default=inner))


def rule_double_text(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """CAST(double AS VARCHAR) spells NaN and infinities 'nan', 'inf', '-inf' in DuckDB,
    'NaN', 'Infinity', '-Infinity' in Spark."""
    if not (isinstance(node, exp.Cast) and node.to.is_type(*exp.DataType.TEXT_TYPES)) \
            or node.args.get("_elt_spark") or _fraction_kind(rw, node, node.this) != "double":
        return node
    rw.fired.append("double_text")
    x = node.this
    text = node.copy()
    text.set("_elt_spark", True)
    inf = exp.cast(exp.Literal.string("Infinity"), "double")
    return exp.Case(ifs=[
        exp.If(this=_fn("isnan", x.copy()), true=exp.Literal.string("nan")),
        exp.If(this=exp.EQ(this=x.copy(), expression=inf), true=exp.Literal.string("inf")),
        exp.If(this=exp.EQ(this=x.copy(), expression=exp.Neg(this=inf.copy())),
               true=exp.Literal.string("-inf"))], default=text)


IDIOM_RULES = [rule_refusals, rule_date_parts, rule_divide, rule_double_text,
               rule_quantile_cont, rule_list_index, rule_isnan_null, rule_bigint_results,
               rule_date_diff, rule_regexp_replace, rule_arg_max_skips_null, rule_cast_rounds,
               rule_hash, rule_epoch]
