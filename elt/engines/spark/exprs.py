"""Spark rewrite rules on single expressions (no schema needed): one function per DuckDB
construct, each returning the node unchanged when it does not apply. The driver and the
rules that need a relation's columns are in spark_rules.py / spark_sql.py."""

from __future__ import annotations

import json

from sqlglot import exp

from elt.engines.spark.rules import MissingRule, Rewrite, column_type


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
        value = node.expressions[0]  # to_json(NULL) is NULL in DuckDB, 'null' in Spark
        return exp.Case(ifs=[exp.If(this=exp.Is(this=value.copy(), expression=exp.Null()),
                                    true=exp.Null())], default=_scalar_json(value))
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


def _json_elements(array_text: exp.Expression) -> exp.Expression:
    """The elements of a JSON array as JSON text (strings keep their quotes, as DuckDB's
    JSON values do): through Spark's VARIANT, which keeps each element's JSON type."""
    variants = exp.cast(_fn("parse_json", array_text),
                        exp.DataType.build("array<variant>", dialect="spark"))
    return _fn("transform", variants, exp.Lambda(this=_fn("to_json", exp.column("__v")),
                                                 expressions=[exp.to_identifier("__v")]))


def rule_unnest_json_array(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """unnest(json_extract(j, '$.a[*]')) -> explode of the elements of get_json_object(j,
    '$.a'), each element as JSON text, as DuckDB's JSON values are."""
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
        return exp.Explode(this=_json_elements(obj))
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
    return exp.cast(exp.ArraySize(this=exp.ArrayFilter(this=node.expressions[0].copy(),
                                                       expression=keep)), "bigint")


def rule_cast_json_list(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """CAST/TRY_CAST(json AS T[]) -> from_json(json, 'array<t>') (NULL where it does not fit)."""
    if isinstance(node, exp.Cast) and node.to.is_type(exp.DataType.Type.ARRAY) \
            and isinstance(node.this, exp.JSONExtract) \
            and isinstance(node.this.expression, (exp.JSONPath, exp.Literal)):
        rw.fired.append("cast_json_list")
        return _fn("from_json", node.this, exp.Literal.string(node.to.sql("spark").lower()))
    return node


def _arg_is_text(node: exp.Expression, arg: exp.Expression, rw: Rewrite) -> bool:
    """Whether json_type's argument is text (parsed as JSON, as DuckDB parses a VARCHAR) or
    a typed value (a number, list, struct: DuckDB casts it to JSON); text when its type
    cannot be told (DuckDB's JSON columns reach Spark as text)."""
    if not isinstance(arg, exp.Column):
        return not isinstance(arg, (exp.Literal, exp.Array, exp.Struct)) or arg.is_string
    return column_type(rw, node, arg) in (None, "string")


def rule_json_type(rw: Rewrite, node: exp.Expression) -> exp.Expression:
    """json_type(j [, path]) -> DuckDB's type name, read off Spark's VARIANT of the JSON:
    ARRAY, OBJECT, VARCHAR, BOOLEAN, UBIGINT (integers >= 0) / BIGINT, DOUBLE, NULL (a JSON
    null; SQL NULL where the path is missing). `j -> '$.p'` is read as a path into j, since
    Spark's get_json_object unquotes strings (a string of digits would read as a number)."""
    if not (isinstance(node, exp.JSONType)
            or (isinstance(node, exp.Anonymous) and node.name.lower() == "json_type")):
        return node
    args = [node.this, node.args.get("expression")] if isinstance(node, exp.JSONType) \
        else list(node.expressions)
    paths = [args[1]] if len(args) > 1 and args[1] is not None else []
    j = args[0]
    while True:
        if isinstance(j, exp.JSONExtract):
            paths.insert(0, j.expression)
            j = j.this
        elif isinstance(j, exp.Lambda) and isinstance(j.this, exp.Literal) \
                and j.this.is_string and len(j.expressions) == 1:
            # sqlglot reads `j -> '$.p'` as a function's argument as a lambda
            paths.insert(0, j.this)
            j = exp.column(j.expressions[0].name)
        else:
            break
    if _arg_is_text(node, j, rw):
        v = f"parse_json({rw.spark(j)})"
    else:  # a typed value: its JSON as DuckDB's cast would print it
        v = f"variant_get(parse_json(to_json(array({rw.spark(j)}))), '$[0]')"
    for path in paths:
        text = path.sql("spark") if isinstance(path, exp.JSONPath) else rw.spark(path)
        v = f"variant_get({v}, {text})"
    t = f"schema_of_variant({v})"
    rw.fired.append("json_type")
    # kept as Spark text: sqlglot would read variant_get/parse_json back as JSON extraction
    return exp.column(rw.placeholder(
        f"(CASE WHEN {v} IS NULL THEN NULL WHEN {t} = 'VOID' THEN 'NULL' "
        f"WHEN {t} LIKE 'OBJECT%' THEN 'OBJECT' WHEN {t} LIKE 'ARRAY%' THEN 'ARRAY' "
        f"WHEN {t} = 'STRING' THEN 'VARCHAR' WHEN {t} = 'BOOLEAN' THEN 'BOOLEAN' "
        f"WHEN {t} = 'BIGINT' THEN CASE WHEN variant_get({v}, '$', 'bigint') < 0 "
        f"THEN 'BIGINT' ELSE 'UBIGINT' END "
        f"WHEN {t} LIKE 'DECIMAL(%,0)' AND try_variant_get({v}, '$', 'decimal(20,0)') "
        f"BETWEEN 0 AND 18446744073709551615 THEN 'UBIGINT' ELSE 'DOUBLE' END)").name)


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
