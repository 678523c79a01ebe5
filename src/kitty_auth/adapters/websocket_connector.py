"""The LiveConnector over the `websockets` asyncio client: our TLS trust, token in a header, no leaks.

What this adapter guarantees
----------------------------
* Only ``wss://`` URLs without user info, query or fragment are dialled; the ws token travels
  only in the ``Authorization: Bearer`` handshake header, never in the URL, and must be
  visible ASCII (so it can never inject a header line).
* TLS trust is :func:`kitty_auth.adapters.tls_trust.build_ssl_context` (OS trust store plus
  ``$SSL_CERT_FILE``), built on first use and reused.
* Redirects are never followed (websockets follows same-origin ones with the Authorization
  header by default): a 3xx is a :class:`HandshakeRejectedError` like any other status.
* Opening (TCP + TLS + handshake) is bounded by ``open_timeout``; websockets' own keepalive
  pings (protocol level, independent of the server's JSON pings) detect a dead peer.
* Errors: only domain errors leave this module, raised ``from None``.

Logging (websockets 13-17, read from ``websockets/client.py`` and ``protocol.py``)
---------------------------------------------------------------------------------
With DEBUG enabled, ``ClientProtocol.send_request`` logs every handshake request header as
``"> %s: %s"`` -- including ``Authorization: Bearer <ws token>`` -- response headers as
``"< %s: %s"``, and every frame as ``"> %s"`` / ``"< %s"`` (the first ~75 bytes of its payload).
All of it goes to the logger passed as ``logger=`` (default ``websockets.client``). We pass
``websockets.client`` with :class:`_WebsocketsRedactingFilter` attached: header values are kept
only for an allowlist of harmless headers, frames keep their type and length but lose their
payload, and any ``Bearer <value>`` left in a message is masked as a last line of defence.
Our own logger ``kitty_auth.websocket`` logs URLs (which carry no secret), event names and
exception class names only.

This module imports websockets; only the container imports it, on first use.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as _websockets_connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)
from websockets.frames import Frame

from kitty_auth.adapters.tls_trust import build_ssl_context, is_cert_verification_failure
from kitty_auth.adapters.token_syntax import is_token
from kitty_auth.domain.errors import InvalidServerUrlError, MalformedResponseError, TLSVerificationError
from kitty_auth.domain.live_sync import ConnectionLostError, HandshakeRejectedError

logger = logging.getLogger("kitty_auth.websocket")

WIRE_LOGGER_NAME: Final = "websockets.client"

_BEARER_RE: Final = re.compile(r"(?i)(bearer)\s+[^\s'\"]+")

# Header values that are safe (and useful) to see in a DEBUG log.
_SHOWN_HEADERS: Final = frozenset({
    "host", "upgrade", "connection", "sec-websocket-version", "sec-websocket-extensions",
    "sec-websocket-protocol", "sec-websocket-accept", "user-agent", "server", "date",
    "content-type", "content-length",
})  # fmt: skip


# --------------------------------------------------------------------------- logging hygiene


class _WebsocketsRedactingFilter(logging.Filter):
    """Rewrite websockets' handshake and frame records so no header value or payload is logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        template = record.msg if isinstance(record.msg, str) else ""
        if template in ("> %s: %s", "< %s: %s") and len(args) == 2:
            name = str(args[0])
            value = str(args[1]) if name.lower() in _SHOWN_HEADERS else "<redacted>"
            text = f"{template[0]} {name}: {value}"
        elif template in ("> %s", "< %s") and len(args) == 1 and isinstance(args[0], Frame):
            frame = args[0]
            text = f"{template[0]} {frame.opcode.name} [{len(frame.data)} bytes]"
        else:
            try:
                text = record.getMessage()
            except Exception:  # noqa: BLE001 - a broken record: keep nothing of it
                text = "<unformattable record>"
        record.msg = _BEARER_RE.sub(r"\1 <redacted>", text)
        record.args = None
        return True


_FILTER: Final = _WebsocketsRedactingFilter()


