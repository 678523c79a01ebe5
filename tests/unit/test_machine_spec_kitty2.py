"""A machine session seen through kitty_auth.spec_kitty2 (the 2.1.3 host's API): nothing crashes on a session
without a refresh token, and the host's calls renew it by the grant when the secret is in the environment."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from dependency_injector import providers

import kitty_auth.spec_kitty2 as sk2
from kitty_auth.domain.machine_login import LoginWithClientCredentials
from kitty_auth.testing import (
    FakeClock,
    FakeMachineCredentials,
    FakeOAuthServer,
    FakeTokenGateway,
    InMemoryCredentialRepository,
)

SERVER = "https://sync.example.com"
CLIENT, SECRET = "ci-bot", "s3cret-machine-secret-value"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SPEC_KITTY_ENABLE_SAAS_SYNC", "1")
    clock = FakeClock()
    server = FakeOAuthServer(clock=clock, server_url=SERVER, machine_clients={CLIENT: SECRET})
    repo = InMemoryCredentialRepository()
    env = FakeMachineCredentials(CLIENT, SECRET)
    use_case = LoginWithClientCredentials(repo, server, clock, env)
    stored = use_case.execute(SERVER, use_case.configuration())

    def configure(container) -> None:  # noqa: ANN001
        container.clock.override(providers.Object(clock))
        container.gateway.override(providers.Object(FakeTokenGateway(clock=clock)))
        container.oauth_gateway.override(providers.Object(server))
        container.repository.override(providers.Object(repo))
        container.machine_credentials.override(providers.Object(env))

    client = sk2.AuthClient(credential_store=sk2.CredentialStore(configure=configure))
    return client, stored, clock, env, server, repo


def test_the_host_sees_a_session_without_a_refresh_token(world) -> None:  # noqa: ANN001
    client, stored, clock, env, server, repo = world
    data = client.credential_store.load()
    assert data is not None and "refresh" not in data["tokens"] and data["user"]["username"] == "ci-bot@example.com"
    assert client.credential_store.get_refresh_token() is None
    assert client.credential_store.get_access_token() == stored.tokens.access
    assert client.is_authenticated() and client.get_access_token() == stored.tokens.access


def test_the_hosts_calls_renew_by_the_grant_with_the_secret(world) -> None:  # noqa: ANN001
    client, stored, clock, env, server, repo = world
    clock.set(stored.tokens.access_expires_at + timedelta(seconds=1))
    renewed = client.get_access_token()
    assert renewed not in (None, stored.tokens.access) and server.grants == [CLIENT, CLIENT]
    assert client.refresh_tokens() is True and server.grants == [CLIENT, CLIENT, CLIENT]


def test_without_the_secret_the_host_gets_none_or_its_error_and_the_session_stays(world) -> None:  # noqa: ANN001
    client, stored, clock, env, server, repo = world
    env.secret_value = None
    clock.set(stored.tokens.access_expires_at + timedelta(seconds=1))
    assert client.get_access_token() is None
    with pytest.raises(sk2.AuthenticationError, match="^Session expired. Please log in again. "):
        client.refresh_tokens()
    assert repo.credentials == stored and client.is_authenticated()
