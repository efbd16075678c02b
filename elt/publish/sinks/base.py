"""The interface between the HTTP layer and the runner: rows in, requests out, outcomes back.

Sinks are pure (no I/O) so that encoding and the reading of answers can be tested without a
server, and so that `encode` can run in a worker thread while the event loop keeps sending.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elt.core.errors import PublishError
from elt.http.messages import Request

ACKNOWLEDGED = "acknowledged"
FAILED = "failed"
# The endpoint says a row with this key exists already (FlowKit 303, a unique violation the
# publication declares): not proof that the stored data is ours. The stream follows it with
# an update in upsert mode; otherwise the ledger keeps it apart from acknowledged rows.
ALREADY_THERE = "already_there"
# The answer cannot say what happened to this row (an error without a `path` in a batched
# GraphQL document: fields before it were committed, later ones not run). The stream resends
# such rows one per request before recording anything.
UNRESOLVED = "unresolved"
# Not run: in such a document, a field after the one whose error names its row (gql_ug stops
# there). Resent alone as it was: this request cannot have delivered it.
NOT_RUN = "not_run"
# An update answered "not found" (REST `not_found`, 404 by default): the key is not there,
# e.g. after a batch answered "already there" for rows of which only some existed. In upsert
# mode the stream inserts it instead, once; otherwise it is recorded as failed.
NOT_THERE = "not_there"
# An update refused because the row changed since it was read (gql_ug's `lastchange`): the
# stream reads it again once and resends; a second refusal fails the row with the answer.
CHANGED_MEANWHILE = "changed_meanwhile"


@dataclass(frozen=True)
class Row:
    """One row of the pending set, as the runner hands it to a sink."""

    key: str  # canonical key: JSON array text of the key values, e.g. '["residents",3]'
    op: str  # "insert" | "update" | "delete"
    body: Any  # JSON value to send (parsed body column, or the row as a dict)
    hash: str  # content hash recorded in the ledger
    retry_of_unknown: bool = False  # sent before and the answer never recorded: may be there
    tombstone: str | None = None  # recorded on acknowledgement; the body of a later delete
    reinserted: bool = False  # an update answered "not found", sent again as an insert
    reread: bool = False  # an update refused as changed meanwhile, read again and resent
    # what a path/header template can name (paths.row_values): key columns, the columns the
    # templates need, `answer`; only read for sinks whose `templated` is true
    values: dict[str, Any] | None = field(default=None, hash=False, compare=False)


@dataclass(frozen=True)
class Outcome:
    """What the ledger records for one row."""

    key: str
    status: str  # acknowledged | failed | already_there | unresolved | not_run
    http_status: int | None
    answer: str | None  # e.g. the mdid or the returned id; error text when failed
    op: str


@dataclass(frozen=True)
class Refused(Request):
    """A request the sink would not build for its row (a path field NULL): never sent, the
    row recorded failed with `reason`. Only for one-row requests."""

    reason: str = ""


class Sink(ABC):
    """One per publication kind (rest, graphql); pure: no I/O, so it is easy to test."""

    kind = ""
    raw_bodies = False  # True: Row.body may be RawJSON text (the sink only re-emits it)
    templated = False  # True: rows need `values` (paths built from the row)
    params: tuple[str, ...] = ()  # non-key columns the templates name (the pending set's)

    def __init__(self, name: str, config: dict, base_dir: Path) -> None:
        self.name = name
        self.config = dict(config or {})
        self.base_dir = Path(base_dir)
        self.mode = str(self.config.get("mode") or "append")
        self.batch_size = self._batch_size(self.config.get("batch_size", 1))

    @abstractmethod
    def encode(self, rows: list[Row]) -> list[Request]:
        """Turn rows into requests; each row lands in exactly one request."""

    def can(self, op: str) -> bool:
        """Whether this publication can send `op` (insert, update, delete)."""
        return op == "insert"

    def template_params(self, key: tuple[str, ...]) -> tuple[str, ...]:
        """Non-key columns the sink's templates name (carried beside each body)."""
        return ()

    @abstractmethod
    def interpret(self, request: Request, status: int, body: bytes) -> list[Outcome]:
        """Read one HTTP answer into one outcome per row of the request, in order."""

    def read_reply(self, request: Request, status: int, body: bytes,
                   location: str | None = None) -> list[Outcome]:
        """interpret, given also the answer's Location header (a 201's new resource)."""
        return self.interpret(request, status, body)

    def fail_all(
        self, request: Request, answer: str | None, http_status: int | None = None
    ) -> list[Outcome]:
        """Every row of a request failed the same way (e.g. the transport gave up)."""
        return [Outcome(r.key, FAILED, http_status, answer, r.op) for r in request.rows]

    def error(self, message: str) -> PublishError:
        return PublishError(message, where=f"publication {self.name}")

    def chunks(self, rows: list[Row]) -> Iterator[list[Row]]:
        for start in range(0, len(rows), self.batch_size):
            yield rows[start : start + self.batch_size]

    def _batch_size(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise self.error(f"batch_size must be a positive integer, not {value!r}")
        return value


def sub_config(config: dict, kind: str) -> dict:
    """The `rest:`/`graphql:` settings: nested under the kind, or already flattened
    (spec.Publication.sink_config() hands the sub-config itself plus batch_size)."""
    nested = config.get(kind)
    if nested is None:
        return config
    if not isinstance(nested, dict):
        raise PublishError(f"`{kind}` must be a mapping")
    return {**config, **nested}
