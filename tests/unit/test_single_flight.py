"""EnsureFreshToken under contention and failure: lock timeouts, slow failures, rejected tokens.

Complements test_use_cases.py (the ordinary paths) with the races reviewed for single-flight
refresh; the cross-process versions run against the reference server in e2e/test_concurrency.py.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest

from kitty_auth.domain.errors import CredentialsLockTimeoutError, NetworkError, SessionExpiredError
from kitty_auth.domain.model import Credentials, ExpiryPolicy, TokenPair
from kitty_auth.domain.token_source import TokenSource
from kitty_auth.domain.use_cases import EnsureFreshToken, Login, ObtainWsToken
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository

SERVER = "https://auth.example.test"
USER, PASSWORD = "user@example.com", "s3cret"


class BusyLockRepository(InMemoryCredentialRepository):
    """The lock is held elsewhere for longer than the wait: lock() times out.

    ``while_waiting`` runs before the timeout is raised (the holder finishing just too late)."""

    busy = True
    while_waiting = None

    @contextmanager
    def lock(self):
        if self.busy:
            if self.while_waiting is not None:
                hook, self.while_waiting = self.while_waiting, None
                hook()
            raise CredentialsLockTimeoutError("/tmp/credentials.lock", 20)
        with super().lock():
            yield


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(clock) -> FakeTokenGateway:
    return FakeTokenGateway(clock=clock, users={USER: PASSWORD})


def log_in(repo, gateway, clock) -> Credentials:
    repo.busy = False
    creds = Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
    repo.busy = True
    return creds


def ensure(repo, gateway, clock) -> EnsureFreshToken:
    return EnsureFreshToken(repo, gateway, clock, ExpiryPolicy())


def refreshed_elsewhere(repo, gateway, clock) -> Credentials:
    """What another process would store after a refresh (bypassing our lock)."""
    current = repo.credentials
    issued = gateway.refresh(current)
    repo.credentials = current.with_tokens(TokenPair.issued(issued.access, issued.refresh, clock.now()))
    return repo.credentials


class TestLockTimeout:
    def test_a_still_valid_token_is_used_when_the_lock_stays_busy(self, gateway, clock):
        repo = BusyLockRepository()
        old = log_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=14, seconds=30))  # inside the margin, still valid
        assert ensure(repo, gateway, clock).execute() == old
        assert "refresh" not in gateway.calls

    def test_an_expired_token_is_a_lock_timeout_not_a_wrong_answer(self, gateway, clock):
        repo = BusyLockRepository()
        old = log_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        with pytest.raises(CredentialsLockTimeoutError):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials == old and "refresh" not in gateway.calls

    def test_tokens_the_holder_stored_just_before_the_timeout_are_used(self, gateway, clock):
        repo = BusyLockRepository()
        log_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        winner: list[Credentials] = []
        repo.while_waiting = lambda: winner.append(refreshed_elsewhere(repo, gateway, clock))
        assert ensure(repo, gateway, clock).execute() == winner[0]
        assert gateway.calls.count("refresh") == 1  # only the holder's

    def test_after_a_401_a_different_token_the_holder_stored_is_used(self, gateway, clock):
        """Before the fix, the timeout fallback ignored tokens stored by the holder for this path."""
        repo = BusyLockRepository()
        old = log_in(repo, gateway, clock)
        winner: list[Credentials] = []
        repo.while_waiting = lambda: winner.append(refreshed_elsewhere(repo, gateway, clock))
        result = ensure(repo, gateway, clock).after_rejection(old.tokens.access)
        assert result == winner[0] and result.tokens.access != old.tokens.access

    def test_after_a_401_the_rejected_token_itself_is_never_returned(self, gateway, clock):
        repo = BusyLockRepository()
        old = log_in(repo, gateway, clock)  # fresh by the clock, but the server refused it
        with pytest.raises(CredentialsLockTimeoutError):
            ensure(repo, gateway, clock).after_rejection(old.tokens.access)

    def test_an_explicit_refresh_is_not_silently_skipped(self, gateway, clock):
        repo = BusyLockRepository()
        old = log_in(repo, gateway, clock)
        with pytest.raises(CredentialsLockTimeoutError):
            ensure(repo, gateway, clock).refresh_now()
        assert repo.credentials == old


class TestSlowTransientFailure:
    def test_a_token_that_expired_while_the_refresh_hung_is_not_returned(self, gateway, clock):
        """Valid when the refresh started (inside the margin), expired when it failed: raise.

        Before the fix the fallback was judged at the start of the request."""
        repo = InMemoryCredentialRepository()
        old = Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        clock.advance(timedelta(minutes=14, seconds=55))  # 5 s left: refresh early

        def hang_then_fail():
            clock.advance(timedelta(seconds=15))  # a slow network: connect + read timeouts
            raise NetworkError()

        gateway.during_refresh = hang_then_fail
        with pytest.raises(NetworkError):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials == old  # nothing lost: the session stays

    def test_a_token_still_valid_after_a_quick_failure_is_returned(self, gateway, clock):
        repo = InMemoryCredentialRepository()
        old = Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        clock.advance(timedelta(minutes=14, seconds=30))

        def fail_fast():
            clock.advance(timedelta(seconds=1))
            raise NetworkError()

        gateway.during_refresh = fail_fast
        assert ensure(repo, gateway, clock).execute() == old


class TestRejectedAccess:
    def test_ws_401_uses_the_token_another_process_stored_without_refreshing(self, gateway, clock):
        repo = InMemoryCredentialRepository()
        old = Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        winner: list[Credentials] = []
        original = gateway.ws_token

        def rejected_once_after_a_rotation(url, access):
            if not winner:  # another process rotates while our ws-token request is in flight
                winner.append(refreshed_elsewhere(repo, gateway, clock))
                gateway.valid_access.discard(old.tokens.access)
            return original(url, access)

        gateway.ws_token = rejected_once_after_a_rotation
        assert ObtainWsToken(TokenSource(ensure(repo, gateway, clock), repo), gateway).execute().ws_token
        assert gateway.calls.count("refresh") == 1  # the other process's only
        assert repo.credentials == winner[0]

    def test_401_on_a_refresh_after_a_rejected_access_keeps_newer_tokens(self, gateway, clock):
        repo = InMemoryCredentialRepository()
        old = Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        winner: list[Credentials] = []
        gateway.during_refresh = lambda: winner.append(refreshed_elsewhere(repo, gateway, clock))
        with pytest.raises(SessionExpiredError):
            ensure(repo, gateway, clock).after_rejection(old.tokens.access)
        assert repo.credentials == winner[0]
