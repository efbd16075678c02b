"""Auth flows pinned request by request: token bodies, caching, refresh, cookie vs header."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import httpx
import pytest
from pytest_httpx import HTTPXMock

from elt.core import secrets
from elt.core.errors import PublishError
from elt.http.auth import make_auth
from elt.http.messages import Request
from elt.http.transport import Reply, Transport

URL = "http://flowkit.test/v1"
TOKEN_URL = "http://auth.test/oauth/token"
LOGIN_URL = "http://uois.test/oauth/login3"
SECRET = "s3cret-client-value"
OAUTH = {"type": "oauth2_client_credentials", "token_url": TOKEN_URL, "client_id": "updater",
         "client_secret": SECRET, "audience": "https://flowkit-ui-backend"}
TOKEN_BODY = {"client_id": "updater", "client_secret": SECRET,
              "audience": "https://flowkit-ui-backend", "grant_type": "client_credentials"}
LOGIN = {"type": "login3", "login_url": LOGIN_URL, "username": "john", "password": "pa55word"}


class FakeClock:
    """Virtual time that only moves when told to (or by sleeps)."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


def token_response(httpx_mock: HTTPXMock, token: str, expires_in: int = 86400) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, match_json=TOKEN_BODY,
                            json={"access_token": token, "expires_in": expires_in,
                                  "token_type": "Bearer"})


def post(path: str = "/data") -> Request:
    return Request("POST", path, b"{}", {"Content-Type": "application/json"}, ())


def transport(auth: dict, clock: FakeClock | None = None, **endpoint: Any) -> Transport:
    return Transport("flowkit", {"url": URL, "auth": auth, **endpoint},
                     clock=clock or FakeClock())


def run_sends(t: Transport, n: int = 1, request: Request | None = None,
              between: Any = None) -> list[Reply]:
    async def go() -> list[Reply]:
        replies = []
        async with t:
            for _ in range(n):
                replies.append(await t.send(request or post()))
                if between:
                    between()
        return replies
    return asyncio.run(go())


def auth_headers(httpx_mock: HTTPXMock, url: str = f"{URL}/data") -> list[str | None]:
    return [r.headers.get("Authorization") for r in httpx_mock.get_requests(url=url)]


def jwt(lifetime: int, uois: bool = False) -> str:
    """A JWT with iat and exp, or as UOIS issues them: `expires_in` and no exp."""
    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")
    claims = ({"token_type": "Bearer", "expires_in": lifetime, "user_id": "u"} if uois
              else {"iat": 1000, "exp": 1000 + lifetime})
    return f"{part({'alg': 'RS256'})}.{part(claims)}.sig"


# -- oauth2 client credentials ------------------------------------------------------------
def test_oauth2_token_body_and_one_token_for_many_sends(httpx_mock: HTTPXMock) -> None:
    token_response(httpx_mock, "tok-1")
    httpx_mock.add_response(url=f"{URL}/data", status_code=201, text="1", is_reusable=True)
    replies = run_sends(transport(OAUTH), 3)
    assert [r.status for r in replies] == [201, 201, 201]
    assert len(httpx_mock.get_requests(url=TOKEN_URL)) == 1
    [token_req] = httpx_mock.get_requests(url=TOKEN_URL)
    assert json.loads(token_req.content) == TOKEN_BODY
    assert auth_headers(httpx_mock) == ["Bearer tok-1"] * 3
    assert secrets.redact(f"x {SECRET} tok-1") == "x *** ***"


def test_concurrent_sends_share_one_token_fetch(httpx_mock: HTTPXMock) -> None:
    async def slow_token(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.01)  # the others arrive while this fetch is in flight
        return httpx.Response(200, json={"access_token": "tok-1", "expires_in": 600})

    httpx_mock.add_callback(slow_token, url=TOKEN_URL, is_reusable=True)
    httpx_mock.add_response(url=f"{URL}/data", status_code=201, is_reusable=True)
    t = transport(OAUTH)

    async def go() -> list[Reply]:
        async with t:
            return await asyncio.gather(*(t.send(post()) for _ in range(6)))
    assert [r.status for r in asyncio.run(go())] == [201] * 6
    assert len(httpx_mock.get_requests(url=TOKEN_URL)) == 1


