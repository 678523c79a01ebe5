"""BearerAuth: Bearer token, one single-flight refresh and one retry on 401, sync and async, nothing logged.

The server is httpx's MockTransport in front of the fake token gateway's idea of which access
tokens are valid; the session lives in the in-memory repository.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
import logging
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers

from kitty_auth import BearerAuth, NotAuthenticatedError, SessionExpiredError
from kitty_auth.container import Settings, build_container
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository

SERVER = "https://api.example.com"
USER, PASSWORD = "user@example.com", "s3cret"


class Api:
    """A resource server that accepts exactly the access tokens the fake gateway says are valid."""

    def __init__(self, gateway: FakeTokenGateway) -> None:
        self.gateway = gateway
        self.seen: list[httpx.Request] = []
        self.auths: list[str] = []  # the Authorization header of each request as it was sent

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        header = request.headers.get("Authorization", "")
        self.auths.append(header)
        if request.url.host != "api.example.com":
            return httpx.Response(200, json={"authorization": header})
        token = header.removeprefix("Bearer ")
        if token in self.gateway.valid_access:
            return httpx.Response(200, json={"body": request.content.decode()})
        return httpx.Response(401, json={"detail": "token_not_valid"})


@pytest.fixture
def setup(tmp_path: Path):
    clock = FakeClock(datetime(2026, 2, 3, 16, 30, tzinfo=UTC))
    gateway = FakeTokenGateway(clock=clock, users={USER: PASSWORD})
    repo = InMemoryCredentialRepository()
    container = build_container(Settings(home=tmp_path, server_url=SERVER))
    container.clock.override(providers.Object(clock))
    container.gateway.override(providers.Object(gateway))
    container.repository.override(providers.Object(repo))
    container.login().execute(SERVER, USER, PASSWORD)
    return BearerAuth(container=container), gateway, repo, Api(gateway)


def test_adds_the_bearer_token(setup) -> None:
    auth, gateway, repo, api = setup
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http:
        assert http.get(SERVER + "/api/v1/x").status_code == 200
    assert api.seen[0].headers["Authorization"] == f"Bearer {repo.credentials.tokens.access}"
    assert gateway.calls == ["obtain"]


def test_401_refreshes_once_and_retries_once_with_the_same_body(setup) -> None:
    auth, gateway, repo, api = setup
    old = repo.credentials.tokens.access
    gateway.revoke_access()
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http:
        response = http.post(SERVER + "/api/v1/events/", content=b"payload")
    assert response.status_code == 200 and response.json() == {"body": "payload"}
    assert gateway.calls.count("refresh") == 1
    assert api.auths == [f"Bearer {old}", f"Bearer {repo.credentials.tokens.access}"]


def test_an_interrupted_refresh_after_a_401_stores_the_answer_before_the_interrupt(setup) -> None:
    auth, gateway, repo, api = setup
    old = repo.credentials.tokens.refresh
    gateway.revoke_access()
    gateway.interrupt_while_answering = 1  # the server rotates; Ctrl-C while its answer is on its way
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http, pytest.raises(KeyboardInterrupt):
        http.get(SERVER + "/api/v1/x")
    assert repo.credentials.tokens.refresh != old and repo.credentials.tokens.refresh in gateway.valid_refresh
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http:
        assert http.get(SERVER + "/api/v1/x").status_code == 200  # the stored answer serves the next request
    assert gateway.calls.count("refresh") == 1


def test_a_second_401_is_returned_not_retried_again(setup) -> None:
    auth, gateway, repo, api = setup
    gateway.revoke_access()
    with httpx.Client(auth=auth, transport=httpx.MockTransport(lambda r: (api.seen.append(r), httpx.Response(401))[1])) as http:
        assert http.get(SERVER + "/api/v1/x").status_code == 401
    assert len(api.seen) == 2 and gateway.calls.count("refresh") == 1


def test_refused_refresh_after_401_is_session_expired(setup) -> None:
    auth, gateway, repo, api = setup
    gateway.revoke_access()
    gateway.valid_refresh.clear()
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http, pytest.raises(SessionExpiredError):
        http.get(SERVER + "/api/v1/x")
    assert repo.credentials is None


def test_not_logged_in_raises_before_sending(setup) -> None:
    auth, gateway, repo, api = setup
    repo.credentials = None
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http, pytest.raises(NotAuthenticatedError):
        http.get(SERVER + "/api/v1/x")
    assert api.seen == []


@pytest.mark.parametrize("url", ["https://elsewhere.example.com/x", "https://api.example.com:8443/x", "http://api.example.com/x"])
def test_other_origins_never_see_the_token(setup, url: str) -> None:
    auth, gateway, repo, api = setup
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http:
        http.get(url)
    assert "Authorization" not in api.seen[0].headers


async def test_async_concurrent_401s_share_one_refresh(setup) -> None:
    auth, gateway, repo, api = setup
    gateway.revoke_access()
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(api)) as http:
        responses = await asyncio.gather(*(http.get(f"{SERVER}/api/v1/x/{i}") for i in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert gateway.calls.count("refresh") == 1


async def test_async_adds_the_bearer_token(setup) -> None:
    auth, gateway, repo, api = setup
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(api)) as http:
        assert (await http.get(SERVER + "/x")).status_code == 200
    assert api.seen[0].headers["Authorization"] == f"Bearer {repo.credentials.tokens.access}"


def test_nothing_is_logged_with_a_token(setup, caplog: pytest.LogCaptureFixture) -> None:
    auth, gateway, repo, api = setup
    caplog.set_level(logging.DEBUG)
    tokens = {repo.credentials.tokens.access, repo.credentials.tokens.refresh}
    gateway.revoke_access()
    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http:
        http.get(SERVER + "/x")
    tokens |= {repo.credentials.tokens.access, repo.credentials.tokens.refresh}
    assert caplog.records  # the refresh was logged (by name, without values)
    for token in tokens:
        assert token not in caplog.text


def test_threads_sharing_a_client_share_one_refresh(setup) -> None:
    auth, gateway, repo, api = setup
    gateway.revoke_access()
    start = threading.Barrier(8)

    def call(i: int) -> int:
        start.wait(timeout=30)
        return http.get(f"{SERVER}/api/v1/x/{i}").status_code

    with httpx.Client(auth=auth, transport=httpx.MockTransport(api)) as http, ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, range(8)))
    assert statuses == [200] * 8
    assert gateway.calls.count("refresh") == 1
