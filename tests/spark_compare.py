"""Comparing a DuckDB relation with a Spark one: values (NaN, -0.0 and 0.0 told apart) and
column types (DuckDB's type as Spark spells it). Shared by the parity test and the corpus."""

from __future__ import annotations

import decimal
import math
from typing import Any

from sqlglot import exp

# DuckDB types that reach Spark as text (the parquet hand-over writes them so)
_AS_TEXT = {"JSON", "UUID"}
# Spark has no 128-bit integer: DuckDB's HUGEINT results (sum / count_if of integers) are
# DECIMAL(38,0) on Spark (elt/engines/spark/parity.py), the same exact integers, no overflow
_SPARK_SPELLING = {"HUGEINT": "decimal(38,0)"}


def norm(value: Any) -> Any:
    """Doubles to 9 decimals with -0.0 kept apart from 0.0 (`"-0.0"`), NaN as text, lists
    and rows as tuples (Spark rows vs DuckDB tuples), dicts as sorted items."""
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value() \
            and value.as_tuple().exponent == 0:
        return int(value)  # DECIMAL(p,0): an integer, as HUGEINT's are (types compared apart)
    if isinstance(value, decimal.Decimal):
        return ("decimal", str(value.normalize()) if value else "0")
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if value == 0:
            return "-0.0" if math.copysign(1.0, value) < 0 else 0.0
        return round(value, 9)
    if isinstance(value, dict):
        return tuple((k, norm(v)) for k, v in value.items())
    if hasattr(value, "asDict"):  # a Spark Row (a struct value)
        return tuple((k, norm(v)) for k, v in value.asDict().items())
    if isinstance(value, list | tuple):
        return tuple(norm(v) for v in value)
    return value


def rows(values: Any) -> list[tuple]:
    return sorted((tuple(norm(v) for v in r) for r in values), key=repr)


def spark_type(duck_type: str) -> str:
    """DuckDB's column type as Spark's simpleString spells it (JSON and UUID as string)."""
    if duck_type.upper() in _AS_TEXT:
        return "string"
    if duck_type.upper() in _SPARK_SPELLING:
        return _SPARK_SPELLING[duck_type.upper()]
    text = exp.DataType.build(duck_type, dialect="duckdb").sql("spark").lower()
    return text.replace(" ", "").replace("timestamp_ntz", "timestamp_ntz")


def duck_types(con: Any, relation: str) -> list[str]:
    return [spark_type(r[1]) for r in con.execute(f"DESCRIBE {relation}").fetchall()]


def spark_types(frame: Any) -> list[str]:
    return [f.dataType.simpleString().replace(" ", "") for f in frame.schema.fields]
