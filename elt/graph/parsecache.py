"""What discovery needs from a model's SQL (the tables it reads), cached by checksum.

Parsing every model with sqlglot (and importing sqlglot at all) was most of a no-op
build's fixed cost. The tables a SELECT reads depend only on its text, so they are kept in
`target/parse_cache.json` keyed by a hash of the text: an unchanged file is not parsed, a
changed one (or a new elt cache format) is. Only successful parses are stored, so a syntax
error is reported on every run.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from elt.project.modelfile import parse_select, table_refs

CACHE_FILE = "parse_cache.json"
FORMAT = 1  # bump when table_refs changes what it returns


class ParseCache:
    """Table references per SQL text; load once, `save` when something new was parsed."""

    def __init__(self, target_dir: Path) -> None:
        self.path = target_dir / CACHE_FILE
        self.entries: dict[str, list[list[str]]] = {}
        self.used: dict[str, list[list[str]]] = {}
        self.parsed = 0  # parses this run (the test of the cache reads it)
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if isinstance(doc, dict) and doc.get("format") == FORMAT and isinstance(
                doc.get("entries"), dict):
            self.entries = doc["entries"]

    def table_refs(self, sql: str, name: str, where: str, kind: str) -> list[tuple[str, str]]:
        """(schema, table) pairs the SELECT reads; parses only on a cache miss."""
        key = hashlib.sha256(sql.encode("utf-8")).hexdigest()
        refs = self.entries.get(key)
        if refs is None:
            refs = [list(r) for r in table_refs(parse_select(sql, name, where, kind))]
            self.parsed += 1
        self.used[key] = refs
        return [(schema, table) for schema, table in refs]

    def save(self) -> None:
        """Keep the entries of this run's files (stale ones drop out); best effort."""
        if self.used == self.entries:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{CACHE_FILE}.{os.getpid()}")
            tmp.write_text(json.dumps({"format": FORMAT, "entries": self.used}), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:
            pass  # a read-only target/ only costs the parse next time
