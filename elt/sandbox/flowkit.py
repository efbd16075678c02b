"""The FlowKit UI backend's REST API under /v1, quirks included (see flowkit-api.md).

The point of the sandbox is that a publisher which copes with it copes with the real
service: so 303 on an existing key, 500 text/plain for validation failures, 500 (not 401)
without an Authorization header, and the "Ambiguous dataset" trap after two concurrent
writes of one key are all reproduced, not smoothed over.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import count
from typing import Any
from urllib.parse import parse_qsl

from dateutil.relativedelta import relativedelta

import elt.sandbox.dataset as dataset
import elt.sandbox.tokens as tokens
from elt import __version__
from elt.sandbox.dataset import DATA_TYPES, key_label, wrong
from elt.sandbox.store import Store
from elt.sandbox.wire import Reply, Request, Response, internal_error, json_response, parse_json

SECRET = "sandbox-secret"
AUDIENCE = "https://flowkit-ui-backend.sandbox"
CLIENTS: dict[str, list[str]] = {
    "elt-sandbox-admin": ["admin"],
    "elt-sandbox-updater": ["write:data", "read:free_data"],
}
TOKEN_TTL = 86400
SECTIONS = (
    "languages", "data_providers", "categories", "indicators",
    "temporal_resolutions", "spatial_resolutions",
)
TRID_UNITS = {1: "years", 2: "months", 3: "weeks", 4: "days"}

Counter = Callable[[str, str, str], None]  # (service, key, field) -> None


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class _Flight:
    raced: bool = False


class FlowKit:
    """Handlers for /oauth/token and /v1/*; every method takes a Request, returns a Response."""

    def __init__(self, store: Store, counter: Counter, *, null_sink: bool = False) -> None:
        self.store = store
        self.counter = counter
        self.null_sink = null_sink
        self.started = _now()
        self._fake_mdids = count(1)
        self._flights: dict[str, list[_Flight]] = {}
        self._flights_lock = threading.Lock()

    # -- auth -------------------------------------------------------------------------------
    def token(self, req: Request) -> Response:
        """Auth0-style client-credentials grant; JSON or form body."""
        try:
            if "json" in (req.header("Content-Type") or "json"):
                body = parse_json(req.body)
            else:
                body = dict(parse_qsl(req.body.decode()))
        except ValueError:
            return json_response(400, {"error": "invalid_request", "error_description": "bad body"})
        if not isinstance(body, dict) or body.get("grant_type") != "client_credentials":
            return json_response(
                403, {"error": "unauthorized_client", "error_description": "Grant type not allowed"}
            )
        client = body.get("client_id")
        if client not in CLIENTS or body.get("client_secret") != SECRET:
            denied = {"error": "access_denied", "error_description": "Unauthorized"}
            return json_response(401, denied)
        if body.get("audience") != AUDIENCE:
            msg = f"Service not enabled within domain: {body.get('audience')}"
            return json_response(403, {"error": "access_denied", "error_description": msg})
        scopes = CLIENTS[client]
        claims = {
            "iss": "https://sandbox.elt/", "sub": f"{client}@clients", "aud": AUDIENCE,
            "azp": client, "gty": "client-credentials",
            "scope": " ".join(scopes), "permissions": scopes,
        }
        token = tokens.sign(claims, SECRET, ttl=TOKEN_TTL)
        return json_response(200, {"access_token": token, "expires_in": TOKEN_TTL,
                                   "token_type": "Bearer", "scope": claims["scope"]})

    def _claims(self, req: Request, needed: str) -> dict[str, Any]:
        header = req.header("Authorization")
        if header is None:
            raise Reply(internal_error())
        scheme, _, token = header.partition(" ")
        try:
            if scheme.lower() != "bearer":
                raise tokens.TokenError("not a bearer token")
            claims = tokens.verify(token.strip(), SECRET, audience=AUDIENCE)
        except tokens.TokenError as exc:
            text = "Token has expired" if str(exc) == "expired" else "Could not decode token"
            raise Reply(json_response(401, text)) from exc
        granted = self._granted(claims)
        admin_ok = "admin" in granted and needed.startswith("read:")
        if needed not in granted and not admin_ok:
            raise Reply(
                json_response(401, f"Invalid token: Required permissions ['{needed}'] not present")
            )
        return claims

    @staticmethod
    def _granted(claims: dict[str, Any]) -> set[str]:
        scope = claims.get("scope")
        perms = claims.get("permissions")
        granted = set(scope.split()) if isinstance(scope, str) else set()
        if isinstance(perms, list):
            granted |= {p for p in perms if isinstance(p, str)}
        return granted

    # -- routing ----------------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        """Dispatch a request whose path starts with /v1."""
        path, method = req.path[len("/v1"):] or "/", req.method
        try:
            if path == "/heartbeat" and method == "GET":
                return json_response(200, {
                    "datetime": _now().isoformat(), "version": __version__,
                    "commit": "sandbox", "build_date": self.started.isoformat(),
                    "service": "elt sandbox: FlowKit UI backend"})
            if path == "/data" and method in ("POST", "PATCH", "DELETE"):
                self._claims(req, "write:data")
                return self._data(req)
            if path == "/setup" and method == "POST":
                self._claims(req, "admin")
                return self._setup(req)
            if path == "/categories" and method == "GET":
                return self._categories(self._claims(req, "read:free_data"))
            if path.startswith("/indicators_for_category/") and method == "GET":
                claims = self._claims(req, "read:free_data")
                return self._indicators(claims, path.rsplit("/", 1)[1])
            if path == "/query" and method == "POST":
                self._claims(req, "read:free_data")
                return self._query(req)
            if path == "/scope_mapping" and method == "POST":
                self._claims(req, "write:data")
                return self._scope_mapping(req)
        except Reply as reply:
            return reply.response
        known = {"/heartbeat", "/data", "/setup", "/categories", "/query", "/scope_mapping"}
        if path in known or path.startswith("/indicators_for_category/"):
            return json_response(405, {"detail": "Method Not Allowed"})
        return json_response(404, {"detail": "Not Found"})

    @staticmethod
    def _json_object(req: Request) -> dict[str, Any]:
        try:
            body = parse_json(req.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise Reply(internal_error())
        return body

    # -- /data ------------------------------------------------------------------------------
    def _data(self, req: Request) -> Response:
        if self.null_sink:
            return self._null_data(req)
        body = self._json_object(req)
        label = key_label(body.get("metadata"))
        self.counter("flowkit", label, "received")
        try:
            response = self._data_checked(req, body, label)
        except Reply as reply:
            response = reply.response
        outcome = {201: "accepted", 204: "accepted", 303: "duplicates"}.get(
            response.status, "rejected")
        self.counter("flowkit", label, outcome)
        return response

    def _null_data(self, req: Request) -> Response:
        try:
            label = key_label(parse_json(req.body).get("metadata"))
        except (ValueError, AttributeError):
            label = "<invalid>"
        self.counter("flowkit", label, "received")
        self.counter("flowkit", label, "accepted")
        if req.method == "DELETE":
            return Response(204)
        return json_response(201, next(self._fake_mdids))

    def _data_checked(self, req: Request, body: dict[str, Any], label: str) -> Response:
        meta, rows = body.get("metadata"), body.get("data_input")
        if not isinstance(meta, dict) or not isinstance(rows, list):
            raise Reply(internal_error())
        if req.method != "DELETE":
            data_type = body.get("data_type")
            if not isinstance(data_type, str):
                raise Reply(internal_error())
            if not rows:
                return json_response(400, "No data to ingest")
            if data_type not in DATA_TYPES:
                return json_response(400, f"Data type '{data_type}' not supported")
        key, revision = dataset.metadata(meta)
        if req.method == "DELETE":
            time.sleep(req.delay)
            return self._delete(key)
        n, lo, hi = dataset.values(rows, DATA_TYPES[data_type])
        record = (revision, data_type, json.dumps(rows), n, lo, hi)
        flight = self._take_off(label)
        try:
            time.sleep(req.delay)
            return self._write(req.method, key, record, flight.raced)
        finally:
            self._land(label, flight)

    def _take_off(self, label: str) -> _Flight:
        """Register a write in flight; a second one for the same key marks both as raced."""
        flight = _Flight()
        with self._flights_lock:
            others = self._flights.setdefault(label, [])
            if others:
                self.counter("flowkit", label, "races")
                flight.raced = True
                for other in others:
                    other.raced = True
            others.append(flight)
        return flight

    def _land(self, label: str, flight: _Flight) -> None:
        with self._flights_lock:
            others = self._flights.get(label, [])
            others.remove(flight)
            if not others:
                self._flights.pop(label, None)

    def _write(self, method: str, key: tuple[Any, ...], record: tuple[Any, ...],
               raced: bool) -> Response:
        with self.store.atomic() as st:
            mdids = [r["mdid"] for r in st.query(
                "SELECT mdid FROM flowkit_datasets WHERE category_id=? AND indicator_id=? "
                "AND srid=? AND trid=? AND dt=? ORDER BY mdid", key)]
            if len(mdids) > 1:
                return json_response(500, "Ambiguous dataset")
            if mdids and not raced:
                if method == "POST":
                    return json_response(303, mdids[0])
                st.query("UPDATE flowkit_datasets SET revision=?, data_type=?, data=?, n_values=?,"
                         " min_value=?, max_value=?, date_added=? WHERE mdid=?",
                         (*record, _now(), mdids[0]))
                return json_response(201, mdids[0])
            mdid = st.next_id("mdid_seq")
            st.query("INSERT INTO flowkit_datasets (mdid, category_id, indicator_id, srid, trid,"
                     " dt, revision, data_type, data, n_values, min_value, max_value, date_added)"
                     " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (mdid, *key, *record, _now()))
            return json_response(201, mdid)

    def _delete(self, key: tuple[Any, ...]) -> Response:
        where = "category_id=? AND indicator_id=? AND srid=? AND trid=? AND dt=?"
        with self.store.atomic() as st:
            mdids = [r["mdid"] for r in st.query(
                f"SELECT mdid FROM flowkit_datasets WHERE {where}", key)]
            if len(mdids) > 1:
                return json_response(500, "Ambiguous dataset")
            if mdids:
                st.query("DELETE FROM flowkit_scope_mappings WHERE mdid=?", mdids)
                st.query("DELETE FROM flowkit_datasets WHERE mdid=?", mdids)
        return Response(204)

    # -- configuration and reads ------------------------------------------------------------
    def _setup(self, req: Request) -> Response:
        config = self._json_object(req)
        required = {"categories": ("category_id",), "indicators": ("category_id", "indicator_id")}
        for section in SECTIONS:
            items = config.get(section)
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise Reply(internal_error())
            if any(name not in i for i in items for name in required.get(section, ())):
                raise Reply(internal_error())
        now = _now()
        with self.store.atomic() as st:
            st.query("DELETE FROM flowkit_config")
            for section in SECTIONS:
                for pos, item in enumerate(config[section]):
                    id_name = {"spatial_resolutions": "srid",
                               "temporal_resolutions": "trid"}.get(section)
                    if id_name and item.get(id_name) is None:  # auto-increment, as on MySQL
                        item = {**item, id_name: st.next_id(f"{id_name}_seq")}
                    st.query("INSERT INTO flowkit_config VALUES (?, ?, ?, ?)",
                             (section, pos, json.dumps(item), now))
        return Response(204)

    def _visible(self, claims: dict[str, Any]) -> set[tuple[str, str]] | None:
        """(category, indicator) pairs the token may see; None = everything (admin)."""
        granted = self._granted(claims)
        if "admin" in granted:
            return None
        rows = self.store.query(
            "SELECT DISTINCT d.category_id, d.indicator_id FROM flowkit_datasets d "
            "JOIN flowkit_scope_mappings m ON m.mdid = d.mdid WHERE list_contains(?, m.scope)",
            (sorted(granted),))
        return {(r["category_id"], r["indicator_id"]) for r in rows}

    def _config(self, section: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT item FROM flowkit_config WHERE section=? ORDER BY position", (section,))
        return [json.loads(r["item"]) for r in rows]

    def _categories(self, claims: dict[str, Any]) -> Response:
        visible = self._visible(claims)
        cats = [c for c in self._config("categories")
                if visible is None or any(c.get("category_id") == v[0] for v in visible)]
        return json_response(200, {"categories": cats})

    def _indicators(self, claims: dict[str, Any], category_id: str) -> Response:
        visible = self._visible(claims)
        inds = [i for i in self._config("indicators") if i.get("category_id") == category_id
                and (visible is None or (category_id, i.get("indicator_id")) in visible)]
        return json_response(200, {"indicators": inds})

    def _query(self, req: Request) -> Response:
        q = self._json_object(req)
        types = {"category_id": str, "indicator_id": str, "srid": int, "trid": int,
                 "start_date": str, "duration": int}
        if any(not isinstance(q.get(k), t) or isinstance(q.get(k), bool) for k, t in types.items()):
            raise Reply(internal_error())
        if q["trid"] not in TRID_UNITS:
            raise wrong(f"unknown temporal resolution {q['trid']}")
        text = q["start_date"]
        try:
            padded = {4: f"{text}-01-01", 7: f"{text}-01"}.get(len(text), text)
            start = datetime.fromisoformat(padded)
        except ValueError:
            raise wrong(f"cannot parse start_date {text!r}") from None
        end = start + relativedelta(**{TRID_UNITS[q["trid"]]: q["duration"]})
        rows = self.store.query(
            "SELECT mdid, dt, data_type, data, min_value, max_value FROM flowkit_datasets "
            "WHERE category_id=? AND indicator_id=? AND srid=? AND trid=? AND dt>=? AND dt<? "
            "ORDER BY dt, mdid",
            (q["category_id"], q["indicator_id"], q["srid"], q["trid"], start, end))
        if not rows:
            return json_response(404, "No metadata found")
        mdids = [str(r["mdid"]) for r in rows]
        if q.get("mdids_only"):
            return json_response(200, {"min": None, "max": None, "data_by_date": None,
                                       "mdids": mdids})
        by_date: dict[str, dict[str, Any]] = {}
        for r in rows:
            day = by_date.setdefault(r["dt"].strftime("%Y-%m-%d"), {})
            for item in json.loads(r["data"]):
                units = item["spatial_unit_ids"]
                target = day.setdefault(units[0], {}) if len(units) == 2 else day
                target[units[-1]] = float(item["data"])
        return json_response(200, {"min": min(r["min_value"] for r in rows),
                                   "max": max(r["max_value"] for r in rows),
                                   "data_by_date": by_date, "mdids": mdids})

    def _scope_mapping(self, req: Request) -> Response:
        body = self._json_object(req)
        scope, mdid = body.get("scope"), body.get("mdid")
        if not isinstance(scope, str) or not isinstance(mdid, int) or isinstance(mdid, bool):
            raise Reply(internal_error())
        with self.store.atomic() as st:
            if not st.scalar("SELECT count(*) FROM flowkit_datasets WHERE mdid=?", (mdid,)):
                raise wrong("(1452, 'Cannot add or update a child row: a foreign key constraint "
                            "fails (scope_mapping.mdid -> metadata.mdid)')")
            existing = st.scalar(
                "SELECT id FROM flowkit_scope_mappings WHERE scope=? AND mdid=?", (scope, mdid))
            if existing is not None:
                return json_response(303, existing)
            new_id = st.next_id("scope_mapping_seq")
            st.query("INSERT INTO flowkit_scope_mappings VALUES (?, ?, ?, ?)",
                     (new_id, scope, mdid, _now()))
        return json_response(201, new_id)
