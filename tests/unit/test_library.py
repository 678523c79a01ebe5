"""AuthClient's login target: the same choice as `auth login` without --server (CONTRACT.md, "Command line").

Fakes behind a real container, as in test_cli.py; each case is checked on the library and on the
CLI, so the two cannot drift apart.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from dependency_injector import providers

from kitty_auth import AuthClient, InvalidServerUrlError
from kitty_auth.adapters.settings import ConfigFileError
from kitty_auth.container import Container, Settings, build_container
from kitty_auth.domain.model import DEFAULT_SERVER_URL, Credentials, TokenPair
from kitty_auth.entrypoints.cli import auth as cli
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository

CONFIGURED = "https://configured.example.test"
STORED = "https://stored.example.test"
USER, PASSWORD = "user@example.com", "s3cret"


def machine(tmp_path: Path, *, configured: str | None, stored: str | None,
            config_error: ConfigFileError | None = None) -> tuple[Container, FakeTokenGateway, InMemoryCredentialRepository]:
    clock = FakeClock()
    gateway = FakeTokenGateway(clock=clock, users={USER: PASSWORD})
    repo = InMemoryCredentialRepository()
    if stored is not None:
        now = clock.now()
        repo.credentials = Credentials(
            TokenPair("stored-access", "stored-refresh", access_expires_at=now + timedelta(minutes=15),
                      refresh_expires_at=now + timedelta(days=7)),
            username="someone@example.com", server_url=stored,
        )
    source = "SPEC_KITTY_SAAS_URL" if configured is not None else None
    container = build_container(Settings(home=tmp_path, server_url=configured, server_url_source=source,
                                         config_error=config_error))
    container.clock.override(providers.Object(clock))
    container.gateway.override(providers.Object(gateway))
    container.repository.override(providers.Object(repo))
    return container, gateway, repo


CASES = {
    # name: (explicit server_url / --server, configured, stored) -> expected target
    "env or config wins over the stored session": (None, CONFIGURED, STORED, CONFIGURED),
    "else the stored session's server": (None, None, STORED, STORED),
    "else the default": (None, None, None, DEFAULT_SERVER_URL),
    "an explicit server wins over everything": ("https://explicit.example.test/", CONFIGURED, STORED,
                                                "https://explicit.example.test"),
    "an explicit bare host means https": ("Explicit.Example.test:8443", None, STORED,
                                          "https://explicit.example.test:8443"),
}


@pytest.mark.parametrize("case", CASES)
def test_auth_client_logs_in_where_the_cli_would(tmp_path: Path, case: str) -> None:
    explicit, configured, stored, expected = CASES[case]

    container, _, repo = machine(tmp_path / "library", configured=configured, stored=stored)
    client = AuthClient(explicit, container=container)
    assert client.server_url == expected
    assert client.obtain_tokens(USER, PASSWORD).server_url == expected
    assert repo.credentials is not None and repo.credentials.server_url == expected

    container, _, repo = machine(tmp_path / "cli", configured=configured, stored=stored)
    args = ["auth", "login", "-u", USER, "--password-stdin", "--force"]
    args += ["--server", explicit] if explicit is not None else []
    result = CliRunner().invoke(cli, args[1:], input=PASSWORD + "\n", obj=container, prog_name="kitty-auth")
    assert result.exit_code == 0, result.output
    assert repo.credentials is not None and repo.credentials.server_url == expected


def test_an_explicit_http_url_is_refused_before_any_request(tmp_path: Path) -> None:
    container, gateway, repo = machine(tmp_path, configured=None, stored=STORED)
    client = AuthClient("http://plain.example.test", container=container)
    with pytest.raises(InvalidServerUrlError, match=r"AuthClient\(server_url=\.\.\.\) must start with https://"):
        client.obtain_tokens(USER, PASSWORD)
    assert gateway.calls == [] and repo.credentials is not None and repo.credentials.server_url == STORED


def test_an_unreadable_config_stops_a_login_without_an_explicit_server_only(tmp_path: Path) -> None:
    broken = ConfigFileError(tmp_path / "config.toml", "not valid TOML at line 1, column 6")
    container, gateway, _ = machine(tmp_path, configured=None, stored=STORED, config_error=broken)
    with pytest.raises(ConfigFileError):
        AuthClient(container=container).obtain_tokens(USER, PASSWORD)
    assert gateway.calls == []  # never a quiet fall-back to the stored or default server
    assert AuthClient("https://explicit.example.test", container=container).obtain_tokens(
        USER, PASSWORD).server_url == "https://explicit.example.test"
