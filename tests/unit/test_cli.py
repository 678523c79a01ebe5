"""CLI tests through Click's runner, with the container's adapters overridden by in-memory fakes."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
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
from kitty_auth.domain.model import Credentials, Identity, LoginMethod, Team, TokenPair
from kitty_auth.entrypoints.cli import Terminated, _on_sigterm, auth, cli
from kitty_auth.entrypoints.library import CredentialStore
from kitty_auth.testing import FakeClock, FakeOAuthServer, FakeTokenGateway, InMemoryCredentialRepository, make_jwt

SERVER = "https://auth.example.test"
OTHER = "https://other.example.test"
USER, PASSWORD = "user@example.com", "s3cret"
JSON_KEYS = {"authenticated", "username", "server_url", "access_expires_at", "refresh_expires_at",
             "login_method", "team_slug", "session_id", "machine_client_id", "token_source"}


class World:
    """One user's machine: fakes behind a real container; ``server_url=None`` means nothing configured."""

    def __init__(self, tmp_path: Path, server_url: str | None = SERVER) -> None:
        self.clock = FakeClock()
        self.gateway = FakeTokenGateway(clock=self.clock, users={USER: PASSWORD})
        self.repo = InMemoryCredentialRepository()
        self.container: Container = build_container(Settings(home=tmp_path, server_url=server_url))
        self.container.clock.override(providers.Object(self.clock))
        self.container.gateway.override(providers.Object(self.gateway))
        self.container.repository.override(providers.Object(self.repo))
        self.oauth = FakeOAuthServer(clock=self.clock, server_url=SERVER, publishes_metadata=False)  # a password server
        self.container.oauth_gateway.override(providers.Object(self.oauth))
        self.container.revoker.override(providers.Object(self.oauth))
        self.runner = CliRunner()

    def run(self, *args: str, input: str | None = None):
        return self.runner.invoke(cli, ["auth", *args], input=input, obj=self.container, prog_name="kitty-auth")

    def login(self, *extra: str):
        result = self.run("login", "-u", USER, "--password-stdin", *extra, input=PASSWORD + "\n")
        assert result.exit_code == 0, result.output
        return result


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


