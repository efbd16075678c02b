"""Keeping `elt sql` and `elt show` read-only, whatever SQL they are given.

Two locks, so nothing slips between them:
1. Before anything runs, DuckDB's own parser splits the text into statements and each one's
   type is checked against an allow-list (SELECT, and EXPLAIN of one): ATTACH, COPY, EXPORT,
   INSTALL/LOAD, SET/RESET/USE, PRAGMA, CALL (CHECKPOINT is one), CREATE, INSERT, ... are
   refused with one line and none of the statements runs.
2. The connection itself is read-only, may touch files only inside the project folder
   (`allowed_directories` with `enable_external_access=false`: no file outside it is read,
   no extension installed) and has its configuration locked (`lock_configuration`).
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from elt.core.db import literal
from elt.core.errors import EltError

_READS = {"SELECT"}
_EXPLAIN = re.compile(r"^\s*EXPLAIN\s+(\(.*?\)\s*)?(ANALYZE\s+)?", re.IGNORECASE | re.DOTALL)
_WHAT = {
    "ATTACH": "attaches a database", "DETACH": "detaches a database",
    "COPY": "writes or reads a file", "COPY_DATABASE": "copies a database",
    "EXPORT": "writes files", "LOAD": "installs or loads an extension",
    "SET": "changes a setting", "VARIABLE_SET": "changes a setting",
    "PRAGMA": "may change a setting (use SELECT * FROM pragma_...() to read one)",
    "CALL": "calls a procedure (CHECKPOINT is one; use SELECT * FROM fn() to read)",
}


def refuse_writes(query: str) -> None:
    """Raise EltError unless every statement in `query` only reads."""
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise EltError(lines[0] if lines else "SQL does not parse") from exc
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":
            inner = _EXPLAIN.sub("", statement.query.strip(), count=1)
            if inner and inner != statement.query.strip():
                refuse_writes(inner)
                continue
        if kind not in _READS:
            what = _WHAT.get(kind, "writes")
            first = " ".join(statement.query.split())[:60]
            raise EltError(f"elt sql is read-only: refused {kind} statement ({what}): {first}")


def lock_down(con: duckdb.DuckDBPyConnection, allowed_dir: Path) -> None:
    """Let the connection reach files only under `allowed_dir`, and freeze its settings."""
    folder = str(allowed_dir.resolve()).rstrip("/") + "/"
    con.execute("SET autoinstall_known_extensions = false")
    con.execute(f"SET allowed_directories = [{literal(folder)}]")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
