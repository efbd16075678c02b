"""A temp project publishing one model to an API of the user's own: the sandbox's crud
receiver over loopback (or any URL, e.g. pytest-httpx's), its API key from an env var.

Shared by the tests of templated REST paths, per-op answers, headers and bodies
(test_publish_rest.py), `elt ledger forget` / `elt clean` (test_forget.py, test_clean.py)
and the README example (test_publish_own_api.py)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
from helpers import CliRun, db_query, elt, write_files

from elt.context import Context
from elt.core.console import Console
from elt.core.results import RunResults
from elt.sandbox.server import Sandbox

KEY_VAR = "CRUD_API_KEY"  # profiles.yml reads the API key from it: `{{ env_var(...) }}`


class OwnApi:
    """`models/items.sql` (the model), `models/publish.yml` (publication `items`), a profile
    whose endpoint `api` is `url` with `X-Api-Key: {{ env_var('CRUD_API_KEY') }}`."""

    def __init__(self, root: Path, url: str, model: str, publication: str,
                 **endpoint: Any) -> None:
        self.root = root
        profile = {"elt": {"target": "dev", "outputs": {"dev": {
            "type": "duckdb", "path": "target/elt.duckdb", "endpoints": {"api": {
                "url": url, "heartbeat": None, "settle": 0,
                "headers": {"X-Api-Key": f"{{{{ env_var('{KEY_VAR}') }}}}"}, **endpoint}}}}}}
        write_files(root, {"profiles.yml": json.dumps(profile, indent=1),
                           "models/items.sql": model})
        self.set_publication(publication)
        self.out = io.StringIO()

    def set_publication(self, text: str) -> None:
        """`items:`'s settings below `publications:` (YAML, indented by the caller or not)."""
        body = "\n".join("    " + line for line in text.strip("\n").splitlines())
        (self.root / "models" / "publish.yml").write_text(
            f"publications:\n  items:\n    model: items\n    endpoint: api\n    kind: rest\n"
            f"{body}\n", encoding="utf-8")

    def set_model(self, sql: str) -> None:
        (self.root / "models" / "items.sql").write_text(sql, encoding="utf-8")

    def ctx(self) -> Context:
        return Context(self.root, console=Console(self.out, self.out))

    def build(self) -> None:
        assert not self.ctx().build().failed, self.out.getvalue()

    def publish(self, **kw: Any) -> RunResults:
        return self.ctx().publish(**kw)

    def cli(self, *args: str, env: dict[str, str | None] | None = None) -> CliRun:
        return elt(self.root, *args, env=env)

    @property
    def db(self) -> Path:
        return self.root / "target" / "elt.duckdb"

    def sql(self, query: str) -> list[tuple]:
        return db_query(self.db, query)

    def ledger(self) -> list[tuple]:
        """(key, status, http_status, op, answer) of every ledger row, by key."""
        return self.sql("SELECT key, status, http_status, op, answer FROM _elt.ledger "
                        "ORDER BY key")


def put_upsert(path: str = "/items/{id}", created: str = "[201]", replaced: str = "[200]"
               ) -> str:
    """The publication most own-API tests use: key id, upsert, one PUT per row to `path`
    for inserts and updates (`created` / `replaced`: their success codes)."""
    return (f"key: [id]\nmode: upsert\nrest:\n"
            f"  insert: {{method: PUT, path: \"{path}\", success: {created}}}\n"
            f"  update: {{method: PUT, path: \"{path}\", success: {replaced}}}\n")


def crud_items(sb: Sandbox, collection: str = "items") -> dict[str, dict]:
    """What the receiver stores: id -> item."""
    assert sb.store is not None
    return {r["id"]: json.loads(r["body"]) for r in sb.store.query(
        "SELECT id, body FROM crud_items WHERE collection = ? ORDER BY id", [collection])}


def crud_stats(sb: Sandbox) -> dict[str, Any]:
    return httpx.get(f"{sb.url}/_sandbox/stats", timeout=10).json()


def new_statuses(before: dict, after: dict) -> dict[str, int]:
    """Requests per answer status between two stats snapshots."""
    return {k: v - before["by_status"].get(k, 0) for k, v in after["by_status"].items()
            if v != before["by_status"].get(k, 0)}
