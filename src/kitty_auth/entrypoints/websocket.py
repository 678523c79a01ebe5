"""The library face of live sync: WebSocketClient, a thin facade over the domain LiveSyncSession.

    async with WebSocketClient() as ws:      # or WebSocketClient(auth_client)
        async for message in ws:             # or: message = await ws.receive()
            if message["type"] == "snapshot":
                ...                          # a snapshot is a reset: it comes again after a reconnect

Behaviour (details in kitty_auth.domain.live_sync):
* each connection uses a ws token obtained just before it, for the server stored with the
  tokens, and connects to that same server's ``wss://.../ws/v1/events/``;
* a handshake denied with 401 gets one new ws token and one retry (the access token is refreshed
  first if the ws-token call itself answers 401); a second denial raises
  ``WebSocketAuthenticationError`` (a ``SessionExpiredError``);
* pings are answered in the background and never returned; messages that are not JSON objects
  are skipped (DEBUG record with their length only);
* a dropped connection is re-established with backoff and a new ws token, transparently to
  ``receive()``; after ``max_reconnect_attempts`` consecutive failures ``receive()`` raises
  ``ReconnectFailedError`` (a ``WebSocketError``);
* the first connection fails fast: no backoff besides the one 401 retry;
* ``close()`` (or leaving the ``async with``) stops reading and reconnecting and leaves no task;
  ``async for`` then ends, ``receive()`` raises ``LiveSyncClosedError``.
Every error raised derives from ``kitty_auth.AuthError`` (or is ``asyncio.CancelledError``).
"""

from __future__ import annotations

import asyncio
import dataclasses
from types import TracebackType
from typing import Any

from kitty_auth.container import build_container, is_container
from kitty_auth.domain.errors import WebSocketError
from kitty_auth.domain.live_sync import (
    LiveConnector,
    LiveSyncClosedError,
    LiveSyncSession,
    LiveTicket,
    ReconnectPolicy,
    events_url,
)
from kitty_auth.domain.model import same_server
from kitty_auth.entrypoints.library import AuthClient

__all__ = ["WebSocketClient"]


class WebSocketClient:
    """An authenticated live-sync connection that stays up.

    ``auth_client``: whose stored session to use (default: a new ``AuthClient()``, closed with
    this client). ``connector``: a LiveConnector (default: the container's websockets one).
    ``reconnect_policy`` / ``max_reconnect_attempts``: backoff between reconnect attempts.
    ``max_pending``: messages buffered before the background reader stops reading.
    """

    def __init__(
        self,
        auth_client: AuthClient | None = None,
        *,
        connector: LiveConnector | None = None,
        reconnect_policy: ReconnectPolicy | None = None,
        max_reconnect_attempts: int | None = None,
        max_pending: int = 1000,
    ) -> None:
        self._owns_auth = auth_client is None
        self._auth = auth_client if auth_client is not None else AuthClient()
        self._connector = connector
        policy = reconnect_policy or ReconnectPolicy()
        if max_reconnect_attempts is not None:
            policy = dataclasses.replace(policy, max_attempts=max_reconnect_attempts)
        self._policy = policy
        self._max_pending = max_pending
        self._session: LiveSyncSession | None = None
        self._server_url: str | None = None
        self._closed = False

    # --------------------------------------------------------------------------- lifecycle

    async def connect(self) -> None:
        """Open the connection (what ``async with`` does)."""
        if self._session is not None or self._closed:
            raise WebSocketError("This WebSocketClient was already used; create a new one.")
        self._session = LiveSyncSession(
            connector=self._connector or self._default_connector(),
            tickets=self._ticket,
            policy=self._policy,
            max_pending=self._max_pending,
        )
        try:
            await self._session.open()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Close the connection and stop reconnecting. Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            if self._owns_auth:
                await asyncio.to_thread(self._auth.close)

    async def __aenter__(self) -> WebSocketClient:
        await self.connect()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    # --------------------------------------------------------------------------- messages

    async def receive(self) -> dict[str, Any]:
        """The next message from the server as a dict (pings excluded)."""
        if self._session is None:
            raise LiveSyncClosedError("The live-sync connection is not open; use `async with WebSocketClient()`.")
        return await self._session.receive()

    async def send(self, message: dict[str, Any]) -> None:
        """Send one JSON object on the current connection."""
        if self._session is None:
            raise LiveSyncClosedError("The live-sync connection is not open; use `async with WebSocketClient()`.")
        await self._session.send(message)

    def __aiter__(self) -> WebSocketClient:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._session is None or self._session.closed:
            raise StopAsyncIteration
        try:
            return await self.receive()
        except LiveSyncClosedError:
            raise StopAsyncIteration from None

    @property
    def connections(self) -> int:
        """How many connections were opened so far (1 + successful reconnects)."""
        return self._session.connections if self._session is not None else 0

    # --------------------------------------------------------------------------- wiring

    def _default_connector(self) -> LiveConnector:
        container = getattr(self._auth, "_container", None)
        if not is_container(container):
            container = build_container()
        return container.websocket_connector()

    async def _ticket(self) -> LiveTicket:
        return await asyncio.to_thread(self._ticket_sync)

    def _ticket_sync(self) -> LiveTicket:
        """A ws token and the events URL of the server that issued it (the stored one)."""
        server_url = self._auth.token_server_url()  # SPEC_KITTY_SAAS_TOKEN's server when it is set
        if self._server_url is None:
            self._server_url = server_url
        elif not same_server(server_url, self._server_url):
            # Another login switched servers: never send this session's tokens elsewhere.
            raise WebSocketError(
                "The stored session now belongs to another server; open a new live-sync connection."
            )
        url = events_url(server_url)  # https only, checked before any traffic
        ws_token = self._auth.obtain_ws_token().ws_token
        if not same_server(self._auth.token_server_url(), server_url):
            raise WebSocketError(
                "The stored session now belongs to another server; open a new live-sync connection."
            )
        return LiveTicket(url=url, ws_token=ws_token)
