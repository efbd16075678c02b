"""Transport behaviour pinned with pytest-httpx and a fake clock (no real waiting)."""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from elt.core.errors import PublishError
from elt.http.messages import Request
from elt.http.transport import Reply, Transport, retry_after_seconds

URL = "http://flowkit.test/v1"


class FakeClock:
    """Virtual time: records every sleep; concurrent sleepers wake in order of their deadline."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.sleeps: list[float] = []
        self._deadlines: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        deadline = self.t + seconds
        self._deadlines.append(deadline)
        await asyncio.sleep(0)  # let the other runnable tasks reach their own sleep first
        while deadline > min(self._deadlines):
            await asyncio.sleep(0)
        self._deadlines.remove(deadline)
        self.t = max(self.t, deadline)


class MaxRandom(random.Random):
    """Jitter at its ceiling, so backoff growth is exact."""

    def random(self) -> float:
        return 1.0


def make(clock: FakeClock | None = None, **endpoint: Any) -> Transport:
    return Transport("flowkit", {"url": URL, **endpoint}, clock=clock or FakeClock(),
                     rng=endpoint.pop("rng", None))


def post(path: str = "/data", content: bytes = b'{"a":1}') -> Request:
    return Request("POST", path, content, {"Content-Type": "application/json"}, ())


def run(factory: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(factory())


def send(transport: Transport, request: Request | None = None) -> Reply:
    async def go() -> Reply:
        async with transport:
            return await transport.send(request or post())
    return run(go)


def test_send_builds_url_and_counts(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", url=f"{URL}/data", status_code=201, text="17",
                            match_headers={"Content-Type": "application/json"},
                            match_content=b'{"a":1}')
    t = make()
    reply = send(t)
    assert reply == Reply(201, b"17", None, 1)
    assert (t.requests, t.bytes_sent, t.retries) == (1, 7, 0)


def test_graphql_request_goes_to_graphql_path(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", url="http://uois.test/api/gql", json={"data": {}})
    t = Transport("uois", {"url": "http://uois.test/", "graphql_path": "/api/gql"},
                  clock=FakeClock())
    assert send(t, post(path="")).status == 200


def test_retry_on_500_then_success(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=500, text="Something went wrong: x")
    httpx_mock.add_response(status_code=201, text="17")
    clock = FakeClock()
    t = make(clock)
    reply = send(t)
    assert (reply.status, reply.body, reply.attempts) == (201, b"17", 2)
    assert len(clock.sleeps) == 1 and t.retries == 1 and t.requests == 2


def test_429_honours_retry_after_seconds(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=429, headers={"Retry-After": "7"})
    httpx_mock.add_response(status_code=201, text="1")
    clock = FakeClock()
    assert send(make(clock, rng=random.Random(0))).status == 201
    assert clock.sleeps == [7.0]


def test_retry_after_http_date() -> None:
    now = time.time()
    when = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= retry_after_seconds(when, wall_now=now) <= 30
    assert retry_after_seconds(email.utils.formatdate(now - 30, usegmt=True), now) == 0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_exponential_backoff_then_last_status(httpx_mock: HTTPXMock) -> None:
    for i in range(5):
        httpx_mock.add_response(status_code=503, text=f"busy {i}")
    clock = FakeClock()
    reply = send(make(clock, rng=MaxRandom()))
    assert (reply.status, reply.body, reply.error, reply.attempts) == (503, b"busy 4", None, 5)
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0]


def test_backoff_jitter_is_bounded(httpx_mock: HTTPXMock) -> None:
    for i in range(8):  # a different answer each time: transient, not deterministic
        httpx_mock.add_response(status_code=503, text=f"unavailable {i}")
    clock = FakeClock()
    reply = send(make(clock, max_attempts=8, rng=random.Random(42)))
    assert reply.attempts == 8 and reply.status == 503
    ceilings = [min(30.0, 0.5 * 2**i) for i in range(7)]
    assert all(0 <= s <= c for s, c in zip(clock.sleeps, ceilings, strict=True))
    assert len(set(clock.sleeps)) == 7  # jittered, not a fixed schedule


@pytest.mark.parametrize("status", [502, 504])
def test_a_write_a_gateway_gave_up_on_is_unknown_not_resent(httpx_mock: HTTPXMock,
                                                             status: int) -> None:
    """The server behind the gateway may still be writing: a resend could race it (FlowKit:
    "Ambiguous dataset"). Like a timeout: no answer, reached, resent by a later run only."""
    httpx_mock.add_response(method="POST", status_code=status, text="Gateway")
    clock = FakeClock()
    reply = send(make(clock))
    assert (reply.status, reply.attempts, reply.reached, clock.sleeps) == (None, 1, True, [])
    assert f"HTTP {status} from a gateway" in (reply.error or "")
    httpx_mock.add_response(method="GET", status_code=status, text="Gateway")  # a read: safe
    httpx_mock.add_response(method="GET", status_code=200, text="ok")
    reply = send(make(clock), Request("GET", "/x", b"", {}, ()))
    assert (reply.status, reply.attempts) == (200, 2)
    httpx_mock.add_response(method="POST", status_code=status, text="Gateway")
    httpx_mock.add_response(method="POST", status_code=201, text="1")
    reply = send(make(clock, retry_timeouts=True))  # the endpoint says resending is safe
    assert (reply.status, reply.attempts) == (201, 2)


@pytest.mark.parametrize("first, repeated", [
    ({"status_code": 429, "headers": {"Retry-After": "0"}}, False),  # refused unread
    ({"status_code": 503}, False),
    ({"status_code": 500}, True),  # the server may have stored it before failing
    (httpx.ReadError("connection reset"), True),  # reached, no answer (resent: see below)
    (httpx.ConnectError("refused"), False),  # never reached
])
def test_a_reply_says_whether_an_earlier_attempt_may_have_been_processed(
        httpx_mock: HTTPXMock, first: Any, repeated: bool) -> None:
    """Only then may an "already exists" be the earlier copy's doing (stream.settle)."""
    if isinstance(first, Exception):
        httpx_mock.add_exception(first)
    else:
        httpx_mock.add_response(**first)
    httpx_mock.add_response(status_code=303, text="7")
    reply = send(make(FakeClock(), retry_timeouts=True))
    assert (reply.status, reply.attempts, reply.repeated) == (303, 2, repeated)


