"""The use cases: Login, Logout, Status, EnsureFreshToken and ObtainWsToken, over the ports only."""

from __future__ import annotations

import logging

from kitty_auth.domain.errors import (
    CorruptCredentialsError,
    CredentialsLockTimeoutError,
    InvalidInputError,
    NotAuthenticatedError,
    SessionExpiredError,
    TokenRejectedError,
    TransientServerError,
)
from kitty_auth.domain.model import (
    AccessDecision,
    Credentials,
    ExpiryPolicy,
    StatusReport,
    TokenPair,
    WsToken,
    normalize_server_url,
)
from kitty_auth.domain.ports import Clock, CredentialRepository, TokenGateway

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


class Login:
    def __init__(self, repo: CredentialRepository, gateway: TokenGateway, clock: Clock) -> None:
        self._repo, self._gateway, self._clock = repo, gateway, clock

    def already_logged_in(self, server_url: str) -> Credentials | None:
        """The stored session when it is still valid and was issued by ``server_url``."""
        target = normalize_server_url(server_url)
        current = _load_or_none(self._repo)
        if current and current.is_authenticated(self._clock.now()) and current.issued_by(target):
            return current
        return None

    def execute(self, server_url: str, username: str, password: str) -> Credentials:
        """Obtain tokens and store them, replacing whatever session was stored."""
        target = normalize_server_url(server_url)
        name = check_username(username)
        check_password(password)
        # Taking the lock first proves the home folder is usable before the password is sent,
        # and keeps a concurrent refresh from writing between our request and our save.
        with self._repo.lock():
            requested_at = self._clock.now()
            issued = self._gateway.obtain(target, name, password)
            credentials = Credentials(
                tokens=TokenPair.from_issued(issued, requested_at),
                username=name,
                server_url=target,
                team_slug=issued.team_slug,
            )
            self._repo.save(credentials)
        log.info("logged in as %s at %s", name, target)
        return credentials


class Logout:
    def __init__(self, repo: CredentialRepository) -> None:
        self._repo = repo

    def execute(self) -> bool:
        removed = self._repo.clear()
        log.info("logout: %s", "credentials removed" if removed else "nothing stored")
        return removed


class Status:
    def __init__(self, repo: CredentialRepository, clock: Clock) -> None:
        self._repo, self._clock = repo, clock

    def execute(self) -> StatusReport:
        try:
            current = self._repo.load()
        except CorruptCredentialsError as exc:
            return StatusReport(authenticated=False, unreadable_file=str(exc.path))
        if current is None:
            return StatusReport(authenticated=False)
        return StatusReport(authenticated=current.is_authenticated(self._clock.now()), credentials=current)


