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

import logging
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Annotated, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError

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
from kitty_auth.domain.model import WsToken, normalize_server_url, utc
from kitty_auth.domain.ports import IssuedTokens

try:  # truststore raises ImportError on platforms/implementations it cannot support
    import truststore
except ImportError:  # pragma: no cover - exercised by monkeypatching in tests
    truststore = None  # type: ignore[assignment]

logger = logging.getLogger("kitty_auth.http")

TOKEN_PATH: Final = "/api/v1/token/"
REFRESH_PATH: Final = "/api/v1/token/refresh/"
WS_TOKEN_PATH: Final = "/api/v1/ws-token/"

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=5.0, write=5.0, pool=5.0)
DEFAULT_TOTAL_TIMEOUT: Final = 8.0

REDIRECT_HINT: Final = "; the server redirected the request, check the server URL"
LOGIN_AGAIN_HINT: Final = "; try `spec-kitty auth login --force`"
MISSING_FIELDS_HINT: Final = "; the server says the username or password is missing"
CHECK_URL_HINT: Final = "; check the server URL"

# A token we send in a header or accept from the server: printable ASCII, no spaces.
_TOKEN_PATTERN: Final = r"^[\x21-\x7e]+$"
_TOKEN_RE: Final = re.compile(_TOKEN_PATTERN)

# A header value we send: printable ASCII (spaces allowed, as in "Bearer <token>").
_HEADER_VALUE_RE: Final = re.compile(r"^[\x20-\x7e]+$")

Token = Annotated[StrictStr, Field(min_length=1, max_length=16_384, pattern=_TOKEN_PATTERN)]


# --------------------------------------------------------------------------- response models


class TokenPairResponse(BaseModel):
    """200 body of /token/ and /token/refresh/. Extra fields are ignored."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    access: Token
    refresh: Token


class WsTokenResponse(BaseModel):
    """200 body of /ws-token/."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ws_token: Token
    expires_at: Annotated[AwareDatetime, Field(strict=True)]
    expires_in: Annotated[StrictInt, Field(ge=0)]


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

Operation = Literal["obtain", "refresh", "ws_token"]
_M = TypeVar("_M", bound=BaseModel)


class _BodyTooLarge(Exception):
    pass


class _DeadlineExceeded(Exception):
    pass


@dataclass(frozen=True)
class _Exchange:
    """One request as the worker thread sends it."""

    method: str
    url: str
    path: str  # what the logs show: never the query (there is none) or the host's user info
    json: object
    form: Mapping[str, str] | None
    headers: Mapping[str, str] | None
    started: float
    deadline: float
    body_for_any_status: bool


def _is_cert_verification_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if "CERTIFICATE_VERIFY_FAILED" in str(current):
            return True
        current = current.__cause__ or current.__context__
    return False


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
    ) -> None:
        self._transport = transport
        self._timeout = timeout or DEFAULT_TIMEOUT
        self._max_body_bytes = max_body_bytes
        self._user_agent = user_agent
        self._total_timeout = total_timeout
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

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
        parsed = self._parse(TokenPairResponse, body)
        return IssuedTokens(access=parsed.access, refresh=parsed.refresh)

    def refresh(self, server_url: str, refresh_token: str) -> IssuedTokens:
        base = normalize_server_url(server_url)
        status, body = self._post(base, REFRESH_PATH, {"refresh": refresh_token})
        self._check_status("refresh", status)
        parsed = self._parse(TokenPairResponse, body)
        return IssuedTokens(access=parsed.access, refresh=parsed.refresh)

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        base = normalize_server_url(server_url)
        if not isinstance(access_token, str) or not _TOKEN_RE.fullmatch(access_token):
            # Never hand h11 a header value it would reject (and quote in its error message):
            # a token we cannot send is one the server would not accept.
            raise TokenRejectedError()
        status, body = self._post(
            base, WS_TOKEN_PATH, {}, headers={"Authorization": f"Bearer {access_token}"}
        )
        self._check_status("ws_token", status)
        parsed = self._parse(WsTokenResponse, body)
        expires_at: datetime = utc(parsed.expires_at)
        return WsToken(ws_token=parsed.ws_token, expires_at=expires_at, expires_in=parsed.expires_in)

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
        """
        normalize_server_url(url)  # validation only: keeps the caller's exact path
        for value in (headers or {}).values():
            if not isinstance(value, str) or not _HEADER_VALUE_RE.fullmatch(value):
                raise TokenRejectedError()
        return self._send(
            method.upper(),
            url,
            form=form,
            json=json,
            headers=headers,
            deadline=self._total_timeout if deadline is None else deadline,
            body_for_any_status=True,
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
    ) -> tuple[int, bytes]:
        """Send one request within ``deadline`` seconds; return (status, body)."""
        client = self._get_client()
        started = time.monotonic()
        outcome: dict[str, Any] = {}
        done = threading.Event()
        path = urlsplit(url).path
        exchange = _Exchange(method, url, path, json, form, headers, started, deadline, body_for_any_status)

        def work() -> None:
            try:
                outcome["value"] = self._send_now(client, exchange)
            except BaseException as exc:  # handed to the caller's thread below
                outcome["error"] = exc
            finally:
                done.set()
                if outcome.get("abandoned"):
                    client.close()

        threading.Thread(target=work, name="kitty-auth-http", daemon=True).start()
        if not done.wait(deadline):
            outcome["abandoned"] = True
            with self._lock:  # the next request opens a new connection
                if self._client is client:
                    self._client = None
            self._log(method, path, 0, started, note="total deadline exceeded")
            raise NetworkError()
        if "error" in outcome:
            raise outcome["error"]
        return outcome["value"]  # type: ignore[no-any-return]

    def _send_now(self, client: httpx.Client, ex: _Exchange) -> tuple[int, bytes]:
        status = 0
        method, path, started = ex.method, ex.path, ex.started
        try:
            with client.stream(
                method, ex.url, json=ex.json, data=ex.form, headers=ex.headers
            ) as response:
                status = response.status_code
                wanted = ex.body_for_any_status or status == 200
                body = self._read_capped(response, started, ex.deadline) if wanted else b""
        except (_BodyTooLarge, _DeadlineExceeded) as exc:
            self._log(method, path, status, started, note=type(exc).__name__)
            if isinstance(exc, _BodyTooLarge):
                raise MalformedResponseError() from None
            raise NetworkError() from None
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
            raise NetworkError() from None
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
            # The caller is already released by the deadline in _post; this stops an abandoned
            # worker from reading a trickled body for hours.
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
