"""spec-kitty 2.x's `specify_cli.sync.auth` API (AuthClient, CredentialStore, AuthenticationError) over our use cases.

spec-kitty-cli 2.1.3 replaces its own module with ``from kitty_auth.spec_kitty2 import *``.
Names, arguments, return types and what is raised or returned as None follow that module, so
every host caller (the `auth` and `sync` commands, its WebSocketClient, runtime, emitter,
background and batch sync) keeps working; storage, locking, single-flight refresh, TLS and the
no-secrets-in-output rule are ours. Like the host, everything lives under ``$HOME/.spec-kitty``
and the server URL comes from ``[sync] server_url`` in its ``config.toml``, so the host's own
queue scoping and health probe see what we store. Differences a host user may notice are in
README.md, "Using kitty-auth inside spec-kitty".
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from kitty_auth.container import Container, build_container, close_network
from kitty_auth.domain.errors import (
    AuthError,
    CredentialsFileError,
    InvalidServerUrlError,
    NotAuthenticatedError,
)
from kitty_auth.domain.model import (
    DEFAULT_SERVER_URL,
    Credentials,
    TokenPair,
    format_instant,
    normalize_server_url,
)

__all__ = [
    "CREDENTIALS_PATH",
    "LOCK_PATH",
    "SPEC_KITTY_DIR",
    "AuthClient",
    "AuthenticationError",
    "CredentialStore",
    "CredentialsAccessError",
    "SyncConfig",
]

log = logging.getLogger("kitty_auth.spec_kitty2")

# The host's module constants (tests patch them); every store re-reads $HOME when it is created.
SPEC_KITTY_DIR = Path.home() / ".spec-kitty"
CREDENTIALS_PATH = SPEC_KITTY_DIR / "credentials"
LOCK_PATH = CREDENTIALS_PATH.with_suffix(".lock")

# The host's feature gate (specify_cli.sync.feature_flags): same variable, values and sentence.
SAAS_SYNC_ENV_VAR = "SPEC_KITTY_ENABLE_SAAS_SYNC"
_TRUTHY = {"1", "true", "yes", "on"}


def is_saas_sync_enabled() -> bool:
    return os.environ.get(SAAS_SYNC_ENV_VAR, "").strip().lower() in _TRUTHY


def saas_sync_disabled_message() -> str:
    return f"SaaS sync is disabled by feature flag. Set {SAAS_SYNC_ENV_VAR}=1 to enable."


class AuthenticationError(AuthError):
    """The host's one error: every failure of AuthClient reaches it as this (or a subclass)."""


class CredentialsAccessError(AuthenticationError, PermissionError):
    """The credentials file or its lock cannot be used safely (permissions, a symlink, a busy lock).

    Also a PermissionError, which the host's `auth` commands answer with their own
    "Cannot access credentials file" advice.
    """


def _host_error(exc: AuthError) -> AuthenticationError:
    """Our error as the host expects it; the sentence is ours (it never contains a secret)."""
    if isinstance(exc, AuthenticationError):
        return exc
    if isinstance(exc, CredentialsFileError):
        return CredentialsAccessError(str(exc))
    if isinstance(exc, NotAuthenticatedError):
        return AuthenticationError("Not authenticated. Please log in first.")
    return AuthenticationError(str(exc))


def _spec_kitty_dir() -> Path:
    return Path.home() / ".spec-kitty"