def test_oauth2_refreshes_before_expiry(httpx_mock: HTTPXMock) -> None:
    token_response(httpx_mock, "tok-1", expires_in=3600)
    token_response(httpx_mock, "tok-2", expires_in=3600)
    httpx_mock.add_response(url=f"{URL}/data", status_code=201, is_reusable=True)
    clock = FakeClock()
    steps = iter([3539.0, 2.0])  # 3539 s: still inside the 60 s margin; 3541 s: refresh

    def advance() -> None:
        clock.t += next(steps, 0.0)
    run_sends(transport(OAUTH, clock), 3, between=advance)
    assert auth_headers(httpx_mock) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]


def test_oauth2_refreshes_once_on_401(httpx_mock: HTTPXMock) -> None:
    token_response(httpx_mock, "old")
    token_response(httpx_mock, "new")
    httpx_mock.add_response(url=f"{URL}/data", status_code=401, json="Could not decode token")
    httpx_mock.add_response(url=f"{URL}/data", status_code=201, text="17")
    [reply] = run_sends(transport(OAUTH))
    assert (reply.status, reply.body, reply.attempts) == (201, b"17", 2)
    assert auth_headers(httpx_mock) == ["Bearer old", "Bearer new"]


def test_persistent_401_is_returned_after_one_refresh(httpx_mock: HTTPXMock) -> None:
    token_response(httpx_mock, "a")
    token_response(httpx_mock, "b")
    body = b'"Invalid token: Required permissions [\'write:data\'] not present"'
    httpx_mock.add_response(url=f"{URL}/data", status_code=401, content=body, is_reusable=True)
    [reply] = run_sends(transport(OAUTH))
    assert (reply.status, reply.body, reply.attempts) == (401, body, 2)
    assert len(httpx_mock.get_requests(url=TOKEN_URL)) == 2


def test_bad_credentials_name_endpoint_and_status_not_secret(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="POST", url=TOKEN_URL, status_code=401,
                            json={"error": "access_denied", "error_description": "Unauthorized"})
    t = transport(OAUTH)

    async def go() -> None:
        async with t:
            await t.check_auth()
    with pytest.raises(PublishError) as err:
        asyncio.run(go())
    message = str(err.value)
    assert message.startswith(f"endpoint flowkit: token request to {TOKEN_URL} answered HTTP 401")
    assert SECRET not in message


