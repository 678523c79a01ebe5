"""The TokenGateway over HTTPS with httpx: one client per gateway, our own TLS trust, strict parsing.

What this adapter guarantees
----------------------------
* Every ``server_url`` goes through :func:`normalize_server_url` before anything else, so a
  non-https URL, or one carrying ``user:password@``, a query or a fragment, never causes traffic.
* One ``httpx.Client`` per gateway instance, created lazily on the first request and reused, so
  the requests of one AuthClient share a connection and a TLS session. Redirects are never
  followed (a 3xx is an error), cookies are dropped after every exchange (a Django session
  cookie sent back would switch DRF to CSRF-checked session auth), ``Accept-Encoding: identity``
  keeps the body cap a cap on real bytes.
* Trust: :func:`build_ssl_context` -- the OS trust store through truststore, plus
  ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` when set; httpx's certifi default is never used.
  Environment proxies (``HTTPS_PROXY``...) are still honoured (``trust_env`` stays on); the proxy
  transports httpx builds receive the same SSL context, so trust does not change behind a proxy.
* Time: connect/read/write/pool timeouts of 5 s each; a server that accepts and never answers
  (no TLS handshake: bounded by the connect timeout; no response: by the read timeout) fails in
  about 5 s. The whole request (DNS, connect, TLS, headers, body) is also bounded by a total
  deadline (``total_timeout``, 8 s): it runs in a daemon worker thread, and a caller whose
  deadline passes gets NetworkError at once while the abandoned worker and its connection are
  dropped. So a server trickling header bytes, or a DNS lookup that hangs (httpx has no timeout
  for ``getaddrinfo``), cannot hold the credentials lock or a login for longer.
* Bodies are streamed and abandoned once they exceed ``max_body_bytes``; only 200 bodies are read.
* Errors: only domain errors leave this module, raised ``from None`` so httpx exceptions (whose
  text may contain URLs or, see below, header values) never appear in a user's traceback.

What httpx / httpcore log (httpx 0.28.1, httpcore 1.0.9, h11 0.16, read from the installed source)
-----------------------------------------------------------------------------------------------
* ``httpx`` (``httpx/_client.py``) logs one INFO record per request:
  ``HTTP Request: POST https://host/api/v1/token/ "HTTP/1.1 200 OK"`` -- method, URL, status only;
  never headers or bodies. Our URLs cannot carry credentials (userinfo and queries are rejected
  by ``normalize_server_url``), so this record is left alone.
* ``httpcore.*`` (``httpcore/_trace.py``) logs every trace event at DEBUG as
  ``"<event> key=repr(value) ..."``, pre-formatted. Request objects repr as ``<Request [b'POST']>``
  (no headers, no body), so the ``Authorization`` header and the JSON body with the password are
  not logged directly. But:

  - ``receive_response_headers.complete`` logs ``return_value=(b'HTTP/1.1', 200, b'OK', [headers])``
    -- every **response header value**, e.g. ``Set-Cookie`` session ids or anything a proxy or
    server chooses to echo;
  - ``*.failed`` logs ``exception=<repr>``; h11 validates outgoing headers and raises
    ``LocalProtocolError("Illegal header value b'Bearer <token>...'")`` for a value with a CR/LF or
    control character, so a damaged access token would be logged **with its value** (and the same
    text is the message of the ``httpx.LocalProtocolError`` that reaches the caller).

  Therefore :class:`_HttpcoreRedactingFilter` is attached to every httpcore logger (filters on a
  parent do not apply to records of its children, so each child logger gets one): it keeps the
  event name (and, for ``.failed``, the exception class name) and drops every value. In addition
  the Authorization value is checked before sending (a token that is not a plain visible-ASCII
  string is never put in a header) and tokens in responses must be visible ASCII.
* ``hpack`` (used only for HTTP/2) logs header values at DEBUG; HTTP/2 is not enabled here, and
  the same filter is attached to the ``hpack`` loggers anyway.
* Our own logger ``kitty_auth.http`` logs method, path, status and elapsed milliseconds only.

This module imports httpx, truststore and pydantic; it is meant to be imported only on network
paths (the container decides), never by ``auth status``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictFloat, StrictInt, StrictStr, ValidationError

from kitty_auth.domain.errors import (
    InvalidCredentialsError,
    InvalidServerUrlError,
    MalformedResponseError,
    NetworkError,
    RateLimitedError,
    ServerUnavailableError,
    TLSVerificationError,
    TokenRejectedError,
    UnexpectedStatusError,
)
from kitty_auth.adapters.token_syntax import MAX_TOKEN_LENGTH, TOKEN_PATTERN, is_header_value, is_token
from kitty_auth.domain.model import MAX_LIFETIME, IssuedTokens, WsToken, normalize_server_url, utc

try:  # truststore raises ImportError on platforms/implementations it cannot support
    import truststore
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    truststore = None  # type: ignore[assignment]

logger = logging.getLogger("kitty_auth.http")

TOKEN_PATH: Final = "/api/v1/token/"
REFRESH_PATH: Final = "/api/v1/token/refresh/"
BLACKLIST_PATH: Final = "/api/v1/token/blacklist/"
WS_TOKEN_PATH: Final = "/api/v1/ws-token/"

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=5.0, write=5.0, pool=5.0)
DEFAULT_TOTAL_TIMEOUT: Final = 8.0
BLACKLIST_TIMEOUT: Final = 5.0  # logout: best effort, never long
# How long a refresh whose caller gave up at the deadline is still listened to: the server may
# already have rotated the token, and its late answer is then the only copy of the new pair.
DEFAULT_LATE_ANSWER_WINDOW: Final = 30.0

REDIRECT_HINT: Final = "; the server redirected the request, check the server URL"
LOGIN_AGAIN_HINT: Final = "; try `spec-kitty auth login --force`"
MISSING_FIELDS_HINT: Final = "; the server says the username or password is missing"
CHECK_URL_HINT: Final = "; check the server URL"

Token = Annotated[StrictStr, Field(min_length=1, max_length=MAX_TOKEN_LENGTH, pattern=TOKEN_PATTERN)]
Seconds = StrictInt | StrictFloat  # the model judges the value (lifetime_from_seconds)
Slug = Annotated[StrictStr, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
SessionId = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")]


# --------------------------------------------------------------------------- response models


class TokenPairResponse(BaseModel):
    """200 body of /token/ and /token/refresh/. Extra fields are ignored.

    The lifetime fields matter only for opaque tokens (a JWT's lifetime comes from its claims);
    ``access_lifetime`` is another name for ``expires_in``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    access: Token
    refresh: Token
    team_slug: Slug | None = None
    session_id: SessionId | None = None
    expires_in: Seconds | None = None
    access_lifetime: Seconds | None = None
    refresh_token_expires_in: Seconds | None = None
    refresh_token_expires_at: Annotated[AwareDatetime, Field(strict=True)] | None = None

    def issued(self) -> IssuedTokens:
        refresh_expires_at = None
        if self.refresh_token_expires_at is not None:
            try:  # e.g. 0001-01-01T00:00:00+01:00 has no UTC equivalent
                refresh_expires_at = utc(self.refresh_token_expires_at)
            except (OverflowError, ValueError):
                raise MalformedResponseError() from None
        return IssuedTokens(
            access=self.access,
            refresh=self.refresh,
            expires_in=self.expires_in if self.expires_in is not None else self.access_lifetime,
            refresh_expires_in=self.refresh_token_expires_in,
            refresh_expires_at=refresh_expires_at,
            team_slug=self.team_slug,
            session_id=self.session_id,
        )


class WsTokenResponse(BaseModel):
    """200 body of /ws-token/: ``ws_token`` plus ``expires_at`` and/or ``expires_in``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ws_token: Token
    expires_at: Annotated[AwareDatetime, Field(strict=True)] | None = None
    expires_in: Annotated[StrictInt, Field(ge=0, le=int(MAX_LIFETIME.total_seconds()))] | None = None
    ws_url: StrictStr | None = None


# --------------------------------------------------------------------------- TLS trust


def _system_bundle_for_linux() -> str | None:
    """The distribution CA bundle, ignoring $SSL_CERT_FILE (which replaces it in OpenSSL)."""
    paths = ssl.get_default_verify_paths()
    candidates = [
        paths.openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
        "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",  # Fedora, RHEL
        "/etc/pki/tls/cert.pem",
        "/etc/ssl/cert.pem",
        "/etc/ssl/ca-bundle.pem",  # SUSE
    ]
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            return candidate
    return None


def _load_extra_trust(ctx: ssl.SSLContext, *, add_system_bundle: bool) -> None:
    cafile = os.environ.get("SSL_CERT_FILE")
    capath = os.environ.get("SSL_CERT_DIR")
    try:
        if cafile and os.path.isfile(cafile):
            if add_system_bundle:
                # On Linux, OpenSSL treats $SSL_CERT_FILE as a *replacement* for the system
                # bundle when truststore calls set_default_verify_paths(); load the system
                # bundle explicitly so the env var only adds trust.
                bundle = _system_bundle_for_linux()
                if bundle and os.path.realpath(bundle) != os.path.realpath(cafile):
                    ctx.load_verify_locations(cafile=bundle)
            ctx.load_verify_locations(cafile=cafile)
        elif cafile:
            logger.debug("SSL_CERT_FILE is set but is not a file; ignored")
        if capath and os.path.isdir(capath):
            # Note: on macOS/Windows truststore only sees CAs loaded eagerly (cafile), not
            # lazily-loaded capath directories; SSL_CERT_DIR is effective on Linux.
            ctx.load_verify_locations(capath=capath)
    except (ssl.SSLError, OSError, ValueError):
        raise TLSVerificationError(
            "The CA bundle named by SSL_CERT_FILE or SSL_CERT_DIR could not be loaded; "
            "check that it is a PEM file of CA certificates."
        ) from None


def build_ssl_context() -> ssl.SSLContext:
    """The client SSL context: OS trust store (truststore) plus $SSL_CERT_FILE / $SSL_CERT_DIR.

    Falls back to ``ssl.create_default_context()`` (OpenSSL's default paths) plus the same
    variables when truststore cannot be used on this platform. Hostname checking and
    certificate verification are always on; TLS 1.2 is the minimum.
    """
    ctx: ssl.SSLContext | None = None
    if truststore is not None:
        try:
            ctx = truststore.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        except (OSError, RuntimeError, ValueError, NotImplementedError):  # pragma: no cover
            ctx = None
    if ctx is None:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        _load_extra_trust(ctx, add_system_bundle=False)
    else:
        _load_extra_trust(ctx, add_system_bundle=sys.platform.startswith("linux"))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


# --------------------------------------------------------------------------- logging hygiene

_HTTPCORE_LOGGERS: Final = (
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "hpack",
    "hpack.hpack",
    "hpack.table",
)
_FAILED_EXC_RE: Final = re.compile(r"exception=([A-Za-z_][A-Za-z0-9_.]*)")


class _HttpcoreRedactingFilter(logging.Filter):
    """Reduce httpcore/hpack records to the event name: no header, value or exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record: keep nothing of it
            text = "<unformattable record>"
        event = text.split(" ", 1)[0] if text else ""
        if record.name.startswith("hpack"):
            event = "hpack event"
        elif event.endswith(".failed"):
            match = _FAILED_EXC_RE.search(text)
            if match:
                event = f"{event} exception={match.group(1)}"
        record.msg = event
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return True


_FILTER: Final = _HttpcoreRedactingFilter()


def install_log_redaction() -> None:
    """Attach the redacting filter to the httpcore/hpack loggers (idempotent)."""
    for name in _HTTPCORE_LOGGERS:
        log = logging.getLogger(name)
        if not any(isinstance(f, _HttpcoreRedactingFilter) for f in log.filters):
            log.addFilter(_FILTER)


install_log_redaction()


# --------------------------------------------------------------------------- the gateway

Operation = Literal["obtain", "refresh", "ws_token", "blacklist"]
_M = TypeVar("_M", bound=BaseModel)
LateAnswer = Callable[[int, bytes], None]


class _BodyTooLarge(Exception):
    pass


class _DeadlineExceeded(Exception):
    pass


@dataclass(frozen=True)
class _Exchange:
    """One request as the worker thread sends it."""

    method: str
    url: str
    path: str  # what the logs show: never the host's user info (there is none) or a query
    json: object
    form: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    started: float
    deadline: float  # how long the worker may read (the late-answer window for a refresh)
    body_for_any_status: bool


class _Abandoned(Exception):
    """Raised inside httpcore (trace hook) to stop a request its caller gave up on before it is sent."""


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_cert_verification_failure(exc: BaseException) -> bool:
    return any(
        isinstance(c, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(c)
        for c in _causes(exc)
    )


def _network_cause(exc: BaseException) -> str:
    """Why a request failed, in a few words; never the exception's text (it may hold values)."""
    chain = list(_causes(exc))
    if any(isinstance(c, socket.gaierror) for c in chain) or any(
        isinstance(c, httpx.ConnectError) and ("Name or service not known" in str(c) or "nodename" in str(c)
                                               or "getaddrinfo" in str(c) or "Errno -" in str(c))
        for c in chain
    ):
        return "unknown host"
    if any(isinstance(c, ConnectionRefusedError) or "Connection refused" in str(c) for c in chain):
        return "connection refused"
    if any(isinstance(c, httpx.TimeoutException | TimeoutError | socket.timeout) for c in chain):
        return "timed out"
    if any(isinstance(c, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError
                      | ConnectionResetError | BrokenPipeError) for c in chain):
        return "connection dropped"
    return "connection failed"


def _host_of(url: str) -> str:
    """``host`` or ``host:port`` of a URL we already validated (no user info)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{parts.port}" if parts.port else host


class _Flight:
    """One request in its worker thread: its outcome, its sockets, and whether its caller gave up.

    The caller waits ``deadline`` seconds. If the answer is not there by then, the caller gets
    NetworkError and the flight is *abandoned*: without a ``late`` handler its connection is
    shut down at once (the worker wakes and ends); with one (a refresh the server may already
    have carried out) the worker keeps listening until the late-answer window ends, then hands
    the answer to ``late``. Either way the worker thread ends, and the httpx client it used is
    closed, within that window.
    """

    def __init__(self, client: httpx.Client, late: LateAnswer | None) -> None:
        self.client = client
        self.late = late
        self.done = threading.Event()
        self.value: tuple[int, bytes] | None = None
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._abandoned = False
        self._sockets: list[socket.socket] = []
        self._watchdog: threading.Timer | None = None
        self.sent_at: float | None = None  # the request was fully sent (monotonic)
        self.answered = False  # response headers arrived

    def wait(self, deadline: float, started: float, read_timeout: float | None) -> bool:
        """Wait for the outcome; False once ``deadline`` passed, or ``read_timeout`` after sending
        without an answer (what the read timeout would have done, for a request whose worker
        reads longer: a refresh listening for a late answer)."""
        while True:
            now = time.monotonic()
            left = started + deadline - now
            if read_timeout is not None and self.sent_at is not None and not self.answered:
                left = min(left, self.sent_at + read_timeout - now)
            if left <= 0:
                return self.done.is_set()
            if self.done.wait(min(left, 0.1)):
                return True

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's ``trace`` extension, called in the worker at each step of the request."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            # TLS wraps (and detaches) the TCP socket: the TLS socket is the one to shut down.
            stream = info.get("return_value")
            sock = stream.get_extra_info("socket") if stream is not None else None
            if isinstance(sock, socket.socket):
                with self._lock:
                    self._sockets.append(sock)
        elif event == "http11.send_request_headers.started" and self._abandoned:
            raise _Abandoned()  # e.g. a DNS lookup returned after the deadline: send nothing
        elif event == "http11.send_request_body.complete":
            self.sent_at = time.monotonic()
        elif event == "http11.receive_response_headers.complete":
            self.answered = True

    def finish(self, value: tuple[int, bytes] | None, error: BaseException | None) -> bool:
        """Record the outcome (worker thread); True when the caller had already given up."""
        with self._lock:
            self.value, self.error = value, error
            self.done.set()
            abandoned = self._abandoned
            watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            watchdog.cancel()
        return abandoned

    def abandon(self, window: float) -> bool:
        """The caller's deadline passed (caller thread); False if the answer came just now."""
        with self._lock:
            if self.done.is_set():
                return False
            self._abandoned = True
            if self.late is not None and window > 0:
                self._watchdog = threading.Timer(window, self.interrupt)
                self._watchdog.daemon = True
                self._watchdog.name = "kitty-auth-http-watchdog"
                self._watchdog.start()
                return True
        self.interrupt()
        return True

    def interrupt(self) -> None:
        """Wake the worker now: shut its socket down (a close alone does not wake a blocked read)."""
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.client.close()


class HttpxTokenGateway:
    """TokenGateway over httpx. Thread-safe; call :meth:`close` (or use ``with``) when done."""

    def __init__(
        self,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout | None = None,
        max_body_bytes: int = 1_000_000,
        user_agent: str = "kitty-auth/0.1",
        total_timeout: float = DEFAULT_TOTAL_TIMEOUT,
        late_answer_window: float = DEFAULT_LATE_ANSWER_WINDOW,
    ) -> None:
        self._transport = transport
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._max_body_bytes = max_body_bytes
        self._user_agent = user_agent
        self._total_timeout = total_timeout
        self._late_window = late_answer_window
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()
        self._refreshing: dict[str, _Flight] = {}  # refresh token -> its request still in flight

    # -- lifecycle

    def _make_client(self) -> httpx.Client:
        install_log_redaction()
        common: dict[str, Any] = {
            "timeout": self._timeout,
            "follow_redirects": False,
            "headers": {
                "Accept": "application/json",
                "Accept-Encoding": "identity",
                "User-Agent": self._user_agent,
            },
        }
        if self._transport is not None:
            return httpx.Client(transport=self._transport, **common)
        return httpx.Client(verify=build_ssl_context(), trust_env=True, **common)

    def _get_client(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = self._make_client()
            return self._client

    def _detach(self, client: httpx.Client) -> None:
        """Stop handing ``client`` to new requests (it is being closed by an abandoned flight)."""
        with self._lock:
            if self._client is client:
                self._client = None

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def __enter__(self) -> HttpxTokenGateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the port

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        base = normalize_server_url(server_url)
        status, body = self._post(base, TOKEN_PATH, {"username": username, "password": password})
        self._check_status("obtain", status)
        return self._parse(TokenPairResponse, body).issued()

    def refresh(
        self, server_url: str, refresh_token: str, on_late: Callable[[IssuedTokens], None] | None = None
    ) -> IssuedTokens:
        """Rotate ``refresh_token``. See the port: ``on_late`` receives an answer that came too late.

        While an earlier refresh with the same token is still in flight in this process (its
        caller gave up), the token is not sent again -- the server may already have rotated it,
        and a second request could only be refused and cost the session: this call waits for
        the earlier answer instead.
        """
        base = normalize_server_url(server_url)

        def late(status: int, body: bytes) -> None:
            if on_late is None or status != 200:
                return
            try:
                issued = self._parse(TokenPairResponse, body).issued()
            except MalformedResponseError:
                return
            on_late(issued)

        status, body = self._send_once(
            refresh_token, "POST", f"{base}{REFRESH_PATH}", json={"refresh": refresh_token},
            deadline=self._total_timeout, body_for_any_status=False, late=late,
        )
        self._check_status("refresh", status)
        return self._parse(TokenPairResponse, body).issued()

    def blacklist(self, server_url: str, refresh_token: str, deadline: float = BLACKLIST_TIMEOUT) -> str:
        """Revoke a password session's refresh token (simplejwt's blacklist endpoint), within ``deadline`` s (5 s).

        Returns ``"revoked"`` (200), ``"absent"`` (404: the server has no blacklist endpoint) or
        ``"refused"`` (401: the token was already invalid). Raises like the other calls
        (NetworkError, ServerUnavailableError, UnexpectedStatusError...).
        """
        base = normalize_server_url(server_url)
        status, _ = self._send(
            "POST", f"{base}{BLACKLIST_PATH}", json={"refresh": refresh_token},
            deadline=min(deadline, BLACKLIST_TIMEOUT, self._total_timeout), body_for_any_status=False,
        )
        if status == 200:
            return "revoked"
        if status == 404:
            return "absent"
        if status == 401:
            return "refused"
        self._check_status("blacklist", status)
        raise UnexpectedStatusError(status)  # pragma: no cover - _check_status raised

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        base = normalize_server_url(server_url)
        if not is_token(access_token):
            # Never hand h11 a header value it would reject (and quote in its error message):
            # a token we cannot send is one the server would not accept.
            raise TokenRejectedError()
        status, body = self._post(
            base, WS_TOKEN_PATH, {}, headers={"Authorization": f"Bearer {access_token}"}
        )
        self._check_status("ws_token", status)
        parsed = self._parse(WsTokenResponse, body)
        received = datetime.now(UTC)
        expires_in = parsed.expires_in
        try:
            if parsed.expires_at is not None:
                expires_at: datetime = utc(parsed.expires_at)
                if expires_in is None:
                    expires_in = max(0, int((expires_at - received).total_seconds()))
            elif expires_in is not None:
                expires_at = received + timedelta(seconds=expires_in)
            else:
                raise MalformedResponseError()
        except (OverflowError, ValueError):
            # e.g. 0001-01-01T00:00:00+01:00: before the first representable UTC instant
            raise MalformedResponseError() from None
        return WsToken(
            ws_token=parsed.ws_token,
            expires_at=expires_at,
            expires_in=expires_in,
            ws_url=_checked_ws_url(parsed.ws_url, base),
        )

    # -- the shared request core (also used by the OAuth adapter)

    def request(
        self,
        method: str,
        url: str,
        *,
        form: Mapping[str, str] | None = None,
        json: object = None,
        headers: Mapping[str, str] | None = None,
        deadline: float | None = None,
        on_late: LateAnswer | None = None,
        key: str | None = None,
    ) -> tuple[int, bytes]:
        """One HTTPS request with this gateway's trust, timeouts, total deadline, body cap and logs.

        ``url`` must be an ``https://`` URL without user info, query or fragment (else
        InvalidServerUrlError, before any traffic). ``form`` is sent form-encoded, ``json`` as
        JSON (at most one of them). ``deadline`` (seconds, default the gateway's total timeout)
        bounds the whole exchange. Returns ``(status, body)``; the body is read for every status
        (capped: MalformedResponseError above ``max_body_bytes``) and redirects are returned,
        not followed. Raises NetworkError (no answer within the deadline, DNS, refused, reset),
        TLSVerificationError; a header value that is not printable ASCII (e.g. a damaged token)
        raises TokenRejectedError without sending anything.

        For a request the server may carry out although its answer comes too late (a refresh
        that rotates a token), what :meth:`refresh` does for password sessions: ``on_late``
        receives ``(status, body)`` of an answer that arrives after the caller gave up (within
        the late-answer window, from the worker thread); ``key`` (the refresh token) makes a
        second request with the same key, while the first is still in flight, wait for the
        first one's answer instead of being sent.
        """
        normalize_server_url(url)  # validation only: keeps the caller's exact path
        for value in (headers or {}).values():
            if not is_header_value(value):
                raise TokenRejectedError()
        return self._send_once(
            key,
            method.upper(),
            url,
            form=form,
            json=json,
            headers=headers,
            deadline=self._total_timeout if deadline is None else deadline,
            body_for_any_status=True,
            late=on_late,
        )

    # -- internals

    def _post(
        self,
        base: str,
        path: str,
        payload: dict[str, str],
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST JSON to one of the simplejwt endpoints; the body is read only for a 200."""
        return self._send(
            "POST", f"{base}{path}", json=payload, headers=headers,
            deadline=self._total_timeout, body_for_any_status=False,
        )

    def _send_once(
        self,
        key: str | None,
        method: str,
        url: str,
        **options: Any,
    ) -> tuple[int, bytes]:
        """:meth:`_send`, unless a request with the same ``key`` is still in flight: then its answer.

        The key is a refresh token. Once its caller gave up, the server may already have
        rotated it, and sending it again could only be refused and cost the session: the
        second caller waits (up to the total deadline) for the first request's outcome.
        """
        if key is not None:
            with self._lock:
                earlier = self._refreshing.get(key)
            if earlier is not None and not earlier.done.is_set():
                logger.debug("a refresh with this token is still in flight; waiting for its answer")
                if not earlier.done.wait(self._total_timeout):
                    raise NetworkError(f"{_host_of(url)}: no answer within {self._total_timeout:g} s")
                if earlier.error is not None:
                    raise earlier.error
                assert earlier.value is not None
                return earlier.value
        return self._send(method, url, key=key, **options)

    def _send(
        self,
        method: str,
        url: str,
        *,
        json: object = None,
        form: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        deadline: float,
        body_for_any_status: bool,
        late: LateAnswer | None = None,
        key: str | None = None,
    ) -> tuple[int, bytes]:
        """Send one request; return (status, body) within ``deadline`` seconds or raise NetworkError.

        ``late`` (with ``key``, the value that identifies the request: a refresh token) keeps an
        abandoned request listening for the late-answer window and hands its answer to ``late``.
        """
        client = self._get_client()
        flight = _Flight(client, late)
        started = time.monotonic()
        path = urlsplit(url).path
        listen = max(deadline, self._late_window) if late is not None else deadline
        exchange = _Exchange(method, url, path, json, form, headers, started, listen, body_for_any_status)
        if key is not None:
            with self._lock:
                self._refreshing[key] = flight

        def work() -> None:
            value: tuple[int, bytes] | None = None
            error: BaseException | None = None
            try:
                value = self._send_now(client, exchange, flight.trace)
            except BaseException as exc:  # handed to the caller's thread (or dropped if it left)
                error = exc
            abandoned = flight.finish(value, error)
            if key is not None:
                with self._lock:
                    if self._refreshing.get(key) is flight:
                        del self._refreshing[key]
            if abandoned:
                client.close()
                if late is not None and value is not None:
                    try:
                        late(*value)
                    except Exception as exc:  # noqa: BLE001 - nobody to raise to in this thread
                        logger.warning("handling a late answer failed (%s)", type(exc).__name__)

        threading.Thread(target=work, name="kitty-auth-http", daemon=True).start()
        read_timeout = client.timeout.read if late is not None else None
        if not flight.wait(deadline, started, read_timeout) and flight.abandon(
            listen - (time.monotonic() - started)
        ):
            self._detach(client)  # the next request opens a new connection
            self._log(method, path, 0, started, note="total deadline exceeded")
            waited = time.monotonic() - started
            cause = f"no answer within {deadline:g} s" if waited >= deadline else "timed out"
            raise NetworkError(f"{_host_of(url)}: {cause}")
        if flight.error is not None:
            raise flight.error
        assert flight.value is not None
        return flight.value

    def _send_now(
        self, client: httpx.Client, ex: _Exchange, trace: Callable[[str, dict[str, Any]], None]
    ) -> tuple[int, bytes]:
        status = 0
        method, path, started = ex.method, ex.path, ex.started
        # A request that may be answered late keeps reading until its window ends.
        timeout = client.timeout if ex.deadline <= self._total_timeout else httpx.Timeout(
            connect=client.timeout.connect, read=ex.deadline, write=client.timeout.write,
            pool=client.timeout.pool,
        )
        try:
            with client.stream(
                method, ex.url, json=ex.json, data=ex.form, headers=ex.headers,
                timeout=timeout, extensions={"trace": trace},
            ) as response:
                status = response.status_code
                wanted = ex.body_for_any_status or status == 200
                body = self._read_capped(response, started, ex.deadline) if wanted else b""
        except (_BodyTooLarge, _DeadlineExceeded, _Abandoned) as exc:
            self._log(method, path, status, started, note=type(exc).__name__)
            if isinstance(exc, _BodyTooLarge):
                raise MalformedResponseError() from None
            raise NetworkError(f"{_host_of(ex.url)}: timed out") from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            self._log(method, path, status, started, note="invalid URL")
            raise InvalidServerUrlError(
                "The server URL is not a valid URL; give an https:// URL."
            ) from None
        except httpx.TransportError as exc:
            if _is_cert_verification_failure(exc):
                self._log(method, path, status, started, note="TLS verification failed")
                raise TLSVerificationError() from None
            self._log(method, path, status, started, note=type(exc).__name__)
            raise NetworkError(f"{_host_of(ex.url)}: {_network_cause(exc)}") from None
        finally:
            client.cookies.clear()
        self._log(method, path, status, started)
        return status, body

    def _read_capped(self, response: httpx.Response, started: float, deadline: float) -> bytes:
        declared = response.headers.get("Content-Length")
        if declared is not None:
            try:
                if int(declared) > self._max_body_bytes:
                    raise _BodyTooLarge()
            except ValueError:
                pass  # h11 rejects bad Content-Length itself; be lenient here
        chunks: list[bytes] = []
        size = 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self._max_body_bytes:
                raise _BodyTooLarge()
            chunks.append(chunk)
            # The caller is already released by the deadline in _send, and an abandoned flight's
            # socket is shut down; this bounds a trickled body on a transport we cannot
            # interrupt (no socket seen: a reused connection or a custom transport).
            if time.monotonic() - started > deadline:
                raise _DeadlineExceeded()
        return b"".join(chunks)

    @staticmethod
    def _check_status(op: Operation, status: int) -> None:
        if status == 200:
            return
        if 300 <= status < 400:
            raise UnexpectedStatusError(status, REDIRECT_HINT)
        if status == 401:
            if op == "obtain":
                raise InvalidCredentialsError()
            raise TokenRejectedError()
        if status == 429:
            raise RateLimitedError(status)
        if 500 <= status < 600:
            raise ServerUnavailableError(status)
        if 400 <= status < 500:
            if op == "obtain":
                raise UnexpectedStatusError(
                    status, MISSING_FIELDS_HINT if status == 400 else CHECK_URL_HINT
                )
            raise UnexpectedStatusError(status, LOGIN_AGAIN_HINT)
        raise UnexpectedStatusError(status)

    @staticmethod
    def _parse(model: type[_M], body: bytes) -> _M:
        try:
            return model.model_validate_json(body)
        except (ValidationError, ValueError):
            # Never chain: a ValidationError's text quotes the input (which holds tokens).
            raise MalformedResponseError() from None

    @staticmethod
    def _log(method: str, path: str, status: int, started: float, note: str = "") -> None:
        if logger.isEnabledFor(logging.DEBUG):
            elapsed_ms = int((time.monotonic() - started) * 1000)
            logger.debug(
                "%s %s -> %s in %d ms%s",
                method,
                path,
                status or "no response",
                elapsed_ms,
                f" ({note})" if note else "",
            )


def _checked_ws_url(ws_url: str | None, base: str) -> str | None:
    """The ``ws_url`` a ws-token answer named, if it is safe to connect to; else None.

    Used only when it is ``wss://`` on the server URL's host and port (the stored session's
    server) and carries no user info, query or fragment: the ws token goes there in a header,
    so a URL elsewhere would hand it to another server. Anything else is ignored (DEBUG log,
    the default ``wss://<host>/ws/v1/events/`` is used): the ws token itself is still good.
    """
    if ws_url is None:
        return None
    try:
        parts = urlsplit(ws_url)
        server = urlsplit(base)
        same_origin = (
            parts.hostname is not None
            and parts.hostname == server.hostname
            and (parts.port or 443) == (server.port or 443)
        )
    except ValueError:
        same_origin = False
    if (
        not same_origin
        or parts.scheme.lower() != "wss"
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) > 126 for ch in ws_url)
    ):
        logger.debug("ignored the ws_url of the ws-token answer (not wss:// on the server's host and port)")
        return None
    return ws_url