def install_log_redaction() -> logging.Logger:
    """Attach the redacting filter to the websockets client logger (idempotent); return it."""
    wire = logging.getLogger(WIRE_LOGGER_NAME)
    if not any(isinstance(f, _WebsocketsRedactingFilter) for f in wire.filters):
        wire.addFilter(_FILTER)
    return wire


_WIRE_LOGGER: Final = install_log_redaction()


# --------------------------------------------------------------------------- the connector


class _connect_without_redirects(_websockets_connect):  # noqa: N801 - mirrors websockets' name
    """websockets' connect, refusing to follow redirects (a 3xx surfaces as InvalidStatus)."""

    def process_redirect(self, exc: Exception) -> Exception | str:
        return exc


def _check_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidServerUrlError("The live-sync URL is not a valid URL.") from None
    if parts.scheme != "wss" or not parts.hostname:
        raise InvalidServerUrlError("HTTPS is required: the live-sync URL must start with wss://.")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise InvalidServerUrlError("The live-sync URL must not contain user info, a query or a fragment.")
    return url


class WebsocketsLiveConnection:
    """One open WebSocket (a LiveConnection)."""

    def __init__(self, ws: ClientConnection) -> None:
        self._ws = ws

    async def recv(self) -> str:
        try:
            data = await self._ws.recv()
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            raise ConnectionLostError(
                f"The live-sync connection was closed (code {code})." if code is not None
                else "The live-sync connection was lost."
            ) from None
        except (OSError, WebSocketException):
            raise ConnectionLostError() from None
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data).decode("utf-8", errors="replace")
        return data

    async def send(self, text: str) -> None:
        try:
            await self._ws.send(text)
        except (ConnectionClosed, OSError, WebSocketException):
            raise ConnectionLostError() from None

    async def close(self) -> None:
        try:
            await self._ws.close()
        except Exception:  # noqa: BLE001 - closing is best effort; the transport is gone anyway
            logger.debug("closing the live-sync connection failed; ignored")


class WebsocketsLiveConnector:
    """LiveConnector over ``websockets.asyncio.client``."""

    def __init__(
        self,
        *,
        ssl_context_factory: Callable[[], ssl.SSLContext] = build_ssl_context,
        open_timeout: float = 10.0,
        close_timeout: float = 5.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_size: int = 4 * 2**20,
        user_agent: str = "kitty-auth/0.1",
    ) -> None:
        self._ssl_context_factory = ssl_context_factory
        self._ssl_context: ssl.SSLContext | None = None
        self._options: dict[str, Any] = {
            "open_timeout": open_timeout,
            "close_timeout": close_timeout,
            "ping_interval": ping_interval,
            "ping_timeout": ping_timeout,
            "max_size": max_size,
            "user_agent_header": user_agent,
        }

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            self._ssl_context = self._ssl_context_factory()
        return self._ssl_context

    async def connect(self, url: str, ws_token: str) -> WebsocketsLiveConnection:
        _check_url(url)
        if not is_token(ws_token):
            # Never echo the value: it is a credential, however malformed. Not a lost
            # connection: retrying with the same answer from the server would not help.
            raise MalformedResponseError()
        try:
            ws = await _connect_without_redirects(
                url,
                additional_headers={"Authorization": f"Bearer {ws_token}"},
                ssl=self._ssl(),
                logger=_WIRE_LOGGER,
                **self._options,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            logger.debug("WebSocket handshake to %s answered HTTP %d", url, status)
            raise HandshakeRejectedError(status) from None
        except InvalidURI:
            raise InvalidServerUrlError("The live-sync URL is not a valid wss:// URL.") from None
        except TimeoutError:
            logger.debug("WebSocket handshake to %s timed out", url)
            raise ConnectionLostError("Opening the live-sync connection timed out.") from None
        except (OSError, InvalidHandshake, WebSocketException) as exc:
            if is_cert_verification_failure(exc):
                raise TLSVerificationError() from None
            logger.debug("WebSocket connection to %s failed: %s", url, type(exc).__name__)
            raise ConnectionLostError("Cannot open the live-sync connection. Check your connection.") from None
        logger.debug("WebSocket connected to %s", url)
        return WebsocketsLiveConnection(ws)
