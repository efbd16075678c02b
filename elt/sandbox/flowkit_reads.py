"""FlowKit /setup, the read endpoints and /scope_mapping, answering as the real backend does.

Imitated behaviour (flowkit-api.md, "Measured on the real backend"):
- POST /setup replaces the whole configuration (204); a srid/trid left out is numbered from
  an auto-increment counter, so a second /setup renumbers them (as on MySQL).
- Reads see what the caller's `scope` claim is mapped to: /query joins the datasets with
  the scope mappings of the caller's scopes (every dataset has an `admin` mapping, made on
  POST and re-made on PATCH, so admin sees everything). With `mdids_only` an mdid is
  repeated once per matching mapping of the caller, as strings.
- `/categories` and `/indicators_for_category` visibility is per category: one visible
  dataset of a category exposes all its indicators; admin sees the whole configuration.
- /query takes any valid token (an admin-only one too) and answers 404 `"Category not
  found"` when no dataset of the category is mapped to the caller's scopes (the updater's,
  on a fresh backend), 404 `"No metadata found"` when nothing matches the dates.
- POST /scope_mapping has no foreign key: an unknown mdid answers 201. An existing
  (scope, mdid) answers 303 + its id. The mdid may be a numeric string (`"1"`: 201).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from dateutil.relativedelta import relativedelta

from elt.sandbox.dataset import wrong
from elt.sandbox.store import Store
from elt.sandbox.wire import Reply, Request, Response, internal_error, json_response, parse_json

SECTIONS = (
    "languages", "data_providers", "categories", "indicators",
    "temporal_resolutions", "spatial_resolutions",
)
TRID_UNITS = {1: "years", 2: "months", 3: "weeks", 4: "days"}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def json_object(req: Request) -> dict[str, Any]:
    """The request body as a JSON object, or the request model's plain 500."""
    try:
        body = parse_json(req.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise Reply(internal_error())
    return body


class Reads:
    """Configuration, reads and scope mappings over the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def setup(self, req: Request) -> Response:
        config = json_object(req)
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

    def _visible_categories(self, scopes: set[str], *, admin_all: bool = True) -> set[str] | None:
        """Categories with a dataset mapped to one of `scopes`; None = everything (admin, unless
        `admin_all` is off: /query goes by the mappings, and admin has one per dataset)."""
        if admin_all and "admin" in scopes:
            return None
        rows = self.store.query(
            "SELECT DISTINCT d.category_id FROM flowkit_datasets d "
            "JOIN flowkit_scope_mappings m ON m.mdid = d.mdid WHERE list_contains(?, m.scope)",
            (sorted(scopes),))
        return {r["category_id"] for r in rows}

    def _config(self, section: str) -> list[dict[str, Any]]:
        rows = self.store.query(
            "SELECT item FROM flowkit_config WHERE section=? ORDER BY position", (section,))
        return [json.loads(r["item"]) for r in rows]

    def categories(self, scopes: set[str]) -> Response:
        visible = self._visible_categories(scopes)
        cats = [c for c in self._config("categories")
                if visible is None or c.get("category_id") in visible]
        return json_response(200, {"categories": cats})

    def indicators(self, scopes: set[str], category_id: str) -> Response:
        visible = self._visible_categories(scopes)
        inds = [i for i in self._config("indicators") if i.get("category_id") == category_id
                and (visible is None or category_id in visible)]
        return json_response(200, {"indicators": inds})

    def query(self, req: Request, scopes: set[str]) -> Response:
        q = json_object(req)
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
        visible = self._visible_categories(scopes, admin_all=False)
        if q["category_id"] not in (visible or ()):
            return json_response(404, "Category not found")
        rows = self.store.query(
            "SELECT d.mdid, d.dt, d.data_type, d.data, d.min_value, d.max_value "
            "FROM flowkit_datasets d JOIN flowkit_scope_mappings m ON m.mdid = d.mdid "
            "WHERE d.category_id=? AND d.indicator_id=? AND d.srid=? AND d.trid=? "
            "AND d.dt>=? AND d.dt<? AND list_contains(?, m.scope) ORDER BY d.dt, d.mdid, m.id",
            (q["category_id"], q["indicator_id"], q["srid"], q["trid"], start, end,
             sorted(scopes)))
        if not rows:
            return json_response(404, "No metadata found")
        mdids = [str(r["mdid"]) for r in rows]  # once per matching mapping, as the real one
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

    def scope_mapping(self, req: Request) -> Response:
        body = json_object(req)
        scope, mdid = body.get("scope"), body.get("mdid")
        if isinstance(mdid, str) and mdid.strip().isdigit():  # pydantic coerces "1" to 1
            mdid = int(mdid)
        if not isinstance(scope, str) or not isinstance(mdid, int) or isinstance(mdid, bool):
            raise Reply(internal_error())
        with self.store.atomic() as st:  # no foreign key: an unknown mdid is mapped too
            existing = st.scalar(
                "SELECT id FROM flowkit_scope_mappings WHERE scope=? AND mdid=?", (scope, mdid))
            if existing is not None:
                return json_response(303, existing)
            new_id = st.next_id("scope_mapping_seq")
            st.query("INSERT INTO flowkit_scope_mappings VALUES (?, ?, ?, ?)",
                     (new_id, scope, mdid, _now()))
        return json_response(201, new_id)
