"""In-memory fakes of the ports, for kitty-auth's own tests and for library users' tests.

They behave like the real adapters where the domain can tell (errors raised, lock re-entrancy,
copy-on-save) and record what happened so tests can assert on resulting state.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

from kitty_auth.domain.accounts import StoredSession, is_account, same_account
from kitty_auth.domain.doctor import (
    ConfigFacts,
    CredentialsFacts,
    LocalFacts,
    LockFacts,
    PathFacts,
    PathKind,
    ServerFacts,
    TrustFacts,
)
from kitty_auth.domain.errors import InvalidCredentialsError, NetworkError, TokenRejectedError, UnexpectedStatusError
from kitty_auth.domain.machine import ClientCredentials, MachineClientRejectedError, MachineConfigurationError
from kitty_auth.domain.model import Credentials, Identity, LoginMethod, Team, WsToken
from kitty_auth.domain.oauth import CallbackPage, DeviceAuthorization, Endpoints, PollOutcome, pkce_challenge
from kitty_auth.domain.oauth_errors import (
    DeviceCodeDeniedError,
    DeviceCodeExpiredError,
    OAuthProtocolError,
)
from kitty_auth.domain.ports import IssuedTokens
from kitty_auth.domain.revocation import RevocationUnsupportedError


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
    """A CredentialRepository in Python attributes, with a re-entrant lock.

    ``credentials`` is the active session, ``others`` the other stored sessions (most recently
    used first, with when they stopped being active), as the file keeps them.
    """

    def __init__(self, credentials: Credentials | None = None,
                 others: list[StoredSession] | None = None) -> None:
        self.credentials = credentials
        self.others: list[StoredSession] = list(others or [])
        self.saves = 0
        self.lock_acquisitions = 0
        self._lock = threading.RLock()
        self.on_lock: Callable[[], None] | None = None  # runs after the lock is taken
        # Each runs once, in turn, inside a save before anything is stored (e.g. raises
        # KeyboardInterrupt: a save that Ctrl-C cut short).
        self.on_save: list[Callable[[], None]] = []

    @property
    def location(self) -> str:
        return "<memory>"

    def load(self) -> Credentials | None:
        return self.credentials

    def save(self, credentials: Credentials) -> None:
        with self.lock():
            if self.on_save:
                self.on_save.pop(0)()
            kept = [o for o in self.others if not same_account(o.credentials, credentials)]
            if self.credentials is not None and not same_account(self.credentials, credentials):
                kept.insert(0, StoredSession(self.credentials, active=False, last_used=datetime.now(UTC)))
            self.credentials, self.others = credentials, kept
            self.saves += 1

    def clear(self, promote: bool = False) -> bool:
        with self.lock():
            had = self.credentials is not None
            self.credentials = None
            if had and promote and self.others:
                self.credentials = self.others.pop(0).credentials
            return had

    def sessions(self) -> list[StoredSession]:
        active = [StoredSession(self.credentials, active=True)] if self.credentials is not None else []
        return active + list(self.others)

    def for_account(self, server_url: str, username: str) -> InMemoryAccountRepository:
        return InMemoryAccountRepository(self, server_url, username)

    def activate(self, server_url: str, username: str) -> Credentials | None:
        with self.lock():
            if self.credentials is not None and is_account(self.credentials, server_url, username):
                return self.credentials
            target = next((o for o in self.others if is_account(o.credentials, server_url, username)), None)
            if target is None:
                return None
            self.others.remove(target)
            if self.credentials is not None:
                self.others.insert(0, StoredSession(self.credentials, active=False, last_used=datetime.now(UTC)))
            self.credentials = target.credentials
            self.saves += 1
            return target.credentials

    def clear_all(self) -> list[Credentials]:
        with self.lock():
            removed = [s.credentials for s in self.sessions()]
            self.credentials, self.others = None, []
            return removed

    @contextmanager
    def lock(self) -> Iterator[None]:
        with self._lock:
            self.lock_acquisitions += 1
            if self.on_lock is not None:
                hook, self.on_lock = self.on_lock, None
                hook()
            yield


class InMemoryAccountRepository:
    """One account of an InMemoryCredentialRepository, wherever it is (as ``for_account`` gives)."""

    def __init__(self, store: InMemoryCredentialRepository, server_url: str, username: str) -> None:
        self.store, self._server, self._user = store, server_url, username

    @property
    def location(self) -> str:
        return self.store.location

    def lock(self) -> Any:
        return self.store.lock()

    def for_account(self, server_url: str, username: str) -> InMemoryAccountRepository:
        return self.store.for_account(server_url, username)

    def _mine(self, credentials: Credentials | None) -> bool:
        return credentials is not None and is_account(credentials, self._server, self._user)

    def load(self) -> Credentials | None:
        return next((s.credentials for s in self.store.sessions() if self._mine(s.credentials)), None)

    def save(self, credentials: Credentials) -> None:
        with self.store.lock():
            if self.store.credentials is None or self._mine(self.store.credentials):
                self.store.save(credentials)
                return
            kept = [o for o in self.store.others if not self._mine(o.credentials)]
            self.store.others = [StoredSession(credentials, active=False, last_used=datetime.now(UTC)), *kept]
            self.store.saves += 1

    def clear(self, promote: bool = False) -> bool:
        with self.store.lock():
            if self._mine(self.store.credentials):
                return self.store.clear(promote)
            kept = [o for o in self.store.others if not self._mine(o.credentials)]
            removed = len(kept) != len(self.store.others)
            self.store.others = kept
            return removed


# --------------------------------------------------------------------------- fake servers


@dataclass
class _FakeServer:
    """What both fake servers share: the calls made, errors queued per call, and the live tokens."""

    # kw_only: keeps each subclass's own fields first in its positional order
    calls: list[str] = field(default_factory=list, kw_only=True)
    failures: dict[str, list[Exception]] = field(default_factory=dict, kw_only=True)  # queued errors per call
    valid_refresh: set[str] = field(default_factory=set, kw_only=True)
    valid_access: set[str] = field(default_factory=set, kw_only=True)

    def fail_next(self, call: str, error: Exception, times: int = 1) -> None:
        """Make the next ``times`` calls of ``call`` (a method name) raise ``error``."""
        self.failures.setdefault(call, []).extend([error] * times)

    def _maybe_fail(self, call: str) -> None:
        self.calls.append(call)
        queued = self.failures.get(call)
        if queued:
            raise queued.pop(0)

    def _new_pair(self, access: str | None = None, refresh: str | None = None) -> tuple[str, str]:
        """A live token pair: the given tokens, else opaque ones (``at_...``, ``rt_...``)."""
        access = access or "at_" + secrets.token_urlsafe(24)
        refresh = refresh or "rt_" + secrets.token_urlsafe(24)
        self.valid_access.add(access)
        self.valid_refresh.add(refresh)
        return access, refresh


@dataclass
class FakeTokenGateway(_FakeServer):
    """A TokenGateway with an in-memory user table and simplejwt's rotation and blacklisting."""

    clock: FakeClock
    users: dict[str, str] = field(default_factory=lambda: {"user@example.com": "s3cret"})
    access_lifetime: timedelta = timedelta(minutes=15)
    refresh_lifetime: timedelta = timedelta(days=7)
    server_clock_offset: timedelta = timedelta(0)  # server time = client time + offset
    during_refresh: Callable[[], None] | None = None  # runs inside refresh(), before answering
    # The next N refreshes are processed (rotated) but their answer is late: the caller gets
    # NetworkError and the answer waits in late_answers until the test delivers it.
    answer_late: int = 0
    late_answers: list[Callable[[], None]] = field(default_factory=list)
    # The next N refreshes are processed (rotated) and the caller is interrupted (Ctrl-C) while
    # the answer is on its way: as the HTTPS core does, the answer goes to on_late in the
    # caller's thread, then KeyboardInterrupt is raised.
    interrupt_while_answering: int = 0
    # Opaque tokens (not JWTs) whose lifetimes the response states in expires_in and
    # refresh_token_expires_in, as spec-kitty 3.x and the reference server's opaque mode do.
    opaque: bool = False

    def _issue(self) -> IssuedTokens:
        if self.opaque:
            access, refresh = self._new_pair()
            return IssuedTokens(access=access, refresh=refresh,
                                expires_in=self.access_lifetime.total_seconds(),
                                refresh_expires_in=self.refresh_lifetime.total_seconds())
        server_now = self.clock.now() + self.server_clock_offset
        access, refresh = self._new_pair(make_jwt(iat=server_now, lifetime=self.access_lifetime, kind="access"),
                                         make_jwt(iat=server_now, lifetime=self.refresh_lifetime, kind="refresh"))
        return IssuedTokens(access=access, refresh=refresh)

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        self._maybe_fail("obtain")
        if self.users.get(username) != password:
            raise InvalidCredentialsError()
        return self._issue()

    def refresh(
        self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None
    ) -> IssuedTokens:
        refresh_token = session.tokens.refresh
        self._maybe_fail("refresh")
        if self.during_refresh is not None:
            hook, self.during_refresh = self.during_refresh, None
            hook()
        if refresh_token not in self.valid_refresh:
            raise TokenRejectedError()
        self.valid_refresh.discard(refresh_token)  # rotate + blacklist
        issued = self._issue()
        if self.answer_late:
            self.answer_late -= 1
            if on_late is not None:
                self.late_answers.append(lambda: on_late(issued))
            raise NetworkError()
        if self.interrupt_while_answering:
            self.interrupt_while_answering -= 1
            if on_late is not None:
                on_late(issued)
            raise KeyboardInterrupt()
        return issued

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        self._maybe_fail("ws_token")
        if access_token not in self.valid_access:
            raise TokenRejectedError()
        return WsToken(ws_token=secrets.token_urlsafe(16),
                       expires_at=self.clock.now() + timedelta(seconds=900), expires_in=900)

    def revoke_access(self) -> None:
        self.valid_access.clear()


