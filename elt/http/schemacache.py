"""The schemas fetched from endpoints, kept in target/schemas/<endpoint>.json.

Every fetch (`elt publish`, `--dry-run`, a build's `payload_matches_schema` test) writes
the answer there with the endpoint's name, the setting it answered (`openapi: /openapi.json`
or `graphql_schema: introspect`), where from and when. A build reads it instead of asking
the endpoint while it is younger than MAX_AGE, and always when the build is offline
(`--exclude kind:api`) or the endpoint cannot be reached, saying how old it is; a cache of
another setting does not count. So an offline build checks bodies against the last schema
seen, and says so, instead of failing on a connection it was told not to make.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

MAX_AGE = timedelta(hours=24)


@dataclass
class Cached:
    body: bytes
    origin: str
    fetched_at: datetime

    def age(self, now: datetime | None = None) -> timedelta:
        return (now or datetime.now(UTC)) - self.fetched_at

    def describe(self) -> str:
        hours = self.age().total_seconds() / 3600
        ago = f"{hours:.0f} h" if hours >= 1 else f"{hours * 60:.0f} min"
        stale = ", stale" if self.age() > MAX_AGE else ""
        return f"cached {self.fetched_at:%Y-%m-%d %H:%M} UTC, {ago} ago{stale}"


def path_of(cache: Path, endpoint: str) -> Path:
    return cache / f"{endpoint}.json"


def write(cache: Path, endpoint: str, setting: str, origin: str, body: bytes) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    path = path_of(cache, endpoint)
    doc = {"endpoint": endpoint, "setting": setting, "origin": origin,
           "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
           "body": base64.b64encode(body).decode("ascii")}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    tmp.replace(path)  # a reader never sees half a file
    return path


def read(cache: Path, endpoint: str, setting: str) -> tuple[Cached | None, str]:
    """The cached answer for that endpoint and setting, or None and why there is none."""
    path = path_of(cache, endpoint)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("setting") != setting:
            return None, (f"{path} holds the schema of `{doc.get('setting')}`, not "
                          f"`{setting}`")
        fetched = datetime.fromisoformat(doc["fetched_at"])
        return Cached(base64.b64decode(doc["body"]), str(doc["origin"]), fetched), ""
    except FileNotFoundError:
        return None, f"no schema of endpoint {endpoint} is cached ({path} is missing)"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return None, f"{path} is unreadable ({exc})"
