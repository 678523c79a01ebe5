"""The live-sync connection: the events URL, the reconnect policy, the connector port and the session.

A :class:`LiveSyncSession` keeps one authenticated WebSocket to the issuing server up:

* every connection attempt uses a ws token obtained just before it (ws tokens are single-use and
  short-lived; one is never reused, not even for a retry);
* a handshake denied with 401 gets ONE fresh ws token and one retry (the token source refreshes
  the access token when the ws-token call itself answers 401); a second denial raises
  :class:`WebSocketAuthenticationError` (a ``SessionExpiredError``);
* ``{"type": "ping", "timestamp": T}`` is answered with ``{"type": "pong", "timestamp": T}`` by
  a background reader, so pings are answered while the caller is busy, and never returned;
* a dropped connection (server close, any close code, network error) is re-established with the
  :class:`ReconnectPolicy` backoff and a new ws token; the server's first message on the new
  connection (the snapshot) IS delivered again: callers treat every snapshot as a reset of their
  state. After ``max_attempts`` consecutive failed attempts :class:`ReconnectFailedError` is
  raised from ``receive()``. A connection only counts as recovered once it stayed up for
  ``stable_after`` seconds, so a server that accepts and drops at once cannot cause a tight loop;
* messages that are not a JSON object are skipped with a DEBUG record that names only their
  length (never their content);
* the first connection is not retried with backoff (besides the one 401 retry): a caller
  opening a connection learns about a wrong URL, a missing login or an unreachable server at once.

Errors leaving this module derive from :class:`~kitty_auth.domain.errors.AuthError`
(or are :class:`asyncio.CancelledError`). Only the standard library is imported here.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import urlsplit

from kitty_auth.domain.errors import (
    AuthError,
    SessionExpiredError,
    TransientServerError,
    WebSocketError,
)
from kitty_auth.domain.model import normalize_server_url

log = logging.getLogger("kitty_auth.websocket")

EVENTS_PATH: Final = "/ws/v1/events/"


# ----------------------------------------------------------------------------------------- errors


class HandshakeRejectedError(WebSocketError):
    """The server answered the WebSocket handshake with an HTTP status instead of 101."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"The server refused the live-sync connection (HTTP {status}).")

    @property
    def is_transient(self) -> bool:
        """Worth another attempt later: 408, 429 and 5xx."""
        return self.status in (408, 429) or 500 <= self.status < 600


class ConnectionLostError(WebSocketError):
    """The connection could not be opened or was closed (network error, timeout, server close)."""

    message = "The live-sync connection was lost."


class ReconnectFailedError(WebSocketError):
    """Reconnecting failed ``attempts`` times in a row; ``__cause__`` is the last failure."""

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        super().__init__(
            f"The live-sync connection was lost and could not be re-established "
            f"after {attempts} attempts."
        )


class LiveSyncClosedError(WebSocketError):
    message = "The live-sync connection is closed."


class WebSocketAuthenticationError(SessionExpiredError):
    """The handshake was denied with 401 twice, each time with a freshly obtained ws token."""

    message = "The server refused the live-sync connection (HTTP 401). Please log in again."


# ------------------------------------------------------------------------------------------- URL


def events_url(server_url: str) -> str:
    """``https://host[:port][/prefix]`` -> ``wss://host[:port][/prefix]/ws/v1/events/``.

    Anything but an https:// URL raises InvalidServerUrlError: the ws token goes only where the
    tokens came from, and only over TLS.
    """
    parts = urlsplit(normalize_server_url(server_url))
    return f"wss://{parts.netloc}{parts.path.rstrip('/')}{EVENTS_PATH}"


# --------------------------------------------------------------------------------------- policy