# --------------------------------------------------------------------------- OAuth (spec-kitty 3.x)


@dataclass
class FakeOAuthServer(_FakeServer):
    """An in-memory OAuth authorization server: an OAuthGateway and a SessionRevoker.

    It checks what a real one checks (PKCE S256, one-time codes bound to their redirect URI,
    RFC 8628 polling speed, refresh rotation, revocation) and keeps state for assertions.
    ``metadata`` is what discovery returns; ``publishes_metadata=False`` makes it a 404.

    Machine clients (the client credentials grant): ``machine_clients`` maps client ids to their
    secrets; ``machine_refresh_tokens`` makes the grant's answer carry a refresh token (spec-kitty's
    SaaS) or not (plain RFC 6749 4.4). Their tokens belong to ``machine_email`` (``me``); an access
    token issued without a refresh token is revoked only by its client, with its secret.
    """

    clock: FakeClock
    server_url: str = "https://auth.example.test"
    email: str = "user@example.com"
    teams: tuple[Team, ...] = (Team(id="1", slug="acme", name="Acme"),
                               Team(id="2", slug="me-private", name="Mine", is_private_teamspace=True))
    device_interval: float | None = 5.0
    device_expires_in: float = 600.0
    access_lifetime: float = 900.0
    metadata: Endpoints | None = None  # None: spec-kitty 3.x's default paths on server_url
    publishes_metadata: bool = True  # False: discovery answers 404 (a password server)
    enforce_interval: bool = True  # answer slow_down to a poll sooner than the interval (on self.clock)
    revocable: bool = True
    polls: list[datetime] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)
    _codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (challenge, redirect)
    _devices: dict[str, str] = field(default_factory=dict)  # device_code -> pending/approved/denied
    _device_user_codes: dict[str, str] = field(default_factory=dict)  # user_code -> device_code
    _last_poll: dict[str, datetime] = field(default_factory=dict)
    _device_started: dict[str, datetime] = field(default_factory=dict)
    _interval: dict[str, float] = field(default_factory=dict)
    machine_clients: dict[str, str] = field(default_factory=dict)  # client id -> secret
    machine_refresh_tokens: bool = False
    machine_email: str = "ci-bot@example.com"
    grants: list[str] = field(default_factory=list)  # the client id of each accepted client credentials grant
    _machine_tokens: dict[str, str] = field(default_factory=dict)  # access or refresh token -> client id

    def __post_init__(self) -> None:
        if self.metadata is None:
            self.metadata = Endpoints.defaults(self.server_url)

    def _issue(self) -> IssuedTokens:
        access, refresh = self._new_pair()
        return IssuedTokens(access=access, refresh=refresh, expires_in=self.access_lifetime,
                            session_id="sess-" + secrets.token_hex(4))

    # -- what the user does in the browser

    def approve_in_browser(self, authorization_url: str, *, deny: bool = False) -> dict[str, str]:
        """The user logs in and approves (or denies): the query the browser brings to the callback."""
        query = dict(parse_qsl(urlsplit(authorization_url).query))
        assert query["code_challenge_method"] == "S256" and query["response_type"] == "code"
        if deny:
            return {"error": "access_denied", "state": query["state"]}
        code = "code_" + secrets.token_urlsafe(16)
        self._codes[code] = (query["code_challenge"], query["redirect_uri"])
        return {"code": code, "state": query["state"]}

    def approve_device(self, user_code: str, *, deny: bool = False) -> None:
        self._devices[self._device_user_codes[user_code]] = "denied" if deny else "approved"

    # -- the OAuthGateway port

    def discover(self, server_url: str) -> Endpoints | None:
        self._maybe_fail("discover")
        return self.metadata if self.publishes_metadata else None

    def exchange_code(self, endpoints: Endpoints, client_id: str, code: str, verifier: str,
                      redirect_uri: str) -> IssuedTokens:
        self._maybe_fail("exchange_code")
        entry = self._codes.pop(code, None)  # one use only
        if entry is None or entry != (pkce_challenge(verifier), redirect_uri) or client_id != "cli_native":
            raise OAuthProtocolError("invalid_grant", "authorization code")
        return self._issue()

    def start_device(self, endpoints: Endpoints, client_id: str, scope: str) -> DeviceAuthorization:
        self._maybe_fail("start_device")
        device_code, user_code = "dc_" + secrets.token_urlsafe(16), secrets.token_hex(4).upper()
        self._devices[device_code] = "pending"
        self._device_user_codes[user_code] = device_code
        self._last_poll[device_code] = self._device_started[device_code] = self.clock.now()
        self._interval[device_code] = self.device_interval or 5.0
        return DeviceAuthorization(
            device_code=device_code, user_code=user_code,
            verification_uri=self.server_url + "/oauth/device/verify",
            verification_uri_complete=f"{self.server_url}/oauth/device/verify?user_code={user_code}",
            expires_in=self.device_expires_in, interval=self.device_interval,
        )

    def poll_device(self, endpoints: Endpoints, client_id: str, device_code: str) -> IssuedTokens | PollOutcome:
        self._maybe_fail("poll_device")
        now = self.clock.now()
        self.polls.append(now)
        if device_code not in self._devices:
            raise OAuthProtocolError("invalid_grant", "device code")
        elapsed = (now - self._last_poll[device_code]).total_seconds()
        self._last_poll[device_code] = now
        if (now - self._device_started[device_code]).total_seconds() >= self.device_expires_in:
            raise DeviceCodeExpiredError()
        if self.enforce_interval and elapsed + 1e-6 < self._interval[device_code]:
            self._interval[device_code] += 5
            return PollOutcome.SLOW_DOWN
        state = self._devices[device_code]
        if state == "denied":
            raise DeviceCodeDeniedError()
        if state == "pending":
            return PollOutcome.PENDING
        del self._devices[device_code]
        return self._issue()

    def me(self, server_url: str, access_token: str) -> Identity:
        self._maybe_fail("me")
        if access_token not in self.valid_access:
            raise TokenRejectedError()
        if access_token in self._machine_tokens:
            return Identity(email=self.machine_email, name="CI bot", user_id="99",
                            teams=(Team(id="3", slug="ci-bot", is_private_teamspace=True),))
        return Identity(email=self.email, name="Demo User", user_id="42", teams=self.teams)

    def client_credentials(self, server_url: str, token_endpoint: str, client: ClientCredentials) -> IssuedTokens:
        self._maybe_fail("client_credentials")
        if self.machine_clients.get(client.client_id) != client.secret:
            raise MachineClientRejectedError()  # unknown, wrong secret or revoked: one answer
        self.grants.append(client.client_id)
        access, refresh = self._new_pair()
        self._machine_tokens[access] = client.client_id
        if not self.machine_refresh_tokens:
            self.valid_refresh.discard(refresh)
            return IssuedTokens(access=access, refresh=None, expires_in=self.access_lifetime)
        self._machine_tokens[refresh] = client.client_id
        return IssuedTokens(access=access, refresh=refresh, expires_in=self.access_lifetime,
                            session_id="sess-" + secrets.token_hex(4))

    def revoke_machine_client(self, client_id: str) -> None:
        """The principal is revoked: its grant is refused (invalid_client) and its tokens die."""
        self.machine_clients.pop(client_id, None)
        for token, owner in list(self._machine_tokens.items()):
            if owner == client_id:
                self.valid_access.discard(token)
                self.valid_refresh.discard(token)

    def refresh(self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None) -> IssuedTokens:
        self._maybe_fail("refresh")
        if session.tokens.refresh not in self.valid_refresh:
            raise TokenRejectedError()
        self.valid_refresh.discard(session.tokens.refresh)
        issued = self._issue()
        if (owner := self._machine_tokens.get(session.tokens.refresh)) is not None:  # a machine session's family
            self._machine_tokens.update({issued.access: owner, issued.refresh: owner})  # type: ignore[dict-item]
        return issued

    # -- the SessionRevoker port

    def revoke(self, session: Credentials, deadline: float, as_client: ClientCredentials | None = None) -> None:
        self._maybe_fail("revoke")
        if not self.revocable:
            raise RevocationUnsupportedError()
        if session.tokens.refresh is None:  # RFC 7009 with token_type_hint=access_token, by the token's client
            access = session.tokens.access
            owner = self._machine_tokens.get(access)
            if as_client is None or owner != as_client.client_id or self.machine_clients.get(owner) != as_client.secret:
                raise UnexpectedStatusError(401)  # invalid_client, as a real server answers it
            self.valid_access.discard(access)
            self.revoked.add(access)
            return
        self.valid_refresh.discard(session.tokens.refresh)
        self.revoked.add(session.tokens.refresh)


