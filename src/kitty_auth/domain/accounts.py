"""Several stored sessions (accounts): what one is, which one `--server`/`--user` name, and what `switch` picks.

The active session is the one every spec-kitty program uses (the 2.1.3 sections of the file); the
others wait, most recently used first, until `auth switch` makes one active or a command names
one with `--server`/`--user`. An account is a server and a user on it: logging in again as the
same user at the same server replaces that session, anything else adds one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from kitty_auth.domain.errors import InvalidInputError, NotAuthenticatedError
from kitty_auth.domain.model import Credentials, normalize_server_url, same_server


@dataclass(frozen=True)
class StoredSession:
    """One stored session; ``last_used`` is when a session that is not active last was (or was refreshed)."""

    credentials: Credentials
    active: bool
    last_used: datetime | None = None

    @property
    def label(self) -> str:
        """``user at server``: how messages name it (never a token)."""
        return f"{self.credentials.username} at {self.credentials.server_url}"


def same_account(a: Credentials, b: Credentials) -> bool:
    """The same user on the same server (then one session replaces the other)."""
    return a.username == b.username and same_server(a.server_url, b.server_url)


def is_account(credentials: Credentials, server_url: str | None, username: str | None) -> bool:
    """Whether ``credentials`` matches a ``--server``/``--user`` choice (None: any)."""
    if server_url is not None and not same_server(credentials.server_url, server_url):
        return False
    return username is None or credentials.username == username


class NoSuchSessionError(NotAuthenticatedError):
    """No stored session matches the ``--server``/``--user`` choice."""

    def __init__(self, wanted: str, command: str = "spec-kitty auth") -> None:
        super().__init__(f"No stored session {wanted}; run `{command} status --all` to list them, "
                         f"or `{command} login` to add one.")


class AmbiguousSessionError(InvalidInputError):
    """Several stored sessions match: the user must say which (a usage error, exit 2)."""

    def __init__(self, matches: Sequence[StoredSession], why: str) -> None:
        self.matches = tuple(matches)
        choices = "; ".join(f"--server {s.credentials.server_url} --user {s.credentials.username}"
                            for s in self.matches)
        super().__init__(f"{why}; choose one with {choices}.")


def describe_choice(server_url: str | None, username: str | None) -> str:
    parts = ([f"for user {username}"] if username is not None else []) + \
            ([f"at {server_url}"] if server_url is not None else [])
    return " ".join(parts) or "at all"


def choose(sessions: Sequence[StoredSession], server_url: str | None, username: str | None) -> StoredSession:
    """The one stored session ``--server``/``--user`` name; with neither, the active one.

    NoSuchSessionError when none matches (NotAuthenticatedError when nothing at all is stored),
    AmbiguousSessionError when several do.
    """
    if server_url is not None:
        server_url = normalize_server_url(server_url, source="--server", implied_https=True)
    if server_url is None and username is None:
        active = [s for s in sessions if s.active]
        if not active:
            raise NotAuthenticatedError()
        return active[0]
    matches = [s for s in sessions if is_account(s.credentials, server_url, username)]
    if not matches:
        raise NoSuchSessionError(describe_choice(server_url, username))
    if len(matches) > 1:
        active = [s for s in matches if s.active]
        if active and username is None:
            # `--server S` while logged in to S: the active session there is what the user means
            return active[0]
        raise AmbiguousSessionError(matches, f"{len(matches)} stored sessions match")
    return matches[0]


def switch_target(sessions: Sequence[StoredSession], server_url: str | None,
                  username: str | None) -> StoredSession:
    """The session `auth switch` makes active: the one named, or with no option and exactly two
    sessions, the other one. AmbiguousSessionError when that does not name exactly one."""
    if server_url is not None:
        server_url = normalize_server_url(server_url, source="--server", implied_https=True)
    if server_url is not None or username is not None:
        matches = [s for s in sessions if is_account(s.credentials, server_url, username)]
        if not matches:
            raise NoSuchSessionError(describe_choice(server_url, username))
        if len(matches) > 1:
            raise AmbiguousSessionError(matches, f"{len(matches)} stored sessions match")
        return matches[0]
    if not sessions:
        raise NotAuthenticatedError()
    others = [s for s in sessions if not s.active]
    if len(others) == 1:
        return others[0]  # two sessions: the other one (or the only one, when none is active)
    if not others:
        return sessions[0]  # only one session: it is already the active one
    raise AmbiguousSessionError(others, f"{len(sessions)} sessions are stored")
