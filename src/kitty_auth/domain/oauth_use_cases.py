"""The OAuth login use cases: ChooseLoginMethod, LoginWithBrowser and LoginWithDeviceCode, over the ports only.

Like the password ``Login``, they store a session only when the server issued it and ``me``
named its user, under the credentials lock shared with refresh and logout. The lock is held
for each token-bearing exchange and the save, never while the user is in the browser: a login
that waits minutes for the user must not stall another process's refresh for minutes.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from kitty_auth.domain.errors import TransientServerError
from kitty_auth.domain.interrupts import (
    INTERRUPTS,
    InterruptedLogin,
    LoginOutcome,
    finish_after_interrupt,
    interrupted_login,
    report_interrupted_login,
)
from kitty_auth.domain.model import (
    Credentials,
    IssuedTokens,
    LoginMethod,
    MachineClient,
    OAuthClient,
    TokenPair,
    normalize_server_url,
)
from kitty_auth.domain.oauth import (
    CLIENT_ID,
    SCOPE,
    CallbackKind,
    CallbackPage,
    Endpoints,
    Pkce,
    PollOutcome,
    PollSchedule,
    authorization_url,
    check_endpoints,
    judge_callback,
)
from kitty_auth.domain.oauth_errors import (
    BrowserLoginDeniedError,
    BrowserLoginFailedError,
    BrowserLoginTimeoutError,
    DeviceCodeExpiredError,
)
from kitty_auth.domain.oauth_ports import Browser, CallbackListener, ListenerFactory, LoginProgress, OAuthGateway
from kitty_auth.domain.ports import Clock, CredentialRepository
from kitty_auth.domain.revocation import LocalLogout, LogoutResult, RevokeOutcome
from kitty_auth.domain.use_cases import Logout

log = logging.getLogger("kitty_auth.oauth")

DEFAULT_BROWSER_TIMEOUT = 300.0  # seconds: announced to the user when the browser opens


@dataclass(frozen=True)
class LoginPlan:
    """How to log in: the method and, for OAuth, the checked endpoints.

    ``auto`` is True when no flag chose the method: a browser login then falls back to the
    device flow when no browser can be opened.
    """

    method: LoginMethod
    endpoints: Endpoints | None = None
    auto: bool = False


class ChooseLoginMethod:
    """Explicit flags win; otherwise the server's RFC 8414 metadata decides (CONTRACT, "Command line")."""

    def __init__(self, gateway: OAuthGateway) -> None:
        self._gateway = gateway

    def execute(self, server_url: str, requested: LoginMethod | None) -> LoginPlan:
        target = normalize_server_url(server_url)
        if requested is LoginMethod.PASSWORD:
            return LoginPlan(LoginMethod.PASSWORD)
        endpoints = self._gateway.discover(target)  # 404 -> None; any other failure raises
        if endpoints is None:
            if requested is None:
                log.debug("no OAuth metadata: password login")
                return LoginPlan(LoginMethod.PASSWORD)
            endpoints = Endpoints.defaults(target)
        if requested is LoginMethod.DEVICE or (requested is None and endpoints.authorization is None):
            check_endpoints(target, endpoints, ("device_authorization",))
            return LoginPlan(LoginMethod.DEVICE, endpoints, auto=requested is None)
        check_endpoints(target, endpoints, ("authorization",))
        return LoginPlan(LoginMethod.WEB, endpoints, auto=requested is None)


