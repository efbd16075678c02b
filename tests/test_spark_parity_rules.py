"""The type and edge-value rules of elt/engines/spark/parity.py on their own (no Spark): what
each rewrites a DuckDB construct to, and the refusals. tests/test_spark_corpus.py runs the
same constructs on both engines and compares the rows."""

from __future__ import annotations

import pytest

from elt.engines.spark.rules import MissingRule
from elt.engines.spark.sql import to_spark

COLUMNS = [("id", "int"), ("d", "double"), ("day", "date"), ("l", "array<int>"),
           ("happened", "timestamp"), ("kind", "string")]


def spark(sql: str) -> tuple[str, list[str]]:
    return to_spark(sql, lambda _sql: COLUMNS, lambda name: True)


def test_integer_sums_are_decimal_38_as_duckdbs_hugeint() -> None:
    sql, fired = spark("SELECT sum(id) AS s, sum(d) AS sd, count_if(id > 2) AS c, "
                       "sum(id) OVER (ORDER BY id) AS r FROM t")
    assert "integer_sums" in fired
    assert "CAST(SUM(id) AS DECIMAL(38, 0)) AS s" in sql
    assert "SUM(d) AS sd" in sql  # a DOUBLE sum stays DOUBLE
    assert "CAST(COUNT_IF(id > 2) AS DECIMAL(38, 0))" in sql
    assert "CAST(SUM(id) OVER (ORDER BY id" in sql  # the window cast as a whole


def test_negative_zero_keeps_the_arguments_sign() -> None:
    sql, fired = spark("SELECT round(d) AS r, floor(d) AS f, trunc(d) AS t FROM t")
    assert "negative_zero" in fired
    assert "ABS(ROUND(d)) * SIGNUM(d)" in sql
    assert "ABS(CAST(FLOOR(d) AS DOUBLE)) * SIGNUM(d)" in sql
    assert "ABS((d - d % 1)) * SIGNUM(d)" in sql


@pytest.mark.parametrize(("sql", "fragments"), [
    ("SELECT day + INTERVAL 1 MONTH AS a, day - DATE '2024-01-01' AS b, day - 1 AS c FROM t",
     ["CAST(day + INTERVAL '1' MONTH AS TIMESTAMP) AS a",
      "CAST(DATEDIFF(day, CAST('2024-01-01' AS DATE)) AS BIGINT) AS b", "day - 1 AS c"]),
    ("SELECT kind FROM t WHERE json_array_length(kind -> '$.a') = 2",
     ["JSON_ARRAY_LENGTH(GET_JSON_OBJECT(kind, '$.a')) = 2"]),
    ("SELECT list_contains(l, 6) AS c, len(list_distinct(l)) AS n, "
     "list(kind ORDER BY happened DESC) AS ks, id // 4 AS q FROM t",
     ["COALESCE(ARRAY_CONTAINS(l, 6), FALSE)",
      "ARRAY_DISTINCT(FILTER(l, __x -> NOT __x IS NULL))",
      "SORT_ARRAY(COLLECT_LIST(STRUCT(NOT happened IS NULL AS n, happened AS o, kind AS v)), "
      "FALSE)", "CAST(id DIV 4 AS INT) AS q"]),
], ids=["date_arithmetic", "json_array_length_compared", "lists_with_nulls"])
def test_rewritten_to_duckdbs_types_and_values(sql: str, fragments: list[str]) -> None:
    out, _ = spark(sql)
    for fragment in fragments:
        assert fragment in out, out


@pytest.mark.parametrize(("sql", "construct"), [
    ("SELECT * FROM range(3) t(i)", "range(n)"),
    ("SELECT * FROM (PIVOT t ON kind IN ('a') USING sum(id))", "PIVOT ... ON ... USING"),
    ("SELECT * FROM t QUALIFY rank() OVER (ORDER BY id) = 1", "SELECT * ... QUALIFY"),
    ("SELECT json_array_length(kind) AS n FROM t", "json_array_length()"),
])
def test_refused_with_what_to_write(sql: str, construct: str) -> None:
    with pytest.raises(MissingRule) as err:
        spark(sql)
    assert construct in err.value.construct and err.value.instead


def test_a_double_grouping_key_keeps_a_group_of_negative_zero() -> None:
    """Spark normalises grouping keys (-0.0 -> 0.0); the key comes back as -0.0 when its
    whole group holds -0.0 (bool_and over the rows, which are not normalised). A star is
    listed and GROUP BY ALL spelled out: the key is then output through an aggregate."""
    sql, fired = spark("SELECT * EXCLUDE (l, happened), count(*) AS n FROM t GROUP BY ALL")
    assert "grouped_negative_zero" in fired
    assert ("CASE WHEN BOOL_AND(CAST(`d` AS STRING) = '-0.0') THEN CAST('-0.0' AS DOUBLE) "
            "ELSE `d` END AS `d`") in sql
    assert sql.endswith("GROUP BY `id`, `d`, `day`, `kind`"), sql
    out = [*COLUMNS, ("k", "double")]  # what Spark's analyzer says of the SELECT
    sql, fired = to_spark("SELECT d * 2 AS k, kind, max(id) AS top FROM t GROUP BY d * 2, kind",
                          lambda _sql: out, lambda name: True)
    assert ("CASE WHEN BOOL_AND(CAST(d * 2 AS STRING) = '-0.0') THEN CAST('-0.0' AS DOUBLE) "
            "ELSE d * 2 END AS `k`") in sql
    assert "kind, MAX(id) AS top" in sql and sql.endswith("GROUP BY d * 2, kind"), sql
    _, fired = spark("SELECT kind, count(*) AS n FROM t GROUP BY kind")
    assert "grouped_negative_zero" not in fired  # no DOUBLE key: left as it is
