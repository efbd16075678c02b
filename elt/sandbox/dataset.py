"""FlowKit dataset validation: pure functions, worded like the real server's failures.

Split from flowkit.py so the rules (dt must carry a time, values finite and within the
32-bit min/max columns, string ids at most 255 characters) read in one place.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from elt.sandbox.wire import Reply, json_response

DATA_TYPES = {"single_location": 1, "flow": 2}  # -> length of spatial_unit_ids
INT32 = (-(2**31), 2**31 - 1)
_DT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


def wrong(detail: str) -> Reply:
    """The service's catch-all: 500 with a JSON string naming the underlying error."""
    return Reply(json_response(500, f"Something went wrong: {detail}"))


def parse_dt(value: Any) -> datetime:
    """A dataset time: date AND time required; a bare date fails like on the real server."""
    if not isinstance(value, str) or not _DT.match(value):
        raise wrong(f"time data {value!r} does not match format '%Y-%m-%d %H:%M:%S'")
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def key_label(meta: Any) -> str:
    """The stats key `category_id|indicator_id|srid|trid|dt`, dt normalised when parseable."""
    if not isinstance(meta, dict):
        return "<invalid>"
    dt = meta.get("dt")
    try:
        dt = parse_dt(dt).strftime("%Y-%m-%d %H:%M:%S")
    except Reply:
        pass
    return "|".join(str(meta.get(k)) for k in ("category_id", "indicator_id", "srid", "trid")) + (
        f"|{dt}"
    )


def metadata(meta: dict[str, Any]) -> tuple[tuple[Any, ...], str]:
    """The dataset key (category, indicator, srid, trid, dt) and revision, or a 500 Reply."""
    for name in ("revision", "category_id", "indicator_id", "srid", "trid", "dt"):
        if name not in meta or meta[name] is None:
            raise wrong(f"1 validation error for Metadata: {name} field required")
    revision = meta["revision"]
    if not isinstance(revision, str):
        raise wrong("revision: str type expected")
    ids = []
    for name in ("category_id", "indicator_id"):
        value = meta[name]
        if not isinstance(value, str):
            raise wrong(f"{name}: str type expected")
        if len(value) > 255:
            raise wrong(f"(1406, \"Data too long for column '{name}' at row 1\")")
        ids.append(value)
    nums = []
    for name in ("srid", "trid"):
        value = meta[name]
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            raise wrong(f"{name}: value is not a valid integer")
        nums.append(value)
    if "date_added" in meta:
        added = meta["date_added"]
        try:
            datetime.fromisoformat(str(added).replace("Z", "+00:00"))
        except ValueError:
            added = None
        if not isinstance(added, str):
            raise wrong("date_added: invalid datetime format")
    return (ids[0], ids[1], nums[0], nums[1], parse_dt(meta["dt"])), revision

def values(rows: list[Any], n_units: int) -> tuple[int, int, int]:
    """(count, min, max) of data_input, or a 500 Reply for non-finite or out-of-range values."""
    values: list[float] = []
    for i, row in enumerate(rows):
        units = row.get("spatial_unit_ids") if isinstance(row, dict) else None
        if not isinstance(units, list) or len(units) != n_units:
            raise wrong(f"data_input[{i}]: spatial_unit_ids must list {n_units} unit(s)")
        value = row.get("data")
        try:
            if isinstance(value, bool) or value is None:
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise wrong(f"data_input[{i}]: value {value!r} is not a number") from None
        if not math.isfinite(number):
            raise wrong(f"(1054, \"Unknown column '{value}' in 'field list'\")")
        values.append(number)
    lo, hi = round(min(values)), round(max(values))
    for column, value in (("min_value", lo), ("max_value", hi)):
        if not INT32[0] <= value <= INT32[1]:
            raise wrong(f"(1264, \"Out of range value for column '{column}' at row 1\")")
    return len(values), lo, hi
