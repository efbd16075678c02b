"""Spark rules for DuckDB idioms that Spark runs without an error but answers differently
(found by the differential corpus, tests/test_spark_corpus.py): each rewrites the construct
to what gives DuckDB's result, or refuses it at compile time saying what to write instead.
A silent difference is the one outcome these rules exist to rule out."""

from __future__ import annotations

import re

from sqlglot import exp

from elt.build.spark_rules import MissingRule, Rewrite, column_type


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
    if isinstance(x, exp.Paren):
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


IDIOM_RULES = [rule_date_diff, rule_regexp_replace, rule_arg_max_skips_null, rule_cast_rounds,
               rule_hash, rule_epoch]