@dataclass
class FakeMachineCredentials:
    """A MachineCredentialsSource: the values the test sets (None: the variable is unset).

    ``error`` is raised by ``secret()``, as an unusable secret file is; ``reads`` counts reads.
    """

    client_id_value: str | None = None
    secret_value: str | None = None
    error: MachineConfigurationError | None = None
    reads: int = 0

    def client_id(self) -> str | None:
        return self.client_id_value

    def secret(self) -> str | None:
        self.reads += 1
        if self.error is not None:
            raise self.error
        return self.secret_value


@dataclass
class FakeBrowser:
    """A Browser: records the URLs opened; ``user`` (if set) acts on each, as a person would."""

    available: bool = True
    opened: list[str] = field(default_factory=list)
    user: Callable[[str], None] | None = None

    def open(self, url: str) -> bool:
        if not self.available:
            return False
        self.opened.append(url)
        if self.user is not None:
            self.user(url)
        return True


@dataclass
class FakePendingCallback:
    params: dict[str, str]
    page: CallbackPage | None = None

    def answer(self, page: CallbackPage) -> None:
        assert self.page is None, "a callback is answered once"
        self.page = page


@dataclass
class FakeCallbackListener:
    """A CallbackListener fed by the test (``deliver``); waiting with nothing queued moves the clock."""

    clock: FakeClock
    redirect_uri: str = "http://127.0.0.1:49152/callback"
    queue: list[FakePendingCallback] = field(default_factory=list)
    delivered: list[FakePendingCallback] = field(default_factory=list)
    closed: bool = False

    def deliver(self, params: dict[str, str]) -> FakePendingCallback:
        callback = FakePendingCallback(dict(params))
        self.queue.append(callback)
        self.delivered.append(callback)
        return callback

    def next_callback(self, timeout: float) -> FakePendingCallback | None:
        assert not self.closed
        if self.queue:
            return self.queue.pop(0)
        self.clock.advance(timeout)
        return None

    def close(self) -> None:
        self.closed = True

    def __call__(self) -> FakeCallbackListener:  # a ListenerFactory that hands out this listener
        self.closed = False
        return self


