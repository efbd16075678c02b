"""The DuckDB -> Spark rewrite rules on their own (no Spark needed): the schema oracle is a
table of columns per relation; the Spark parity test runs them against Spark itself."""

from __future__ import annotations

import pytest

from elt.engines.spark.rules import MissingRule
from elt.engines.spark.sql import to_spark

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
    assert fired == ["bigint_results", "len_list"]  # both BIGINT, as DuckDB's len()
    assert "CAST(SIZE(ids) AS BIGINT)" in sql
    assert "CAST(LENGTH(CAST(x AS STRING)) AS BIGINT)" in sql


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


# -- idioms Spark answers differently (spark_idioms); the corpus checks them on Spark itself --
TYPED = {"SELECT * FROM `t`": [("d", "double"), ("m", "decimal(6,2)"), ("n", "string"),
                               ("v", "bigint"), ("l", "array<int>")]}


def typed(sql: str) -> tuple[str, list[str]]:
    return to_spark(sql, lambda q: TYPED[q], lambda name: True)


def test_date_diff_counts_boundaries_as_duckdb_does() -> None:
    sql, fired = typed("SELECT date_diff('month', a, b), date_diff('day', a, b) FROM t")
    assert "date_diff" in fired
    assert "(YEAR(b) * 12 + MONTH(b)) - (YEAR(a) * 12 + MONTH(a))" in sql
    assert "DATEDIFF(CAST(b AS DATE), CAST(a AS DATE))" in sql and "MONTH, a" not in sql


def test_regexp_replace_without_g_replaces_the_first_match_only() -> None:
    sql, fired = typed("SELECT regexp_replace(n, '[0-9]', '#'), "
                       "regexp_replace(n, '([a-z])', '\\1$', 'g') FROM t")
    assert "regexp_replace_first" in fired
    assert "CONCAT('(?s)^(.*?)(?:', '[0-9]', ')'), '$1#')" in sql
    assert "REGEXP_REPLACE(n, '([a-z])', '$1\\\\$')" in sql  # \1 -> $1, a literal $ escaped


def test_arg_max_skips_rows_whose_value_is_null() -> None:
    sql, _ = typed("SELECT arg_max(n, v) FROM t")
    assert sql == "SELECT MAX_BY(n, IF(NOT n IS NULL, v, NULL)) FROM t"


def test_casts_to_integer_round_decimals_half_away_and_doubles_half_even() -> None:
    sql, _ = typed("SELECT CAST(m AS INT), CAST(d AS BIGINT), CAST(-1.5 AS INT), "
                   "CAST(v AS INT) FROM t")
    assert "CAST(ROUND(m) AS INT)" in sql and "CAST(BROUND(d) AS BIGINT)" in sql
    assert "CAST(ROUND(-1.5) AS INT)" in sql and "CAST(v AS INT)" in sql


def test_hash_is_refused_saying_what_to_write() -> None:
    with pytest.raises(MissingRule) as err:
        typed("SELECT hash(n) FROM t")
    assert err.value.construct == "hash()" and "md5(" in err.value.instead


def test_epoch_keeps_the_fraction_as_double() -> None:
    sql, _ = typed("SELECT epoch(ts) FROM t")
    assert "CAST(UNIX_MICROS(CAST(ts AS TIMESTAMP_LTZ)) AS DOUBLE) / 1000000" in sql
