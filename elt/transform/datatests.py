"""Running data tests: generic (elt/graph/tests.py) and singular `*.test.sql` alike.

The failing rows are kept in `test_failures.<test>` (replaced each run) so a failure can be
inspected with `elt sql`, and the message names the first rows by their key values so it is
actionable on its own.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import duckdb

from elt.core.db import FAILURES_SCHEMA, quote
from elt.graph.dag import Graph, Node
from elt.project.modelfile import strip_sql

SAMPLE_ROWS = 5
MAX_CELL = 200  # characters of one cell in a sample; a payload of megabytes is cut here


@dataclass
class TestOutcome:
    """Result of running one test: failing row count and up to 5 described rows."""

    status: str                      # pass | fail | warn
    failures: int
    message: str | None = None
    samples: list[str] = field(default_factory=list)



def run_test(cur: duckdb.DuckDBPyConnection, node: Node, graph: Graph,
             sql: str | None = None) -> TestOutcome:
    """Store the failing rows in test_failures.<name>; count and describe the first ones.

    The rows are counted first: a count reads only the columns the test's condition needs
    (DuckDB prunes the rest of `SELECT *`), where storing them would read every column of
    the model, e.g. megabytes of payload text, for a test that passes. A passing test
    leaves an empty test_failures table with the same columns (LIMIT 0 reads nothing)."""
    sql = strip_sql(sql or node.sql)  # `sql`: the test over the rebuilt partitions only
    row = cur.execute(f"SELECT count(*) FROM (\n{sql}\n) AS __elt_failing").fetchone()
    if not row or not row[0]:
        cur.execute(f"CREATE OR REPLACE TABLE {node.qualified} AS SELECT * FROM (\n{sql}\n) "
                    "AS __elt_failing LIMIT 0")
        return TestOutcome("pass", 0)
    cur.execute(f"CREATE OR REPLACE TABLE {node.qualified} AS\n{sql}")
    row = cur.execute(f"SELECT count(*) FROM {node.qualified}").fetchone()
    failures = int(row[0]) if row else 0
    if not failures:
        return TestOutcome("pass", 0)
    keys = _key_columns(cur, node, graph)
    described = ", ".join(
        f"'{c.replace(chr(39), chr(39) * 2)}=' || {_cut(f'CAST({quote(c)} AS VARCHAR)')}"
        for c in keys)
    order = ", ".join(quote(c) for c in keys)
    samples = [r[0] for r in cur.execute(
        f"SELECT concat_ws(', ', {described}) FROM {node.qualified} "
        f"ORDER BY {order} NULLS FIRST LIMIT {SAMPLE_ROWS}").fetchall()]
    status = "fail" if node.severity == "error" else "warn"
    more = f" (+{failures - 1:,} more)" if failures > 1 else ""
    message = (f"test {node.name}: {failures:,} failing row(s), e.g. {samples[0]}{more}; "
               f"see {FAILURES_SCHEMA}.{node.identifier}")
    return TestOutcome(status, failures, message, samples)


run_test.__test__ = False  # type: ignore[attr-defined]


def passed(cur: duckdb.DuckDBPyConnection, node: Node, sql: str | None = None) -> TestOutcome:
    """A test known to have no failing row: leave its empty test_failures table."""
    cur.execute(f"CREATE OR REPLACE TABLE {node.qualified} AS SELECT * FROM (\n"
                f"{strip_sql(sql or node.sql)}\n) AS __elt_failing LIMIT 0")
    return TestOutcome("pass", 0)


class FusedCounts:
    """The row tests of one model counted in one scan of it, not one scan per test.

    Row tests (not_null, accepted_values, relationships, expression) are a predicate over
    the model's rows; a model of large text (payloads) costs most in reading the text, so
    reading it once for all its tests is the saving. The first test of a model to run
    counts for its siblings in this run; a sibling reads its count. Counts over the same
    relation only (the rebuilt partitions, or the whole table)."""

    def __init__(self, graph: Graph, names: list[str]) -> None:
        self._siblings: dict[str, list[Node]] = {}
        for name in names:
            node = graph.nodes[name]
            if node.kind == "test" and node.condition and node.owner:
                self._siblings.setdefault(node.owner, []).append(node)
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._counts: dict[str, dict[str, int] | None] = {}

    def failing(self, cur: duckdb.DuckDBPyConnection, node: Node, relation: str) -> int | None:
        """Failing rows of `node` over `relation`, or None: count it alone (an error in any
        sibling's condition makes the fused query fail; each then reports its own)."""
        siblings = self._siblings.get(node.owner or "", [])
        if len(siblings) < 2 or not node.condition:
            return None
        key = f"{node.owner}\0{relation}"
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._counts:
                self._counts[key] = _count_all(cur, relation, siblings)
        counts = self._counts[key]
        return None if counts is None else counts.get(node.name)


def _count_all(cur: duckdb.DuckDBPyConnection, relation: str,
               tests: list[Node]) -> dict[str, int] | None:
    columns = ", ".join(f"count_if(({t.condition}))" for t in tests)
    try:
        row = cur.execute(f"SELECT {columns} FROM {relation} AS child").fetchone()
    except duckdb.Error:
        return None
    return {t.name: int(n or 0) for t, n in zip(tests, row or (), strict=True)}  # NULL: no rows


def _cut(text: str) -> str:
    """SQL: the text (or NULL) cut to MAX_CELL characters with a marker of what was left out,
    so a failing row with a huge cell cannot flood the log (it is whole in test_failures)."""
    return (f"coalesce(CASE WHEN length({text}) > {MAX_CELL} THEN left({text}, {MAX_CELL}) "
            f"|| '... [+' || (length({text}) - {MAX_CELL}) || ' chars]' ELSE {text} END, 'NULL')")


def _key_columns(cur: duckdb.DuckDBPyConnection, node: Node, graph: Graph) -> list[str]:
    """Columns that identify a failing row: the model's unique_key, else the tested ones."""
    have = [r[0] for r in cur.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND "
        "table_name = ? ORDER BY ordinal_position", [node.schema, node.identifier]).fetchall()]
    return key_columns(have, node, graph)


def key_columns(have: list[str], node: Node, graph: Graph) -> list[str]:
    """Of the failing rows' columns `have`, those that name a row in a message (the Spark
    build describes failing rows with the same columns)."""
    lower = {c.lower(): c for c in have}
    owner = graph.nodes.get(node.owner or "")
    for candidates in ((owner.unique_key if owner else []), node.config.get("columns") or []):
        picked = [lower[c.lower()] for c in candidates if c.lower() in lower]
        if picked:
            extra = [c for c in (node.config.get("columns") or []) if c.lower() in lower]
            count = ["n_records"] if "n_records" in lower else []
            return list(dict.fromkeys(picked + [lower[c.lower()] for c in extra] + count))
    return have[:4]