@dataclass
class RecordingProgress:
    """A LoginProgress that records what the user was shown; ``wait`` moves the fake clock."""

    clock: FakeClock
    shown: list[tuple[str, object]] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    on_wait: Callable[[int], None] | None = None  # called with the wait's number (1, 2, ...)
    refused: int = 0
    finished_calls: int = 0

    def browser_login(self, url: str, opened: bool, timeout: float) -> None:
        self.shown.append(("browser", (url, opened, timeout)))

    def callback_refused(self) -> None:
        self.refused += 1

    def device_login(self, authorization: DeviceAuthorization) -> None:
        self.shown.append(("device", authorization))

    def wait(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)
        if self.on_wait is not None:
            self.on_wait(len(self.waits))

    def finished(self) -> None:
        self.finished_calls += 1


# --------------------------------------------------------------------------- auth doctor


def healthy_machine(home: str = "/home/user/.spec-kitty", *, server_url: str = "https://auth.example.test",
                    sessions: tuple[StoredSession, ...] = ()) -> LocalFacts:
    """The facts of a machine where every local check passes: a private home and file, no config.toml,
    a free lock, a trust store with certificates; ``sessions`` stored; `login` goes to ``server_url``."""
    return LocalFacts(
        home=PathFacts(home, PathKind.DIRECTORY, mode=0o700, owner="user", mine=True, writable=True),
        credentials=CredentialsFacts(
            PathFacts(f"{home}/credentials", PathKind.FILE if sessions else PathKind.MISSING,
                      mode=0o600 if sessions else None, owner="user" if sessions else None,
                      mine=True if sessions else None),
            sessions=sessions,
        ),
        config=ConfigFacts(f"{home}/config.toml", exists=False, env_url=server_url, login_server=server_url,
                           login_server_source="SPEC_KITTY_SAAS_URL"),
        lock=LockFacts(PathFacts(f"{home}/credentials.lock", PathKind.FILE, mode=0o600, owner="user", mine=True),
                       held=False),
        trust=TrustFacts(truststore=True, os_verifier=False, system_bundle="/etc/ssl/certs/ca-certificates.crt",
                         system_certificates=140),
        token_in_env=False,
    )


class FakeDoctorFacts:
    """A DoctorFacts port handing out the facts a test set (``healthy_machine()`` by default)."""

    def __init__(self, facts: LocalFacts | None = None) -> None:
        self.facts = facts or healthy_machine()
        self.calls = 0

    def local(self) -> LocalFacts:
        self.calls += 1
        return self.facts


class FakeServerProbe:
    """A ServerProbe with an answer per URL (``answers``); any other server answers fast, as an OAuth
    server with the same clock. ``probed`` records each call's URLs."""

    def __init__(self, answers: dict[str, ServerFacts] | None = None, clock: FakeClock | None = None) -> None:
        self.answers = dict(answers or {})
        self.clock = clock or FakeClock()
        self.probed: list[list[str]] = []

    def probe(self, urls: Sequence[str]) -> list[ServerFacts]:
        self.probed.append(list(urls))
        now = self.clock.now()
        return [self.answers.get(url) or ServerFacts(url, reached=True, status=200, rtt_ms=25,
                                                     login_method=LoginMethod.WEB, server_time=now, local_time=now)
                for url in urls]
