"""Logout's bounds: a busy credentials lock keeps the session (nothing removed behind a refresh), and the revoke
request gets only what is left of logout's time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kitty_auth.domain.errors import CredentialsLockTimeoutError, InvalidServerUrlError, LogoutLockTimeoutError
from kitty_auth.domain.model import Credentials, LoginMethod, OAuthClient, TokenPair
from kitty_auth.domain.revocation import RevokeOutcome
from kitty_auth.domain.use_cases import Logout
from kitty_auth.testing import FakeClock, FakeOAuthServer, InMemoryCredentialRepository

SERVER = "https://auth.example.test"
NOW = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)


def session() -> Credentials:
    return Credentials(
        tokens=TokenPair("at-access-0123456789", "rt-refresh-0123456789", NOW + timedelta(minutes=15), None),
        username="user@example.com", server_url=SERVER, login_method=LoginMethod.DEVICE,
        oauth=OAuthClient("cli_native", SERVER + "/oauth/token", SERVER + "/oauth/revoke"),
    )


class BusyLockRepository(InMemoryCredentialRepository):
    """The lock is held by another process for longer than this repository waits."""

    @contextmanager
    def lock(self) -> Iterator[None]:
        raise CredentialsLockTimeoutError("/home/u/.spec-kitty/credentials.lock", 3.0, holder="process 4242")
        yield  # pragma: no cover


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> FakeOAuthServer:
    fake = FakeOAuthServer(clock=FakeClock(NOW), server_url=SERVER)
    fake.valid_refresh.add(session().tokens.refresh)
    return fake


def test_a_busy_lock_removes_nothing_and_says_the_user_is_still_logged_in(server: FakeOAuthServer) -> None:
    repo = BusyLockRepository(session())
    with pytest.raises(LogoutLockTimeoutError) as caught:
        Logout(repo, server, budget=4.5).remove()
    assert repo.credentials == session()  # kept: a refresh in progress would store its tokens again anyway
    message = str(caught.value)
    lock = Path("/home/u/.spec-kitty/credentials.lock")  # printed with the OS's separators
    assert f"credentials lock {lock}" in message and "process 4242" in message
    assert "nothing was removed and you are still logged in" in message and "logout" in message
    assert isinstance(caught.value, CredentialsLockTimeoutError)  # callers catching the general error still do
    assert server.calls == []


def test_the_revoke_request_gets_what_is_left_of_the_budget(server: FakeOAuthServer) -> None:
    deadlines: list[float] = []
    revoke = server.revoke
    server.revoke = lambda s, deadline: (deadlines.append(deadline), revoke(s, deadline))[1]  # type: ignore[method-assign]
    ticks = Ticks()
    use_case = Logout(InMemoryCredentialRepository(session()), server, budget=4.5, monotonic=ticks)
    removed = use_case.remove()
    ticks.now += 2.0  # the lock wait and the removal took 2 s
    result = use_case.revoke(removed)
    assert result.outcome is RevokeOutcome.REVOKED
    assert deadlines == [pytest.approx(2.5)]


def test_without_time_left_the_request_is_not_sent(server: FakeOAuthServer) -> None:
    ticks = Ticks()
    use_case = Logout(InMemoryCredentialRepository(session()), server, budget=4.5, monotonic=ticks)
    removed = use_case.remove()
    ticks.now += 4.2
    result = use_case.revoke(removed)
    assert result.removed and result.outcome is RevokeOutcome.NO_TIME
    assert "revoke" not in server.calls
    assert result.sentence.startswith("The session was not revoked: ") and "no time" in result.sentence


def test_the_revoke_request_never_gets_more_than_its_own_deadline(server: FakeOAuthServer) -> None:
    deadlines: list[float] = []
    server.revoke = lambda s, deadline: deadlines.append(deadline)  # type: ignore[method-assign]
    for budget in (None, 60.0):
        use_case = Logout(InMemoryCredentialRepository(session()), server, budget=budget, monotonic=Ticks())
        use_case.revoke(use_case.remove())
    assert deadlines == [5.0, 5.0]


def test_a_revoke_that_cannot_even_be_sent_still_logs_out(server: FakeOAuthServer) -> None:
    """A stored revocation endpoint the HTTP core refuses (e.g. a hand-edited file): logged out, not revoked."""
    server.fail_next("revoke", InvalidServerUrlError("The server URL must not contain a query or fragment."))
    result = Logout(InMemoryCredentialRepository(session()), server).execute_and_revoke()
    assert result.removed and result.outcome is RevokeOutcome.REFUSED
    assert result.sentence == "The session was not revoked: the server URL must not contain a query or fragment."