def _aware(value: datetime) -> datetime:
    """spec-kitty 2.0.x wrote ``utcnow()``: an instant without a zone is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SyncConfig:
    """Where the host's server URL lives: ``[sync] server_url`` in ``$HOME/.spec-kitty/config.toml``.

    Read like the host's own SyncConfig (an unreadable file means the default, with a warning),
    so `auth login` and the host's `sync` commands always talk to the same server.
    """

    def __init__(self) -> None:
        self.config_dir = _spec_kitty_dir()
        self.config_file = self.config_dir / "config.toml"

    def get_server_url(self) -> str:
        try:
            with open(self.config_file, "rb") as fh:
                data = tomllib.load(fh)
        except (FileNotFoundError, NotADirectoryError):
            return DEFAULT_SERVER_URL
        except (OSError, ValueError, RecursionError):
            # ValueError: TOMLDecodeError, not UTF-8, or a number of over 4,300 digits; RecursionError: deep nesting
            log.warning("%s cannot be read; using the default server", self.config_file)
            return DEFAULT_SERVER_URL
        sync = data.get("sync")
        url = sync.get("server_url") if isinstance(sync, dict) else None
        if url is None:
            return DEFAULT_SERVER_URL
        if not isinstance(url, str):  # str() of a TOML integer may itself fail (over 4,300 digits)
            log.warning("[sync] server_url in %s is not a string; using the default server", self.config_file)
            return DEFAULT_SERVER_URL
        return url


class CredentialStore:
    """The host's view of the credentials file, stored and read by our repository.

    ``credentials_path`` and ``lock_path`` may be reassigned after construction (the host's
    tests do); the next call uses them. Reads never raise: a missing, unreadable or invalid file
    reads as None, as in the host. ``configure`` (ours, optional) is called with each new
    container, e.g. to put test fakes in.
    """

    def __init__(self, *, configure: Callable[[Container], None] | None = None) -> None:
        self.credentials_path = _spec_kitty_dir() / "credentials"
        self.lock_path = self.credentials_path.with_suffix(".lock")
        self._configure = configure
        self._built: tuple[tuple[Path, Path], Container] | None = None

    # -- ours: the container (repository, clock, use cases) for the current paths

    def container(self) -> Container:
        key = (Path(self.credentials_path), Path(self.lock_path))
        if self._built is None or self._built[0] != key:
            if self._built is not None:
                close_network(self._built[1])
            # SPEC_KITTY_SAAS_TOKEN is not honoured: spec-kitty 2.1.3 never read it (README, "Using kitty-auth
            # inside spec-kitty"), and its commands judge the session by the file (is_authenticated, load).
            container = build_container(credentials_path=key[0], lock_path=key[1], environment=False)
            if self._configure is not None:
                self._configure(container)
            self._built = (key, container)
        return self._built[1]

    def close(self) -> None:
        if self._built is not None:
            close_network(self._built[1])

    def _session(self) -> Credentials | None:
        try:
            return self.container().repository().load()
        except AuthError as exc:  # unreadable, invalid, a symlink: the host reads that as "none"
            log.info("credentials not usable: %s", exc)
            return None

    def _now(self) -> datetime:
        return self.container().clock().now()

    # -- the host's API

    def load(self) -> dict[str, Any] | None:
        """The stored session as the host's dict (``tokens``, ``user``, ``server``), or None."""
        session = self._session()
        if session is None:
            return None
        tokens: dict[str, Any] = {"access": session.tokens.access}
        if session.tokens.refresh is not None:  # a machine session renewed by its grant has none
            tokens["refresh"] = session.tokens.refresh
        tokens["access_expires_at"] = format_instant(session.tokens.access_expires_at)
        if session.tokens.refresh_expires_at is not None:
            tokens["refresh_expires_at"] = format_instant(session.tokens.refresh_expires_at)
        user: dict[str, Any] = {"username": session.username}
        if session.team_slug is not None:
            user["team_slug"] = session.team_slug
        return {"tokens": tokens, "user": user, "server": {"url": session.server_url}}

    def save(
        self,
        access_token: str,
        refresh_token: str,
        access_expires_at: datetime,
        refresh_expires_at: datetime,
        username: str,
        server_url: str,
        team_slug: str | None = None,
    ) -> None:
        """Store a password session (0600, atomic, under the shared lock; what is not ours is kept)."""
        try:
            session = Credentials(
                tokens=TokenPair(
                    access=access_token,
                    refresh=refresh_token,
                    access_expires_at=_aware(access_expires_at),
                    refresh_expires_at=_aware(refresh_expires_at),
                ),
                username=username,
                server_url=normalize_server_url(server_url),
                team_slug=team_slug,
            )
            self.container().repository().save(session)
        except AuthError as exc:
            raise _host_error(exc) from exc

    def clear(self) -> None:
        try:
            self.container().repository().clear()
        except AuthError as exc:
            raise _host_error(exc) from exc

    def exists(self) -> bool:
        return os.path.lexists(self.credentials_path)

    def get_access_token(self) -> str | None:
        """The stored access token while it has not expired; None otherwise. No network."""
        session = self._session()
        if session is None or self._now() >= session.tokens.access_expires_at:
            return None
        return session.tokens.access

    def get_refresh_token(self) -> str | None:
        """The stored refresh token while it has not expired; None otherwise (a machine session
        without one included). No network."""
        session = self._session()
        if session is None or not session.tokens.refresh_usable(self._now()):
            return None
        return session.tokens.refresh

    def is_access_token_valid(self) -> bool:
        return self.get_access_token() is not None

    def is_refresh_token_valid(self) -> bool:
        return self.get_refresh_token() is not None

    def get_username(self) -> str | None:
        session = self._session()
        return session.username if session else None

    def get_server_url(self) -> str | None:
        session = self._session()
        return session.server_url if session else None

    def get_team_slug(self) -> str | None:
        session = self._session()
        return session.team_slug if session else None

    def get_token_expiry_info(self) -> dict[str, str | None]:
        data = self.load() or {}
        tokens = data.get("tokens", {})
        return {
            "access_expires_at": tokens.get("access_expires_at"),
            "refresh_expires_at": tokens.get("refresh_expires_at"),
        }


