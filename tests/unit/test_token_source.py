"""TokenSource: SPEC_KITTY_SAAS_TOKEN wins over the stored sessions, is never stored nor refreshed, and a
401 for it names the variable; `auth token`'s choice with --server/--user (fakes only)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kitty_auth.domain.accounts import AmbiguousSessionError, NoSuchSessionError
from kitty_auth.domain.errors import (
    EnvironmentTokenRejectedError,
    NotAuthenticatedError,
    SessionExpiredError,
)
from kitty_auth.domain.model import Credentials, ExpiryPolicy
from kitty_auth.domain.token_source import EnvironmentToken, TokenSource
from kitty_auth.domain.use_cases import EnsureFreshToken, Login, ObtainWsToken
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository

SERVER = "https://auth.example.test"
OTHER = "https://other.example.test"
USER, PASSWORD = "user@example.com", "s3cret"
SECOND = "second@example.com"
VARIABLE = "SPEC_KITTY_SAAS_TOKEN"
ENV_VALUE = "env-access-token-0123456789"


class World:
    def __init__(self) -> None:
        self.clock = FakeClock()
        self.gateway = FakeTokenGateway(clock=self.clock, users={USER: PASSWORD, SECOND: "pw2"})
        self.repo = InMemoryCredentialRepository()
        self.login_server_calls = 0

    def login(self, user: str = USER, password: str = PASSWORD, server: str = SERVER) -> Credentials:
        return Login(self.repo, self.gateway, self.clock).execute(server, user, password)

    def login_server(self) -> str:
        self.login_server_calls += 1
        return SERVER

    def source(self, env: str | None = None) -> TokenSource:
        ensure = EnsureFreshToken(self.repo, self.gateway, self.clock, ExpiryPolicy())
        environment = EnvironmentToken(env, VARIABLE) if env is not None else None
        return TokenSource(ensure, self.repo, environment, self.login_server)


@pytest.fixture
def world() -> World:
    return World()


def test_without_the_variable_the_active_session_is_used_and_refreshed_when_needed(world: World) -> None:
    world.login()
    source = world.source()
    bearer = source.current()
    assert (bearer.access, bearer.server_url, bearer.variable) == (world.repo.credentials.tokens.access, SERVER, None)
    world.clock.advance(timedelta(minutes=20))
    assert source.access_token() == world.repo.credentials.tokens.access
    assert world.gateway.calls == ["obtain", "refresh"]


def test_the_variable_wins_is_never_refreshed_nor_stored_and_needs_no_session(world: World) -> None:
    source = world.source(ENV_VALUE)
    assert source.access_token() == ENV_VALUE
    assert world.login_server_calls == 0  # handing the token out needs no server
    bearer = source.current()
    assert (bearer.access, bearer.server_url, bearer.variable) == (ENV_VALUE, SERVER, VARIABLE)
    world.login()
    world.clock.advance(timedelta(days=1))  # the stored session would need a refresh
    assert source.access_token() == ENV_VALUE and source.current().access == ENV_VALUE
    assert world.gateway.calls == ["obtain"] and world.repo.saves == 1


def test_a_rejection_of_the_variables_token_names_it_and_refreshes_nothing(world: World) -> None:
    stored = world.login()
    source = world.source(ENV_VALUE)
    bearer = source.current()
    with pytest.raises(EnvironmentTokenRejectedError) as info:
        source.after_rejection(bearer)
    assert VARIABLE in str(info.value) and ENV_VALUE not in str(info.value)
    assert isinstance(info.value, SessionExpiredError)
    with pytest.raises(EnvironmentTokenRejectedError):
        source.rejected_again(bearer)
    assert world.gateway.calls == ["obtain"] and world.repo.credentials == stored


def test_a_rejection_of_a_stored_token_refreshes_once_and_a_second_ends_the_session(world: World) -> None:
    world.login()
    source = world.source()
    first = source.current()
    second = source.after_rejection(first)
    assert second.access != first.access and world.gateway.calls == ["obtain", "refresh"]
    with pytest.raises(SessionExpiredError) as info:
        source.rejected_again(second)
    assert not isinstance(info.value, EnvironmentTokenRejectedError)
    assert world.repo.credentials is None


def test_ws_token_with_the_variable_goes_to_its_server_and_a_401_names_it_without_a_refresh(world: World) -> None:
    world.gateway.valid_access.add(ENV_VALUE)
    seen: list[tuple[str, str]] = []
    ws_token = world.gateway.ws_token

    def recording(server_url: str, access_token: str):  # type: ignore[no-untyped-def]
        seen.append((server_url, access_token))
        return ws_token(server_url, access_token)

    world.gateway.ws_token = recording  # type: ignore[method-assign]
    use_case = ObtainWsToken(world.source(ENV_VALUE), world.gateway)
    assert use_case.execute().ws_token
    assert seen == [(SERVER, ENV_VALUE)]
    world.gateway.revoke_access()
    with pytest.raises(EnvironmentTokenRejectedError, match=VARIABLE):
        use_case.execute()
    assert len(seen) == 2 and "refresh" not in world.gateway.calls


def test_a_token_from_the_environment_needs_to_know_its_server(world: World) -> None:
    ensure = EnsureFreshToken(world.repo, world.gateway, world.clock)
    with pytest.raises(TypeError):
        TokenSource(ensure, world.repo, EnvironmentToken(ENV_VALUE, VARIABLE))


def test_the_token_repr_never_shows_the_value() -> None:
    assert ENV_VALUE not in repr(EnvironmentToken(ENV_VALUE, VARIABLE))


# --------------------------------------------------------------------------- `auth token`'s choice


def test_no_option_prints_the_active_sessions_token(world: World) -> None:
    world.login()
    source = world.source()
    choice = source.choose()
    assert choice.server_url == SERVER and not choice.named
    assert source.token(choice).access == world.repo.credentials.tokens.access


def test_nothing_stored_is_not_authenticated(world: World) -> None:
    with pytest.raises(NotAuthenticatedError):
        world.source().choose()
    with pytest.raises(NotAuthenticatedError):
        world.source().choose(username=USER)


def test_user_names_an_inactive_account_which_is_refreshed_where_it_is(world: World) -> None:
    first = world.login()
    world.login(SECOND, "pw2")
    world.clock.advance(timedelta(minutes=20))  # both access tokens need a refresh
    source = world.source()
    token = source.token(source.choose(username=USER))
    assert world.repo.credentials.username == SECOND  # still the active one
    stored = next(s.credentials for s in world.repo.others if s.credentials.username == USER)
    assert token.access == stored.tokens.access != first.tokens.access
    assert world.gateway.calls.count("refresh") == 1


def test_with_the_variable_user_still_reads_the_stored_account(world: World) -> None:
    stored = world.login()
    source = world.source(ENV_VALUE)
    assert source.token(source.choose()).access == ENV_VALUE
    assert source.token(source.choose(username=USER)).access == stored.tokens.access


def test_with_the_variable_server_alone_gets_it_for_its_server_and_a_stored_session_elsewhere(world: World) -> None:
    other = world.login(server=OTHER)
    source = world.source(ENV_VALUE)
    assert source.token(source.choose(server_url="auth.example.test")).access == ENV_VALUE  # https:// implied
    assert source.token(source.choose(server_url=OTHER)).access == other.tokens.access
    with pytest.raises(NoSuchSessionError):
        source.choose(server_url="https://third.example.test")


def test_an_ambiguous_choice_lists_the_sessions(world: World) -> None:
    world.login(USER, PASSWORD, OTHER)
    world.login(SECOND, "pw2", OTHER)
    world.login(USER, PASSWORD, SERVER)  # the active one is elsewhere: --server OTHER matches two others
    with pytest.raises(AmbiguousSessionError) as info:
        world.source().choose(server_url=OTHER)
    assert f"--user {USER}" in str(info.value) and f"--user {SECOND}" in str(info.value)
