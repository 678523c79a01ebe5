"""`auth login --web/--device`, method choice and `auth logout` revocation through the real Click commands, over fakes."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from dependency_injector import providers

from kitty_auth.container import Container, Settings, build_container
from kitty_auth.domain.errors import CredentialsLockTimeoutError, NetworkError
from kitty_auth.domain.model import LoginMethod
from kitty_auth.domain.oauth import CallbackPage
from kitty_auth.domain.oauth_errors import MetadataUnavailableError
from kitty_auth.entrypoints.cli import Terminated, cli
from kitty_auth.testing import (
    FakeBrowser,
    FakeCallbackListener,
    FakeClock,
    FakeOAuthServer,
    FakeTokenGateway,
    InMemoryCredentialRepository,
)

SERVER = "https://auth.example.test"


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock()
        self.server = FakeOAuthServer(clock=self.clock, server_url=SERVER, device_interval=0.01, enforce_interval=False)
        self.listener = FakeCallbackListener(clock=self.clock)
        self.browser = FakeBrowser(user=lambda url: self.listener.deliver(self.server.approve_in_browser(url)))
        self.repo = InMemoryCredentialRepository()
        self.container: Container = build_container(Settings(home=tmp_path, server_url=SERVER))
        self.container.clock.override(providers.Object(self.clock))
        self.container.repository.override(providers.Object(self.repo))
        self.container.gateway.override(providers.Object(FakeTokenGateway(clock=self.clock)))
        self.container.oauth_gateway.override(providers.Object(self.server))
        self.container.revoker.override(providers.Object(self.server))
        self.container.browser.override(providers.Object(self.browser))
        self.container.callback_listener.override(providers.Object(self.listener))

    def run(self, *args: str, input: str | None = None):  # noqa: ANN201
        return CliRunner().invoke(cli, ["auth", *args], input=input, obj=self.container, prog_name="kitty-auth")

    def approve_device_when_shown(self, *, deny: bool = False) -> None:
        original = self.server.start_device

        def start(*args: object):  # noqa: ANN202
            authorization = original(*args)  # type: ignore[arg-type]
            self.server.approve_device(authorization.user_code, deny=deny)
            return authorization

        self.server.start_device = start  # type: ignore[method-assign]


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_plain_login_on_an_oauth_server_uses_the_browser(world: World) -> None:
    result = world.run("login")
    assert result.exit_code == 0, result.output
    assert world.browser.opened[0] in result.output  # the URL is always printed too
    assert "Waiting up to 5 minutes" in result.output
    assert result.output.strip().endswith(f"Logged in as user@example.com at {SERVER} (team me-private).")
    assert world.repo.credentials is not None and world.repo.credentials.login_method is LoginMethod.WEB
    assert world.listener.delivered[0].page is CallbackPage.LOGGED_IN


def test_plain_login_without_a_browser_uses_the_device_flow(world: World) -> None:
    world.browser.available = False
    world.approve_device_when_shown()
    result = world.run("login")
    assert result.exit_code == 0, result.output
    assert world.repo.credentials is not None and world.repo.credentials.login_method is LoginMethod.DEVICE


def test_device_login_shows_both_uris_and_the_code(world: World) -> None:
    world.approve_device_when_shown()
    result = world.run("login", "--headless")
    assert result.exit_code == 0, result.output
    assert "/oauth/device/verify?user_code=" in result.output and "/oauth/device/verify and enter the code" in result.output
    user_code = world.server._device_user_codes.popitem()[0]
    assert f"  {user_code}\n" in result.output
    assert world.browser.opened == []


def test_device_denied_exits_1_and_stores_nothing(world: World) -> None:
    world.approve_device_when_shown(deny=True)
    result = world.run("login", "--device")
    assert result.exit_code == 1 and "denied" in result.output and world.repo.credentials is None


def test_ctrl_c_while_polling_exits_130_and_stores_nothing(world: World) -> None:
    world.server.fail_next("poll_device", KeyboardInterrupt())  # type: ignore[arg-type]
    result = world.run("login", "--device")
    assert result.exit_code == 130 and "Aborted." in result.output and world.repo.credentials is None


def test_ctrl_c_after_the_code_exchange_revokes_the_issued_session_and_says_so(world: World) -> None:
    world.server.fail_next("me", KeyboardInterrupt())  # type: ignore[arg-type]
    result = world.run("login", "--web")
    assert result.exit_code == 130 and world.repo.credentials is None
    assert result.output.splitlines()[-2:] == [
        "Login interrupted: nothing was stored, and the server revoked the session it had just issued.", "Aborted."]
    assert world.server.revoked and not world.server.valid_refresh


def test_sigterm_after_the_code_exchange_revokes_too_and_exits_143(world: World) -> None:
    world.server.fail_next("me", Terminated())  # type: ignore[arg-type]
    result = world.run("login", "--web")
    assert result.exit_code == 143 and result.output.splitlines()[-1] == "Terminated."
    assert "the server revoked the session it had just issued" in result.output and world.server.revoked


def test_browser_denial_exits_1_and_stores_nothing(world: World) -> None:
    world.browser.user = lambda url: world.listener.deliver(world.server.approve_in_browser(url, deny=True))
    result = world.run("login", "--web")
    assert result.exit_code == 1 and "denied in the browser" in result.output and world.repo.credentials is None


def test_a_foreign_callback_is_reported_and_the_login_goes_on(world: World) -> None:
    def user(url: str) -> None:
        world.listener.deliver({"code": "x", "state": "forged"})
        world.listener.deliver(world.server.approve_in_browser(url))

    world.browser.user = user
    result = world.run("login", "--web")
    assert result.exit_code == 0, result.output
    assert "does not belong to this login" in result.output


def test_a_password_server_keeps_the_prompts(world: World) -> None:
    world.server.publishes_metadata = False
    result = world.run("login", input="user@example.com\ns3cret\n")
    assert result.exit_code == 0, result.output
    assert "Username: " in result.output and world.repo.credentials.login_method is LoginMethod.PASSWORD  # type: ignore[union-attr]


def test_username_flag_means_password_without_asking_the_server(world: World) -> None:
    result = world.run("login", "-u", "user@example.com", "--password-stdin", input="s3cret\n")
    assert result.exit_code == 0, result.output
    assert "discover" not in world.server.calls


def test_a_metadata_failure_is_an_error_not_a_password_prompt(world: World) -> None:
    world.server.fail_next("discover", MetadataUnavailableError(503))
    result = world.run("login", input="user@example.com\ns3cret\n")
    assert result.exit_code == 1 and "HTTP 503" in result.output and "metadata" in result.output
    assert "Username" not in result.output


@pytest.mark.parametrize("args", [("--web", "--device"), ("--web", "-u", "x"), ("--headless", "--password-stdin", "-u", "x")])
def test_contradicting_flags_are_usage_errors(world: World, args: tuple[str, ...]) -> None:
    result = world.run("login", *args)
    assert result.exit_code == 2 and world.server.calls == []


def test_logout_revokes_an_oauth_session(world: World) -> None:
    assert world.run("login", "--web").exit_code == 0
    refresh = world.repo.credentials.tokens.refresh  # type: ignore[union-attr]
    result = world.run("logout")
    assert result.exit_code == 0
    assert result.output.splitlines() == ["Logged out; stored credentials removed.", "The server revoked the session."]
    assert refresh in world.server.revoked


def test_logout_local_and_offline(world: World) -> None:
    assert world.run("login", "--web").exit_code == 0
    result = world.run("logout", "--local")
    assert result.exit_code == 0 and "not revoked" in result.output and "revoke" not in world.server.calls
    assert world.run("login", "--web").exit_code == 0
    world.server.fail_next("revoke", NetworkError())
    result = world.run("logout")
    assert result.exit_code == 0 and result.output.startswith("Logged out")
    assert "not revoked: the server could not be reached" in result.output and world.repo.credentials is None


def test_logout_with_a_busy_lock_exits_1_names_the_holder_and_keeps_the_session(world: World) -> None:
    assert world.run("login", "--web").exit_code == 0
    stored = world.repo.credentials

    def busy() -> None:
        raise CredentialsLockTimeoutError("/home/u/.spec-kitty/credentials.lock", 3.0, holder="process 4242")

    world.repo.on_lock = busy
    result = world.run("logout")
    assert result.exit_code == 1 and "Logged out" not in result.output
    assert "held by process 4242" in result.output and "you are still logged in" in result.output
    assert "`kitty-auth auth logout` again" in result.output  # the command as the user runs it
    assert world.repo.credentials == stored and "revoke" not in world.server.calls
