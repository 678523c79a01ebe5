"""Logout's revocation: the SessionRevoker port, its one error, and what a logout did (kept apart from the OAuth login code so `auth logout --local` and `status` never import it)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from kitty_auth.domain.errors import ServerError
from kitty_auth.domain.model import Credentials


class RevocationUnsupportedError(ServerError):
    message = "the server has no revocation endpoint"


class SessionRevoker(Protocol):
    def revoke(self, session: Credentials, deadline: float) -> None:
        """Ask the issuing server to revoke ``session``'s refresh token within ``deadline`` seconds.

        Returns when the server confirmed. RevocationUnsupportedError when it has no such endpoint;
        other ServerErrors (NetworkError when offline) otherwise.
        """
        ...


class RevokeOutcome(enum.Enum):
    REVOKED = "revoked"
    SKIPPED = "skipped"  # --local
    NOTHING_STORED = "nothing_stored"
    UNREADABLE = "unreadable"  # the file was removed, but no token could be read from it
    NO_ENDPOINT = "no_endpoint"
    OFFLINE = "offline"
    REFUSED = "refused"
    NO_TIME = "no_time"  # the lock wait used up logout's time bound: the request was not sent


_NOT_REVOKED = {
    RevokeOutcome.SKIPPED: "--local skips the server",
    RevokeOutcome.NOTHING_STORED: "none was stored",
    RevokeOutcome.UNREADABLE: "the credentials file held no readable session",
    RevokeOutcome.NO_ENDPOINT: "the server has no revocation endpoint",
    RevokeOutcome.OFFLINE: "the server could not be reached",
    RevokeOutcome.REFUSED: "the server refused",
    RevokeOutcome.NO_TIME: "waiting for the credentials file left no time to ask the server",
}


@dataclass(frozen=True)
class LogoutResult:
    """What logout did locally and at the server; ``sentence`` is the second line the CLI prints."""

    removed: bool
    outcome: RevokeOutcome
    cause: str = ""  # OFFLINE: host and cause; REFUSED: the error's own sentence (never a token)

    @property
    def revoked(self) -> bool:
        return self.outcome is RevokeOutcome.REVOKED

    @property
    def sentence(self) -> str:
        """``The server revoked the session.`` or a sentence containing ``not revoked`` and the cause."""
        if self.outcome is RevokeOutcome.REVOKED:
            return "The server revoked the session."
        return f"The session was not revoked: {self.reason}."

    @property
    def reason(self) -> str:
        """Why the session was not revoked, as a phrase (``the server could not be reached (host: timed out)``)."""
        if self.outcome is RevokeOutcome.REVOKED:
            return ""
        cause = self.cause.strip().rstrip(".")
        if not cause:
            return _NOT_REVOKED[self.outcome]
        if self.outcome is RevokeOutcome.OFFLINE:
            return f"{_NOT_REVOKED[self.outcome]} ({cause})"
        if cause[:1].isupper() and cause[1:2].islower():  # an error's sentence continues this one
            cause = cause[0].lower() + cause[1:]
        return cause


@dataclass(frozen=True)
class LocalLogout:
    """What logout removed locally: the session (None when nothing, or nothing readable, was stored)."""

    removed: bool
    session: Credentials | None = None
    now_active: Credentials | None = None  # another stored session that became the active one
