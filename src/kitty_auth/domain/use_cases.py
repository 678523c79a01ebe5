"""The use cases: Login, Logout, Status, EnsureFreshToken and ObtainWsToken, over the ports only.

Where a request's access token comes from (the environment or a stored session) is ``token_source``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

from kitty_auth.domain.accounts import StoredSession, choose, is_account, switch_target
from kitty_auth.domain.errors import (
    AuthError,
    CorruptCredentialsError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
    InvalidInputError,
    LogoutLockTimeoutError,
    NetworkError,
    NotAuthenticatedError,
    RenewalUnavailableError,
    SessionExpiredError,
    TokenRejectedError,
    TransientServerError,
)
from kitty_auth.domain.model import (
    AccessDecision,
    Credentials,
    ExpiryPolicy,
    IssuedTokens,
    StatusReport,
    TokenPair,
    WsToken,
    normalize_server_url,
)
from kitty_auth.domain.interrupts import (
    INTERRUPTS,
    InterruptedLogin,
    LoginOutcome,
    finish_after_interrupt,
    report_interrupted_login,
)
from kitty_auth.domain.ports import Clock, CredentialRepository, TokenGateway
from kitty_auth.domain.revocation import (
    LocalLogout,
    LogoutResult,
    RevocationUnsupportedError,
    RevokeOutcome,
    SessionRevoker,
)

if TYPE_CHECKING:
    from kitty_auth.domain.token_source import TokenSource

log = logging.getLogger("kitty_auth")


def _load_or_none(repo: CredentialRepository) -> Credentials | None:
    """A corrupt file counts as logged out (the contract), everything else propagates."""
    try:
        return repo.load()
    except CorruptCredentialsError:
        return None


def check_username(username: str) -> str:
    name = (username or "").strip()
    if not name:
        raise InvalidInputError("The username is empty; give the username you log in with.")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        raise InvalidInputError("The username contains control characters.")
    return name


def check_password(password: str) -> str:
    if not password:
        raise InvalidInputError("The password is empty.")
    return password


@dataclass(frozen=True)
class StoredLogin:
    """A login that is not needed: a valid session of that account is stored already.

    ``switched``: it was one of the other sessions, and is now the active one.
    """

    credentials: Credentials
    switched: bool = False


class Login:
    def __init__(self, repo: CredentialRepository, gateway: TokenGateway, clock: Clock) -> None:
        self._repo, self._gateway, self._clock = repo, gateway, clock

    def already_logged_in(self, server_url: str, username: str | None = None) -> StoredLogin | None:
        """A stored, still valid session of ``username`` (any user when None) at ``server_url``.

        The active session wins. Otherwise one stored session that is the only match becomes the
        active one (``switched``): logging in as an account already stored means using it.
        """
        target = normalize_server_url(server_url)
        now = self._clock.now()
        try:
            sessions = self._repo.sessions()
        except CorruptCredentialsError:
            return None
        valid = [s for s in sessions if s.credentials.is_authenticated(now) and is_account(s.credentials, target, username)]
        for stored in valid:
            if stored.active:
                return StoredLogin(stored.credentials)
        if len(valid) == 1:
            activated = self._repo.activate(target, valid[0].credentials.username)
            if activated is not None:
                log.info("login: a stored session of that account is now the active one")
                return StoredLogin(activated, switched=True)
        return None

    def execute(self, server_url: str, username: str, password: str) -> Credentials:
        """Obtain tokens and store them, replacing whatever session was stored.

        Interrupted once the server has answered (Ctrl-C during the save), the session is still
        stored -- the answer is in hand and the save is local -- and the interrupt re-raised with
        an :class:`InterruptedLogin` saying so. Interrupted while the request waits for its
        answer, nothing was received: nothing is stored.
        """
        target = normalize_server_url(server_url)
        name = check_username(username)
        check_password(password)
        # Taking the lock first proves the home folder is usable before the password is sent,
        # and keeps a concurrent refresh from writing between our request and our save.
        with self._repo.lock():
            requested_at = self._clock.now()
            issued: IssuedTokens | None = None
            try:
                issued = self._gateway.obtain(target, name, password)
                credentials = self._save(issued, name, target, requested_at)
            except INTERRUPTS as interrupt:
                if issued is not None:
                    answer = issued
                    stored = finish_after_interrupt(lambda: self._save(answer, name, target, requested_at),
                                                    "storing the session the server issued")
                    report_interrupted_login(interrupt, InterruptedLogin(LoginOutcome.STORED, stored=stored)
                                             if stored is not None else InterruptedLogin(LoginOutcome.NEITHER))
                raise
        log.info("logged in as %s at %s", name, target)
        return credentials

    def _save(self, issued: IssuedTokens, name: str, target: str, requested_at: datetime) -> Credentials:
        credentials = Credentials(
            tokens=TokenPair.from_issued(issued, requested_at),
            username=name,
            server_url=target,
            team_slug=issued.team_slug,
        )
        self._repo.save(credentials)
        return credentials


class Logout:
    """Remove the local session first, then ask the issuing server to revoke it.

    ``remove`` reads and removes the file under the credentials lock (so no refresh can store
    tokens behind it); ``revoke`` runs after, without the lock, bounded by ``revoke_deadline``,
    and never raises for a server problem: logging out offline still logs out.

    ``budget`` (seconds, from the start of ``remove``) bounds the whole logout: the revoke
    request gets what is left of it (at most ``revoke_deadline``), and is not sent when less than
    ``MIN_REVOKE`` is left. The wait for the lock is the repository's (the CLI gives logout a
    repository that waits a few seconds: a refresh in progress usually ends by then); when the
    lock stays busy, nothing is removed (LogoutLockTimeoutError): removing the file behind the
    holder's back would let a refresh store its tokens again right after "Logged out".
    """

    MIN_REVOKE = 0.5  # seconds: less than this cannot complete a TLS handshake and an answer

    def __init__(self, repo: CredentialRepository, revoker: SessionRevoker | None = None,
                 revoke_deadline: float = 5.0, *, budget: float | None = None,
                 monotonic: Callable[[], float] = time.monotonic, promote: bool = False) -> None:
        self._repo, self._revoker, self._deadline = repo, revoker, revoke_deadline
        self._budget, self._monotonic = budget, monotonic
        self._promote = promote  # `auth logout`: the most recently used other session becomes active
        self._started: float | None = None

    def execute(self) -> bool:
        """Local logout only (the library's ``clear_credentials``); True when something was removed."""
        return self.remove().removed

    def remove(self) -> LocalLogout:
        self._started = self._monotonic()
        try:
            with self._repo.lock():
                try:
                    session = self._repo.load()
                except CredentialsFileError:
                    # A corrupt file counts as logged out, and one we may not read is still ours to
                    # remove from our folder: either way there is nothing to revoke. A symlink is
                    # refused by clear() itself.
                    session = None
                removed = self._repo.clear(promote=self._promote)
                now_active = _load_or_none(self._repo) if removed else None
        except CredentialsLockTimeoutError as exc:
            log.info("logout: the credentials lock stayed busy; nothing removed")
            raise LogoutLockTimeoutError(exc.path, exc.seconds, exc.holder) from None
        log.info("logout: %s", "credentials removed" if removed else "nothing stored")
        return LocalLogout(removed=removed, session=session if removed else None, now_active=now_active)

    def remove_all(self) -> list[LocalLogout]:
        """`logout --all`: remove every stored session (under the lock), each to be revoked after."""
        self._started = self._monotonic()
        try:
            with self._repo.lock():
                try:
                    self._repo.sessions()
                except CredentialsFileError:  # unparsable or unreadable: removed (kept aside) like one session
                    return [LocalLogout(removed=self._repo.clear())]
                sessions = self._repo.clear_all()
        except CredentialsLockTimeoutError as exc:
            raise LogoutLockTimeoutError(exc.path, exc.seconds, exc.holder) from None
        log.info("logout: %d sessions removed", len(sessions))
        return [LocalLogout(removed=True, session=session) for session in sessions]

    def revoke_each(self, removed: list[LocalLogout], *, skip: bool = False) -> list[LogoutResult]:
        """Revoke several removed sessions at once, each within what is left of the budget."""
        if len(removed) <= 1:
            return [self.revoke(local, skip=skip) for local in removed]
        from concurrent.futures import ThreadPoolExecutor  # (queue, heapq): `logout --all` only, not every start-up

        with ThreadPoolExecutor(max_workers=min(8, len(removed)), thread_name_prefix="kitty-auth-revoke") as pool:
            return list(pool.map(lambda local: self.revoke(local, skip=skip), removed))

    def _revoke_deadline(self) -> float:
        """What the revoke request may take: ``revoke_deadline``, within what is left of ``budget``."""
        if self._budget is None or self._started is None:
            return self._deadline
        left = self._budget - (self._monotonic() - self._started)
        return min(self._deadline, math.floor(left * 10) / 10)  # tenths: the offline message names it

    def revoke(self, local: LocalLogout, *, skip: bool = False) -> LogoutResult:
        """Revoke what ``remove`` removed (RFC 7009 for OAuth sessions, the blacklist for password ones).

        ``skip`` (``logout --local``) only reports that the server was not asked.
        """
        if not local.removed:
            return LogoutResult(False, RevokeOutcome.NOTHING_STORED)
        if skip:
            return LogoutResult(True, RevokeOutcome.SKIPPED)
        if local.session is None:
            return LogoutResult(True, RevokeOutcome.UNREADABLE)
        if self._revoker is None:
            return LogoutResult(True, RevokeOutcome.NO_ENDPOINT)
        revoke = self._revoker.revoke  # builds the network adapter first: not counted in the request's time
        deadline = self._revoke_deadline()
        if deadline < self.MIN_REVOKE:
            log.info("revocation: no time left to ask the server")
            return LogoutResult(True, RevokeOutcome.NO_TIME)
        try:
            revoke(local.session, deadline)
        except RevocationUnsupportedError:
            return LogoutResult(True, RevokeOutcome.NO_ENDPOINT)
        except NetworkError as exc:
            return LogoutResult(True, RevokeOutcome.OFFLINE, exc.detail or "")
        except TokenRejectedError:
            return LogoutResult(True, RevokeOutcome.REFUSED, "the server already considered it invalid")
        except AuthError as exc:  # a ServerError, or e.g. a stored endpoint we cannot send to
            return LogoutResult(True, RevokeOutcome.REFUSED, str(exc))
        log.info("the server revoked the session")
        return LogoutResult(True, RevokeOutcome.REVOKED)

    def execute_and_revoke(self, *, revoke: bool = True) -> LogoutResult:
        return self.revoke(self.remove(), skip=not revoke)


class Status:
    def __init__(self, repo: CredentialRepository, clock: Clock) -> None:
        self._repo, self._clock = repo, clock

    def execute(self) -> StatusReport:
        try:
            current = self._repo.load()
        except CorruptCredentialsError as exc:
            return StatusReport(authenticated=False, unparsable_file=str(exc.path))
        if current is None:
            return StatusReport(authenticated=False)
        return StatusReport(authenticated=current.is_authenticated(self._clock.now()), credentials=current)


class ListSessions:
    """`status --all`: every stored session, the active one first, each with its status."""

    def __init__(self, repo: CredentialRepository, clock: Clock) -> None:
        self._repo, self._clock = repo, clock

    def execute(self) -> list[tuple[StoredSession, StatusReport]]:
        now = self._clock.now()
        return [(stored, StatusReport(authenticated=stored.credentials.is_authenticated(now),
                                      credentials=stored.credentials))
                for stored in self._repo.sessions()]


class Switch:
    """`auth switch`: make another stored session the active one (see ``accounts.switch_target``)."""

    def __init__(self, repo: CredentialRepository) -> None:
        self._repo = repo

    def execute(self, server_url: str | None = None, username: str | None = None) -> tuple[Credentials, bool]:
        """The session now active, and whether it changed (False: it already was the active one)."""
        with self._repo.lock():
            target = switch_target(self._repo.sessions(), server_url, username)
            if target.active:
                return target.credentials, False
            creds = target.credentials
            activated = self._repo.activate(creds.server_url, creds.username)
        log.info("switched the active session")
        return activated or creds, True


class ChooseSession:
    """Which stored session a command's ``--server``/``--user`` name (the active one without them)."""

    def __init__(self, repo: CredentialRepository) -> None:
        self._repo = repo

    def execute(self, server_url: str | None = None, username: str | None = None) -> StoredSession:
        return choose(self._repo.sessions(), server_url, username)


class EnsureFreshToken:
    """Return a usable access token, refreshing it at most once across all processes.

    Three intents, each its own method, sharing one locked step (:meth:`_under_lock`):

    * :meth:`execute` -- an access token for a request: the stored one while comfortably valid
      (no lock, no network), else a refresh; a transient failure or a busy lock returns the
      stored token while it is still worth sending.
    * :meth:`after_rejection` -- the server just refused ``rejected_access``: use a different
      token another process stored meanwhile, else refresh; never hand back the rejected one.
    * :meth:`refresh_now` / :meth:`refresh_with` -- an explicit refresh: never skipped silently.

    The fast path reads the file without the lock (writes are atomic renames, so a reader sees
    the old or the new file). On a simplejwt server a rotated-out *access* token stays valid until
    its ``exp``, so a reader that just lost a race still holds a good token; django-oauth-toolkit
    deletes it when it rotates, so such a reader gets one 401, which ``after_rejection`` answers
    with the token the winner stored (BearerAuth and ws-token retry once). Under the lock the file is re-read,
    so a process that waited uses what the winner stored. A 401 clears the session only when
    the file still holds the refresh token that was rejected. The lock wait is bounded by the
    repository (longer than the gateway's total request deadline).

    A refresh whose answer arrives after the gateway's deadline is not thrown away: the gateway
    hands it to :meth:`_store_late`, which stores it under the lock if the file still holds the
    refresh token that was sent (the server has rotated it: without the late answer the
    session would be lost at the next refresh).

    Nor is one whose caller is interrupted (Ctrl-C; ``domain/interrupts.py``): while the answer is
    on its way the gateway waits for it and hands it to :meth:`_store_late` in this thread; once
    it is here, an interrupt during the save runs the save once more. Either way the refreshed
    session is stored before the interrupt goes on.
    """

    def __init__(
        self,
        repo: CredentialRepository,
        gateway: TokenGateway,
        clock: Clock,
        policy: ExpiryPolicy | None = None,
    ) -> None:
        self._repo, self._gateway, self._clock = repo, gateway, clock
        self._policy = policy or ExpiryPolicy()

    # -- the intents

    def execute(self) -> Credentials:
        """The session with an access token worth sending, refreshed first when needed."""
        current = self._stored()
        if self._comfortable(current):
            return current
        return self._under_lock(reuse=self._comfortable, keep_on_failure=self._usable)

    def after_rejection(self, rejected_access: str) -> Credentials:
        """The session with an access token other than ``rejected_access``, which the server refused."""

        def replaced(creds: Credentials) -> bool:
            return creds.tokens.access != rejected_access and self._usable(creds)

        return self._under_lock(reuse=replaced, keep_on_failure=replaced)

    def refresh_now(self) -> Credentials:
        """Refresh now, whatever the stored token's age (library ``refresh_tokens()``)."""
        return self._under_lock(reuse=None, keep_on_failure=None)

    def for_account(self, server_url: str, username: str) -> EnsureFreshToken:
        """The same use case over one stored account, active or not (`auth token --user NAME`): a
        refresh is stored where that account is, and never makes it the active one."""
        return EnsureFreshToken(self._repo.for_account(server_url, username), self._gateway, self._clock, self._policy)

    def refresh_with(self, refresh_token: str) -> Credentials:
        """Refresh with an explicit refresh token (library ``refresh_tokens(token)``)."""
        with self._repo.lock():
            current = self._stored()
            if current.tokens.refresh != refresh_token:
                current = current.with_tokens(replace(current.tokens, refresh=refresh_token))
            return self._refresh_locked(current)

    # -- the shared locked step

    def _under_lock(
        self,
        *,
        reuse: Callable[[Credentials], bool] | None,
        keep_on_failure: Callable[[Credentials], bool] | None,
    ) -> Credentials:
        """Under the lock: re-read; return the stored session if ``reuse`` accepts it, else refresh.

        When the refresh fails transiently, or the lock stays busy, the stored session is
        returned if ``keep_on_failure`` accepts it at that moment (judged after the failure: a
        request that hung for seconds may have outlived the token); otherwise the error
        propagates and nothing stored changes.
        """
        try:
            with self._repo.lock():
                current = self._stored()  # re-read: another process may have refreshed
                if reuse is not None and reuse(current):
                    log.debug("using tokens another process stored")
                    return current
                try:
                    return self._refresh_locked(current)
                except (TransientServerError, RenewalUnavailableError) as exc:
                    if keep_on_failure is not None and keep_on_failure(current):
                        log.warning("token refresh failed (%s); using the still-valid access token", exc)
                        return current
                    raise
        except CredentialsLockTimeoutError:
            current = self._stored()  # the holder may have stored new tokens meanwhile
            if keep_on_failure is not None and keep_on_failure(current):
                log.warning("credentials lock busy; using the still-valid access token")
                return current
            raise

    def _refresh_locked(self, current: Credentials) -> Credentials:
        now = self._clock.now()  # the request's send time: the base of the new local expiries
        if not current.is_authenticated(now):
            raise SessionExpiredError()
        issued: IssuedTokens | None = None
        try:
            issued = self._gateway.refresh(
                current, on_late=lambda late: self._store_late(current, late, now)
            )
            refreshed = self._save_refreshed(current, issued, now)
        except TokenRejectedError:
            self.forget_if_unchanged(current)
            raise SessionExpiredError() from None
        except INTERRUPTS:
            # The server has rotated the refresh token: this answer is the session's only copy, so
            # it is stored before the interrupt goes on. (An interrupt while the gateway waited for
            # the answer is the gateway's to handle: it hands the answer to on_late first.)
            if issued is not None:
                answer = issued
                finish_after_interrupt(lambda: self._save_refreshed(current, answer, now),
                                       "storing the refreshed session")
            raise
        log.info("access token refreshed")
        return refreshed

    def _save_refreshed(self, current: Credentials, issued: IssuedTokens, requested_at: datetime) -> Credentials:
        refreshed = current.refreshed(issued, requested_at)
        self._repo.save(refreshed)
        return refreshed

    def _store_late(self, sent: Credentials, issued: IssuedTokens, requested_at: datetime) -> None:
        """Store a refresh answer that arrived after its caller gave up or was interrupted.

        Runs in the gateway's thread, or in the interrupted caller's (which may hold the lock:
        it is re-entrant). Only if the file still holds the refresh token that was sent: anything
        else means another process refreshed, or the user logged out or in again, meanwhile. An
        interrupt that cuts the save short gets it run once more before it goes on.
        """
        try:
            self._store_late_once(sent, issued, requested_at)
        except INTERRUPTS:
            finish_after_interrupt(lambda: self._store_late_once(sent, issued, requested_at),
                                   "storing a refresh answer")
            raise

    def _account_of(self, session: Credentials) -> CredentialRepository:
        """The repository of ``session``'s own account, wherever it is stored now: a late answer or a
        rejection concerns that account even if another one became active meanwhile (`switch`)."""
        for_account = getattr(self._repo, "for_account", None)
        return self._repo if for_account is None else for_account(session.server_url, session.username)

    def _store_late_once(self, sent: Credentials, issued: IssuedTokens, requested_at: datetime) -> None:
        repo = self._account_of(sent)
        try:
            with repo.lock():
                on_disk = _load_or_none(repo)
                if on_disk is not None and on_disk.tokens.session_key == (issued.refresh or issued.access):
                    return  # stored already (this answer was handed over twice)
                if on_disk is None or on_disk.tokens.session_key != sent.tokens.session_key:
                    log.info("late refresh answer discarded: the stored session changed meanwhile")
                    return
                repo.save(on_disk.refreshed(issued, requested_at))
            log.info("late refresh answer stored")
        except AuthError as exc:  # nobody is waiting for this thread: report, never raise
            log.warning("a late refresh answer could not be stored (%s)", type(exc).__name__)

    def forget_if_unchanged(self, rejected: Credentials) -> None:
        """End a session the server rejected, unless another process has stored newer tokens."""
        repo = self._account_of(rejected)
        with repo.lock():
            on_disk = _load_or_none(repo)
            if on_disk is not None and on_disk.tokens.session_key == rejected.tokens.session_key:
                repo.clear()
                log.info("session rejected by the server; credentials cleared")
            elif on_disk is not None:
                log.info("session rejected, but newer tokens are stored; keeping them")

    # -- predicates

    def _stored(self) -> Credentials:
        current = _load_or_none(self._repo)
        if current is None:
            raise NotAuthenticatedError()
        return current

    def _comfortable(self, creds: Credentials) -> bool:
        """Use as is, without the lock or the network (outside the refresh margin)."""
        return creds.access_decision(self._clock.now(), self._policy) is AccessDecision.USE

    def _usable(self, creds: Credentials) -> bool:
        """Still worth sending right now (possibly inside the refresh margin)."""
        return self._policy.is_usable(
            creds.tokens.access_expires_at, self._clock.now(), creds.tokens.access_lifetime
        )


class ObtainWsToken:
    """A ws token for the server the access token is for; a 401 gets one refresh and one retry.

    The access token comes from ``tokens`` (a ``TokenSource``): the environment's when
    SPEC_KITTY_SAAS_TOKEN is set (never refreshed: its 401 is an error naming the variable),
    else the active session's.
    """

    def __init__(self, tokens: TokenSource, gateway: TokenGateway) -> None:
        self._tokens, self._gateway = tokens, gateway

    def execute(self, access_token: str | None = None) -> WsToken:
        bearer = self._tokens.current()
        if access_token:
            bearer = replace(bearer, access=access_token)
        try:
            return self._gateway.ws_token(bearer.server_url, bearer.access)
        except TokenRejectedError:
            log.info("ws-token answered 401")
        bearer = self._tokens.after_rejection(bearer)  # one refresh (never for the environment's token)
        try:
            return self._gateway.ws_token(bearer.server_url, bearer.access)
        except TokenRejectedError:
            self._tokens.rejected_again(bearer)
