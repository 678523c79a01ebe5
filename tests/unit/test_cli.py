"""CLI tests through Click's runner, with the container's adapters overridden by in-memory fakes."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from dependency_injector import providers

from kitty_auth.container import Container, Settings, build_container
from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsFileError,
    MalformedResponseError,
    NetworkError,
    ServerUnavailableError,
    TLSVerificationError,
    UnexpectedStatusError,
)
from kitty_auth.entrypoints.cli import auth, cli
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository

SERVER = "https://auth.example.test"
USER, PASSWORD = "user@example.com", "s3cret"


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.gateway = FakeTokenGateway(clock=self.clock, users={USER: PASSWORD})
        self.repo = InMemoryCredentialRepository()
        self.container: Container = build_container(Settings(home=tmp_path, server_url=SERVER))
        self.container.clock.override(providers.Object(self.clock))
        self.container.gateway.override(providers.Object(self.gateway))
        self.container.repository.override(providers.Object(self.repo))
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None):
        return self.runner.invoke(cli, ["auth", *args], input=input, obj=self.container)

    def login(self):
        result = self.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_auth_group_mounts_in_a_host_cli():
    import click

    host = click.Group("host")
    host.add_command(auth)
    assert host.get_command(None, "auth") is auth
    assert set(auth.commands) == {"login", "logout", "status"}


class TestLogin:
    def test_prompts_for_username_and_hidden_password(self, world):
        result = world.run("login", input=f"{USER}\n{PASSWORD}\n")
        assert result.exit_code == 0, result.output
        assert "Username" in result.output and "Password" in result.output
        assert PASSWORD not in result.output  # hidden input is not echoed
        assert f"Logged in as {USER} at {SERVER}" in result.output
        assert world.repo.credentials.username == USER

    def test_password_stdin_reads_only_the_first_line(self, world):
        world.gateway.users[USER] = "pässwörd ✓"
        result = world.run("login", "-u", USER, "--password-stdin", input="pässwörd ✓\r\nignored\n")
        assert result.exit_code == 0, result.output
        assert world.repo.credentials is not None

    def test_password_stdin_requires_username(self, world):
        result = world.run("login", "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 2
        assert "--password-stdin requires --username" in result.output
        assert world.gateway.calls == []

    def test_there_is_no_password_option(self, world):
        result = world.run("login", "-u", USER, "--password", PASSWORD)
        assert result.exit_code == 2
        assert world.gateway.calls == []

    def test_empty_password_stdin_is_one_clear_error(self, world):
        result = world.run("login", "-u", USER, "--password-stdin", input="")
        assert result.exit_code == 1
        assert result.output.strip().startswith("Error: No password on standard input")

    def test_empty_username_is_refused(self, world):
        result = world.run("login", "-u", "", "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "username is empty" in result.output
        assert world.gateway.calls == []

    def test_already_logged_in_sends_nothing_and_does_not_prompt(self, world):
        world.login()
        before = world.repo.credentials
        result = world.run("login", input="")
        assert result.exit_code == 0
        assert f"Already logged in as {USER}" in result.output
        assert "Username" not in result.output
        assert world.gateway.calls == ["obtain"] and world.repo.credentials == before

    def test_force_logs_in_again(self, world):
        world.login()
        before = world.repo.credentials
        result = world.run("login", "--force", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 0
        assert world.repo.credentials != before

    def test_another_server_is_not_already_logged_in(self, world):
        world.login()
        result = world.run("login", "--server", "https://other.example.test/", "-u", USER,
                           "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 0
        assert world.repo.credentials.server_url == "https://other.example.test"

    def test_wrong_password(self, world):
        result = world.run("login", "-u", USER, "--password-stdin", input="nope\n")
        assert result.exit_code == 1
        assert result.output.strip() == "Error: Invalid username or password"
        assert world.repo.credentials is None

    def test_plain_http_is_refused_before_prompting_or_sending(self, world):
        result = world.run("login", "--server", "http://auth.example.test", input="")
        assert result.exit_code == 1
        assert "HTTPS is required" in result.output
        assert "Username" not in result.output and world.gateway.calls == []

    @pytest.mark.parametrize(
        ("error", "expected"),
        [
            (NetworkError(), "Cannot reach server. Check your connection."),
            (ServerUnavailableError(503), "Server temporarily unavailable"),
            (TLSVerificationError(), "certificate could not be verified"),
            (MalformedResponseError(), "response was not understood"),
            (UnexpectedStatusError(302), "unexpected HTTP status 302"),
        ],
    )
    def test_server_failures_are_one_sentence_and_store_nothing(self, world, error, expected):
        world.gateway.fail_next("obtain", error)
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert expected in result.output
        assert "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert world.repo.credentials is None

    def test_credentials_file_error_names_chmod(self, world):
        def broken_save(credentials):
            raise CredentialsFileError("/home/u/.spec-kitty/credentials")

        world.repo.save = broken_save
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "Cannot access credentials file. Check permissions" in result.output
        assert "chmod 600 /home/u/.spec-kitty/credentials" in result.output

    def test_unexpected_bug_is_one_line_without_traceback(self, world):
        def boom(*args):
            raise RuntimeError("secret-ish detail")

        world.gateway.obtain = boom
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "Unexpected internal error (RuntimeError)" in result.output
        assert "secret-ish detail" not in result.output and "Traceback" not in result.output


class TestStatusAndLogout:
    def test_status_logged_out(self, world):
        result = world.run("status")
        assert result.exit_code == 1
        assert "Not logged in" in result.output

    def test_status_logged_in_text_and_json(self, world):
        world.login()
        result = world.run("status")
        assert result.exit_code == 0
        assert USER in result.output and SERVER in result.output
        assert "expires in 15 minutes (2026-02-03T16:45:00Z)" in result.output
        assert "expires in 7 days (2026-02-10T16:30:00Z)" in result.output
        data = json.loads(world.run("status", "--json").output)
        assert data == {"authenticated": True, "username": USER, "server_url": SERVER,
                        "access_expires_at": "2026-02-03T16:45:00Z",
                        "refresh_expires_at": "2026-02-10T16:30:00Z"}
        creds = world.repo.credentials
        assert creds.tokens.access not in result.output and creds.tokens.refresh not in result.output

    def test_status_json_logged_out(self, world):
        result = world.run("status", "--json")
        assert result.exit_code == 1
        assert json.loads(result.output) == {"authenticated": False, "username": None, "server_url": None,
                                             "access_expires_at": None, "refresh_expires_at": None}

    def test_status_after_refresh_expiry(self, world):
        world.login()
        world.clock.advance(timedelta(days=8))
        result = world.run("status")
        assert result.exit_code == 1
        assert "Session expired" in result.output and "expired 1 day ago" in result.output
        assert json.loads(world.run("status", "--json").output)["authenticated"] is False

    def test_status_corrupt_file_names_it(self, world):
        def corrupt():
            raise CorruptCredentialsError("/home/u/.spec-kitty/credentials")

        world.repo.load = corrupt
        result = world.run("status")
        assert result.exit_code == 1
        assert "/home/u/.spec-kitty/credentials" in result.output and "Not logged in" in result.output

    def test_logout(self, world):
        world.login()
        result = world.run("logout")
        assert result.exit_code == 0 and "Logged out" in result.output
        assert world.repo.credentials is None
        result = world.run("logout")
        assert result.exit_code == 0 and "Not logged in" in result.output

    def test_logout_failure_exits_1(self, world):
        world.login()

        def cannot(*args):
            raise CredentialsFileError("/home/u/.spec-kitty/credentials")

        world.repo.clear = cannot
        result = world.run("logout")
        assert result.exit_code == 1
        assert "Cannot access credentials file" in result.output


def test_a_broken_config_file_is_one_sentence_not_a_traceback(tmp_path, monkeypatch):
    (tmp_path / "config.toml").write_text("[sync\n", encoding="utf-8")
    monkeypatch.setenv("SPEC_KITTY_HOME", str(tmp_path))
    monkeypatch.delenv("SPEC_KITTY_SAAS_URL", raising=False)
    result = CliRunner().invoke(cli, ["auth", "status"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: The config file {tmp_path / 'config.toml'} cannot be read; fix or remove it."