class _OAuthSession:
    """Turns issued tokens into a stored session: ``me`` names the user, then one atomic save.

    When that fails (a lifetime that cannot be read, ``me`` refused or unreachable, the file cannot
    be written), nothing is stored, but the server has issued a session: it is revoked (best effort,
    bounded by ``ABANDON_DEADLINE``) before the error is reported, so no valid tokens are left that
    nobody holds. An interrupt (Ctrl-C) does the same, except once ``me`` has answered: the session
    is then stored (the save is local), and the interrupt says which it was (``InterruptedLogin``).
    """

    ABANDON_DEADLINE = 3.0  # seconds; the user is waiting for the error

    def __init__(self, repo: CredentialRepository, gateway: OAuthGateway, clock: Clock) -> None:
        self.repo, self.gateway, self.clock = repo, gateway, clock
        # Logout's revocation step, for its mapping of failures to a reason the user can read.
        self._revoke = Logout(repo, gateway, self.ABANDON_DEADLINE).revoke

    def prove_usable(self) -> None:
        """Take and release the lock: a broken home fails before the user is sent anywhere."""
        with self.repo.lock():
            pass

    def store(self, target: str, endpoints: Endpoints, method: LoginMethod,
              issued: IssuedTokens, requested_at: datetime, *, machine: MachineClient | None = None) -> Credentials:
        """Call with the lock held (the exchange that produced ``issued`` ran under it too).

        ``machine``: the client of a machine login (``domain/machine_login.py``).
        """
        # Enough to revoke the tokens just issued, built before anything that can fail.
        issued_session = Credentials(
            tokens=TokenPair(issued.access, issued.refresh, access_expires_at=requested_at,
                             refresh_expires_at=None),
            username="",  # named by ``me`` below
            server_url=target,
            team_slug=issued.team_slug,
            login_method=method,
            session_id=issued.session_id,
            oauth=OAuthClient(client_id=CLIENT_ID, token_endpoint=endpoints.token,
                              revocation_endpoint=endpoints.revocation),
            machine=machine,
        )
        credentials: Credentials | None = None
        try:
            tokens = TokenPair.from_issued(issued, requested_at, default_refresh=None)
            identity = self.gateway.me(target, issued.access)
            credentials = replace(issued_session, tokens=tokens, username=identity.email,
                                  team_slug=identity.team_slug or issued.team_slug, identity=identity)
            self.repo.save(credentials)
        except INTERRUPTS as interrupt:
            self._settle_interrupted(interrupt, issued_session, credentials)
            raise
        except Exception as exc:
            self._abandon(issued_session, exc)
            raise
        log.info("logged in (%s) as %s at %s", method.value, identity.email, target)
        return credentials

    def _settle_interrupted(self, interrupt: BaseException, issued_session: Credentials,
                            credentials: Credentials | None) -> None:
        """Store the session if ``me`` has named its user (``credentials``), else revoke it; say which on ``interrupt``."""
        if credentials is not None:
            session = credentials

            def save() -> Credentials:
                self.repo.save(session)
                return session

            if finish_after_interrupt(save, "storing the session") is not None:
                report_interrupted_login(interrupt, InterruptedLogin(LoginOutcome.STORED, stored=session))
                return
        log.info("login interrupted before the session could be stored; revoking it")
        report_interrupted_login(interrupt, InterruptedLogin.revoked_or_not(self._revoke_issued(issued_session)))

    def _revoke_issued(self, issued_session: Credentials) -> LogoutResult:
        """Ask the server to revoke a session it just issued (at most ``ABANDON_DEADLINE``); never raises an Exception."""
        try:
            return self._revoke(LocalLogout(removed=True, session=issued_session))
        except Exception as exc:  # noqa: BLE001 - a bug in an adapter must not hide the login's own outcome
            return LogoutResult(True, RevokeOutcome.REFUSED, type(exc).__name__)

    def _abandon(self, issued_session: Credentials, cause: Exception) -> None:
        """Revoke a session the server issued but the login could not store; never raises."""
        result = self._revoke_issued(issued_session)
        if result.revoked:
            log.info("login failed (%s); the tokens just issued were revoked", type(cause).__name__)
        else:
            log.info("login failed (%s) and the tokens just issued could not be revoked (%s)",
                     type(cause).__name__, result.outcome.value)


class LoginWithDeviceCode:
    """RFC 8628: show the code, poll on the server's schedule, store the session once approved."""

    def __init__(self, repo: CredentialRepository, gateway: OAuthGateway, clock: Clock) -> None:
        self._session = _OAuthSession(repo, gateway, clock)
        self._gateway, self._clock = gateway, clock

    def execute(self, server_url: str, endpoints: Endpoints, progress: LoginProgress) -> Credentials:
        target = normalize_server_url(server_url)
        check_endpoints(target, endpoints, ("device_authorization",))
        self._session.prove_usable()
        started = self._clock.now()
        authorization = self._gateway.start_device(endpoints, CLIENT_ID, SCOPE)
        progress.device_login(authorization)
        schedule = PollSchedule.start(started, authorization)
        try:
            while True:
                now = self._clock.now()
                due = schedule.next_poll(now)
                if due is None:
                    raise DeviceCodeExpiredError()
                progress.wait((due - now).total_seconds())
                with self._session.repo.lock():
                    requested_at = self._clock.now()
                    try:
                        result = self._gateway.poll_device(endpoints, CLIENT_ID, authorization.device_code)
                    except TransientServerError as exc:
                        log.info("device poll failed (%s); polling less often", type(exc).__name__)
                        schedule = schedule.after(PollOutcome.TRANSIENT)
                        continue
                    if isinstance(result, PollOutcome):
                        schedule = schedule.after(result)
                        continue
                    return self._session.store(target, endpoints, LoginMethod.DEVICE, result, requested_at)
        finally:
            progress.finished()


