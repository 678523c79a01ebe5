"""`auth login --machine`, `status` and `logout` of a machine session through the real Click commands, over fakes
(the client's credentials come from the environment CliRunner sets, read by the real adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from portability import posix_modes
from click.testing import CliRunner
from dependency_injector import providers

from kitty_auth.container import Container, Settings, build_container
from kitty_auth.domain.machine import CLIENT_ID_VARIABLE, SECRET_FILE_VARIABLE, SECRET_VARIABLE
from kitty_auth.domain.model import LoginMethod
from kitty_auth.entrypoints.cli import cli
from kitty_auth.testing import FakeClock, FakeOAuthServer, FakeTokenGateway, InMemoryCredentialRepository

SERVER = "https://auth.example.test"
CLIENT, SECRET = "ci-bot", "s3cret-machine-secret-value"
ENV = {CLIENT_ID_VARIABLE: CLIENT, SECRET_VARIABLE: SECRET, SECRET_FILE_VARIABLE: ""}


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.clock = FakeClock()
        self.server = FakeOAuthServer(clock=self.clock, server_url=SERVER, machine_clients={CLIENT: SECRET})
        self.repo = InMemoryCredentialRepository()
        self.container: Container = build_container(Settings(home=tmp_path, server_url=SERVER))
        self.container.clock.override(providers.Object(self.clock))
        self.container.repository.override(providers.Object(self.repo))
        self.container.gateway.override(providers.Object(FakeTokenGateway(clock=self.clock)))
        self.container.oauth_gateway.override(providers.Object(self.server))
        self.container.revoker.override(providers.Object(self.server))

    def run(self, *args: str, env: dict[str, str] | None = None):  # noqa: ANN201
        result = CliRunner().invoke(cli, ["auth", *args], obj=self.container, prog_name="kitty-auth",
                                    env=ENV if env is None else env)
        assert SECRET not in result.output and "Traceback" not in result.output
        return result


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.mark.parametrize("flags", [["-u", "x"], ["--password-stdin", "-u", "x"], ["--web"], ["--device"]])
def test_machine_does_not_mix_with_another_method(world: World, flags: list[str]) -> None:
    result = world.run("login", "--machine", *flags)
    assert result.exit_code == 2 and "--machine" in result.output
    assert world.server.calls == []


def test_the_help_names_the_variables(world: World) -> None:
    result = world.run("login", "--help")
    assert all(name in " ".join(result.output.split()) for name in (CLIENT_ID_VARIABLE, SECRET_FILE_VARIABLE,
                                                                   SECRET_VARIABLE))


def test_missing_variables_are_one_sentence_and_nothing_is_sent(world: World) -> None:
    result = world.run("login", "--machine", env={CLIENT_ID_VARIABLE: "", SECRET_VARIABLE: "", SECRET_FILE_VARIABLE: ""})
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("Error: Machine login needs") and SECRET_FILE_VARIABLE in line
    assert world.server.calls == [] and world.repo.credentials is None


def test_login_with_the_secret_from_a_file_then_status(world: World) -> None:
    secret_file = world.tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    result = world.run("login", "--machine", env={CLIENT_ID_VARIABLE: CLIENT, SECRET_FILE_VARIABLE: str(secret_file)})
    assert result.exit_code == 0, result.output
    assert f"Logging in to {SERVER} as machine client {CLIENT}." in result.output
    assert result.output.strip().endswith(f"Logged in as ci-bot@example.com at {SERVER} (team ci-bot).")
    assert world.repo.credentials is not None and world.repo.credentials.login_method is LoginMethod.MACHINE

    status = world.run("status")
    assert status.exit_code == 0
    assert "  Login method:   machine (OAuth client credentials)" in status.output
    assert f"  Machine client: {CLIENT}" in status.output
    assert f"  Refresh token:  none; renewed with the client secret from {SECRET_FILE_VARIABLE}" in status.output
    data = json.loads(world.run("status", "--json").output)
    assert data["login_method"] == "machine" and data["machine_client_id"] == CLIENT
    assert data["refresh_expires_at"] is None and data["authenticated"] is True


@posix_modes
def test_a_loose_secret_file_is_refused_before_anything_is_sent(world: World) -> None:
    secret_file = world.tmp_path / "secret"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o644)
    result = world.run("login", "--machine", env={CLIENT_ID_VARIABLE: CLIENT, SECRET_FILE_VARIABLE: str(secret_file)})
    assert result.exit_code == 1 and f"chmod 600 {secret_file}" in result.output
    assert world.server.calls == []


def test_already_logged_in_as_this_client_says_so_unless_forced(world: World) -> None:
    assert world.run("login", "--machine").exit_code == 0
    again = world.run("login", "--machine")
    assert again.exit_code == 0 and "Already logged in as ci-bot@example.com (machine client ci-bot)" in again.output
    assert world.server.grants == [CLIENT]
    assert world.run("login", "--machine", "--force").exit_code == 0
    assert world.server.grants == [CLIENT, CLIENT]


def test_a_refused_client_is_one_sentence_and_stores_nothing(world: World) -> None:
    result = world.run("login", "--machine", env=ENV | {SECRET_VARIABLE: "not-the-secret"})
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()[1:]  # after "Logging in to ..."
    assert line.startswith("Error: The server did not accept the machine client's credentials (invalid_client)")
    assert world.repo.credentials is None


@pytest.mark.parametrize("with_secret", [True, False])
def test_logout_revokes_with_the_secret_and_says_why_not_without(world: World, with_secret: bool) -> None:
    assert world.run("login", "--machine").exit_code == 0
    access = world.repo.credentials.tokens.access  # type: ignore[union-attr]
    result = world.run("logout", env=ENV if with_secret else {SECRET_VARIABLE: ""})
    assert result.exit_code == 0 and world.repo.credentials is None
    lines = result.output.strip().splitlines()
    assert lines[0] == "Logged out; stored credentials removed."
    if with_secret:
        assert lines[1] == "The server revoked the session." and access in world.server.revoked
    else:
        assert "not revoked" in lines[1] and SECRET_FILE_VARIABLE in lines[1] and access in world.server.valid_access
