"""Interrupts (Ctrl-C; the CLI's SIGTERM) that arrive while a session the server issued is not yet stored.

Use-case side, over the in-memory fakes: a refresh answer is stored before the interrupt goes on,
whether the interrupt came while the answer was on its way (the gateway hands it over, as the
HTTPS core does) or while the refreshed session was being saved; an interrupted login stores the
session or revokes it, and says which. The HTTPS core's side (waiting for the answer, over real
TLS and real signals) is in tests/integration/test_interrupted_refresh.py.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from kitty_auth.domain.errors import MalformedResponseError, NetworkError
from kitty_auth.domain.interrupts import InterruptedLogin, LoginOutcome, interrupted_login
from kitty_auth.domain.model import Credentials, ExpiryPolicy
from kitty_auth.domain.oauth import CallbackPage, Endpoints
from kitty_auth.domain.oauth_use_cases import LoginWithBrowser, LoginWithDeviceCode
from kitty_auth.domain.revocation import LogoutResult, RevokeOutcome
from kitty_auth.domain.use_cases import EnsureFreshToken, Login
from kitty_auth.testing import (
    FakeBrowser,
    FakeCallbackListener,
    FakeClock,
    FakeOAuthServer,
    FakeTokenGateway,
    InMemoryCredentialRepository,
    RecordingProgress,
)

SERVER = "https://auth.example.test"
USER, PASSWORD = "user@example.com", "s3cret"


def ctrl_c() -> None:
    raise KeyboardInterrupt


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def gateway(clock: FakeClock) -> FakeTokenGateway:
    return FakeTokenGateway(clock=clock, users={USER: PASSWORD})


@pytest.fixture
def repo() -> InMemoryCredentialRepository:
    return InMemoryCredentialRepository()


def expired_session(repo, gateway, clock) -> Credentials:  # noqa: ANN001
    """Logged in, and 16 minutes later: the access token has expired, the next call refreshes."""
    old = Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
    clock.advance(timedelta(minutes=16))
    return old


def ensure(repo, gateway, clock) -> EnsureFreshToken:  # noqa: ANN001
    return EnsureFreshToken(repo, gateway, clock, ExpiryPolicy())


def assert_rotated_and_stored(repo: InMemoryCredentialRepository, gateway: FakeTokenGateway, old: Credentials) -> None:
    """The server rotated the old refresh token out, and the file holds the one it issued instead."""
    stored = repo.credentials
    assert stored is not None and stored.tokens.refresh != old.tokens.refresh
    assert old.tokens.refresh not in gateway.valid_refresh and stored.tokens.refresh in gateway.valid_refresh


# --------------------------------------------------------------------------- refresh


class TestInterruptedRefresh:
    def test_an_answer_handed_over_by_an_interrupted_gateway_is_stored_before_the_interrupt(self, repo, gateway, clock):
        old = expired_session(repo, gateway, clock)
        gateway.interrupt_while_answering = 1
        with pytest.raises(KeyboardInterrupt):
            ensure(repo, gateway, clock).execute()
        assert_rotated_and_stored(repo, gateway, old)

    def test_an_interrupt_during_the_save_still_stores_the_refreshed_session(self, repo, gateway, clock):
        old = expired_session(repo, gateway, clock)
        repo.on_save.append(ctrl_c)  # Ctrl-C after the answer came, while the file is being written
        with pytest.raises(KeyboardInterrupt):
            ensure(repo, gateway, clock).execute()
        assert_rotated_and_stored(repo, gateway, old)

    @pytest.mark.parametrize("intent", ["execute", "after_rejection", "refresh_now", "refresh_with"])
    def test_every_refreshing_intent_keeps_the_answer(self, repo, gateway, clock, intent: str):
        old = expired_session(repo, gateway, clock)
        use_case = ensure(repo, gateway, clock)
        call = {"execute": use_case.execute, "refresh_now": use_case.refresh_now,
                "after_rejection": lambda: use_case.after_rejection(old.tokens.access),
                "refresh_with": lambda: use_case.refresh_with(old.tokens.refresh)}[intent]
        repo.on_save.append(ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            call()
        assert_rotated_and_stored(repo, gateway, old)

    def test_an_interrupt_while_a_handed_over_answer_is_saved_still_stores_it(self, repo, gateway, clock):
        old = expired_session(repo, gateway, clock)
        gateway.interrupt_while_answering = 1
        repo.on_save.append(ctrl_c)  # the late-answer path's save is cut short too
        with pytest.raises(KeyboardInterrupt):
            ensure(repo, gateway, clock).execute()
        assert_rotated_and_stored(repo, gateway, old)

    def test_a_late_answer_stored_from_the_background_survives_an_interrupted_save(self, repo, gateway, clock):
        old = expired_session(repo, gateway, clock)
        gateway.answer_late = 1
        with pytest.raises(NetworkError):
            ensure(repo, gateway, clock).execute()
        repo.on_save.append(ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            gateway.late_answers.pop()()  # the late answer arrives; an interrupt cuts its save short
        assert_rotated_and_stored(repo, gateway, old)

    def test_a_second_interrupt_during_the_retry_is_not_held_back(self, repo, gateway, clock):
        old = expired_session(repo, gateway, clock)
        repo.on_save += [ctrl_c, ctrl_c]  # the user pressed Ctrl-C twice
        with pytest.raises(KeyboardInterrupt) as info:
            ensure(repo, gateway, clock).execute()
        assert isinstance(info.value.__context__, KeyboardInterrupt)  # the second one, raised from the retry
        assert repo.credentials == old

    def test_a_host_that_catches_the_interrupt_gets_a_token_on_the_next_call_without_a_second_refresh(
            self, repo, gateway, clock):
        """The REPL case: KeyboardInterrupt around get_access_token(), then the same call again."""
        expired_session(repo, gateway, clock)
        gateway.interrupt_while_answering = 1
        use_case = ensure(repo, gateway, clock)
        try:
            use_case.execute()
        except KeyboardInterrupt:
            pass
        token = use_case.execute().tokens.access
        assert token in gateway.valid_access and gateway.calls.count("refresh") == 1

    def test_a_host_signal_handler_that_exits_is_an_interrupt_too(self, repo, gateway, clock):
        old = expired_session(repo, gateway, clock)

        def sys_exit() -> None:
            raise SystemExit(143)

        repo.on_save.append(sys_exit)
        with pytest.raises(SystemExit):
            ensure(repo, gateway, clock).execute()
        assert_rotated_and_stored(repo, gateway, old)


# --------------------------------------------------------------------------- password login


class TestInterruptedPasswordLogin:
    def test_an_interrupt_after_the_server_answered_stores_the_session_and_says_so(self, repo, gateway, clock):
        repo.on_save.append(ctrl_c)
        with pytest.raises(KeyboardInterrupt) as info:
            Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        assert repo.credentials is not None and repo.credentials.tokens.refresh in gateway.valid_refresh
        what = interrupted_login(info.value)
        assert what is not None and what.outcome is LoginOutcome.STORED and what.stored == repo.credentials
        assert f"logged in as {USER} at {SERVER}" in what.sentence()
        assert what.sentence() in info.value.__notes__  # what a REPL shows under the KeyboardInterrupt

    def test_an_interrupt_before_the_answer_stores_nothing_and_claims_nothing(self, repo, gateway, clock):
        gateway.fail_next("obtain", KeyboardInterrupt())  # type: ignore[arg-type]
        with pytest.raises(KeyboardInterrupt) as info:
            Login(repo, gateway, clock).execute(SERVER, USER, PASSWORD)
        assert repo.credentials is None and interrupted_login(info.value) is None


# --------------------------------------------------------------------------- OAuth logins


@pytest.fixture
def server(clock: FakeClock) -> FakeOAuthServer:
    return FakeOAuthServer(clock=clock, server_url=SERVER)


@pytest.fixture
def listener(clock: FakeClock) -> FakeCallbackListener:
    return FakeCallbackListener(clock=clock)


def browser_login(repo, server, clock, listener) -> LoginWithBrowser:  # noqa: ANN001
    browser = FakeBrowser(user=lambda url: listener.deliver(server.approve_in_browser(url)))
    return LoginWithBrowser(repo, server, clock, browser, listener)


def test_a_browser_login_interrupted_before_me_answered_revokes_the_issued_session(repo, server, clock, listener):
    server.fail_next("me", KeyboardInterrupt())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt) as info:
        browser_login(repo, server, clock, listener).execute(SERVER, Endpoints.defaults(SERVER),
                                                             RecordingProgress(clock=clock))
    assert repo.credentials is None
    assert server.calls[-2:] == ["me", "revoke"] and server.revoked and not server.valid_refresh
    what = interrupted_login(info.value)
    assert what is not None and what.outcome is LoginOutcome.REVOKED
    assert "nothing was stored" in what.sentence() and "revoked the session" in what.sentence()
    assert listener.delivered[0].page is CallbackPage.FAILED


def test_a_browser_login_interrupted_during_the_save_stores_the_session_and_the_page_says_so(
        repo, server, clock, listener):
    repo.on_save.append(ctrl_c)
    with pytest.raises(KeyboardInterrupt) as info:
        browser_login(repo, server, clock, listener).execute(SERVER, Endpoints.defaults(SERVER),
                                                             RecordingProgress(clock=clock))
    assert repo.credentials is not None and repo.credentials.tokens.refresh in server.valid_refresh
    assert "revoke" not in server.calls
    what = interrupted_login(info.value)
    assert what is not None and what.outcome is LoginOutcome.STORED
    assert listener.delivered[0].page is CallbackPage.LOGGED_IN  # stored: the page tells the truth


def test_a_device_login_interrupted_before_me_answered_revokes_the_issued_session(repo, server, clock):
    progress = RecordingProgress(clock=clock)
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]
    server.fail_next("me", KeyboardInterrupt())  # type: ignore[arg-type]
    with pytest.raises(KeyboardInterrupt) as info:
        LoginWithDeviceCode(repo, server, clock).execute(SERVER, Endpoints.defaults(SERVER), progress)
    assert repo.credentials is None and len(server.revoked) == 1 and not server.valid_refresh
    assert interrupted_login(info.value).outcome is LoginOutcome.REVOKED  # type: ignore[union-attr]


def test_an_interrupted_login_whose_revocation_fails_says_so(repo, server, clock, listener):
    server.fail_next("me", KeyboardInterrupt())  # type: ignore[arg-type]
    server.fail_next("revoke", NetworkError("auth.example.test: timed out"))
    with pytest.raises(KeyboardInterrupt) as info:
        browser_login(repo, server, clock, listener).execute(SERVER, Endpoints.defaults(SERVER),
                                                             RecordingProgress(clock=clock))
    what = interrupted_login(info.value)
    assert what is not None and what.outcome is LoginOutcome.NEITHER and repo.credentials is None
    assert what.sentence() == ("Login interrupted: nothing was stored, and the session the server had just issued "
                               "was not revoked (the server could not be reached (auth.example.test: timed out)); "
                               "it ends when it expires.")


def test_tokens_whose_lifetime_cannot_be_read_are_revoked(repo, clock, listener):
    """The review: TokenPair.from_issued ran outside the try that revokes (expires_in: Infinity)."""
    server = FakeOAuthServer(clock=clock, server_url=SERVER, access_lifetime=float("inf"))
    with pytest.raises(MalformedResponseError):
        browser_login(repo, server, clock, listener).execute(SERVER, Endpoints.defaults(SERVER),
                                                             RecordingProgress(clock=clock))
    assert repo.credentials is None and server.revoked and not server.valid_refresh


def test_the_sentences_name_what_happened() -> None:
    assert InterruptedLogin(LoginOutcome.NEITHER).sentence().startswith("Login interrupted: nothing was stored")
    refused = LogoutResult(True, RevokeOutcome.NO_ENDPOINT)
    assert "(the server has no revocation endpoint)" in InterruptedLogin.revoked_or_not(refused).sentence()
    assert InterruptedLogin.revoked_or_not(LogoutResult(True, RevokeOutcome.REVOKED)).outcome is LoginOutcome.REVOKED
