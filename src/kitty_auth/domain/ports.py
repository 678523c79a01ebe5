"""The ports: what the domain needs from the outside world, as Protocols adapters implement."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from kitty_auth.domain.accounts import StoredSession
from kitty_auth.domain.model import Credentials, IssuedTokens, WsToken

__all__ = ["Clock", "CredentialRepository", "IssuedTokens", "TokenGateway"]


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time as an aware UTC datetime."""
        ...


class TokenGateway(Protocol):
    """Talks to the server. Raises only domain errors (kitty_auth.domain.errors)."""

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        """POST /api/v1/token/. 401 -> InvalidCredentialsError."""
        ...

    def refresh(
        self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None
    ) -> IssuedTokens:
        """Rotate ``session``'s refresh token at the server that issued it. 401 -> TokenRejectedError.

        Password sessions: POST /api/v1/token/refresh/; OAuth sessions: the refresh-token grant
        at the session's stored token endpoint. When the answer does not come within the
        deadline, NetworkError is raised at once; if a valid answer still arrives later (the
        server may already have rotated the token), the gateway passes it to ``on_late`` from
        another thread. When the caller is interrupted (KeyboardInterrupt, SystemExit) while the
        answer is on its way, the gateway waits for it within the deadline, passes it to
        ``on_late`` in the caller's thread, then re-raises the interrupt. ``on_late`` may be
        called twice with one answer (an interrupt cut the first call short).
        """
        ...

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        """POST /api/v1/ws-token/. 401 -> TokenRejectedError."""
        ...


class CredentialRepository(Protocol):
    """Where the stored sessions live: the active one, and the others (several accounts).

    ``lock()`` is an exclusive, bounded-wait lock shared by every process on the machine;
    holding it across read -> refresh -> write is what makes refresh single-flight. ``save``
    and ``clear`` take the lock themselves (re-entrantly), so they are safe to call with or
    without it. A reader never sees a partial file.

    ``load``/``save``/``clear`` are about the active session; ``for_account`` gives the same
    three (and ``lock``) for one account wherever it is stored, active or not.
    """

    def load(self) -> Credentials | None:
        """The active session, None when none. CorruptCredentialsError when unparsable."""
        ...

    def save(self, credentials: Credentials) -> None:
        """Store ``credentials`` as the active session. An active session of another account (another
        server or user) is kept as the most recently used of the others; one of the same account is
        replaced."""
        ...

    def clear(self, promote: bool = False) -> bool:
        """Remove the active session; True when something was removed. ``promote``: the most
        recently used other session becomes the active one (`auth logout`); otherwise none is
        active until the user chooses (a rejected session, the library, the 2.x host)."""
        ...

    def sessions(self) -> list[StoredSession]:
        """Every stored session, the active one first, then the others most recently used first."""
        ...

    def for_account(self, server_url: str, username: str) -> CredentialRepository:
        """The repository of one account (``load``/``save``/``clear``/``lock``), active or not; a save
        there never changes which session is active."""
        ...

    def activate(self, server_url: str, username: str) -> Credentials | None:
        """Make that account's stored session the active one; None (nothing changed) when there is none."""
        ...

    def clear_all(self) -> list[Credentials]:
        """Remove every stored session; returns those removed."""
        ...

    def lock(self) -> AbstractContextManager[None]: ...

    @property
    def location(self) -> str:
        """Human-readable location (the file path) for messages."""
        ...


