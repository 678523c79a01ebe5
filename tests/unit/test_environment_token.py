"""SPEC_KITTY_SAAS_TOKEN in the library: AuthClient, BearerAuth and the spec-kitty 2.x adapter (fakes behind a real container).

The variable's token wins over the stored session for ``get_access_token``, ``obtain_ws_token`` and
BearerAuth; it goes only to the server a login would target; a 401 for it names the variable with no
refresh and the stored session untouched. The spec-kitty 2.x adapter does not honour it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers

import kitty_auth.spec_kitty2 as sk2
from kitty_auth import AuthClient, BearerAuth, EnvironmentTokenRejectedError, InvalidEnvironmentTokenError
from kitty_auth.container import Container, Settings, build_container
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository

SERVER = "https://api.example.com"
USER, PASSWORD = "user@example.com", "s3cret"
VARIABLE = "SPEC_KITTY_SAAS_TOKEN"
ENV_VALUE = "env-access-token-0123456789abcdef"


class World:
    def __init__(self, tmp_path: Path, env: str | None = ENV_VALUE, server_url: str | None = SERVER) -> None:
        self.clock = FakeClock(datetime(2026, 2, 3, 16, 30, tzinfo=UTC))
        self.gateway = FakeTokenGateway(clock=self.clock, users={USER: PASSWORD})
        self.gateway.valid_access.add(ENV_VALUE)  # the server knows the variable's token
        self.repo = InMemoryCredentialRepository()
        self.container: Container = build_container(Settings(home=tmp_path, server_url=server_url,
                                                             environment_token=env))
        self.container.clock.override(providers.Object(self.clock))
        self.container.gateway.override(providers.Object(self.gateway))
        self.container.repository.override(providers.Object(self.repo))
        self.seen: list[httpx.Request] = []

    def login(self) -> None:
        self.container.login().execute(SERVER, USER, PASSWORD)

    def api(self, request: httpx.Request) -> httpx.Response:
        """A resource server accepting the access tokens the fake gateway says are valid."""
        self.seen.append(request)
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        return httpx.Response(200 if token in self.gateway.valid_access else 401)


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_get_access_token_and_is_authenticated_use_the_variable(world: World) -> None:
    client = AuthClient(container=world.container)
    assert client.get_access_token() == ENV_VALUE
    assert client.is_authenticated() is True
    assert client.token_server_url() == SERVER
    world.login()
    world.clock.advance(timedelta(minutes=20))  # the stored session would be refreshed
    assert client.get_access_token() == ENV_VALUE
    assert world.gateway.calls == ["obtain"]


def test_obtain_ws_token_sends_the_variables_token_and_a_401_names_it(world: World) -> None:
    world.login()
    stored = world.repo.credentials
    client = AuthClient(container=world.container)
    assert client.obtain_ws_token().ws_token
    world.gateway.valid_access.discard(ENV_VALUE)
    with pytest.raises(EnvironmentTokenRejectedError) as info:
        client.obtain_ws_token()
    assert VARIABLE in str(info.value) and ENV_VALUE not in str(info.value)
    assert "refresh" not in world.gateway.calls and world.repo.credentials == stored


def test_bearer_auth_sends_the_variables_token_only_to_its_server(world: World) -> None:
    auth = BearerAuth(container=world.container)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(world.api)) as http:
        assert http.get(SERVER + "/api/v1/x").status_code == 200
        http.get("https://elsewhere.example.com/api/v1/x")
    assert world.seen[0].headers["Authorization"] == f"Bearer {ENV_VALUE}"
    assert "Authorization" not in world.seen[1].headers


def test_bearer_auth_401_with_the_variable_is_an_error_without_a_refresh(world: World) -> None:
    world.login()
    stored = world.repo.credentials
    world.gateway.valid_access.discard(ENV_VALUE)
    auth = BearerAuth(container=world.container)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(world.api)) as http, \
            pytest.raises(EnvironmentTokenRejectedError, match=VARIABLE):
        http.get(SERVER + "/api/v1/x")
    assert len(world.seen) == 1 and world.gateway.calls == ["obtain"] and world.repo.credentials == stored


async def test_async_bearer_auth_uses_the_variable(world: World) -> None:
    auth = BearerAuth(container=world.container)
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(world.api)) as http:
        assert (await http.get(SERVER + "/api/v1/x")).status_code == 200
    assert world.seen[0].headers["Authorization"] == f"Bearer {ENV_VALUE}"


def test_an_unusable_value_is_one_error_naming_the_variable(tmp_path: Path) -> None:
    client = AuthClient(container=World(tmp_path, env="has a space").container)
    with pytest.raises(InvalidEnvironmentTokenError) as info:
        client.get_access_token()
    assert VARIABLE in str(info.value) and "has a space" not in str(info.value)


def test_without_the_variable_nothing_changes(tmp_path: Path) -> None:
    world = World(tmp_path, env=None)
    world.login()
    client = AuthClient(container=world.container)
    assert client.get_access_token() == world.repo.credentials.tokens.access
    assert client.token_server_url() == SERVER


def test_the_spec_kitty2_adapter_ignores_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SPEC_KITTY_ENABLE_SAAS_SYNC", "1")
    monkeypatch.setenv(VARIABLE, ENV_VALUE)
    clock = FakeClock(datetime(2026, 2, 3, 16, 30, tzinfo=UTC))
    gateway = FakeTokenGateway(clock=clock, users={USER: PASSWORD})
    repo = InMemoryCredentialRepository()

    def configure(container: Container) -> None:
        container.clock.override(providers.Object(clock))
        container.gateway.override(providers.Object(gateway))
        container.repository.override(providers.Object(repo))

    client = sk2.AuthClient(credential_store=sk2.CredentialStore(configure=configure))
    client.config.get_server_url = lambda: SERVER  # type: ignore[method-assign]
    assert client.get_access_token() is None and client.is_authenticated() is False
    assert client.obtain_tokens(USER, PASSWORD) is True
    assert client.get_access_token() == repo.credentials.tokens.access
    assert client.obtain_ws_token()  # with the stored session's access token
    assert gateway.calls == ["obtain", "ws_token"]