class LoginWithBrowser:
    """Authorization code + PKCE with a loopback redirect (RFC 7636, RFC 8252).

    The browser tab is answered only after the outcome is known: "logged in" once the session
    is stored, the denial or failure otherwise. A callback without this login's ``state`` gets
    an error page and the login keeps waiting; the first callback with it ends the login.
    """

    def __init__(
        self,
        repo: CredentialRepository,
        gateway: OAuthGateway,
        clock: Clock,
        browser: Browser,
        listen: ListenerFactory,
        *,
        timeout: float = DEFAULT_BROWSER_TIMEOUT,
        entropy: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        self._session = _OAuthSession(repo, gateway, clock)
        self._gateway, self._clock, self._browser, self._listen = gateway, clock, browser, listen
        self._timeout, self._entropy = timeout, entropy

    def execute(
        self,
        server_url: str,
        endpoints: Endpoints,
        progress: LoginProgress,
        *,
        device_fallback: LoginWithDeviceCode | None = None,
    ) -> Credentials:
        """Log in through the browser; with ``device_fallback``, use the device flow when no
        browser can be opened (and the server offers it)."""
        target = normalize_server_url(server_url)
        check_endpoints(target, endpoints, ("authorization",))
        self._session.prove_usable()
        pkce = Pkce.from_entropy(self._entropy(32), self._entropy(32))
        listener = self._listen()
        try:
            assert endpoints.authorization is not None  # checked above
            url = authorization_url(endpoints.authorization, client_id=CLIENT_ID,
                                    redirect_uri=listener.redirect_uri, pkce=pkce)
            opened = self._browser.open(url)
            if not opened and device_fallback is not None and endpoints.device_authorization is not None:
                log.info("no browser could be opened; using the device flow")
                listener.close()
                return device_fallback.execute(target, endpoints, progress)
            progress.browser_login(url, opened, self._timeout)
            return self._await_callback(target, endpoints, pkce, listener, progress)
        finally:
            listener.close()
            progress.finished()

    def _await_callback(self, target: str, endpoints: Endpoints, pkce: Pkce,
                        listener: CallbackListener, progress: LoginProgress) -> Credentials:
        deadline = self._clock.now() + timedelta(seconds=self._timeout)
        refused = 0
        while True:
            remaining = (deadline - self._clock.now()).total_seconds()
            if remaining <= 0:
                raise BrowserLoginTimeoutError(self._timeout, refused)
            callback = listener.next_callback(remaining)
            if callback is None:
                continue
            verdict = judge_callback(callback.params, pkce.state)
            if verdict.kind is CallbackKind.FOREIGN:
                refused += 1
                log.warning("refused a callback that does not carry this login's state")
                callback.answer(CallbackPage.FOREIGN)
                progress.callback_refused()
                continue
            if verdict.kind is CallbackKind.DENIED:
                callback.answer(CallbackPage.DENIED)
                raise BrowserLoginDeniedError()
            if verdict.kind is CallbackKind.ERROR:
                callback.answer(CallbackPage.FAILED)
                raise BrowserLoginFailedError(verdict.error or "unknown_error")
            assert verdict.code is not None
            try:
                with self._session.repo.lock():
                    requested_at = self._clock.now()
                    issued = self._gateway.exchange_code(endpoints, CLIENT_ID, verdict.code, pkce.verifier,
                                                          listener.redirect_uri)
                    credentials = self._session.store(target, endpoints, LoginMethod.WEB, issued, requested_at)
            except BaseException as exc:
                # An interrupt after `me` answered still stores the session: the page tells the truth.
                what = interrupted_login(exc)
                stored = what is not None and what.outcome is LoginOutcome.STORED
                callback.answer(CallbackPage.LOGGED_IN if stored else CallbackPage.FAILED)
                raise
            callback.answer(CallbackPage.LOGGED_IN)
            return credentials