@dataclass(frozen=True)
class ReconnectPolicy:
    """Capped exponential backoff with full jitter (AWS "Exponential Backoff and Jitter").

    ``delay(n) = rng() * min(cap, base * 2**n)`` for the n-th consecutive attempt (0-based), so
    the ceiling doubles from ``base`` until ``cap`` and clients spread out evenly under it.
    ``max_attempts`` consecutive failed attempts give up; a connection that stays up
    ``stable_after`` seconds resets the count.
    """

    base: float = 0.5
    cap: float = 30.0
    max_attempts: int = 8
    stable_after: float = 10.0
    rng: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.cap >= self.base):
            raise ValueError("ReconnectPolicy needs 0 < base <= cap")
        if self.max_attempts < 1:
            raise ValueError("ReconnectPolicy needs max_attempts >= 1")

    def ceiling(self, attempt: int) -> float:
        """The largest delay before attempt ``attempt`` (0-based)."""
        return min(self.cap, self.base * 2.0 ** min(max(attempt, 0), 64))

    def delay(self, attempt: int) -> float:
        """Seconds to wait before attempt ``attempt``: uniform in ``[0, ceiling(attempt)]``."""
        fraction = min(max(float(self.rng()), 0.0), 1.0)
        return fraction * self.ceiling(attempt)


# ---------------------------------------------------------------------------------------- ports


class LiveConnection(Protocol):
    """One open WebSocket. Raises ConnectionLostError when the connection is gone."""

    async def recv(self) -> str: ...

    async def send(self, text: str) -> None: ...

    async def close(self) -> None:
        """Close; never raises."""
        ...


class LiveConnector(Protocol):
    """Opens WebSockets with ``Authorization: Bearer <ws_token>`` on the handshake (never in the URL).

    Raises HandshakeRejectedError(status) for a denied handshake, TLSVerificationError for an
    untrusted certificate, ConnectionLostError for network errors and timeouts, and
    MalformedResponseError for a ws token that cannot be sent (the server's answer was bad:
    not a lost connection, so never retried).
    """

    async def connect(self, url: str, ws_token: str) -> LiveConnection: ...


@dataclass(frozen=True)
class LiveTicket:
    """Where to connect and the ws token to present there; both come from the same stored session."""

    url: str
    ws_token: str

    def __repr__(self) -> str:
        return f"LiveTicket(url={self.url!r}, ws_token=<redacted>)"


TicketSource = Callable[[], Awaitable[LiveTicket]]


# -------------------------------------------------------------------------------------- session


class _Closed:
    pass


_CLOSED: Final = _Closed()


@dataclass(frozen=True)
class _Failure:
    error: BaseException


def _is_transient(exc: BaseException) -> bool:
    if isinstance(exc, HandshakeRejectedError):
        return exc.is_transient
    return isinstance(exc, ConnectionLostError | TransientServerError)