class AuthClient:
    """The host's AuthClient: log in, refresh, ws tokens, through its own ``credential_store``.

    ``config.get_server_url()`` names the server to log in to; refresh and ws-token requests go
    to the server stored with the tokens. ``credential_store`` and ``config`` may be replaced
    after construction. ``get_access_token`` returns None instead of raising; the other calls
    raise AuthenticationError.
    """

    def __init__(self, *, credential_store: CredentialStore | None = None) -> None:
        self.credential_store = credential_store if credential_store is not None else CredentialStore()
        self.config = SyncConfig()

    def _container(self) -> Container:
        return self.credential_store.container()

    def _require_saas_sync(self, operation: str) -> None:
        if not is_saas_sync_enabled():
            raise AuthenticationError(f"{saas_sync_disabled_message()} Operation: {operation}.")

    @property
    def server_url(self) -> str:
        """The configured server, checked (https only); AuthenticationError otherwise."""
        try:
            return normalize_server_url(self.config.get_server_url())
        except InvalidServerUrlError as exc:
            raise AuthenticationError(
                f"Authentication requires an HTTPS server URL: {exc} "
                "Please update the sync server URL (`spec-kitty sync server https://...`)."
            ) from None

    def close(self) -> None:
        self.credential_store.close()

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        self.close()
        return False

    def obtain_tokens(self, username: str, password: str) -> bool:
        """Log in with a password and store the session. True, or AuthenticationError."""
        self._require_saas_sync("auth login")
        server_url = self.server_url
        try:
            self._container().login().execute(server_url, username, password)
        except AuthError as exc:
            raise _host_error(exc) from exc
        return True

    def refresh_tokens(self) -> bool:
        """Refresh now (single-flight across processes). True, or AuthenticationError.

        A refresh the server rejects ends the session, unless another process stored newer
        tokens meanwhile.
        """
        self._require_saas_sync("token refresh")
        session = self.credential_store._session()
        if session is None or not session.is_authenticated(self.credential_store._now()):
            # (A machine session without a refresh token is renewed by its grant: it counts.)
            raise AuthenticationError("No valid refresh token. Please log in again.")
        try:
            self._container().ensure_fresh_token().refresh_now()
        except AuthError as exc:
            raise _host_error(exc) from exc
        return True

    def obtain_ws_token(self) -> str:
        """A short-lived WebSocket token (the string); a 401 gets one refresh and one retry."""
        self._require_saas_sync("websocket token exchange")
        container = self._container()
        try:
            token = container.obtain_ws_token().execute().ws_token
        except AuthError as exc:
            raise _host_error(exc) from exc
        # The host's WebSocketClient dials with the `websockets` library itself, which logs every
        # handshake header at DEBUG, this token's `Authorization` included; our connector's module
        # redacts that logger when loaded, so load it before the token is handed over.
        container.websocket_connector()
        return token

    def get_access_token(self) -> str | None:
        """A valid access token, refreshed first when needed; None when there is none to give.

        With the feature gate off, only a stored unexpired token is returned (no refresh).
        """
        if not is_saas_sync_enabled():
            return self.credential_store.get_access_token()
        try:
            return self._container().ensure_fresh_token().execute().tokens.access
        except AuthError as exc:
            log.info("no access token: %s", exc)
            return None

    def is_authenticated(self) -> bool:
        """True while the stored access or refresh token has not expired. No network, never raises."""
        session = self.credential_store._session()
        if session is None:
            return False
        now = self.credential_store._now()
        return now < session.tokens.access_expires_at or session.tokens.refresh_usable(now)

    def clear_credentials(self) -> None:
        """Remove the stored session (this machine only)."""
        self.credential_store.clear()

    def get_team_slug(self) -> str | None:
        if not self.is_authenticated():
            return None
        return self.credential_store.get_team_slug()
