"""A FlowKit-like REST API for pytest-httpx and a temp project whose models are built with
the real build: what the publish runner tests (test_publish.py) send to and publish from."""

from __future__ import annotations

import gzip
import io
import json
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from elt.context import Context
from elt.core.console import Console
from elt.core.results import RunResults

TOKEN = "tok-ABCDEFG-secret"
PROFILES = """
elt:
  target: dev
  outputs:
    dev:
      type: duckdb
      path: target/elt.duckdb
      endpoints:
        api: {url: "https://api.test/v1", heartbeat: /heartbeat,
              auth: {type: bearer, token: "{{ env_var('TOK') }}"}}
"""
REST = """
    rest:
      insert: {method: POST, path: /data}
      update: {method: PATCH, path: /data}
      delete: {method: DELETE, path: /data}
      success: [201, 204]
      already_there: [303]
      compression: gzip
"""
PUBLICATIONS = f"""
publications:
  data:
    model: datasets
    endpoint: api
    kind: rest
    key: [category_id, dt]
    mode: upsert
    body: payload
{REST}
  maps:
    model: mapped
    endpoint: api
    kind: rest
    key: [mdid]
    body: body
    rest: {{insert: {{method: POST, path: /scope_mapping}}, already_there: [303]}}
  items:
    model: items
    endpoint: api
    kind: rest
    key: [id]
    mode: mirror
    depends_on: [data]
{REST.replace("compression: gzip", "compression: none").replace("/data", "/items")}
"""
MAPPED = """SELECT 'public' AS scope, answer::INTEGER AS mdid,
  json_object('scope', 'public', 'mdid', answer::INTEGER) AS body
FROM published.data WHERE status = 'acknowledged' AND answer IS NOT NULL"""


class FakeApi:
    """A FlowKit-like server: POST 201 + mdid or 303 + existing mdid, PATCH 201 + a new
    mdid, DELETE 204."""

    def __init__(self) -> None:
        self.datasets: dict[tuple, int] = {}
        self.calls: list[tuple[str, str, Any, httpx.Headers]] = []
        self.reject: dict[str, Any] = {}  # category_id -> a one-off answer, or a list of them
        self.mdid = 100
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == "/v1/heartbeat":
            return httpx.Response(503 if self.down else 200, json={"version": "9.9.9"})
        raw = request.content
        if request.headers.get("content-encoding") == "gzip":
            raw = gzip.decompress(raw)
        body = json.loads(raw)
        self.calls.append((request.method, path, body, request.headers))
        if path == "/v1/scope_mapping":
            return httpx.Response(201, json=body["mdid"] + 1000)
        key = tuple(sorted((body.get("metadata") or body).items()))
        cat = (body.get("metadata") or body).get("category_id")
        if cat in self.reject:  # one answer, or a list of answers given in turn
            queued = self.reject[cat]
            status, answer = queued.pop(0) if isinstance(queued, list) else queued
            if not isinstance(queued, list) or not queued:
                del self.reject[cat]
            return httpx.Response(status, json=answer)
        if request.method == "DELETE":
            self.datasets.pop(key, None)
            return httpx.Response(204)
        if key in self.datasets and request.method == "POST":
            return httpx.Response(303, json=self.datasets[key])
        self.mdid += 1
        if request.method == "PATCH":  # the real backend: a new mdid for the patched dataset
            self.datasets[key] = self.mdid
        self.datasets.setdefault(key, self.mdid)
        return httpx.Response(201, json=self.datasets[key])

    def data_calls(self) -> list[tuple[str, str, Any]]:
        return [(m, p, b) for m, p, b, _ in self.calls]


def payload(cat: str, dt: str, value: int) -> dict[str, Any]:
    return {"metadata": {"category_id": cat, "dt": dt}, "data_type": "single_location",
            "data_input": [{"spatial_unit_ids": ["HT01"], "data": value}]}


class Project:
    """A temp project; models written as SQL and built with the real build."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("TOK", TOKEN)
        monkeypatch.delenv("ELT_TARGET", raising=False)
        self.root = root
        (root / "models").mkdir()
        (root / "profiles.yml").write_text(PROFILES)
        (root / "models" / "publications.yml").write_text(PUBLICATIONS)
        (root / "models" / "mapped.sql").write_text(MAPPED)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.rows = [("residents", "2020-01-01 00:00:00", 1),
                     ("presence", "2020-01-01 00:00:00", 2),
                     ("movements", "2020-02-01 00:00:00", 3)]
        self.items = [(1, "a"), (2, "b")]
        self.build()

    def ctx(self) -> Context:
        return Context(self.root, console=Console(self.out, self.err))

    def build(self) -> None:
        values = ", ".join(f"('{c}', '{d}', '{json.dumps(payload(c, d, v))}'::JSON)"
                           for c, d, v in self.rows)
        (self.root / "models" / "datasets.sql").write_text(
            f"SELECT * FROM (VALUES {values}) t(category_id, dt, payload)")
        items = ", ".join(f"({i}, '{n}')" for i, n in self.items)
        (self.root / "models" / "items.sql").write_text(
            f"SELECT * FROM (VALUES {items}) t(id, name)")
        assert not self.ctx().build().failed, self.err.getvalue()

    def publish(self, **kw: Any) -> RunResults:
        return self.ctx().publish(**kw)

    def sql(self, query: str) -> list[tuple]:
        with duckdb.connect(str(self.root / "target" / "elt.duckdb"), read_only=True) as con:
            return con.execute(query).fetchall()


def by_name(results: RunResults) -> dict[str, Any]:
    return {r.name: r for r in results.results}
