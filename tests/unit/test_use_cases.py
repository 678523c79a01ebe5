"""Unit tests of the use cases through in-memory fakes of the ports: assertions on resulting state."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from dependency_injector import providers

from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    InvalidCredentialsError,
    InvalidInputError,
    InvalidServerUrlError,
    NetworkError,
    NotAuthenticatedError,
    ServerUnavailableError,
    SessionExpiredError,
    TokenRejectedError,
    UnexpectedStatusError,
)
from kitty_auth.domain.model import Credentials, ExpiryPolicy, TokenPair
from kitty_auth.domain.token_source import TokenSource
from kitty_auth.domain.use_cases import EnsureFreshToken, Login, Logout, ObtainWsToken, Status, StoredLogin
from kitty_auth.entrypoints.library import AuthClient
from kitty_auth.container import build_container
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository


class ServerRouter:
    """A TokenGateway in front of several fake servers: each request goes to the one its URL names."""

    def __init__(self, servers: dict[str, FakeTokenGateway]) -> None:
        self.servers, self.seen = servers, []

    def obtain(self, server_url, username, password):
        self.seen.append(("obtain", server_url))
        return self.servers[server_url].obtain(server_url, username, password)

    def refresh(self, session, on_late=None):
        self.seen.append(("refresh", session.server_url))
        return self.servers[session.server_url].refresh(session, on_late)

    def ws_token(self, server_url, access_token):
        self.seen.append(("ws_token", server_url))
        return self.servers[server_url].ws_token(server_url, access_token)

    def close(self) -> None:
        pass

SERVER = "https://auth.example.test"
OTHER = "https://other.example.test"
USER, PASSWORD = "user@example.com", "s3cret"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(clock: FakeClock) -> FakeTokenGateway:
    return FakeTokenGateway(clock=clock, users={USER: PASSWORD})


@pytest.fixture
def repo() -> InMemoryCredentialRepository:
    return InMemoryCredentialRepository()


def logged_in(repo, gateway, clock) -> Credentials:
    return Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)


def ensure(repo, gateway, clock) -> EnsureFreshToken:
    return EnsureFreshToken(repo, gateway, clock, ExpiryPolicy())


class TestLogin:
    def test_stores_tokens_username_and_server(self, repo, gateway, clock):
        creds = Login(repo, gateway, clock).execute(SERVER + "/", USER, PASSWORD)
        assert repo.credentials == creds
        assert creds.username == USER and creds.server_url == SERVER
        assert creds.tokens.access_expires_at == clock.now() + timedelta(minutes=15)
        assert creds.tokens.refresh_expires_at == clock.now() + timedelta(days=7)

    def test_wrong_password_stores_nothing_and_keeps_old_session(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        with pytest.raises(InvalidCredentialsError, match="Invalid username or password"):
            Login(repo, gateway, clock).execute(SERVER, USER, "wrong")
        assert repo.credentials == old

    def test_server_failure_changes_nothing(self, repo, gateway, clock):
        gateway.fail_next("obtain", ServerUnavailableError(503))
        with pytest.raises(ServerUnavailableError, match="Server temporarily unavailable"):
            Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        assert repo.credentials is None

    @pytest.mark.parametrize("url", ["http://auth.example.test", "ftp://x", "auth.example.test",
                                     "https://u:p@auth.example.test", "https://", "not a url", ""])
    def test_bad_url_refused_before_any_request(self, repo, gateway, clock, url):
        with pytest.raises(InvalidServerUrlError):
            Login(repo, gateway, clock).execute(url, USER, PASSWORD)
        assert gateway.calls == [] and repo.credentials is None

    def test_url_error_never_echoes_an_embedded_password(self, repo, gateway, clock):
        with pytest.raises(InvalidServerUrlError) as info:
            Login(repo, gateway, clock).execute("https://me:hunter2@auth.example.test", USER, PASSWORD)
        assert "hunter2" not in str(info.value)

    @pytest.mark.parametrize("name", ["", "   ", "a\x00b", "bell\x07"])
    def test_bad_username_refused_before_any_request(self, repo, gateway, clock, name):
        with pytest.raises(InvalidInputError):
            Login(repo, gateway, clock).execute(SERVER, name, PASSWORD)
        assert gateway.calls == []

    def test_password_with_non_ascii_and_control_characters_is_sent_as_is(self, repo, gateway, clock):
        odd = "pässwörd\t\x01✓"
        gateway.users[USER] = odd
        creds = Login(repo, gateway, clock).execute(SERVER, USER, odd)
        assert repo.credentials == creds

    def test_already_logged_in_only_for_the_same_server_with_a_live_refresh_token(self, repo, gateway, clock):
        login = Login(repo, gateway, clock)
        assert login.already_logged_in(SERVER) is None
        logged_in(repo, gateway, clock)
        assert login.already_logged_in(SERVER + "/").credentials == repo.credentials
        assert login.already_logged_in("https://other.example.test") is None
        clock.advance(timedelta(days=7, seconds=1))
        assert login.already_logged_in(SERVER) is None

    def test_already_logged_in_is_per_server_and_user(self, repo, gateway, clock):
        gateway.users["second@example.com"] = "pw2"
        login = Login(repo, gateway, clock)
        first = login.execute(SERVER, USER, PASSWORD)
        second = login.execute(SERVER, "second@example.com", "pw2")  # another user: added, now active
        assert [s.credentials for s in repo.sessions()] == [second, first]
        assert login.already_logged_in(SERVER, "second@example.com") == StoredLogin(second)
        assert login.already_logged_in(SERVER) == StoredLogin(second)  # any user: the active one
        assert login.already_logged_in(SERVER, "third@example.com") is None
        # the stored, inactive account: logging in as it means using it
        assert login.already_logged_in(SERVER, USER) == StoredLogin(first, switched=True)
        assert repo.load() == first and [s.credentials for s in repo.sessions()] == [first, second]
        clock.advance(timedelta(days=7, seconds=1))  # both refresh tokens expired: log in again
        assert login.already_logged_in(SERVER, "second@example.com") is None

    def test_corrupt_file_counts_as_logged_out_and_is_replaced(self, gateway, clock):
        class CorruptRepo(InMemoryCredentialRepository):
            corrupt = True

            def load(self):
                if self.corrupt:
                    raise CorruptCredentialsError("/tmp/credentials")
                return super().load()

            def sessions(self):
                self.load()
                return super().sessions()

            def save(self, credentials):
                self.corrupt = False
                super().save(credentials)

        repo = CorruptRepo()
        login = Login(repo, gateway, clock)
        assert login.already_logged_in(SERVER) is None
        login.execute(SERVER, USER, PASSWORD)
        assert repo.load().username == USER


class TestLogoutAndStatus:
    def test_logout_removes_session_and_is_idempotent(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        assert Logout(repo).execute() is True
        assert repo.credentials is None
        assert Logout(repo).execute() is False

    def test_status_reports_session_until_refresh_token_expires(self, repo, gateway, clock):
        assert Status(repo, clock).execute().authenticated is False
        creds = logged_in(repo, gateway, clock)
        report = Status(repo, clock).execute()
        assert report.authenticated and report.credentials == creds
        clock.advance(timedelta(days=7))
        report = Status(repo, clock).execute()
        assert not report.authenticated and report.credentials == creds

    def test_status_names_a_corrupt_file(self, clock):
        class Corrupt(InMemoryCredentialRepository):
            def load(self):
                raise CorruptCredentialsError("/home/u/.spec-kitty/credentials")

        report = Status(Corrupt(), clock).execute()
        assert not report.authenticated
        assert report.unparsable_file == str(Path("/home/u/.spec-kitty/credentials"))  # the OS's separators


class TestEnsureFreshToken:
    def test_fresh_token_is_returned_without_network_or_lock(self, repo, gateway, clock):
        creds = logged_in(repo, gateway, clock)
        calls_before, locks_before = list(gateway.calls), repo.lock_acquisitions
        assert ensure(repo, gateway, clock).execute().tokens.access == creds.tokens.access
        assert gateway.calls == calls_before and repo.lock_acquisitions == locks_before

    def test_expired_access_token_is_refreshed_rotated_and_stored(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=15))
        new = ensure(repo, gateway, clock).execute()
        assert new.tokens.access != old.tokens.access and new.tokens.refresh != old.tokens.refresh
        assert repo.credentials == new
        assert gateway.calls.count("refresh") == 1
        assert old.tokens.refresh not in gateway.valid_refresh  # rotated out

    def test_not_logged_in(self, repo, gateway, clock):
        with pytest.raises(NotAuthenticatedError):
            ensure(repo, gateway, clock).execute()

    def test_refresh_inside_margin_happens_early(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=14, seconds=30))  # 30 s left: inside the 60 s margin
        assert ensure(repo, gateway, clock).execute().tokens.access != old.tokens.access

    def test_transient_failure_inside_margin_keeps_using_the_valid_token(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=14, seconds=30))
        gateway.fail_next("refresh", NetworkError())
        assert ensure(repo, gateway, clock).execute().tokens.access == old.tokens.access
        assert repo.credentials == old

    def test_transient_failure_after_expiry_fails_and_keeps_the_session(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        gateway.fail_next("refresh", ServerUnavailableError(502))
        with pytest.raises(ServerUnavailableError):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials == old

    def test_other_4xx_keeps_the_session(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        gateway.fail_next("refresh", UnexpectedStatusError(403))
        with pytest.raises(UnexpectedStatusError, match="403"):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials == old

    def test_rejected_refresh_clears_the_session(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        gateway.valid_refresh.clear()  # e.g. blacklisted by the server
        clock.advance(timedelta(minutes=16))
        with pytest.raises(SessionExpiredError, match="Session expired. Please log in again."):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials is None

    def test_stale_401_keeps_tokens_another_process_stored(self, repo, gateway, clock):
        """The loser of a race presents an already-rotated token: it must not wipe the winner's."""
        logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        winner: list[Credentials] = []

        def other_process_refreshes_first():  # bypasses our lock, as an older client might
            current = repo.credentials
            issued = gateway.refresh(current)
            winner.append(current.with_tokens(TokenPair.issued(issued.access, issued.refresh, clock.now())))
            repo.credentials = winner[0]

        gateway.during_refresh = other_process_refreshes_first
        with pytest.raises(SessionExpiredError):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials == winner[0]
        # and the next call simply uses them
        assert ensure(repo, gateway, clock).execute() == winner[0]

    def test_uses_tokens_refreshed_by_another_process_while_waiting_for_the_lock(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        other = ensure(repo, gateway, FakeClock(clock.now()))
        repo.on_lock = lambda: other.execute()  # another process wins the lock first
        result = ensure(repo, gateway, clock).execute()
        assert gateway.calls.count("refresh") == 1
        assert result == repo.credentials

    def test_expired_refresh_token_is_a_session_expiry_without_network(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        clock.advance(timedelta(days=8))
        with pytest.raises(SessionExpiredError):
            ensure(repo, gateway, clock).execute()
        assert "refresh" not in gateway.calls

    def test_force_refreshes_even_a_fresh_token(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        assert ensure(repo, gateway, clock).refresh_now().tokens.access != old.tokens.access

    def test_refresh_with_an_explicit_token(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        new = ensure(repo, gateway, clock).refresh_with(old.tokens.refresh)
        assert repo.credentials == new and new.tokens.refresh != old.tokens.refresh
        with pytest.raises(SessionExpiredError):
            ensure(repo, gateway, clock).refresh_with("not-a-valid-refresh-token")
        assert repo.credentials == new  # the stored token was not the rejected one

    def test_refresh_goes_to_the_server_that_issued_the_tokens(self, repo, clock):
        # Two servers, each knowing only its own tokens: the client is configured for B, the
        # session was issued by A. Refreshing (or asking for a ws token) at B would be a 401.
        servers = {url: FakeTokenGateway(clock=clock, users={USER: PASSWORD}) for url in (SERVER, OTHER)}
        router = ServerRouter(servers)
        container = build_container(credentials_path=Path("/nonexistent/credentials"))
        container.clock.override(providers.Object(clock))
        container.repository.override(providers.Object(repo))
        container.gateway.override(providers.Object(router))
        Login(repo, router, clock).execute(SERVER, USER, PASSWORD)
        client = AuthClient(OTHER, container=container)
        clock.advance(timedelta(minutes=16))

        client.get_access_token()
        client.obtain_ws_token()
        client.refresh_tokens()

        assert router.seen == [("obtain", SERVER), ("refresh", SERVER), ("ws_token", SERVER), ("refresh", SERVER)]
        assert servers[OTHER].calls == []
        assert repo.credentials is not None and repo.credentials.server_url == SERVER


class TestClockSkew:
    @pytest.mark.parametrize("offset_minutes", [-10, -3, 0, 3, 10])
    def test_a_wrong_local_clock_neither_uses_expired_tokens_nor_refreshes_every_call(
        self, repo, clock, offset_minutes
    ):
        gateway = FakeTokenGateway(clock=clock, users={USER: PASSWORD},
                                   server_clock_offset=timedelta(minutes=offset_minutes))
        logged_in(repo, gateway, clock)
        for _ in range(10):  # fresh for ~14 minutes of local time, whatever the offset
            ensure(repo, gateway, clock).execute()
            clock.advance(timedelta(minutes=1))
        assert gateway.calls.count("refresh") == 0
        clock.advance(timedelta(minutes=5))  # now 15 min after issue on both clocks: expired
        ensure(repo, gateway, clock).execute()
        assert gateway.calls.count("refresh") == 1


class TestObtainWsToken:
    def test_ws_token_with_the_stored_access_token(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        token = ObtainWsToken(TokenSource(ensure(repo, gateway, clock), repo), gateway).execute()
        assert token.expires_in == 900 and token.ws_token
        assert gateway.calls.count("refresh") == 0

    def test_401_gets_one_refresh_and_one_retry(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        gateway.revoke_access()
        token = ObtainWsToken(TokenSource(ensure(repo, gateway, clock), repo), gateway).execute()
        assert token.ws_token
        assert gateway.calls.count("refresh") == 1 and gateway.calls.count("ws_token") == 2
        assert repo.credentials.tokens.access != old.tokens.access

    def test_still_401_after_refresh_is_session_expired_and_clears(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        gateway.fail_next("ws_token", TokenRejectedError(), times=2)
        with pytest.raises(SessionExpiredError):
            ObtainWsToken(TokenSource(ensure(repo, gateway, clock), repo), gateway).execute()
        assert gateway.calls.count("refresh") == 1
        assert repo.credentials is None

    def test_repr_never_shows_token_values(self, repo, gateway, clock):
        creds = logged_in(repo, gateway, clock)
        ws = ObtainWsToken(TokenSource(ensure(repo, gateway, clock), repo), gateway).execute()
        text = repr(creds) + repr(ws) + str(creds) + repr(creds.tokens)
        for secret in (creds.tokens.access, creds.tokens.refresh, ws.ws_token):
            assert secret not in text


class TestFixesFromHardening:
    def test_a_forced_refresh_that_fails_transiently_raises_instead_of_pretending(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        gateway.fail_next("refresh", ServerUnavailableError(503))
        with pytest.raises(ServerUnavailableError):
            ensure(repo, gateway, clock).refresh_now()
        assert repo.credentials == old

    def test_login_with_an_unusable_store_sends_no_password(self, gateway, clock):
        from kitty_auth.domain.errors import CredentialsFileError

        class Unwritable(InMemoryCredentialRepository):
            def lock(self):
                raise CredentialsFileError("/home/u/.spec-kitty/credentials")

        with pytest.raises(CredentialsFileError):
            Login(Unwritable(), gateway, clock).execute(SERVER, USER, PASSWORD)
        assert gateway.calls == []


class TestLateRefreshAnswer:
    """The server rotated the refresh token, but its answer came after the gateway's deadline."""

    def test_a_late_answer_is_stored_and_the_session_survives(self, repo, gateway, clock):
        old = logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        gateway.answer_late = 1
        with pytest.raises(NetworkError):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials == old  # nothing changed yet; the server already rotated

        gateway.late_answers.pop()()  # the answer arrives (in the gateway's worker thread)

        stored = repo.credentials
        assert stored.tokens.refresh != old.tokens.refresh and stored.tokens.refresh in gateway.valid_refresh
        assert ensure(repo, gateway, clock).execute() == stored  # used as is: no second refresh
        assert gateway.calls.count("refresh") == 1
        clock.advance(timedelta(minutes=16))
        assert ensure(repo, gateway, clock).execute().tokens.refresh in gateway.valid_refresh

    def test_a_late_answer_is_dropped_when_the_session_changed_meanwhile(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        gateway.answer_late = 1
        with pytest.raises(NetworkError):
            ensure(repo, gateway, clock).execute()
        newer = logged_in(repo, gateway, clock)  # the user logged in again meanwhile
        gateway.late_answers.pop()()
        assert repo.credentials == newer

    def test_a_late_answer_after_logout_does_not_log_back_in(self, repo, gateway, clock):
        logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        gateway.answer_late = 1
        with pytest.raises(NetworkError):
            ensure(repo, gateway, clock).execute()
        Logout(repo).execute()
        gateway.late_answers.pop()()
        assert repo.credentials is None

    def test_a_late_answer_that_never_arrives_costs_the_session_at_the_next_refresh(self, repo, gateway, clock):
        # What a short CLI process can not avoid: it exits before the answer, the server has
        # blacklisted the token it sent, so the next refresh is refused (README, Reliability).
        logged_in(repo, gateway, clock)
        clock.advance(timedelta(minutes=16))
        gateway.answer_late = 1
        with pytest.raises(NetworkError):
            ensure(repo, gateway, clock).execute()
        gateway.late_answers.clear()
        with pytest.raises(SessionExpiredError):
            ensure(repo, gateway, clock).execute()
        assert repo.credentials is None
