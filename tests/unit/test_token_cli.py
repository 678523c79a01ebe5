"""`auth token` and SPEC_KITTY_SAAS_TOKEN through the CLI and the settings (fakes behind a real container)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from dependency_injector import providers
from test_cli import OTHER, PASSWORD, SERVER, USER, World

from kitty_auth.adapters.settings import ENV_TOKEN, load_settings
from kitty_auth.container import Settings
from kitty_auth.domain.errors import InvalidEnvironmentTokenError

SECOND = "second@example.com"
ENV_VALUE = "env-token.abcdefghijklmnop_0123"


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.gateway.users[SECOND] = "pw2"
    return world


def with_variable(world: World, tmp_path: Path, value: str = ENV_VALUE, server_url: str | None = SERVER) -> World:
    world.container.settings.override(providers.Object(
        Settings(home=tmp_path, server_url=server_url, environment_token=value)))
    return world


def login_as(world: World, user: str, password: str) -> None:
    result = world.run("login", "-u", user, "--password-stdin", input=password + "\n")
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------- auth token


def test_token_prints_the_access_token_and_a_newline_and_nothing_else(world: World) -> None:
    world.login()
    result = world.run("token")
    assert result.exit_code == 0, result.output
    assert result.stdout == world.repo.credentials.tokens.access + "\n"
    assert result.stderr == ""
    assert world.gateway.calls == ["obtain"]


def test_token_refreshes_first_when_needed(world: World) -> None:
    world.login()
    old = world.repo.credentials.tokens.access
    world.clock.advance(timedelta(minutes=20))
    result = world.run("token")
    assert result.exit_code == 0, result.output
    assert result.stdout == world.repo.credentials.tokens.access + "\n" and old not in result.stdout
    assert world.gateway.calls == ["obtain", "refresh"]


def test_token_without_a_session_is_one_sentence_naming_the_login_command(world: World) -> None:
    result = world.run("token")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.strip().splitlines() == ["Error: Not logged in. Run `kitty-auth auth login` first."]


def test_token_with_an_expired_session_exits_1_and_prints_no_token(world: World) -> None:
    world.login()
    world.clock.advance(timedelta(days=8))
    result = world.run("token")
    assert result.exit_code == 1 and result.stdout == ""
    assert "Session expired" in result.stderr


def test_token_user_reads_another_account_without_switching(world: World) -> None:
    world.login()
    login_as(world, SECOND, "pw2")
    world.clock.advance(timedelta(minutes=20))
    result = world.run("token", "--user", USER)
    assert result.exit_code == 0, result.output
    assert world.repo.credentials.username == SECOND  # the active one is unchanged
    other = next(s.credentials for s in world.repo.others if s.credentials.username == USER)
    assert result.stdout == other.tokens.access + "\n"
    assert world.gateway.calls.count("refresh") == 1


def test_token_ambiguous_choice_is_a_usage_error_listing_the_choices(world: World) -> None:
    world.gateway.users["third@example.com"] = "pw3"
    for user, password in ((USER, PASSWORD), (SECOND, "pw2")):
        result = world.run("login", "--server", OTHER, "-u", user, "--password-stdin", input=password + "\n")
        assert result.exit_code == 0, result.output
    world.login()  # the active session is at SERVER: --server OTHER matches two stored ones
    result = world.run("token", "--server", OTHER)
    assert result.exit_code == 2 and result.stdout == ""
    assert f"--server {OTHER} --user {USER}" in result.stderr and f"--user {SECOND}" in result.stderr
    result = world.run("token", "--user", "nobody@example.com")
    assert result.exit_code == 1 and "`kitty-auth auth login`" in result.stderr


def test_token_when_mounted_in_a_host_names_the_hosts_command(world: World) -> None:
    import click
    from click.testing import CliRunner

    from kitty_auth.entrypoints.cli import auth

    host = click.Group("spec-kitty")
    host.add_command(auth)
    result = CliRunner().invoke(host, ["auth", "token"], obj=world.container, prog_name="spec-kitty")
    assert result.exit_code == 1 and "`spec-kitty auth login`" in result.stderr


# --------------------------------------------------------------------------- SPEC_KITTY_SAAS_TOKEN


def test_the_variable_wins_for_token_and_is_never_stored(world: World, tmp_path: Path) -> None:
    world.login()
    with_variable(world, tmp_path)
    saves = world.repo.saves
    world.clock.advance(timedelta(minutes=20))  # the stored session would need a refresh
    result = world.run("token")
    assert result.exit_code == 0 and result.stdout == ENV_VALUE + "\n" and result.stderr == ""
    assert world.gateway.calls == ["obtain"] and world.repo.saves == saves
    # --user names a stored account: gh's `auth token --user` reads it, not GH_TOKEN
    result = world.run("token", "--user", USER)
    assert result.exit_code == 0 and result.stdout == world.repo.credentials.tokens.access + "\n"
    assert world.run("token", "--server", SERVER).stdout == ENV_VALUE + "\n"


def test_the_variable_alone_is_enough(world: World, tmp_path: Path) -> None:
    with_variable(world, tmp_path)
    assert world.run("token").stdout == ENV_VALUE + "\n"


def test_status_says_the_token_comes_from_the_variable_without_its_value(world: World, tmp_path: Path) -> None:
    world.login()
    with_variable(world, tmp_path)
    result = world.run("status")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Using the access token in {ENV_TOKEN} for {SERVER}")
    assert f"The stored session, not used while {ENV_TOKEN} is set:\nLogged in as {USER}" in result.stdout
    assert ENV_VALUE not in result.output
    data = json.loads(world.run("status", "--json").stdout)
    assert data["token_source"] == ENV_TOKEN and data["authenticated"] is True
    assert data["server_url"] == SERVER and data["username"] is None
    listed = world.run("status", "--all")
    assert listed.exit_code == 0 and listed.stdout.startswith(f"Using the access token in {ENV_TOKEN}")
    assert [d["token_source"] for d in json.loads(world.run("status", "--all", "--json").stdout)] == ["credentials_file"]


def test_status_and_whoami_with_the_variable_and_nothing_stored_exit_0(world: World, tmp_path: Path) -> None:
    with_variable(world, tmp_path, server_url=None)  # nothing configured: the default server
    result = world.run("status")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Using the access token in {ENV_TOKEN} for https://spec-kitty-dev.fly.dev")
    whoami = world.run("whoami")
    assert whoami.exit_code == 0 and whoami.stdout == f"token from {ENV_TOKEN} at https://spec-kitty-dev.fly.dev\n"


def test_the_variables_server_is_the_one_the_next_login_would_target(world: World, tmp_path: Path) -> None:
    result = world.run("login", "--server", OTHER, "-u", USER, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0
    with_variable(world, tmp_path, server_url=None)  # no SPEC_KITTY_SAAS_URL, no config: the stored one
    assert world.run("whoami").stdout == f"token from {ENV_TOKEN} at {OTHER}\n"


def test_login_and_logout_say_the_variable_is_set_and_still_do_their_job(world: World, tmp_path: Path) -> None:
    with_variable(world, tmp_path)
    result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0 and world.repo.credentials is not None
    assert [line for line in result.stderr.splitlines() if ENV_TOKEN in line] == [
        f"Warning: {ENV_TOKEN} is set: spec-kitty programs use its token, not the session this login stores, "
        f"until {ENV_TOKEN} is unset."]
    result = world.run("logout")
    assert result.exit_code == 0 and world.repo.credentials is None
    assert [line for line in result.stderr.splitlines() if ENV_TOKEN in line] == [
        f"Warning: {ENV_TOKEN} is set: spec-kitty programs still get an access token from it after this logout."]
    assert ENV_VALUE not in result.output


def test_without_the_variable_login_says_nothing_about_it(world: World) -> None:
    result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
    assert ENV_TOKEN not in result.output


@pytest.mark.parametrize("value", ["two words", "tab\tinside", "new\nline", "caf\u00e9", "x" * 16_385])
def test_a_value_no_header_can_carry_is_one_error_naming_the_variable(world: World, tmp_path: Path,
                                                                      value: str) -> None:
    world.login()
    with_variable(world, tmp_path, value)
    for command in ("token", "status", "whoami"):
        result = world.run(command)
        assert result.exit_code == 1, (command, result.output)
        assert result.stdout == "" and value not in result.output
        assert result.stderr.count("\n") == 1 and f"{ENV_TOKEN} cannot be used as an access token" in result.stderr


# --------------------------------------------------------------------------- settings


def test_settings_read_the_variable_stripped_and_blank_is_unset(tmp_path: Path) -> None:
    env = {"SPEC_KITTY_HOME": str(tmp_path)}
    assert load_settings(env).environment_token is None
    assert load_settings({**env, ENV_TOKEN: "  \t "}).environment_token is None
    assert load_settings({**env, ENV_TOKEN: "  \t "}).environment_token_variable is None
    token = load_settings({**env, ENV_TOKEN: f"  {ENV_VALUE}\n"}).environment_token
    assert token is not None and token.access == ENV_VALUE and token.variable == ENV_TOKEN


def test_settings_never_show_the_value_and_check_it_only_when_asked(tmp_path: Path) -> None:
    settings = load_settings({"SPEC_KITTY_HOME": str(tmp_path), ENV_TOKEN: "bad value"})
    assert settings.environment_token_variable == ENV_TOKEN  # set: login and logout say so
    assert "bad value" not in repr(settings) and ENV_TOKEN in repr(settings)
    with pytest.raises(InvalidEnvironmentTokenError) as info:
        settings.environment_token
    assert "bad value" not in str(info.value) and ENV_TOKEN in str(info.value)