class LiveSyncSession:
    """An authenticated live-sync connection that stays up (see the module docstring)."""

    def __init__(
        self,
        *,
        connector: LiveConnector,
        tickets: TicketSource,
        policy: ReconnectPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        max_pending: int = 1000,
    ) -> None:
        self._connector = connector
        self._tickets = tickets
        self._policy = policy or ReconnectPolicy()
        self._sleep = sleep
        self._monotonic = monotonic
        self._inbox: asyncio.Queue[dict[str, Any] | _Failure | _Closed] = asyncio.Queue()
        self._room = asyncio.Semaphore(max_pending)  # backpressure on the reader
        self._conn: LiveConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False
        self.connections = 0  # successful connections so far (1 + reconnects)

    # --------------------------------------------------------------------------- public

    @property
    def closed(self) -> bool:
        return self._closed

    async def open(self) -> None:
        """Connect (one 401 retry, no backoff) and start answering pings."""
        if self._reader is not None or self._closed:
            raise LiveSyncClosedError("The live-sync connection was already opened.")
        self._conn = await self._connect_authenticated()
        self._reader = asyncio.create_task(self._read_forever(), name="kitty-auth live-sync reader")

    async def receive(self) -> dict[str, Any]:
        """The next message (a JSON object). Raises the error that ended the connection."""
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise LiveSyncClosedError()
        if self._reader is None:
            raise LiveSyncClosedError("The live-sync connection is not open.")
        item = await self._inbox.get()
        if isinstance(item, _Closed):
            self._inbox.put_nowait(item)  # wake any other waiting receiver too
            raise LiveSyncClosedError()
        if isinstance(item, _Failure):
            self._failure = item.error
            self._inbox.put_nowait(item)
            raise item.error
        self._room.release()
        return item

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON object on the current connection (not queued across reconnects)."""
        if self._closed or self._reader is None:
            raise LiveSyncClosedError()
        if self._conn is None:
            raise ConnectionLostError("The live-sync connection is being re-established; try again.")
        await self._conn.send(json.dumps(message))

    async def close(self) -> None:
        """Stop reading and reconnecting, close the socket. Idempotent; leaves no task behind."""
        if self._closed:
            return
        self._closed = True
        reader, self._reader = self._reader, None
        try:
            if reader is not None and not reader.done():
                reader.cancel()
                await asyncio.wait({reader})  # never raises the reader's own CancelledError
        finally:
            conn, self._conn = self._conn, None
            if conn is not None:
                await conn.close()
            self._inbox.put_nowait(_CLOSED)

    # --------------------------------------------------------------------------- internals

    async def _connect_authenticated(self) -> LiveConnection:
        """Connect with a fresh ws token; a 401 handshake gets one new token and one retry."""
        for retry in (False, True):
            ticket = await self._tickets()
            try:
                conn = await self._connector.connect(ticket.url, ticket.ws_token)
            except HandshakeRejectedError as exc:
                if exc.status != 401:
                    raise
                if retry:
                    raise WebSocketAuthenticationError() from None
                log.info("WebSocket handshake denied with 401; retrying once with a new ws token")
                continue
            self.connections += 1
            return conn
        raise AssertionError("unreachable")

    async def _read_forever(self) -> None:
        try:
            attempts = 0
            while True:
                connected_at = self._monotonic()
                try:
                    await self._pump()
                except ConnectionLostError as exc:
                    log.info("live-sync connection lost (%s); reconnecting", type(exc).__name__)
                if self._conn is not None:
                    await self._conn.close()  # close() is idempotent: safe if cancelled here
                    self._conn = None
                if self._monotonic() - connected_at >= self._policy.stable_after:
                    attempts = 0
                attempts = await self._reconnect(attempts)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the caller through receive()
            if not isinstance(exc, AuthError):
                log.debug("live-sync reader failed with %s", type(exc).__name__)
                wrapped = ConnectionLostError()
                wrapped.__cause__ = exc
                exc = wrapped
            self._inbox.put_nowait(_Failure(exc))

    async def _pump(self) -> None:
        """Read until the connection is lost: answer pings, queue objects, skip the rest."""
        while True:
            assert self._conn is not None
            text = await self._conn.recv()
            try:
                message = json.loads(text)
            except (ValueError, RecursionError):  # RecursionError: deeply nested JSON, skipped like any non-object
                message = None
            if not isinstance(message, dict):
                log.debug("skipped a live-sync message that is not a JSON object (%d chars)", len(text))
                continue
            if message.get("type") == "ping":
                await self._conn.send(json.dumps({"type": "pong", "timestamp": message.get("timestamp")}))
                continue
            await self._room.acquire()
            self._inbox.put_nowait(message)

    async def _reconnect(self, attempts: int) -> int:
        """Reconnect with backoff; returns the attempt count to carry on with."""
        last: BaseException | None = None
        while attempts < self._policy.max_attempts:
            delay = self._policy.delay(attempts)
            attempts += 1
            log.info("reconnecting in %.2f s (attempt %d of %d)", delay, attempts, self._policy.max_attempts)
            await self._sleep(delay)
            try:
                self._conn = await self._connect_authenticated()
            except Exception as exc:
                if not _is_transient(exc):
                    raise
                log.info("reconnect attempt %d failed: %s", attempts, type(exc).__name__)
                last = exc
                continue
            log.info("live-sync connection re-established")
            return attempts
        raise ReconnectFailedError(attempts) from last
