"""FlowKit dataset validation: pure functions, answering as the real backend does.

Each rule imitates a measured answer of the real FlowKit UI backend (flowkit-api.md,
"Measured on the real backend"):
- The request model (FastAPI/pydantic) rejects missing revision, a bare-date dt, null or
  non-numeric data, wrongly typed fields and a null date_added with a plain 500 text/plain
  `Internal Server Error` (not 422): `invalid()`.
- A missing or null `dt` passes the model and is stored as NULL: `parse_dt` returns None,
  and since NULL never equals NULL every such POST creates a new dataset.
- A UTC offset (`+02:00`, `Z`) is dropped, not converted: `2020-02-01T00:00:00+02:00` is
  stored as `2020-02-01 00:00:00`.
- `data: true` is a number to pydantic (1.0); `"NaN"` and infinities reach MySQL and fail
  with 500 `"Something went wrong: nan can not be used with MySQL"`.
- single_location reads `spatial_unit_ids[0]` (extra units ignored); flow reads `[0]` and
  `[1]`, so one unit answers 500 `"Something went wrong: list index out of range"`.
- min/max are stored in 32-bit integer columns and ids in VARCHAR(255): MySQL errors as
  `"Something went wrong: (1264, ...)"` / `(1406, ...)`.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from elt.sandbox.wire import Reply, internal_error, json_response

DATA_TYPES = ("single_location", "flow")
INT32 = (-(2**31), 2**31 - 1)
_DT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
Key = tuple[str, str, int, int, "datetime | None"]


def wrong(detail: str) -> Reply:
    """The handler's catch-all: 500 with a JSON string naming the underlying error."""
    return Reply(json_response(500, f"Something went wrong: {detail}"))


def invalid() -> Reply:
    """A request-model validation failure: FastAPI's bare 500 text/plain."""
    return Reply(internal_error())


def parse_dt(value: Any) -> datetime | None:
    """A dataset time: None stays None (stored as NULL); a date without time is invalid;
    an offset is cut off, not applied (as the real backend does)."""
    if value is None:
        return None
    if not isinstance(value, str) or not _DT.match(value):
        raise invalid()
    return datetime.fromisoformat(_OFFSET.sub("", value))


def key_label(meta: Any) -> str:
    """The stats key `category_id|indicator_id|srid|trid|dt`, dt normalised when parseable."""
    if not isinstance(meta, dict):
        return "<invalid>"
    dt = meta.get("dt")
    try:
        parsed = parse_dt(dt)
        dt = parsed.strftime("%Y-%m-%d %H:%M:%S") if parsed is not None else None
    except Reply:
        pass
    return "|".join(str(meta.get(k)) for k in ("category_id", "indicator_id", "srid", "trid")) + (
        f"|{dt}"
    )


def _int(value: Any) -> int:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid()
    return value


def metadata(meta: Any) -> tuple[Key, str]:
    """The dataset key (category, indicator, srid, trid, dt) and revision; Reply on failure."""
    if not isinstance(meta, dict):
        raise invalid()
    for name in ("revision", "category_id", "indicator_id", "srid", "trid"):
        if meta.get(name) is None or isinstance(meta[name], list | dict):
            raise invalid()
    revision, cat, ind = meta["revision"], meta["category_id"], meta["indicator_id"]
    if not all(isinstance(v, str) for v in (revision, cat, ind)):
        raise invalid()
    if "date_added" in meta:
        added = meta["date_added"]
        if not isinstance(added, str):
            raise invalid()
        try:
            datetime.fromisoformat(added.replace("Z", "+00:00"))
        except ValueError:
            raise invalid() from None
    key = (cat, ind, _int(meta["srid"]), _int(meta["trid"]), parse_dt(meta.get("dt")))
    return key, revision


def body(doc: Any, *, delete: bool = False) -> tuple[Key, str, str, list[Any]]:
    """Validate a Dataset request body like the request model: (key, revision, data_type,
    data_input). DELETE uses the same model: a key-only body fails it."""
    if not isinstance(doc, dict):
        raise invalid()
    data_type, rows = doc.get("data_type"), doc.get("data_input")
    if not isinstance(data_type, str) or not isinstance(rows, list):
        raise invalid()
    for row in rows:
        if not isinstance(row, dict):
            raise invalid()
        units, value = row.get("spatial_unit_ids"), row.get("data")
        if not isinstance(units, list) or not all(isinstance(u, str) for u in units):
            raise invalid()
        if value is None or isinstance(value, list | dict):
            raise invalid()
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                raise invalid() from None
    key, revision = metadata(doc.get("metadata"))
    return key, revision, data_type, rows


def check_ids(key: Key) -> None:
    """VARCHAR(255) columns: MySQL's 1406 error, wrapped by the handler's catch-all."""
    for name, value in zip(("category_id", "indicator_id"), key[:2], strict=True):
        if len(value) > 255:
            raise wrong(f"(1406, \"Data too long for column '{name}' at row 1\")")


def values(rows: list[dict[str, Any]], data_type: str) -> tuple[list[dict[str, Any]], int, int]:
    """(rows as stored, min, max): units cut to what the handler reads, values as posted."""
    stored: list[dict[str, Any]] = []
    numbers: list[float] = []
    for row in rows:
        units = row["spatial_unit_ids"]
        try:
            kept = [units[0], units[1]] if data_type == "flow" else [units[0]]
        except IndexError:
            raise wrong("list index out of range") from None
        number = float(row["data"])
        if not math.isfinite(number):
            raise wrong(f"{number} can not be used with MySQL")
        numbers.append(number)
        stored.append({"spatial_unit_ids": kept, "data": row["data"]})
    lo, hi = round(min(numbers)), round(max(numbers))
    for column, value in (("min_value", lo), ("max_value", hi)):
        if not INT32[0] <= value <= INT32[1]:
            raise wrong(f"(1264, \"Out of range value for column '{column}' at row 1\")")
    return stored, lo, hi
