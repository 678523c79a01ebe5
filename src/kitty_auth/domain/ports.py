"""The ports: what the domain needs from the outside world, as Protocols adapters implement."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

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
    """Where the one stored session lives.

    ``lock()`` is an exclusive, bounded-wait lock shared by every process on the machine;
    holding it across read -> refresh -> write is what makes refresh single-flight. ``save``
    and ``clear`` take the lock themselves (re-entrantly), so they are safe to call with or
    without it. A reader never sees a partial file.
    """

    def load(self) -> Credentials | None:
        """The stored session, None when none. CorruptCredentialsError when unparsable."""
        ...

    def save(self, credentials: Credentials) -> None: ...

    def clear(self) -> bool:
        """Remove the stored session; True when something was removed."""
        ...

    def lock(self) -> AbstractContextManager[None]: ...

    @property
    def location(self) -> str:
        """Human-readable location (the file path) for messages."""
        ...