def test_token_endpoint_unreachable(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_exception(httpx.ConnectError("Name or service not known"), is_reusable=True)
    clock = FakeClock()
    with pytest.raises(PublishError, match="endpoint flowkit: token request to .* cannot connect"):
        run_sends(transport(OAUTH, clock))
    # the token fetch retries blips like data requests (backoff with jitter), then gives up
    assert len(clock.sleeps) == 4 and all(0 <= s <= 4.0 for s in clock.sleeps)
    assert len(httpx_mock.get_requests()) == 5


# -- login3 (UOIS) -------------------------------------------------------------------------
def login_responses(httpx_mock: HTTPXMock, token: str, key: str = "k1") -> None:
    httpx_mock.add_response(method="GET", url=LOGIN_URL, json={"key": key})
    httpx_mock.add_response(method="POST", url=LOGIN_URL, json={"token": token},
                            match_json={"key": key, "username": "john", "password": "pa55word"})


def uois(auth: dict, clock: FakeClock | None = None) -> Transport:
    return Transport("uois", {"url": "http://uois.test", "graphql_path": "/api/gql",
                              "auth": auth}, clock=clock or FakeClock())


def test_login3_two_steps_bearer_and_cookie(httpx_mock: HTTPXMock) -> None:
    """The real front end forwards only `Authorization`: it is sent besides the cookie."""
    login_responses(httpx_mock, "jwt-1")
    httpx_mock.add_response(method="POST", url="http://uois.test/api/gql", json={"data": {}},
                            match_headers={"Cookie": "authorization=jwt-1",
                                           "Authorization": "Bearer jwt-1"})
    [reply] = run_sends(uois(LOGIN), request=post(path=""))
    assert reply.status == 200
    [gql] = httpx_mock.get_requests(url="http://uois.test/api/gql")
    assert gql.headers["Authorization"] == "Bearer jwt-1"
    assert gql.headers["Cookie"] == "authorization=jwt-1"
    assert [r.method for r in httpx_mock.get_requests(url=LOGIN_URL)] == ["GET", "POST"]


def test_login3_token_in_header(httpx_mock: HTTPXMock) -> None:
    login_responses(httpx_mock, "jwt-1")
    httpx_mock.add_response(url="http://uois.test/api/gql", json={"data": {}},
                            match_headers={"Authorization": "Bearer jwt-1"})
    [reply] = run_sends(uois({**LOGIN, "token_in": "header"}), request=post(path=""))
    assert reply.status == 200
    assert "Cookie" not in httpx_mock.get_requests(url="http://uois.test/api/gql")[0].headers


def test_graphql_401_logs_in_again(httpx_mock: HTTPXMock) -> None:
    login_responses(httpx_mock, "expired", key="k1")
    login_responses(httpx_mock, "fresh", key="k2")
    httpx_mock.add_response(url="http://uois.test/api/gql", status_code=401,
                            json={"data": None, "errors": ["Unauthenticated"]})
    httpx_mock.add_response(url="http://uois.test/api/gql", json={"data": {"result": {}}})
    [reply] = run_sends(uois(LOGIN), request=post(path=""))
    assert (reply.status, reply.attempts) == (200, 2)
    cookies = [r.headers["Cookie"] for r in httpx_mock.get_requests(url="http://uois.test/api/gql")]
    assert cookies == ["authorization=expired", "authorization=fresh"]
    assert auth_headers(httpx_mock, "http://uois.test/api/gql") == ["Bearer expired",
                                                                     "Bearer fresh"]


@pytest.mark.parametrize("as_uois", [False, True], ids=["exp", "expires_in"])
def test_login3_refreshes_before_the_jwt_expires(httpx_mock: HTTPXMock, as_uois: bool) -> None:
    login_responses(httpx_mock, jwt(3600, as_uois), key="k1")
    login_responses(httpx_mock, jwt(7200, as_uois), key="k2")
    httpx_mock.add_response(url="http://uois.test/api/gql", json={"data": {}}, is_reusable=True)
    clock = FakeClock()

    def advance() -> None:
        clock.t += 3541.0
    run_sends(uois(LOGIN, clock), 2, request=post(path=""), between=advance)
    assert len(httpx_mock.get_requests(url=LOGIN_URL)) == 4


def test_login3_wrong_password(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(method="GET", url=LOGIN_URL, json={"key": "k"})
    httpx_mock.add_response(method="POST", url=LOGIN_URL, status_code=401, text="bad login")
    t = uois(LOGIN)

    async def go() -> None:
        async with t:
            await t.check_auth()
    with pytest.raises(PublishError) as err:
        asyncio.run(go())
    assert str(err.value) == f"endpoint uois: login to {LOGIN_URL} answered HTTP 401: bad login"
    assert "pa55word" not in str(err.value)


# -- bearer, none, config ------------------------------------------------------------------
def test_bearer_and_none(httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=f"{URL}/data", status_code=201, is_reusable=True)
    run_sends(transport({"type": "bearer", "token": "static-token-1"}))
    run_sends(transport({"type": "none"}))
    run_sends(Transport("flowkit", {"url": URL}, clock=FakeClock()))
    assert auth_headers(httpx_mock) == ["Bearer static-token-1", None, None]
    assert secrets.redact("static-token-1") == "***"


def test_auth_config_errors() -> None:
    with pytest.raises(PublishError, match="endpoint e: unknown auth type 'kerberos'"):
        make_auth({"type": "kerberos"}, endpoint="e")
    with pytest.raises(PublishError, match="endpoint e: auth type login3 needs `auth.password`"):
        make_auth({"type": "login3", "login_url": LOGIN_URL, "username": "u"}, endpoint="e")
    with pytest.raises(PublishError, match="token_in must be cookie or header"):
        make_auth({**LOGIN, "token_in": "query"}, endpoint="e")


def test_login3_never_resends_a_used_key_and_reports_the_first_answer(
        httpx_mock: HTTPXMock) -> None:
    """The real login: an unknown user answers 500; POSTing that key again would answer 303
    to ./login3 (a used key), hiding the cause. Every POST takes a fresh key."""
    for key in ("k1", "k2", "k3"):
        httpx_mock.add_response(method="GET", url=LOGIN_URL, json={"key": key})
    httpx_mock.add_response(method="POST", url=LOGIN_URL, status_code=500,
                            text="Internal Server Error", is_reusable=True)
    clock = FakeClock()
    with pytest.raises(PublishError) as err:
        run_sends(uois(LOGIN, clock), request=post(path=""))
    posts = [json.loads(r.content)["key"] for r in httpx_mock.get_requests(method="POST",
                                                                          url=LOGIN_URL)]
    assert posts == ["k1", "k2", "k3"]  # each key used once; the same 500 retried twice
    assert str(err.value) == (f"endpoint uois: login to {LOGIN_URL} answered HTTP 500: "
                              "Internal Server Error")
