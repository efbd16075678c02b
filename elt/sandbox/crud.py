"""A plain CRUD API under /crud (`{sandbox: crud}`): the shape most APIs a user brings have.

Any collection name serves (`/crud/items`, `/crud/things`, ...); below, `items`.

Not an imitation of one measured service (flowkit.py and uois.py are), but of the common
REST conventions the README's "Publishing to your own API" targets, strict where real APIs
are strict:
- An API key in a header (`X-Api-Key`); without it or wrong: 401 `{"detail": ...}`.
- POST /crud/items: a JSON object; its `id` is kept when given (a string or number), else
  one is assigned. 201 with the stored item and `Location: /crud/items/<id>`; an id that
  exists: 409 `{"detail": "item <id> exists"}`.
- PUT /crud/items/<id>: create (201) or replace (200) the whole item; the path's id wins
  over one in the body. PATCH: merge the body's fields into an existing item (200), 404
  if none. DELETE: 204, 404 if none. GET /crud/items/<id>: 200 or 404; GET /crud/items:
  every item, by id.
- A body that is no JSON object: 422; a gzip body needs `Content-Encoding: gzip`.
- `Idempotency-Key` (as Stripe's): the first answer to a key is stored with a digest of
  its request; a repeat with the same method, path and body gets that answer again with
  `Idempotent-Replayed: true` and changes nothing; the same key with another request is
  422. A request whose key is still being processed is 409.
- The faults of server.py apply as to the other services (resets, 500, 429, 503, slow,
  gateway 504 whose write goes on).
Counters per item in the stats' "crud" section: received, inserted, replaced, patched,
deleted, replayed, rejected.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from elt.sandbox.store import Store
from elt.sandbox.wire import Request, Response, json_response, parse_json

API_KEY = "sandbox-crud-key"
API_KEY_HEADER = "X-Api-Key"
PREFIX = "/crud/"
_COLLECTION = re.compile(r"^[A-Za-z0-9_-]+$")
Counter = Callable[[str, str, str], None]  # (service, key, field) -> None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Crud:
    """Handlers for /crud/*; each takes a Request and returns a Response."""

    def __init__(self, store: Store, count: Counter) -> None:
        self.store = store
        self.count = count

    def handle(self, req: Request) -> Response:
        if req.header(API_KEY_HEADER) != API_KEY:
            return json_response(401, {"detail": f"missing or wrong {API_KEY_HEADER}"})
        parts = req.path[len(PREFIX):].split("/") if req.path.startswith(PREFIX) else []
        if parts and parts[-1] == "" and len(parts) == 2:
            parts = parts[:1]
        if not 1 <= len(parts) <= 2 or not _COLLECTION.match(parts[0]) or (
                len(parts) == 2 and not parts[1]):
            return json_response(404, {"detail": "Not Found"})
        collection = parts[0]
        item_id = unquote(parts[1]) if len(parts) == 2 else None
        if req.method == "GET":
            return self._get(collection, item_id)
        allowed = ("POST",) if item_id is None else ("PUT", "PATCH", "DELETE")
        if req.method not in allowed:
            return json_response(405, {"detail": "Method Not Allowed"})
        key = req.header("Idempotency-Key")
        if key:
            return self._idempotent(req, key, collection, item_id)
        return self._write(req, collection, item_id)

    # -- reads --------------------------------------------------------------------------
    def _get(self, collection: str, item_id: str | None) -> Response:
        if item_id is None:
            rows = self.store.query("SELECT body FROM crud_items WHERE collection = ? "
                                    "ORDER BY id", [collection])
            return json_response(200, [json.loads(r["body"]) for r in rows])
        body = self.store.scalar("SELECT body FROM crud_items WHERE collection = ? AND id = ?",
                                 [collection, item_id])
        if body is None:
            return json_response(404, {"detail": f"item {item_id} not found"})
        return json_response(200, json.loads(body))

    # -- writes -------------------------------------------------------------------------
    def _idempotent(self, req: Request, key: str, collection: str, item_id: str | None
                    ) -> Response:
        digest = hashlib.sha256(b"\n".join((req.method.encode(), req.path.encode(),
                                            req.body))).hexdigest()
        with self.store.atomic() as store:
            seen = store.query("SELECT digest, status, body, location FROM crud_idempotency "
                               "WHERE key = ?", [key])
            if not seen:
                store.query("INSERT INTO crud_idempotency VALUES (?, ?, NULL, NULL, NULL, ?)",
                            [key, digest, _now()])
        if seen:
            first = seen[0]
            if first["digest"] != digest:
                return json_response(422, {"detail": f"Idempotency-Key {key} was used for "
                                                     "another request"})
            if first["status"] is None:
                return json_response(409, {"detail": f"a request with Idempotency-Key {key} "
                                                     "is still being processed"})
            created = unquote((first["location"] or "").rpartition("/")[2])
            self.count("crud", item_id or created or "?", "replayed")
            headers = {"Idempotent-Replayed": "true"}
            if first["location"]:
                headers["Location"] = first["location"]
            return Response(int(first["status"]), (first["body"] or "").encode(),
                            "application/json" if first["body"] else None, headers)
        response = self._write(req, collection, item_id)
        if response.reset:  # never answered: the key stays "in flight" no longer
            self.store.query("DELETE FROM crud_idempotency WHERE key = ?", [key])
            return response
        self.store.query("UPDATE crud_idempotency SET status = ?, body = ?, location = ? "
                         "WHERE key = ?", [response.status, response.body.decode() or None,
                                           response.headers.get("Location"), key])
        return response

    def _write(self, req: Request, collection: str, item_id: str | None) -> Response:
        if req.delay:
            time.sleep(req.delay)
        body: Any = None
        if req.method != "DELETE" or req.body:
            try:
                body = parse_json(req.body)
            except ValueError:
                body = None
            if req.method != "DELETE" and not isinstance(body, dict):
                self.count("crud", item_id or "?", "rejected")
                return json_response(422, {"detail": "the body must be a JSON object"})
        if item_id is None:  # POST
            given = body.get("id")
            item_id = str(given) if given is not None else None
        label = item_id or "?"
        if item_id is not None:
            self.count("crud", item_id, "received")
        with self.store.atomic() as store:
            old = (store.scalar("SELECT body FROM crud_items WHERE collection = ? AND id = ?",
                                [collection, item_id]) if item_id is not None else None)
            if req.method == "POST":
                if old is not None:
                    self.count("crud", label, "rejected")
                    return json_response(409, {"detail": f"item {item_id} exists"})
                if item_id is None:
                    item_id = str(store.next_id("crud_seq"))
                    self.count("crud", item_id, "received")
                item = {**body, "id": body.get("id", item_id)}
                self._put(store, collection, item_id, item, created=True)
                self.count("crud", item_id, "inserted")
                return json_response(201, item, {
                    "Location": f"{PREFIX}{collection}/{quote(item_id, '')}"})
            assert item_id is not None
            if req.method == "PUT":
                item = {**body, "id": _typed_like(body.get("id"), item_id)}
                self._put(store, collection, item_id, item, created=old is None)
                self.count("crud", item_id, "inserted" if old is None else "replaced")
                return json_response(201 if old is None else 200, item)
            if old is None:
                self.count("crud", item_id, "rejected")
                return json_response(404, {"detail": f"item {item_id} not found"})
            if req.method == "PATCH":
                item = {**json.loads(old), **body, "id": json.loads(old).get("id", item_id)}
                self._put(store, collection, item_id, item, created=False)
                self.count("crud", item_id, "patched")
                return json_response(200, item)
            store.query("DELETE FROM crud_items WHERE collection = ? AND id = ?",
                        [collection, item_id])
            self.count("crud", item_id, "deleted")
            return Response(204)

    @staticmethod
    def _put(store: Store, collection: str, item_id: str, item: dict[str, Any], *,
             created: bool) -> None:
        text = json.dumps(item, separators=(",", ":"), ensure_ascii=False)
        if created:
            store.query("INSERT INTO crud_items VALUES (?, ?, ?, 1, ?, ?)",
                        [collection, item_id, text, _now(), _now()])
        else:
            store.query("UPDATE crud_items SET body = ?, version = version + 1, updated_at = ? "
                        "WHERE collection = ? AND id = ?", [text, _now(), collection, item_id])


def _typed_like(given: Any, path_id: str) -> Any:
    """The path's id, as a number when the body had it as one."""
    if given is not None and str(given) == path_id:
        return given
    return path_id
