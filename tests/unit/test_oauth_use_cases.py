"""ChooseLoginMethod, LoginWithBrowser, LoginWithDeviceCode and Logout-with-revoke, over in-memory fakes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from kitty_auth.domain.errors import (
    CredentialsFileError,
    MalformedResponseError,
    NetworkError,
    ServerUnavailableError,
    TokenRejectedError,
)
from kitty_auth.domain.model import Credentials, LoginMethod, TokenPair
from kitty_auth.domain.oauth import CallbackPage, Endpoints
from kitty_auth.domain.revocation import RevokeOutcome
from kitty_auth.domain.oauth_errors import (
    BrowserLoginDeniedError,
    BrowserLoginFailedError,
    BrowserLoginTimeoutError,
    DeviceCodeDeniedError,
    DeviceCodeExpiredError,
    MetadataUnavailableError,
    OAuthProtocolError,
    UnsafeEndpointError,
)
from kitty_auth.domain.oauth_use_cases import ChooseLoginMethod, LoginWithBrowser, LoginWithDeviceCode
from kitty_auth.domain.use_cases import EnsureFreshToken, Logout
from kitty_auth.testing import (
    FakeBrowser,
    FakeCallbackListener,
    FakeClock,
    FakeOAuthServer,
    InMemoryCredentialRepository,
    RecordingProgress,
)

URL = "https://auth.example.test"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock: FakeClock) -> FakeOAuthServer:
    return FakeOAuthServer(clock=clock, server_url=URL)


@pytest.fixture
def repo() -> InMemoryCredentialRepository:
    return InMemoryCredentialRepository()


@pytest.fixture
def progress(clock: FakeClock) -> RecordingProgress:
    return RecordingProgress(clock=clock)


@pytest.fixture
def listener(clock: FakeClock) -> FakeCallbackListener:
    return FakeCallbackListener(clock=clock)


def browser_login(repo: InMemoryCredentialRepository, server: FakeOAuthServer, clock: FakeClock,
                  browser: FakeBrowser, listener: FakeCallbackListener, timeout: float = 300) -> LoginWithBrowser:
    return LoginWithBrowser(repo, server, clock, browser, listener, timeout=timeout)


def user_approves(server: FakeOAuthServer, listener: FakeCallbackListener, **kw: bool):  # noqa: ANN201
    return lambda url: listener.deliver(server.approve_in_browser(url, **kw))


# --------------------------------------------------------------------------- choosing the method


def test_metadata_means_browser_login_unless_a_flag_says_otherwise(server: FakeOAuthServer) -> None:
    choose = ChooseLoginMethod(server)
    assert choose.execute(URL, None).method is LoginMethod.WEB
    assert choose.execute(URL, None).auto
    assert choose.execute(URL, LoginMethod.DEVICE).method is LoginMethod.DEVICE
    assert not choose.execute(URL, LoginMethod.WEB).auto
    assert choose.execute(URL, LoginMethod.PASSWORD).method is LoginMethod.PASSWORD
    assert server.calls.count("discover") == 4  # explicit password never asks


def test_no_metadata_means_password_unless_web_or_device_asks_for_the_default_paths(server: FakeOAuthServer) -> None:
    server.metadata = None
    choose = ChooseLoginMethod(server)
    assert choose.execute(URL, None).method is LoginMethod.PASSWORD
    plan = choose.execute(URL, LoginMethod.DEVICE)
    assert plan.endpoints == Endpoints.defaults(URL) and plan.endpoints.token == URL + "/oauth/token"


def test_a_metadata_failure_is_never_a_silent_fallback(server: FakeOAuthServer) -> None:
    server.fail_next("discover", MetadataUnavailableError(503))
    with pytest.raises(MetadataUnavailableError, match=r"HTTP 503.*metadata"):
        ChooseLoginMethod(server).execute(URL, None)


@pytest.mark.parametrize("field", ["authorization", "token", "revocation"])
def test_an_endpoint_off_origin_is_refused_before_anything_is_sent(server: FakeOAuthServer, field: str) -> None:
    good = Endpoints.defaults(URL)
    server.metadata = Endpoints(**{**good.__dict__, field: "https://elsewhere.test/x"})
    with pytest.raises(UnsafeEndpointError):
        ChooseLoginMethod(server).execute(URL, None)
    assert server.calls == ["discover"]


# --------------------------------------------------------------------------- browser login


def test_browser_login_stores_an_oauth_session_named_by_me(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    browser = FakeBrowser()
    browser.user = user_approves(server, listener)
    creds = browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials == creds
    assert creds.username == "user@example.com" and creds.login_method is LoginMethod.WEB
    assert creds.team_slug == "me-private"  # the private teamspace wins over the first team
    assert creds.session_id and creds.session_id.startswith("sess-")
    assert creds.oauth is not None and creds.oauth.token_endpoint == URL + "/oauth/token"
    assert creds.oauth.revocation_endpoint == URL + "/oauth/revoke" and creds.oauth.client_id == "cli_native"
    assert creds.tokens.refresh_expires_at is None  # unknown: valid until the server refuses it
    assert creds.tokens.access_expires_at == clock.now() + timedelta(seconds=900)
    assert listener.delivered[0].page is CallbackPage.LOGGED_IN and listener.closed
    url, opened, timeout = progress.shown[0][1]  # type: ignore[misc]
    assert opened and timeout == 300 and url == browser.opened[0]


def test_foreign_callbacks_get_an_error_page_and_the_login_keeps_waiting(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    def user(url: str) -> None:
        listener.deliver({"code": "stolen", "state": "not-ours"})
        listener.deliver({"code": "stolen"})
        listener.deliver(server.approve_in_browser(url))

    creds = browser_login(repo, server, clock, FakeBrowser(user=user), listener).execute(URL, Endpoints.defaults(URL), progress)
    assert creds.username == "user@example.com"
    assert [c.page for c in listener.delivered] == [CallbackPage.FOREIGN, CallbackPage.FOREIGN, CallbackPage.LOGGED_IN]
    assert progress.refused == 2
    assert server.calls.count("exchange_code") == 1  # the foreign codes were never sent anywhere


def test_denial_in_the_browser_ends_the_login_and_stores_nothing(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    browser = FakeBrowser(user=user_approves(server, listener, deny=True))
    with pytest.raises(BrowserLoginDeniedError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None and listener.delivered[0].page is CallbackPage.DENIED
    assert "exchange_code" not in server.calls


def test_another_oauth_error_in_the_callback_ends_the_login(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    def user(url: str) -> None:
        listener.deliver({**server.approve_in_browser(url), "error": "server_error"})

    with pytest.raises(BrowserLoginFailedError, match="server_error"):
        browser_login(repo, server, clock, FakeBrowser(user=user), listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None and listener.delivered[0].page is CallbackPage.FAILED


def test_the_page_says_failed_when_the_exchange_fails(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    server.fail_next("exchange_code", OAuthProtocolError("invalid_grant", "authorization code"))
    browser = FakeBrowser(user=user_approves(server, listener))
    with pytest.raises(OAuthProtocolError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None and listener.delivered[0].page is CallbackPage.FAILED


def test_the_page_says_failed_when_me_fails_and_nothing_is_stored(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    server.fail_next("me", MalformedResponseError())
    browser = FakeBrowser(user=user_approves(server, listener))
    with pytest.raises(MalformedResponseError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None and listener.delivered[0].page is CallbackPage.FAILED


def test_tokens_issued_before_me_failed_are_revoked_before_the_error(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    server.fail_next("me", ServerUnavailableError(503))
    browser = FakeBrowser(user=user_approves(server, listener))
    with pytest.raises(ServerUnavailableError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None
    assert server.calls[-2:] == ["me", "revoke"]  # revoked before the error reached the user
    assert server.revoked and not server.valid_refresh  # nothing the server issued is still valid
    assert listener.delivered[0].page is CallbackPage.FAILED


def test_a_device_login_whose_me_fails_revokes_what_was_issued(repo, server, clock, progress) -> None:  # noqa: ANN001
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]
    server.fail_next("me", TokenRejectedError())
    with pytest.raises(TokenRejectedError):
        LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None and server.calls[-1] == "revoke"
    assert len(server.revoked) == 1 and not server.valid_refresh


def test_a_session_that_cannot_be_saved_is_revoked(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    def unwritable(credentials: Credentials) -> None:
        raise CredentialsFileError("/home/u/.spec-kitty/credentials", "disk full")

    repo.save = unwritable  # type: ignore[method-assign]
    browser = FakeBrowser(user=user_approves(server, listener))
    with pytest.raises(CredentialsFileError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert server.revoked and not server.valid_refresh


@pytest.mark.parametrize("revocable", [True, False], ids=["revoke-offline", "no-revocation-endpoint"])
def test_when_the_revocation_fails_too_the_login_reports_its_own_error(repo, server, clock, progress, listener,  # noqa: ANN001
                                                                         revocable: bool) -> None:
    server.fail_next("me", MalformedResponseError())
    server.revocable = revocable
    if revocable:
        server.fail_next("revoke", NetworkError("auth.example.test: timed out"))
    browser = FakeBrowser(user=user_approves(server, listener))
    with pytest.raises(MalformedResponseError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None and "revoke" in server.calls


def test_timeout_is_announced_and_counts_refused_callbacks(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    browser = FakeBrowser(user=lambda url: listener.deliver({"code": "x", "state": "wrong"}))
    start = clock.now()
    with pytest.raises(BrowserLoginTimeoutError, match=r"2 minutes.*1 callback"):
        browser_login(repo, server, clock, browser, listener, timeout=120).execute(URL, Endpoints.defaults(URL), progress)
    assert clock.now() - start == timedelta(seconds=120)
    assert repo.credentials is None and listener.closed and progress.finished_calls >= 1


def test_a_wrong_verifier_or_redirect_would_be_refused_by_the_server(server) -> None:  # noqa: ANN001
    from kitty_auth.domain.oauth import Pkce, authorization_url

    pkce = Pkce.from_entropy(b"a" * 32, b"b" * 32)
    url = authorization_url(URL + "/oauth/authorize", client_id="cli_native",
                            redirect_uri="http://127.0.0.1:1/callback", pkce=pkce)
    code = server.approve_in_browser(url)["code"]
    with pytest.raises(OAuthProtocolError):
        server.exchange_code(Endpoints.defaults(URL), "cli_native", code, "x" * 43, "http://127.0.0.1:1/callback")


def test_no_browser_in_auto_mode_falls_back_to_the_device_flow(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]
    device = LoginWithDeviceCode(repo, server, clock)
    creds = browser_login(repo, server, clock, FakeBrowser(available=False), listener).execute(
        URL, Endpoints.defaults(URL), progress, device_fallback=device)
    assert creds.login_method is LoginMethod.DEVICE and listener.closed


def test_no_browser_with_explicit_web_prints_the_url_and_waits(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    with pytest.raises(BrowserLoginTimeoutError):
        browser_login(repo, server, clock, FakeBrowser(available=False), listener, timeout=60).execute(
            URL, Endpoints.defaults(URL), progress)
    url, opened, _ = progress.shown[0][1]  # type: ignore[misc]
    assert not opened and url.startswith(URL + "/oauth/authorize?")


def test_a_broken_home_fails_before_the_browser_opens(repo, server, clock, progress, listener) -> None:  # noqa: ANN001
    def broken() -> None:
        raise CredentialsFileError("/nowhere/credentials", "Permission denied")

    repo.on_lock = broken
    browser = FakeBrowser()
    with pytest.raises(CredentialsFileError):
        browser_login(repo, server, clock, browser, listener).execute(URL, Endpoints.defaults(URL), progress)
    assert browser.opened == []


# --------------------------------------------------------------------------- device login


def test_device_login_polls_at_the_interval_and_completes_on_the_first_poll_after_approval(repo, server, clock, progress) -> None:  # noqa: ANN001
    def approve_after_third_wait(n: int) -> None:
        if n == 3:
            server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]

    progress.on_wait = approve_after_third_wait
    start = clock.now()
    creds = LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert creds.login_method is LoginMethod.DEVICE and repo.credentials == creds
    assert progress.waits == [5.0, 5.0, 5.0]
    assert server.polls == [start + timedelta(seconds=5 * n) for n in (1, 2, 3)]
    shown = progress.shown[0][1]
    assert shown.verification_uri_complete and shown.user_code  # type: ignore[union-attr]


def test_slow_down_adds_five_seconds_for_every_later_poll(repo, server, clock, progress) -> None:  # noqa: ANN001
    server.device_interval = None  # the server names none: RFC 8628's default, 5 s
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code) if n == 4 else None  # type: ignore[union-attr]
    server.fail_next("poll_device", ServerUnavailableError(503))  # transient: doubles the next wait only
    LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert progress.waits == [5.0, 10.0, 5.0, 5.0]


def test_a_server_slow_down_is_obeyed_without_cap(repo, server, clock, progress) -> None:  # noqa: ANN001
    from kitty_auth.domain.oauth import PollOutcome

    for _ in range(3):
        server.failures.setdefault("poll_device", [])
    calls = {"n": 0}
    original = server.poll_device

    def slow(*args: object) -> object:
        calls["n"] += 1
        if calls["n"] <= 3:
            server.calls.append("poll_device")
            return PollOutcome.SLOW_DOWN
        return original(*args)  # type: ignore[arg-type]

    server.poll_device = slow  # type: ignore[method-assign]
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]
    LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert progress.waits == [5.0, 10.0, 15.0, 20.0]


@pytest.mark.parametrize("interval", [1e-9, 0.5])
def test_a_tiny_interval_still_polls_at_most_once_a_second(repo, server, clock, progress, interval: float) -> None:  # noqa: ANN001
    server.device_interval = interval
    server.enforce_interval = False  # this server would take any rate: the client holds back on its own
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code) if n == 5 else None  # type: ignore[union-attr]
    LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert progress.waits == [1.0] * 5 and len(server.polls) == 5


def test_denied_device_code_stores_nothing(repo, server, clock, progress) -> None:  # noqa: ANN001
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code, deny=True)  # type: ignore[union-attr]
    with pytest.raises(DeviceCodeDeniedError):
        LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.credentials is None


def test_device_code_expiry_stops_polling_without_a_request_past_it(repo, server, clock, progress) -> None:  # noqa: ANN001
    server.device_expires_in = 22
    with pytest.raises(DeviceCodeExpiredError):
        LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert len(server.polls) == 4 and repo.credentials is None  # at 5, 10, 15, 20 s; 25 s is past expiry


def test_the_servers_expired_token_stops_the_login(repo, server, clock, progress) -> None:  # noqa: ANN001
    server.fail_next("poll_device", DeviceCodeExpiredError())
    with pytest.raises(DeviceCodeExpiredError):
        LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)


def test_each_poll_runs_under_the_credentials_lock(repo, server, clock, progress) -> None:  # noqa: ANN001
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code) if n == 2 else None  # type: ignore[union-attr]
    LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    assert repo.lock_acquisitions >= 3  # the check before starting, then one per poll


# --------------------------------------------------------------------------- refresh of an OAuth session


def test_an_oauth_session_is_refreshed_by_the_same_single_flight_use_case(repo, server, clock, progress) -> None:  # noqa: ANN001
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]
    creds = LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)
    clock.advance(timedelta(minutes=15))
    fresh = EnsureFreshToken(repo, server, clock).execute()
    assert fresh.tokens.refresh != creds.tokens.refresh and creds.tokens.refresh not in server.valid_refresh
    assert fresh.username == creds.username and fresh.oauth == creds.oauth and fresh.identity == creds.identity
    assert fresh.session_id == creds.session_id and fresh.tokens.refresh_expires_at is None


# --------------------------------------------------------------------------- logout


def _oauth_session(repo, server, clock, progress) -> Credentials:  # noqa: ANN001
    progress.on_wait = lambda n: server.approve_device(progress.shown[0][1].user_code)  # type: ignore[union-attr]
    return LoginWithDeviceCode(repo, server, clock).execute(URL, Endpoints.defaults(URL), progress)


def test_logout_removes_locally_then_revokes(repo, server, clock, progress) -> None:  # noqa: ANN001
    creds = _oauth_session(repo, server, clock, progress)
    order: list[str] = []
    original = server.revoke
    server.revoke = lambda s, d: (order.append(f"revoke (stored: {repo.credentials is not None})"), original(s, d))[1]  # type: ignore[method-assign]
    result = Logout(repo, server).execute_and_revoke()
    assert result.removed and result.revoked and result.sentence == "The server revoked the session."
    assert order == ["revoke (stored: False)"] and creds.tokens.refresh in server.revoked


@pytest.mark.parametrize(("error", "outcome"), [
    (NetworkError(), RevokeOutcome.OFFLINE),
    (ServerUnavailableError(503), RevokeOutcome.REFUSED),
    (TokenRejectedError(), RevokeOutcome.REFUSED),
])
def test_logout_succeeds_whatever_the_server_says(repo, server, clock, progress, error, outcome) -> None:  # noqa: ANN001
    _oauth_session(repo, server, clock, progress)
    server.fail_next("revoke", error)
    result = Logout(repo, server).execute_and_revoke()
    assert result.removed and result.outcome is outcome and repo.credentials is None
    assert "not revoked" in result.sentence


def test_logout_without_a_revocation_endpoint(repo, server, clock, progress) -> None:  # noqa: ANN001
    _oauth_session(repo, server, clock, progress)
    server.revocable = False
    result = Logout(repo, server).execute_and_revoke()
    assert result.outcome is RevokeOutcome.NO_ENDPOINT and "no revocation endpoint" in result.sentence


def test_logout_local_skips_the_server(repo, server, clock, progress) -> None:  # noqa: ANN001
    _oauth_session(repo, server, clock, progress)
    result = Logout(repo, server).execute_and_revoke(revoke=False)
    assert result.outcome is RevokeOutcome.SKIPPED and "revoke" not in server.calls and repo.credentials is None


def test_logout_with_nothing_stored_asks_nobody(repo, server) -> None:  # noqa: ANN001
    result = Logout(repo, server).execute_and_revoke()
    assert not result.removed and result.outcome is RevokeOutcome.NOTHING_STORED and server.calls == []


def test_library_logout_stays_local(repo, server, clock) -> None:  # noqa: ANN001
    repo.credentials = Credentials(TokenPair("a" * 20, "r" * 20, clock.now(), None), "u", URL)
    assert Logout(repo, server).execute() is True
    assert server.calls == [] and repo.credentials is None


def test_error_sentences_read_as_english() -> None:
    """The sentences a user reads for refused endpoints and a timed-out browser login."""
    from kitty_auth.domain.oauth_errors import BrowserLoginTimeoutError, UnsafeEndpointError

    # --web/--device need the endpoints too: the method may be chosen, the login still cannot start
    assert str(MetadataUnavailableError(500)).endswith("could not be read, so the login cannot start.")

    assert "names an authorization endpoint that" in str(UnsafeEndpointError("authorization endpoint"))
    assert "names a token endpoint that" in str(UnsafeEndpointError("token endpoint"))
    assert "1 callback with a wrong or missing state (not from this login) was refused." in str(
        BrowserLoginTimeoutError(300, refused=1))
    assert "2 callbacks with a wrong or missing state (not from this login) were refused." in str(
        BrowserLoginTimeoutError(300, refused=2))
