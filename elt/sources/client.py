"""Asking an API source's endpoint: one request per tuple (or aliased batch, or page walk)
through the publisher's Transport, each answer read into an `Answer` for the writer."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any, Protocol

from elt.core import secrets
from elt.core.console import Progress
from elt.http.messages import Request, answer_text, pick, truncate
from elt.sources.spec import (
    Answer,
    Key,
    SourceSpec,
    Tally,
    dump,
    graphql_request,
    rest_request,
)

if TYPE_CHECKING:  # httpx and graphql-core load only when there is something to ask
    from elt.http.transport import Transport


class Sink(Protocol):
    """Where answers go (fetch.py's writer: batched, committed as they come)."""

    def add(self, answers: list[Answer]) -> None: ...


async def fetch_all(spec: SourceSpec, endpoint: dict[str, Any],
                    todo: list[tuple[Key, dict[str, Any], bool]], writer: Sink, tally: Tally,
                    progress: Progress) -> None:
    """Bounded concurrency: as many workers as the transport has slots, sharing one queue."""
    size = spec.batch_size if spec.kind == "graphql" and not spec.paging else 1
    asks = [(key, values) for key, values, _ in todo]
    units = iter([asks[i:i + size] for i in range(0, len(asks), size)])
    from elt.http.transport import Transport

    async with Transport(spec.endpoint, endpoint, concurrency=spec.concurrency) as transport:
        await transport.check_auth()
        client = Client(spec, transport, tally, progress)

        async def worker() -> None:
            for unit in units:
                writer.add(await client.fetch(unit))

        await asyncio.gather(*(worker() for _ in range(transport.concurrency)))


class Client:
    """Builds each request from a spec and reads each answer into Answers."""

    def __init__(self, spec: SourceSpec, transport: Transport, tally: Tally,
                 progress: Progress) -> None:
        self.spec, self.transport, self.tally, self.progress = spec, transport, tally, progress
        self.documents: dict[int, tuple[str, Any]] = {}

    async def send(self, request: Request) -> tuple[int | None, Any, str | None]:
        """(status, parsed JSON body, failure text or None)."""
        reply = await self.transport.send(request)  # raises when credentials fail: stop all
        self.tally.sent += 1
        failed = reply.status is None or not 200 <= reply.status < 300
        self.progress.advance(errors=int(failed))
        if failed:
            text = reply.error or answer_text(reply.body) or f"HTTP {reply.status}"
            return reply.status, None, self.tally.fail(reply.status, text)
        try:
            return reply.status, json.loads(reply.body) if reply.body.strip() else None, None
        except ValueError:
            return reply.status, reply.body.decode("utf-8", "replace"), None

    async def fetch(self, unit: list[tuple[Key, dict[str, Any]]]) -> list[Answer]:
        if self.spec.paging:
            return [await self.fetch_pages(*unit[0])]
        if self.spec.kind == "rest":
            key, values = unit[0]
            status, body, failure = await self.send(rest_request(self.spec, values, {}))
            if failure:
                return [Answer(key, http_status=status, error=failure)]
            return [Answer(key, [(None, None, dump(pick(body, self.spec.result)))], status)]
        return await self.fetch_graphql(unit)

    async def fetch_graphql(self, unit: list[tuple[Key, dict[str, Any]]]) -> list[Answer]:
        from elt.http.graphql import batch_alias, build_batched_document

        spec = self.spec
        rows = [{**spec.fixed_variables, **values} for _, values in unit]
        if spec.batch_size == 1:
            request, aliases = graphql_request(spec, spec.document_text, rows[0]), None
        else:
            if len(unit) not in self.documents:
                self.documents[len(unit)] = build_batched_document(
                    spec.document_text, len(unit), source=str(spec.document_path))
            query, mapper = self.documents[len(unit)]
            request, aliases = graphql_request(spec, query, mapper(rows)), True
        status, body, failure = await self.send(request)
        keys = [spec.response_key] if not aliases else [batch_alias(i) for i in range(len(unit))]
        if failure is None:
            values, errors, failure = self.read_graphql(status, body, keys)
        if failure:
            return [Answer(key, http_status=status, error=failure) for key, _ in unit]
        out = []
        for (key, _), alias in zip(unit, keys, strict=True):
            if alias in errors:
                self.tally.field_errors += 1
                out.append(Answer(key, http_status=status, error=truncate(errors[alias], 500)))
            else:
                result = pick(values.get(alias), spec.result, spec.response_key)
                out.append(Answer(key, [(None, None, dump(result))], status))
        return out

    def read_graphql(self, status: int | None, body: Any, keys: list[str]
                     ) -> tuple[dict[str, Any], dict[str, str], str | None]:
        """(data per alias, error per alias, failure of the whole request or None)."""
        if not isinstance(body, dict):
            return {}, {}, self.tally.fail(
                status, secrets.redact(f"not a GraphQL answer: {body!r}")[:200])
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        by_alias: dict[str, str] = {}
        general: list[str] = []
        for err in body.get("errors") or []:
            path = err.get("path") if isinstance(err, dict) else None
            msg = err.get("message") or err.get("msg") if isinstance(err, dict) else None
            text = str(msg or err)
            if isinstance(path, list) and path and path[0] in keys:
                by_alias[path[0]] = "; ".join(filter(None, [by_alias.get(path[0]), text]))
            else:
                general.append(text)
        if general and not any(data.get(k) is not None for k in keys):
            return {}, {}, self.tally.fail(status, "GraphQL errors: " + "; ".join(general))
        return data, by_alias, None

    async def fetch_pages(self, key: Key, values: dict[str, Any]) -> Answer:
        """Walk the pages of one tuple; any failing page makes the whole tuple an error."""
        spec, paging = self.spec, self.spec.paging
        assert paging is not None
        rows: list[tuple[int | None, int | None, str | None]] = []
        offset, cursor, status = 0, None, None
        for page in range(1, spec.max_pages + 1):
            extra: dict[str, Any] = {paging.limit_param: paging.size} if paging.limit_param else {}
            if paging.style != "cursor":
                extra[paging.offset_param] = offset
            elif cursor is not None:
                extra[paging.cursor_param] = cursor
            if spec.kind == "rest":
                status, answer, failure = await self.send(rest_request(spec, values, extra))
            else:
                variables = {**spec.fixed_variables, **values, **extra}
                request = graphql_request(spec, spec.document_text, variables)
                status, answer, failure = await self.send(request)
                if failure is None:
                    data, errors, failure = self.read_graphql(status, answer, [spec.response_key])
                    answer = data.get(spec.response_key)
                    if failure is None and spec.response_key in errors:
                        self.tally.field_errors += 1
                        failure = truncate(errors[spec.response_key], 500)
            if failure:
                return Answer(key, http_status=status, error=failure)
            items = pick(answer, spec.result, spec.response_key)
            if not isinstance(items, list | None):
                text = f"page {page}: {spec.result or 'the answer'} is not a list"
                return Answer(key, http_status=status, error=self.tally.fail(status, text))
            items = items or []
            rows += [(page, i + 1, dump(item)) for i, item in enumerate(items)]
            offset += len(items)
            if paging.style == "cursor":
                cursor = pick(answer, paging.next, spec.response_key)
                if not items or cursor in (None, ""):
                    break
            elif len(items) < paging.size:
                break
        return Answer(key, rows or [(None, None, None)], status)