@pytest.mark.parametrize("dropped", [httpx.ReadError("connection reset by peer"),
                                     httpx.RemoteProtocolError("Server disconnected")])
def test_a_write_whose_connection_dropped_after_sending_is_unknown_not_resent(
        httpx_mock: HTTPXMock, dropped: Exception) -> None:
    """A proxy in front may drop it while the server goes on writing: a resend could race
    it. Like a timeout; a read is resent (nothing to race)."""
    httpx_mock.add_exception(dropped)
    clock = FakeClock()
    reply = send(make(clock))
    assert (reply.status, reply.attempts, reply.reached, clock.sleeps) == (None, 1, True, [])
    httpx_mock.add_exception(dropped)
    httpx_mock.add_response(method="GET", status_code=200, text="ok")
    reply = send(make(clock), Request("GET", "/x", b"", {}, ()))
    assert (reply.status, reply.attempts) == (200, 2)


def test_400_is_not_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=400, json="No data to ingest")
    clock = FakeClock()
    reply = send(make(clock))
    assert (reply.status, reply.attempts, clock.sleeps) == (400, 1, [])
    assert len(httpx_mock.get_requests()) == 1


def test_redirect_is_not_followed(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(status_code=302, headers={"Location": f"{URL}/data"})
    reply = send(make())
    assert (reply.status, reply.attempts) == (302, 1)


def test_connection_error_is_retried(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("Connection refused"))
    httpx_mock.add_response(status_code=201, text="5")
    clock = FakeClock()
    reply = send(make(clock, rng=MaxRandom()))
    assert (reply.status, reply.attempts) == (201, 2)
    assert clock.sleeps == [0.5]  # never reached the server: no resend pause needed


def test_read_timeout_is_not_resent_in_the_same_run(httpx_mock: HTTPXMock) -> None:
    """The first copy may still be processing: resending could store the key twice."""
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    clock = FakeClock()
    reply = send(make(clock))
    assert (reply.status, reply.attempts) == (None, 1)
    assert "timed out" in (reply.error or "")
    assert clock.sleeps == []


def test_retry_timeouts_waits_at_least_one_second_before_resending(
        httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ReadTimeout("slow"))
    httpx_mock.add_response(status_code=303, text="8")
    clock = FakeClock()
    reply = send(make(clock, rng=random.Random(1), retry_timeouts=True))
    assert (reply.status, reply.attempts) == (303, 2)
    assert clock.sleeps[0] >= 1.0


def test_errors_after_last_attempt_name_the_endpoint(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("Connection refused"), is_reusable=True)
    reply = send(make(max_attempts=3))
    assert (reply.status, reply.body, reply.attempts) == (None, b"", 3)
    assert reply.error == f"endpoint flowkit ({URL}): cannot connect: Connection refused"


def test_rate_limit_spaces_requests_on_the_clock(httpx_mock: HTTPXMock) -> None:
    clock = FakeClock()
    starts: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        starts.append(clock.now())
        return httpx.Response(201, text="1")

    httpx_mock.add_callback(record, is_reusable=True)
    t = make(clock, rate_limit=4)

    async def go() -> None:
        async with t:
            await asyncio.gather(*(t.send(post()) for _ in range(5)))
    run(go)
    assert [s - 1000.0 for s in starts] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_concurrency_is_bounded(httpx_mock: HTTPXMock) -> None:
    state = {"now": 0, "max": 0}

    async def slow(request: httpx.Request) -> httpx.Response:
        state["now"] += 1
        state["max"] = max(state["max"], state["now"])
        await asyncio.sleep(0.01)
        state["now"] -= 1
        return httpx.Response(201)

    httpx_mock.add_callback(slow, is_reusable=True)
    t = make(concurrency=3)
    assert t.concurrency == 3

    async def go() -> list[Reply]:
        async with t:
            return await asyncio.gather(*(t.send(post()) for _ in range(10)))
    assert [r.status for r in run(go)] == [201] * 10
    assert state["max"] == 3
    assert Transport("x", {"url": URL, "concurrency": 5}, concurrency=2).concurrency == 2
    assert Transport("x", {"url": URL, "concurrency": 5}).concurrency == 5


def beat(t: Transport) -> str:
    """The heartbeat of a fresh transport, opened and closed around it."""
    async def go() -> str:
        async with t:
            return await t.heartbeat()
    return run(go)


def test_heartbeat_returns_version(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=f"{URL}/heartbeat",
                            json={"datetime": "2024-01-01", "version": "1.4.2"})
    t = make(heartbeat="/heartbeat")
    assert beat(t) == "1.4.2"


def test_heartbeat_unreachable_names_the_endpoint(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("[Errno 111] Connection refused"),
                             is_reusable=True)
    clock = FakeClock()
    t = make(clock, heartbeat="/heartbeat", max_attempts=3)
    with pytest.raises(PublishError) as err:
        beat(t)
    assert str(err.value) == (f"endpoint flowkit ({URL}): cannot connect: "
                              "[Errno 111] Connection refused")
    assert len(httpx_mock.get_requests()) == 3 and len(clock.sleeps) == 2  # retried like data


def test_heartbeat_blip_is_retried_and_no_version_is_said(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/heartbeat", status_code=502, text="bad gateway")
    httpx_mock.add_response(url=f"{URL}/heartbeat", json={"datetime": "x", "config": {}})
    t = make(heartbeat="/heartbeat")
    assert beat(t) == "ok (no version)"


def test_same_500_is_retried_twice_then_given_up(httpx_mock: HTTPXMock) -> None:
    """FlowKit's validation failures: 500 `Internal Server Error`, the same every time."""
    httpx_mock.add_response(status_code=500, text="Internal Server Error", is_reusable=True)
    clock = FakeClock()
    reply = send(make(clock, max_attempts=8))
    assert (reply.status, reply.body, reply.attempts) == (500, b"Internal Server Error", 3)
    assert len(httpx_mock.get_requests()) == 3
    httpx_mock.reset()
    httpx_mock.add_response(status_code=500, text="Internal Server Error", is_reusable=True)
    reply = send(make(clock, max_attempts=8, same_error_retries=0))
    assert reply.attempts == 1


def test_bad_endpoint_config() -> None:
    with pytest.raises(PublishError, match="endpoint e: no `url` configured"):
        Transport("e", {})
    with pytest.raises(PublishError, match="`timeout` must be a number"):
        Transport("e", {"url": URL, "timeout": "soon"})


def test_recorded_answers_leave_out_a_database_errors_parameters() -> None:
    from elt.http.messages import truncate

    text = ("UniqueViolationError\nDETAIL:  Key (id)=(u1) already exists.\n[SQL: INSERT INTO "
            "users (id, email) VALUES ($1, $2)]\n[parameters: ('u1', 'a@b.org')]\n(Background)")
    kept = truncate(text)
    assert kept is not None and "a@b.org" not in kept
    assert kept.endswith("[SQL: INSERT INTO users (id, email) VALUES ($1, $2)]\n"
                         "[parameters: not recorded]\n(Background)")
