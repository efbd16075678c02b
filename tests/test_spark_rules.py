"""The DuckDB -> Spark rewrite rules on their own (no Spark needed): the schema oracle is a
table of columns per relation; the Spark parity test runs them against Spark itself."""

from __future__ import annotations

import pytest

from elt.build.spark_rules import MissingRule
from elt.build.spark_sql import to_spark

SCHEMAS = {
    "SELECT * FROM `raw`.`presence`": [("date", "string"), ("pcod", "string"),
                                       ("trips", "string"), ("visits", "string"),
                                       ("_elt_load_id", "bigint")],
    "SELECT * FROM `stg`": [("date", "timestamp"), ("unit", "string"), ("a", "double"),
                            ("b", "double")],
    "SELECT * FROM `v`": [("ids", "array<string>"), ("x", "double")],
}


def columns(sql: str) -> list[tuple[str, str]]:
    return SCHEMAS[sql]


def spark(sql: str, known: set[str] | None = None) -> tuple[str, list[str]]:
    return to_spark(sql, columns, lambda name: name.lower() in (known or set()))


def test_columns_exclude_expands_each_remaining_column_named_after_it() -> None:
    sql, fired = spark("SELECT try_cast(COLUMNS(* EXCLUDE (date, pcod, _elt_load_id)) AS "
                       "DOUBLE) FROM raw.presence")
    assert fired == ["columns_exclude"]
    assert "TRY_CAST(`trips` AS DOUBLE) AS `trips`" in sql
    assert "TRY_CAST(`visits` AS DOUBLE) AS `visits`" in sql and "pcod" not in sql


def test_unpivot_on_columns_lists_the_columns_for_spark() -> None:
    sql, fired = spark("SELECT date, n, v FROM (UNPIVOT stg ON COLUMNS(* EXCLUDE (date, "
                       "unit)) INTO NAME n VALUE v)")
    assert fired == ["unpivot_columns"]
    assert "UNPIVOT (`v` FOR `n` IN (`a`, `b`))" in sql


def test_json_object_is_text_built_in_key_order() -> None:
    sql, fired = spark("SELECT json_object('scope', s, 'mdid', m) AS p FROM t", {"to_json"})
    assert "json_object" in fired and "to_json_scalar" not in fired
    assert sql.index("'{\"scope\":'") < sql.index("',\"mdid\":'") < sql.index("'}'")
    assert "JSON_OBJECT" not in sql.upper()


def test_len_of_a_list_column_is_size_and_of_a_string_stays_length() -> None:
    sql, fired = spark("SELECT len(ids), len(CAST(x AS VARCHAR)) FROM v")
    assert fired == ["len_list"]
    assert "SIZE(ids)" in sql and "LENGTH(CAST(x AS STRING))" in sql


def test_a_duckdb_function_without_rule_is_named() -> None:
    with pytest.raises(MissingRule) as err:
        spark("SELECT damerau_levenshtein(a, 'b') FROM t")
    assert err.value.construct == "damerau_levenshtein()"
    sql, _ = spark("SELECT levenshtein(a, 'b') FROM t", known={"levenshtein"})
    assert "LEVENSHTEIN" in sql.upper()


def test_json_type_reads_a_path_into_the_json_not_spark_s_unquoted_text() -> None:
    """`payload -> '$.mdid'` as json_type's argument becomes a VARIANT path: Spark's
    get_json_object would hand over "123" unquoted, and it would read as a number."""
    sql, fired = spark("SELECT json_type(payload -> '$.mdid') IN ('UBIGINT', 'BIGINT') FROM t")
    assert "json_type" in fired
    assert "variant_get(parse_json(payload), '$.mdid')" in sql
    assert "GET_JSON_OBJECT" not in sql.upper() and "RLIKE" not in sql.upper()