class EnsureFreshToken:
    """Return a usable access token, refreshing it at most once across all processes.

    The fast path reads the file without the lock (writes are atomic renames, so a reader sees
    the old or the new file; a rotated-out *access* token stays valid until its ``exp``, so a
    reader that just lost a race still holds a good token). Otherwise, under the repository
    lock: re-read, use what another process may just have stored, refresh, write. A 401 clears
    the session only when the file still holds the refresh token that was rejected.

    The lock wait is bounded by the repository (``lock_timeout``, set comfortably above the
    gateway's worst-case request time, so a waiter does not give up while a legitimate holder
    is still refreshing). When it expires anyway, a still-usable token is returned; otherwise
    CredentialsLockTimeoutError propagates.
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

    def _stored(self) -> Credentials:
        current = _load_or_none(self._repo)
        if current is None:
            raise NotAuthenticatedError()
        return current

    def _usable(self, creds: Credentials) -> bool:
        """Still worth sending right now (possibly inside the refresh margin)."""
        return self._policy.is_usable(
            creds.tokens.access_expires_at, self._clock.now(), creds.tokens.access_lifetime
        )

    def _good_enough(self, creds: Credentials, rejected_access: str | None) -> bool:
        """Use as is, without the lock or the network."""
        if rejected_access is not None and creds.tokens.access == rejected_access:
            return False
        return creds.access_decision(self._clock.now(), self._policy) is AccessDecision.USE

    def _replaces_rejected(self, creds: Credentials, rejected_access: str) -> bool:
        """Another process stored a different access token that is still usable."""
        return creds.tokens.access != rejected_access and self._usable(creds)

    def execute(self, *, force: bool = False, rejected_access: str | None = None) -> Credentials:
        """The session with a usable access token.

        ``force`` refreshes even a fresh token (unless another process refreshed since
        ``rejected_access`` was read); ``rejected_access`` is a token the server just refused.
        """
        if not force:
            current = self._stored()
            if self._good_enough(current, rejected_access):
                return current
        try:
            with self._repo.lock():
                current = self._stored()  # re-read: another process may have refreshed
                if rejected_access is not None:
                    if self._replaces_rejected(current, rejected_access):
                        log.debug("using tokens another process stored")
                        return current
                elif not force and self._good_enough(current, None):
                    log.debug("using tokens another process stored")
                    return current
                return self._refresh_locked(current, fallback_ok=rejected_access is None and not force)
        except CredentialsLockTimeoutError:
            if force and rejected_access is None:
                raise  # an explicit "refresh now" must not silently do nothing
            current = self._stored()  # the holder may have stored new tokens meanwhile
            if rejected_access is not None:
                usable = self._replaces_rejected(current, rejected_access)
            else:
                usable = self._usable(current)
            if usable:
                log.warning("credentials lock busy; using the still-valid access token")
                return current
            raise

    def refresh_with(self, refresh_token: str) -> Credentials:
        """Refresh with an explicit refresh token (library ``refresh_tokens(token)``)."""
        with self._repo.lock():
            current = self._stored()
            if current.tokens.refresh != refresh_token:
                current = current.with_tokens(
                    TokenPair(
                        access=current.tokens.access,
                        refresh=refresh_token,
                        access_expires_at=current.tokens.access_expires_at,
                        refresh_expires_at=current.tokens.refresh_expires_at,
                    )
                )
            return self._refresh_locked(current, fallback_ok=False)

    def _refresh_locked(self, current: Credentials, *, fallback_ok: bool) -> Credentials:
        now = self._clock.now()  # the request's send time: the base of the new local expiries
        if not current.is_authenticated(now):
            raise SessionExpiredError()
        try:
            issued = self._gateway.refresh(current)
        except TokenRejectedError:
            self.forget_if_unchanged(current)
            raise SessionExpiredError() from None
        except TransientServerError as exc:
            # Judged after the failure: a request that hung for seconds may have outlived the token.
            if fallback_ok and self._usable(current):
                log.warning("token refresh failed (%s); using the still-valid access token", exc)
                return current
            raise
        refreshed = current.refreshed(issued, now)
        self._repo.save(refreshed)
        log.info("access token refreshed")
        return refreshed

    def forget_if_unchanged(self, rejected: Credentials) -> None:
        """End a session the server rejected, unless another process has stored newer tokens."""
        with self._repo.lock():
            on_disk = _load_or_none(self._repo)
            if on_disk is not None and on_disk.tokens.refresh == rejected.tokens.refresh:
                self._repo.clear()
                log.info("session rejected by the server; credentials cleared")
            elif on_disk is not None:
                log.info("session rejected, but newer tokens are stored; keeping them")


class ObtainWsToken:
    """A ws token for the issuing server; a 401 gets one refresh and one retry."""

    def __init__(self, ensure_fresh: EnsureFreshToken, gateway: TokenGateway) -> None:
        self._ensure, self._gateway = ensure_fresh, gateway

    def execute(self, access_token: str | None = None) -> WsToken:
        creds = self._ensure.execute()
        access = access_token or creds.tokens.access
        try:
            return self._gateway.ws_token(creds.server_url, access)
        except TokenRejectedError:
            log.info("ws-token answered 401; refreshing once and retrying")
        creds = self._ensure.execute(rejected_access=access)
        try:
            return self._gateway.ws_token(creds.server_url, creds.tokens.access)
        except TokenRejectedError:
            self._ensure.forget_if_unchanged(creds)
            raise SessionExpiredError() from None