@pytest.fixture
def unconfigured(tmp_path: Path) -> World:
    """Neither SPEC_KITTY_SAAS_URL nor config.toml names a server."""
    return World(tmp_path, server_url=None)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A real, empty spec-kitty home for runs that build their own container from the environment."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("SPEC_KITTY_HOME", str(home))
    for name in ("SPEC_KITTY_SAAS_URL", "SPEC_KITTY_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Put the root and kitty_auth loggers back as they were (the CLI may configure them)."""
    loggers = [logging.getLogger(), logging.getLogger("kitty_auth")]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


def test_auth_group_mounts_in_a_host_cli():
    host = click.Group("host")
    host.add_command(auth)
    assert host.get_command(None, "auth") is auth
    assert {"login", "logout", "status"} <= set(auth.commands)


@pytest.mark.parametrize("args", [["-h"], ["auth", "-h"], ["auth", "login", "-h"], ["auth", "status", "-h"]])
def test_dash_h_is_help(args):
    result = CliRunner().invoke(cli, args, prog_name="kitty-auth")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: kitty-auth")


def test_dash_h_is_help_when_mounted_in_a_host():
    host = click.Group("spec-kitty")
    host.add_command(auth)
    result = CliRunner().invoke(host, ["auth", "login", "-h"], prog_name="spec-kitty")
    assert result.exit_code == 0 and result.output.startswith("Usage: spec-kitty auth login")


def test_a_command_without_auth_points_to_auth():
    result = CliRunner().invoke(cli, ["login"], prog_name="kitty-auth")
    assert result.exit_code == 2
    assert "Did you mean `kitty-auth auth login`?" in result.output


class TestLogin:
    def test_prompts_name_the_server_then_ask_username_and_hidden_password(self, world):
        result = world.run("login", input=f"{USER}\n{PASSWORD}\n")
        assert result.exit_code == 0, result.output
        assert result.output.count(f"Logging in to {SERVER}.") == 1
        assert result.output.index("Logging in to") < result.output.index("Username") < result.output.index("Password")
        assert PASSWORD not in result.output  # hidden input is not echoed
        assert f"Logged in as {USER} at {SERVER}" in result.output
        assert world.repo.credentials.username == USER

    def test_a_given_username_still_names_the_server_before_the_password_prompt(self, world):
        result = world.run("login", "-u", USER, input=f"{PASSWORD}\n")
        assert result.exit_code == 0, result.output
        assert result.output.count(f"Logging in to {SERVER}.") == 1 and "Username" not in result.output

    def test_password_stdin_reads_only_the_first_line(self, world):
        world.gateway.users[USER] = "pässwörd ✓"
        result = world.run("login", "-u", USER, "--password-stdin", input="pässwörd ✓\r\nignored\n")
        assert result.exit_code == 0, result.output
        assert world.repo.credentials is not None
        assert "Logging in to" not in result.output  # no prompt, so no preamble for scripts

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

    @pytest.mark.parametrize("name", ["", "   "], ids=["empty", "blank"])
    def test_blank_username_option_is_refused_before_the_password_prompt(self, world, name):
        result = world.run("login", "-u", name, input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "Error: The username is empty" in result.output
        assert "Password" not in result.output
        assert world.gateway.calls == []

    def test_blank_username_with_password_stdin_leaves_stdin_unread(self, world):
        result = world.run("login", "-u", "", "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "username is empty" in result.output
        assert world.gateway.calls == []

    def test_enter_at_the_username_prompt_is_an_error_not_a_silent_second_prompt(self, world):
        result = world.run("login", input=f"\n{USER}\n{PASSWORD}\n")
        assert result.exit_code == 1
        assert result.output.count("Username") == 1 and "Password" not in result.output
        assert "Error: The username is empty" in result.output
        assert world.gateway.calls == []

    def test_enter_at_the_password_prompt_is_an_error(self, world):
        result = world.run("login", input=f"{USER}\n\n")
        assert result.exit_code == 1
        assert result.output.count("Password") == 1
        assert "Error: The password is empty." in result.output
        assert world.gateway.calls == []

    def test_end_of_input_at_a_prompt_is_an_empty_answer(self, world):
        result = world.run("login", input="")
        assert result.exit_code == 1
        assert "Error: The username is empty" in result.output

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
        world.login("--server", OTHER + "/")
        assert world.repo.credentials.server_url == OTHER

    def test_wrong_password(self, world):
        result = world.run("login", "-u", USER, "--password-stdin", input="nope\n")
        assert result.exit_code == 1
        assert result.output.strip() == "Error: Invalid username or password."
        assert world.repo.credentials is None

    def test_plain_http_is_refused_before_prompting_or_sending(self, world):
        result = world.run("login", "--server", "http://auth.example.test", input="")
        assert result.exit_code == 1
        assert "HTTPS is required: the server URL from --server must start with https://" in result.output
        assert "Username" not in result.output and world.gateway.calls == []

    def test_empty_server_option_is_refused_not_replaced(self, world):
        result = world.run("login", "--server", "", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "Error: The server URL from --server is empty" in result.output
        assert world.gateway.calls == []

    @pytest.mark.parametrize(("typed", "stored"), [
        ("auth.example.test", SERVER),
        ("Other.Example.TEST:8443/", "https://other.example.test:8443"),
        ("HTTPS://Other.Example.Test/api/", "https://other.example.test/api"),
    ])
    def test_bare_hosts_imply_https_and_urls_are_stored_in_canonical_form(self, world, typed, stored):
        world.login("--server", typed)
        assert world.repo.credentials.server_url == stored

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

    def test_password_stdin_is_utf8_whatever_the_stdin_encoding(self, world):
        """Windows reads a piped stdin in its ANSI code page (cp1252 here); a UTF-8 password piped
        in must still arrive intact (the Windows lane found it failing)."""
        password = "pässwörd ✓ 猫"
        world.gateway.users["zoë@example.test"] = password
        world.runner = CliRunner(charset="cp1252")
        result = world.runner.invoke(cli, ["auth", "login", "-u", "zoë@example.test", "--password-stdin"],
                                     input=(password + "\r\n").encode("utf-8"), obj=world.container,
                                     prog_name="kitty-auth")
        assert result.exit_code == 0, result.output

    def test_credentials_file_error_names_the_fix(self, world):
        path = Path("/home/u/.spec-kitty/credentials")

        def broken_save(credentials):
            raise CredentialsFileError(path)

        world.repo.save = broken_save
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "Cannot access credentials file. Check permissions" in result.output
        # chmod means nothing on Windows: there the advice is the file's ACL (errors.CredentialsFileError)
        fix = f"full control of {path} (Properties > Security)" if os.name == "nt" else f"chmod 600 {path}"
        assert fix in result.output

    def test_unexpected_bug_is_one_line_without_traceback(self, world):
        def boom(*args):
            raise RuntimeError("secret-ish detail")

        world.gateway.obtain = boom
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 1
        assert "Unexpected internal error (RuntimeError)" in result.output
        assert "secret-ish detail" not in result.output and "Traceback" not in result.output

    def test_ctrl_c_during_the_request_exits_130_with_aborted_on_its_own_line(self, world):
        def interrupted(*args):
            raise KeyboardInterrupt

        world.gateway.obtain = interrupted
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 130
        assert result.output.splitlines()[-1] == "Aborted."
        assert world.repo.credentials is None

    def test_ctrl_c_once_the_server_answered_stores_the_session_and_says_so(self, world):
        def ctrl_c():
            raise KeyboardInterrupt

        world.repo.on_save.append(ctrl_c)  # Ctrl-C while the session the server issued is being saved
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 130 and "Traceback" not in result.output
        assert result.output.splitlines()[-2:] == [
            "Login interrupted after the server had issued the session: it was stored, so you are logged in as "
            f"{USER} at {SERVER} (`kitty-auth auth logout` ends it).",
            "Aborted.",
        ]
        assert world.repo.credentials is not None and world.repo.credentials.username == USER

    def test_sigterm_exits_143(self, world):
        def terminated(*args):
            raise Terminated

        world.gateway.obtain = terminated
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 143 and result.output.splitlines()[-1] == "Terminated."
        assert world.repo.credentials is None

    def test_a_real_sigterm_during_a_command_exits_143_and_the_default_is_back_afterwards(self, world):
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # else this test would not show anything
        seen = []

        def obtain(*args):
            seen.append(signal.getsignal(signal.SIGTERM))
            if seen[0] is not _on_sigterm:  # never kill the test run with the default disposition
                raise AssertionError("no SIGTERM handler while the command runs")
            signal.raise_signal(signal.SIGTERM)  # (os.kill would be TerminateProcess on Windows: no handler runs)
            time.sleep(5)  # the handler raises in this thread long before this ends

        world.gateway.obtain = obtain
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert result.exit_code == 143, result.output
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def test_a_hosts_own_sigterm_handler_is_left_alone(self, world):
        def hosts(signum, frame):
            raise SystemExit(0)

        previous = signal.signal(signal.SIGTERM, hosts)
        try:
            seen = []

            def obtain(*args):
                seen.append(signal.getsignal(signal.SIGTERM))
                raise NetworkError("auth.example.test: timed out")

            world.gateway.obtain = obtain
            world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
            assert seen == [hosts] and signal.getsignal(signal.SIGTERM) is hosts
        finally:
            signal.signal(signal.SIGTERM, previous)


class TestLoginTarget:
    """Without --server: SPEC_KITTY_SAAS_URL / config.toml, else the stored session's server, else the default."""

    def test_plain_login_targets_the_stored_sessions_server(self, unconfigured):
        unconfigured.login("--server", OTHER)
        result = unconfigured.run("login", input="")
        assert result.exit_code == 0, result.output
        assert f"Already logged in as {USER} at {OTHER}" in result.output
        assert unconfigured.gateway.calls == ["obtain"]

    def test_plain_login_after_expiry_logs_in_again_to_the_stored_server(self, unconfigured):
        unconfigured.login("--server", OTHER)
        unconfigured.clock.advance(timedelta(days=8))
        result = unconfigured.run("login", input=f"{USER}\n{PASSWORD}\n")
        assert result.exit_code == 0, result.output
        assert f"Logging in to {OTHER}." in result.output
        assert unconfigured.repo.credentials.server_url == OTHER

    def test_with_nothing_stored_the_default_server(self, unconfigured):
        result = unconfigured.run("login", input="\n")
        assert "Logging in to https://spec-kitty-dev.fly.dev." in result.output

    def test_a_configured_server_wins_over_the_stored_one(self, world):
        world.login("--server", OTHER)
        result = world.run("login", input=f"{USER}\n{PASSWORD}\n")
        assert result.exit_code == 0
        assert f"Logging in to {SERVER}." in result.output
        assert world.repo.credentials.server_url == SERVER

    def test_expired_session_hint_names_the_command_that_logs_in_again(self, unconfigured):
        unconfigured.login("--server", OTHER)
        unconfigured.clock.advance(timedelta(days=8))
        result = unconfigured.run("status")
        assert f"Session expired for {USER}; run `kitty-auth auth login`." in result.output


def _oauth_session(clock: FakeClock, *, refresh_expires: bool) -> Credentials:
    now = clock.now()
    tokens = TokenPair.issued("opaque-access-token", "opaque-refresh-token", now, expires_in=3600,
                              default_refresh=timedelta(days=30) if refresh_expires else None)
    teams = (Team(id="1", slug="acme", name="Acme Inc"), Team(id="2", slug="zoe", name="Zoë", is_private_teamspace=True))
    return Credentials(tokens=tokens, username="zoe@example.com", server_url=SERVER, team_slug="zoe",
                       login_method=LoginMethod.WEB, session_id="sess-42",
                       identity=Identity(email="zoe@example.com", name="Zoë Example", user_id="7", teams=teams))


class TestStatusAndLogout:
    def test_status_logged_out(self, world):
        result = world.run("status")
        assert result.exit_code == 1
        assert result.output.strip() == "Not logged in. Run `kitty-auth auth login`."

    def test_status_logged_in_text_and_json(self, world):
        world.login()
        result = world.run("status")
        assert result.exit_code == 0
        assert USER in result.output and SERVER in result.output
        assert "expires in 15 minutes (2026-02-03T16:45:00Z)" in result.output
        assert "expires in 7 days (2026-02-10T16:30:00Z)" in result.output
        assert "Login method:   password" in result.output
        assert "Team:           (none named by the server)" in result.output
        data = json.loads(world.run("status", "--json").output)
        assert data == {"authenticated": True, "username": USER, "server_url": SERVER,
                        "access_expires_at": "2026-02-03T16:45:00Z",
                        "refresh_expires_at": "2026-02-10T16:30:00Z",
                        "login_method": "password", "team_slug": None, "session_id": None,
                        "machine_client_id": None, "token_source": "credentials_file"}
        creds = world.repo.credentials
        assert creds.tokens.access not in result.output and creds.tokens.refresh not in result.output

    def test_status_shows_the_team_the_server_named(self, world):
        world.repo.credentials = Credentials(
            tokens=TokenPair.issued(make_jwt(iat=world.clock.now(), lifetime=timedelta(minutes=15)),
                                    make_jwt(iat=world.clock.now(), lifetime=timedelta(days=7), kind="refresh"),
                                    world.clock.now()),
            username=USER, server_url=SERVER, team_slug="acme")
        assert "Team:           acme" in world.run("status").output
        assert json.loads(world.run("status", "--json").output)["team_slug"] == "acme"

    def test_status_of_an_oauth_session_shows_identity_teams_and_unknown_refresh_expiry(self, world):
        world.repo.credentials = _oauth_session(world.clock, refresh_expires=False)
        result = world.run("status")
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert "  Login method:   web browser" in lines
        assert "  Identity:       Zoë Example <zoe@example.com>" in lines
        assert "  Team:           zoe" in lines
        assert "    - acme Acme Inc" in lines
        assert "    - zoe Zoë (private teamspace, current)" in lines
        assert "  Refresh token:  valid until the server refuses it (the server gave no expiry)" in lines
        assert "  Access token:   expires in 1 hour (2026-02-03T17:30:00Z)" in lines
        data = json.loads(world.run("status", "--json").output)
        assert set(data) == JSON_KEYS
        assert (data["login_method"], data["team_slug"], data["session_id"], data["refresh_expires_at"]) == (
            "web", "zoe", "sess-42", None)

    def test_status_json_logged_out(self, world):
        result = world.run("status", "--json")
        assert result.exit_code == 1
        assert json.loads(result.output) == dict.fromkeys(JSON_KEYS) | {"authenticated": False}

    def test_status_json_still_prints_an_object_when_the_file_cannot_be_used(self, world):
        def unusable():
            raise CredentialsFileError("/home/u/.spec-kitty/credentials", "is a symbolic link")

        world.repo.load = unusable
        result = world.runner.invoke(cli, ["auth", "status", "--json"], obj=world.container)
        assert result.exit_code == 1
        assert json.loads(result.stdout) == dict.fromkeys(JSON_KEYS) | {"authenticated": False}
        assert "Cannot access credentials file" in result.stderr

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
        path = Path("/home/u/.spec-kitty/credentials")  # printed with the OS's separators
        assert result.output.strip() == (f"Not logged in: the credentials file {path} "
                                         "is not valid; `kitty-auth auth login` replaces it.")

    def test_logout(self, world):
        world.login()
        result = world.run("logout")
        assert result.exit_code == 0 and "Logged out" in result.output
        assert result.output.splitlines()[1] == "The server revoked the session."
        assert world.repo.credentials is None
        result = world.run("logout")
        assert result.exit_code == 0 and result.output.startswith("Logged out; no session was stored.")
        assert "not revoked" in result.output

    def test_logout_failure_exits_1(self, world):
        world.login()

        def cannot(*args, **kwargs):
            raise CredentialsFileError("/home/u/.spec-kitty/credentials")

        world.repo.clear = cannot
        result = world.run("logout")
        assert result.exit_code == 1
        assert "Cannot access credentials file" in result.output


class TestHints:
    """Sentences that suggest a command name the one the user runs."""

    def test_standalone_hints_name_the_console_script(self, world):
        world.gateway.fail_next("obtain", UnexpectedStatusError(403, "; try `spec-kitty auth login --force`"))
        result = world.run("login", "-u", USER, "--password-stdin", input=PASSWORD + "\n")
        assert "try `kitty-auth auth login --force`." in result.output

    def test_mounted_in_spec_kitty_hints_name_spec_kitty(self, world):
        host = click.Group("spec-kitty")
        host.add_command(auth)
        result = CliRunner().invoke(host, ["auth", "status"], obj=world.container, prog_name="spec-kitty")
        assert result.output.strip() == "Not logged in. Run `spec-kitty auth login`."


# ------------------------------------------------------------------------------ a real home and environment

BROKEN_CONFIG = "[sync\nserver_url = "


def _invoke(*args: str, input: str | None = None, prog_name: str = "kitty-auth", group: click.Group = cli):
    return CliRunner().invoke(group, list(args), input=input, prog_name=prog_name)


class TestUnreadableConfig:
    """An unreadable config.toml never blocks a command that does not need it."""

    def _stored_session(self, home: Path) -> None:
        now = datetime.now(UTC)
        CredentialStore(home / "credentials").save(Credentials(
            tokens=TokenPair.issued(make_jwt(iat=now, lifetime=timedelta(minutes=15)),
                                    make_jwt(iat=now, lifetime=timedelta(days=7), kind="refresh"), now),
            username=USER, server_url=OTHER))

    def test_status_and_status_json_warn_and_go_on(self, home, logging_restored):
        (home / "config.toml").write_text(BROKEN_CONFIG)
        self._stored_session(home)
        text = _invoke("auth", "status")
        assert text.exit_code == 0, text.output
        assert f"Logged in as {USER}" in text.stdout
        assert text.stderr.strip() == (f"Warning: The config file {home / 'config.toml'} cannot be read "
                                       "(not valid TOML at line 1, column 6: expected ']' at the end of a table "
                                       "declaration); it was ignored.")
        as_json = _invoke("auth", "status", "--json")
        assert as_json.exit_code == 0 and json.loads(as_json.stdout)["server_url"] == OTHER

    def test_logout_warns_and_removes_the_session(self, home, logging_restored):
        (home / "config.toml").write_text(BROKEN_CONFIG)
        self._stored_session(home)
        result = _invoke("auth", "logout")
        assert result.exit_code == 0, result.output
        assert "Logged out" in result.stdout and "it was ignored" in result.stderr
        assert not (home / "credentials").exists()

    def test_plain_login_fails_naming_the_line_and_cause(self, home, logging_restored):
        (home / "config.toml").write_text(BROKEN_CONFIG)
        result = _invoke("auth", "login", input="")
        assert result.exit_code == 1
        assert result.stderr.strip() == (f"Error: The config file {home / 'config.toml'} cannot be read "
                                          "(not valid TOML at line 1, column 6: expected ']' at the end of a "
                                          "table declaration); fix or remove it.")

    def test_login_with_server_goes_on(self, home, logging_restored):
        (home / "config.toml").write_text(BROKEN_CONFIG)
        self._stored_session(home)
        result = _invoke("auth", "login", "--server", OTHER, input="")
        assert result.exit_code == 0, result.output
        assert "Already logged in" in result.stdout and "it was ignored" in result.stderr

    def test_a_configured_http_url_names_the_config_file(self, home, logging_restored):
        (home / "config.toml").write_text('[sync]\nserver_url = "http://plain.example.test"\n')
        result = _invoke("auth", "login", input="")
        assert result.exit_code == 1
        assert (f"HTTPS is required: the server URL from [sync] server_url in {home / 'config.toml'} "
                "must start with https://") in result.stderr


def test_an_environment_http_url_names_the_variable(home, monkeypatch, logging_restored):
    monkeypatch.setenv("SPEC_KITTY_SAAS_URL", "http://plain.example.test")
    result = _invoke("auth", "login", input="")
    assert result.exit_code == 1
    assert "the server URL from SPEC_KITTY_SAAS_URL must start with https://" in result.stderr


def test_an_unknown_log_level_gets_one_warning(home, monkeypatch, logging_restored):
    monkeypatch.setenv("SPEC_KITTY_LOG_LEVEL", "chatty")
    result = _invoke("auth", "status")
    assert result.exit_code == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("Warning:")] == [
        "Warning: SPEC_KITTY_LOG_LEVEL='chatty' is not one of DEBUG, INFO, WARNING, ERROR; using WARNING."]


def test_mounted_in_a_host_the_root_logger_is_left_alone(home, monkeypatch, logging_restored):
    """Issue 12.4: a host that configured logging keeps its root level and handlers."""
    root = logging.getLogger()
    host_handler = logging.StreamHandler()
    root.handlers[:] = [host_handler]
    root.setLevel(logging.ERROR)
    monkeypatch.setenv("SPEC_KITTY_LOG_LEVEL", "DEBUG")

    @click.group("spec-kitty")
    def host() -> None:
        """A host CLI."""

    host.add_command(auth)
    result = _invoke("auth", "status", prog_name="spec-kitty", group=host)
    assert result.exit_code == 1, result.output
    assert root.level == logging.ERROR and root.handlers == [host_handler]
    ours = logging.getLogger("kitty_auth")
    assert ours.level == logging.DEBUG  # SPEC_KITTY_LOG_LEVEL applies to our logger
    assert ours.handlers == []  # the host has handlers: our records reach them, no second handler


def test_mounted_in_a_host_without_logging_our_logger_gets_a_stderr_handler(home, monkeypatch, logging_restored):
    root = logging.getLogger()
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    monkeypatch.setenv("SPEC_KITTY_LOG_LEVEL", "INFO")
    host = click.Group("spec-kitty")
    host.add_command(auth)
    _invoke("auth", "status", prog_name="spec-kitty", group=host)
    assert root.handlers == [] and root.level == logging.WARNING
    assert len(logging.getLogger("kitty_auth").handlers) == 1


def test_our_own_process_configures_the_root_logger(tmp_path, logging_restored):
    from kitty_auth.container import configure_logging

    root = logging.getLogger()
    root.handlers[:] = []
    settings = Settings(home=tmp_path, log_level="DEBUG", log_level_explicit=True)
    configure_logging(settings, owns_process=True)
    configure_logging(settings, owns_process=True)  # idempotent: one handler
    assert root.level == logging.DEBUG and len(root.handlers) == 1


EARLY_SIGNAL = """
import os, signal, sys, time
MODE = sys.argv[1]
class LandsWhileTheCliIsImported:
    def find_spec(self, name, path=None, target=None):
        if name == "kitty_auth.entrypoints.cli":
            if MODE == "INT":
                raise KeyboardInterrupt
            signal.raise_signal(signal.SIGTERM)
            time.sleep(5)
        return None
sys.meta_path.insert(0, LandsWhileTheCliIsImported())
from kitty_auth.console import main
sys.argv = ["kitty-auth", "auth", "status"]
main()
"""


@pytest.mark.parametrize(("sig", "code", "word"), [("INT", 130, "Aborted."), ("TERM", 143, "Terminated.")])
def test_ctrl_c_or_sigterm_while_the_cli_is_still_importing_is_not_a_traceback(sig, code, word, tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", EARLY_SIGNAL, sig], capture_output=True, text=True, timeout=60,
                          env={"SPEC_KITTY_HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.strip() == word and "Traceback" not in proc.stderr
