"""In-memory fakes of the ports, for kitty-auth's own tests and for library users' tests.

They behave like the real adapters where the domain can tell (errors raised, lock re-entrancy,
copy-on-save) and record what happened so tests can assert on resulting state.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kitty_auth.domain.errors import InvalidCredentialsError, TokenRejectedError
from kitty_auth.domain.model import Credentials, WsToken
from kitty_auth.domain.ports import IssuedTokens


def make_jwt(*, iat: datetime, lifetime: timedelta, kind: str = "access", **extra: object) -> str:
    """An unsigned JWT-shaped token with ``iat``/``exp`` claims (signature is random filler)."""

    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    start = int(iat.timestamp())
    claims = {"token_type": kind, "iat": start, "exp": start + int(lifetime.total_seconds()),
              "jti": secrets.token_hex(8), **extra}
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64(claims)}.{secrets.token_urlsafe(16)}"


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 2, 3, 16, 30, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | float) -> None:
        self._now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)

    def set(self, when: datetime) -> None:
        self._now = when


class InMemoryCredentialRepository:
    """A CredentialRepository in a Python attribute, with a re-entrant lock."""

    def __init__(self, credentials: Credentials | None = None) -> None:
        self.credentials = credentials
        self.saves = 0
        self.lock_acquisitions = 0
        self._lock = threading.RLock()
        self.on_lock: Callable[[], None] | None = None  # runs after the lock is taken

    @property
    def location(self) -> str:
        return "<memory>"

    def load(self) -> Credentials | None:
        return self.credentials

    def save(self, credentials: Credentials) -> None:
        with self.lock():
            self.credentials = credentials
            self.saves += 1

    def clear(self) -> bool:
        with self.lock():
            had = self.credentials is not None
            self.credentials = None
            return had

    @contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            self.lock_acquisitions += 1
            if self.on_lock is not None:
                hook, self.on_lock = self.on_lock, None
                hook()
            yield


@dataclass
class FakeTokenGateway:
    """A TokenGateway with an in-memory user table and simplejwt's rotation and blacklisting."""

    clock: FakeClock
    users: dict[str, str] = field(default_factory=lambda: {"user@example.com": "s3cret"})
    access_lifetime: timedelta = timedelta(minutes=15)
    refresh_lifetime: timedelta = timedelta(days=7)
    server_clock_offset: timedelta = timedelta(0)  # server time = client time + offset
    calls: list[str] = field(default_factory=list)
    failures: dict[str, list[Exception]] = field(default_factory=dict)  # queued errors per call
    valid_refresh: set[str] = field(default_factory=set)
    valid_access: set[str] = field(default_factory=set)
    during_refresh: Callable[[], None] | None = None  # runs inside refresh(), before answering

    def fail_next(self, call: str, error: Exception, times: int = 1) -> None:
        self.failures.setdefault(call, []).extend([error] * times)

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        queued = self.failures.get(call)
        if queued:
            raise queued.pop(0)

    def _issue(self) -> IssuedTokens:
        server_now = self.clock.now() + self.server_clock_offset
        access = make_jwt(iat=server_now, lifetime=self.access_lifetime, kind="access")
        refresh = make_jwt(iat=server_now, lifetime=self.refresh_lifetime, kind="refresh")
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        return IssuedTokens(access=access, refresh=refresh)

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        self._maybe_fail("obtain")
        if self.users.get(username) != password:
            raise InvalidCredentialsError()
        return self._issue()

    def refresh(self, session: Credentials) -> IssuedTokens:
        refresh_token = session.tokens.refresh
        self._maybe_fail("refresh")
        if self.during_refresh is not None:
            hook, self.during_refresh = self.during_refresh, None
            hook()
        if refresh_token not in self.valid_refresh:
            raise TokenRejectedError()
        self.valid_refresh.discard(refresh_token)  # rotate + blacklist
        return self._issue()

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        self._maybe_fail("ws_token")
        if access_token not in self.valid_access:
            raise TokenRejectedError()
        return WsToken(ws_token=secrets.token_urlsafe(16),
                       expires_at=self.clock.now() + timedelta(seconds=900), expires_in=900)

    def revoke_access(self) -> None:
        self.valid_access.clear()
