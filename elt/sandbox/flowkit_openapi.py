"""The OpenAPI document the FlowKit sandbox serves at GET /v1/openapi.json (no token needed,
as FastAPI serves it), written from flowkit-api.md: the request models of POST/PATCH/DELETE
/data (Dataset), POST /setup (Config), POST /scope_mapping and POST /query. What it declares
is what dataset.py enforces: required metadata (revision, category_id and indicator_id as
strings of at most 255 characters, srid and trid integers), `dt` a string with a time (a
bare date fails), `data_type` single_location or flow, a non-empty data_input whose `data`
is a number or a numeric string (never null).
"""

from __future__ import annotations

from typing import Any

_ID = {"type": "string", "maxLength": 255}
_INT = {"type": "integer"}
_LIST = {"type": "array", "items": {"type": "object"}}


def _body(ref: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{ref}"}}}}


def _op(summary: str, ref: str, ok: str) -> dict[str, Any]:
    return {"summary": summary, "requestBody": _body(ref),
            "responses": {ok: {"description": "OK"},
                          "500": {"description": "Validation failure (plain text)"}}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "FlowKit UI backend (elt sandbox)", "version": "sandbox"},
    "servers": [{"url": "/v1"}],
    "paths": {
        "/data": {
            "post": _op("Add a dataset (303 + mdid when the key exists)", "Dataset", "201"),
            "patch": _op("Replace a dataset (answers a new mdid)", "Dataset", "201"),
            "delete": _op("Delete a dataset (full Dataset body)", "Dataset", "204"),
        },
        "/setup": {"post": _op("Replace the whole configuration", "Config", "204")},
        "/scope_mapping": {"post": _op("Map a dataset to a scope", "ScopeMapping", "201")},
        "/query": {"post": _op("Query datasets", "Query", "200")},
        "/heartbeat": {"get": {"summary": "Health", "responses": {"200": {"description": "OK"}}}},
    },
    "components": {"schemas": {
        "Metadata": {
            "type": "object",
            "required": ["revision", "category_id", "indicator_id", "srid", "trid"],
            "properties": {
                "revision": {"type": "string"},
                "category_id": _ID, "indicator_id": _ID, "srid": _INT, "trid": _INT,
                "dt": {"type": ["string", "null"],
                       "pattern": r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}"},
                "date_added": {"type": "string", "format": "date-time"},
            },
        },
        "DataInput": {
            "type": "object",
            "required": ["spatial_unit_ids", "data"],
            "properties": {
                "spatial_unit_ids": {"type": "array", "items": {"type": "string"},
                                     "minItems": 1},
                "data": {"anyOf": [{"type": "number"},
                                   {"type": "string", "pattern": r"^\s*-?\d+(\.\d+)?\s*$"}]},
            },
        },
        "Dataset": {
            "type": "object",
            "required": ["metadata", "data_type", "data_input"],
            "properties": {
                "metadata": {"$ref": "#/components/schemas/Metadata"},
                "data_type": {"type": "string", "enum": ["single_location", "flow"]},
                "data_input": {"type": "array", "minItems": 1,
                               "items": {"$ref": "#/components/schemas/DataInput"}},
            },
        },
        "Config": {
            "type": "object",
            "required": ["languages", "data_providers", "categories", "indicators",
                         "temporal_resolutions", "spatial_resolutions"],
            "properties": {k: _LIST for k in (
                "languages", "data_providers", "categories", "indicators",
                "temporal_resolutions", "spatial_resolutions")},
        },
        "ScopeMapping": {
            "type": "object", "required": ["scope", "mdid"],
            "properties": {"scope": {"type": "string"}, "mdid": _INT},
        },
        "Query": {
            "type": "object",
            "required": ["category_id", "indicator_id", "srid", "trid"],
            "properties": {"category_id": _ID, "indicator_id": _ID, "srid": _INT, "trid": _INT,
                           "start_date": {"type": "string"}, "duration": _INT,
                           "mdids_only": {"type": "boolean"}},
        },
    }},
}
