"""Running a publication's body check over a relation: one DuckDB query (the schema
compiled by schemasql.py via BodyChecker.sql), or, for the rules SQL cannot express, the
Python validator over the rows streamed in batches."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from elt.http.apischema import BodyChecker
from elt.http.jsonschema import Violation

SHOWN = 3          # rows described in a message
KEPT = 10_000      # failing rows the Python path keeps for a test_failures table


@dataclass
class Verdict:
    checked: int = 0
    failing: int = 0
    samples: list[str] = field(default_factory=list)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # key, path, rule, why


def sample(key: str, description: str, problems: Iterable[Any]) -> str:
    """`key K (POST /data): $.path: rule: message; ...` (at most three of the row's)."""
    shown = [p if isinstance(p, Violation) else Violation(p["path"], p["rule"], p["message"])
             for p in list(problems)[:3]]
    return f"key {key} ({description}): " + "; ".join(str(p) for p in shown)


def check_rows(rows: Iterable[tuple[str, str, Any]], checker: BodyChecker) -> Verdict:
    """(key, op, body text) rows checked in Python, streamed: only for a schema with rules
    SQL cannot express (checker.python_only)."""
    verdict = Verdict()
    for key, op, body in rows:
        verdict.checked += 1
        try:
            value = json.loads(body) if isinstance(body, str) else body
        except ValueError:
            problems = [Violation("$", "json", "not JSON")]
        else:
            problems = checker.errors(op, value)
        if not problems:
            continue
        verdict.failing += 1
        if len(verdict.rows) < KEPT:
            first = problems[0]
            verdict.rows.append((key, first.path, first.rule, first.message))
        if len(verdict.samples) < SHOWN:
            verdict.samples.append(sample(key, checker.describe(op), problems))
    return verdict


def re2_accepts(con: Any) -> Any:
    """pattern -> whether DuckDB's regexp (RE2) compiles it."""
    def ok(pattern: str) -> bool:
        try:
            con.execute("SELECT regexp_matches('', ?)", [pattern]).fetchall()
        except Exception:  # noqa: BLE001 - duckdb raises its own error types
            return False
        return True
    return ok


def check_relation(con: Any, source: str, params: list[Any], checker: BodyChecker,
                   into: str | None = None, batch: int = 500) -> Verdict:
    """Every (key, op, body) row of `source` checked in one DuckDB query; with `into`, the
    failing rows (key, json_path, rule, message, violations) land in that table. The rules
    SQL cannot express (checker.python_only) are checked in Python, streamed in batches."""
    violations = checker.sql("op", "body", re2_accepts(con))
    if checker.python_only:
        cur = con.execute(f"SELECT key, op, body FROM ({source}) WHERE body IS NOT NULL "
                          "ORDER BY key", params)

        def rows() -> Iterable[tuple[str, str, Any]]:
            while chunk := cur.fetchmany(batch):
                yield from chunk

        verdict = check_rows(rows(), checker)
        if into:
            con.execute(f"CREATE OR REPLACE TABLE {into} (key VARCHAR, json_path VARCHAR, "
                        "rule VARCHAR, message VARCHAR)")
            if verdict.rows:
                con.executemany(f"INSERT INTO {into} VALUES (?, ?, ?, ?)", verdict.rows)
        return verdict
    checked = (f"SELECT key, op, {violations} AS v FROM (SELECT key, op, "
               f"CAST(body AS VARCHAR) AS body FROM ({source}) WHERE body IS NOT NULL)")
    if into:
        con.execute(f"CREATE OR REPLACE TABLE {into} AS SELECT key, v[1].path AS json_path, "
                    "v[1].rule AS rule, v[1].message AS message, op, v AS violations "
                    f"FROM ({checked}) WHERE len(v) > 0 ORDER BY key", params)
        total = con.execute(f"SELECT count(*) FROM ({source}) WHERE body IS NOT NULL",
                            params).fetchone()[0]
        failing = con.execute(f"SELECT count(*) FROM {into}").fetchone()[0]
        first = con.execute(f"SELECT key, op, violations[1:3] FROM {into} ORDER BY key "
                            f"LIMIT {SHOWN}").fetchall()
    else:
        total, failing, first = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE len(v) > 0), "
            f"arg_min({{'key': key, 'op': op, 'v': v[1:3]}}, key, {SHOWN}) "
            f"FILTER (WHERE len(v) > 0) FROM ({checked})", params).fetchone()
        first = [(r["key"], r["op"], r["v"]) for r in first or ()]
    return Verdict(total, failing, [sample(k, checker.describe(op or "insert"), v)
                                    for k, op, v in first])
