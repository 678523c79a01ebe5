"""The HTTPS request core both protocols share: TLS trust, timeouts and a total deadline, late answers, body cap, log redaction.

:class:`HttpsClient` sends each request, for the simplejwt gateway
(``simplejwt_gateway.HttpxTokenGateway``, a subclass) and the OAuth gateway alike; the protocols
decide paths, bodies and what a status means, this module decides how bytes travel.

What this core guarantees
-------------------------
* Every URL goes through :func:`normalize_server_url` before anything else, so a non-https URL,
  or one carrying ``user:password@``, a query or a fragment, never causes traffic.
* One ``httpx.Client`` per instance, created lazily on the first request and reused, so
  the requests of one AuthClient share a connection and a TLS session. Redirects are never
  followed (a 3xx is an error), cookies are dropped after every exchange (a Django session
  cookie sent back would switch DRF to CSRF-checked session auth), ``Accept-Encoding: identity``
  keeps the body cap a cap on real bytes.
* Trust: :func:`~kitty_auth.adapters.tls_trust.build_ssl_context` -- the OS trust store through
  truststore, plus ``$SSL_CERT_FILE`` / ``$SSL_CERT_DIR`` when set; httpx's certifi default is
  never used.
  Environment proxies (``HTTPS_PROXY``...) are still honoured (``trust_env`` stays on); the proxy
  transports httpx builds receive the same SSL context, so trust does not change behind a proxy.
* Time: connect/read/write/pool timeouts of 5 s each; a server that accepts and never answers
  (no TLS handshake: bounded by the connect timeout; no response: by the read timeout) fails in
  about 5 s. The whole request (DNS, connect, TLS, headers, body) is also bounded by a total
  deadline (``total_timeout``, 8 s): it runs in a daemon worker thread, and a caller whose
  deadline passes gets NetworkError at once while the abandoned worker and its connection are
  dropped. So a server trickling header bytes, or a DNS lookup that hangs (httpx has no timeout
  for ``getaddrinfo``), cannot hold the credentials lock or a login for longer.
* Late answers: a request the server may carry out although its answer comes too late (a refresh
  that rotates a token) keeps listening for the late-answer window (30 s) and hands the answer to
  ``on_late``; a second request with the same ``key`` waits for the first one's answer.
* Interrupts: a caller interrupted (KeyboardInterrupt, or SystemExit from a host's signal handler)
  while such a request is on its way keeps waiting for it within its own deadline and hands the
  answer to ``on_late`` itself before the interrupt goes on; any other request is abandoned at once.
* Bodies are streamed and abandoned once they exceed ``max_body_bytes``.
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

This module imports httpx (and truststore, through ``tls_trust``); it is meant to be imported
only on network paths (the container decides), never by ``auth status``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import urlsplit

import httpx

from kitty_auth.adapters.tls_trust import build_ssl_context, error_chain, is_cert_verification_failure
from kitty_auth.adapters.token_syntax import is_header_value
from kitty_auth.domain.errors import (
    InvalidServerUrlError,
    MalformedResponseError,
    NetworkError,
    RateLimitedError,
    ServerUnavailableError,
    TLSVerificationError,
    TokenRejectedError,
    UnexpectedStatusError,
)
from kitty_auth.domain.interrupts import INTERRUPTS
from kitty_auth.domain.model import normalize_server_url

logger = logging.getLogger("kitty_auth.http")

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=5.0, read=5.0, write=5.0, pool=5.0)
DEFAULT_TOTAL_TIMEOUT: Final = 8.0
# How long a refresh whose caller gave up at the deadline is still listened to: the server may
# already have rotated the token, and its late answer is then the only copy of the new pair.
DEFAULT_LATE_ANSWER_WINDOW: Final = 30.0

REDIRECT_HINT: Final = "; the server redirected the request, check the server URL"
LOGIN_AGAIN_HINT: Final = "; try `spec-kitty auth login --force`"
CHECK_URL_HINT: Final = "; check the server URL"


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


# --------------------------------------------------------------------------- the request core

LateAnswer = Callable[[int, bytes], None]


class _BodyTooLarge(Exception):
    pass


class _DeadlineExceeded(Exception):
    pass


@dataclass(frozen=True)
class _Exchange:
    """One request as the worker thread sends it. Its body and headers hold secrets (a refresh token,
    a password, the Authorization header): they are kept out of its repr."""

    method: str
    url: str
    path: str  # what the logs show: never the host's user info (there is none) or a query
    json: object = field(repr=False)
    form: Mapping[str, str] | None = field(repr=False)
    headers: Mapping[str, str] | None = field(repr=False)
    started: float
    deadline: float  # how long the worker may read (the late-answer window for a refresh)
    body_for_any_status: bool
    response_headers: dict[str, str] | None = None  # filled with the answer's headers when given


class _Abandoned(Exception):
    """Raised inside httpcore (trace hook) to stop a request its caller gave up on before it is sent."""


def _network_cause(exc: BaseException) -> str:
    """Why a request failed, in a few words; never the exception's text (it may hold values)."""
    chain = list(error_chain(exc))
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
    closed, within that window. An interrupted caller abandons it too, at once without a
    ``late`` handler, else only once its deadline passed (see ``_await_after_interrupt``).
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
        self.deadline_passed = False  # the last wait ended because the whole deadline had passed

    def wait(self, deadline: float, started: float, read_timeout: float | None) -> bool:
        """Wait for the outcome; False once ``deadline`` passed, or ``read_timeout`` after sending
        without an answer (what the read timeout would have done, for a request whose worker
        reads longer: a refresh listening for a late answer)."""
        while True:
            now = time.monotonic()
            left = started + deadline - now
            self.deadline_passed = left <= 0
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

    @property
    def abandoned(self) -> bool:
        """The caller gave up: the worker, not the caller, deals with the outcome."""
        with self._lock:
            return self._abandoned

    def abandon(self, window: float) -> bool:
        """The caller's deadline passed, or it was interrupted (caller thread); False if the answer came just now."""
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


def _hand_over(late: LateAnswer, value: tuple[int, bytes] | None) -> None:
    """Give an answer to its late-answer handler: from the worker, or from an interrupted caller.

    An interrupt that cuts the handler short (it stores a rotated token) gets it run once more
    before the interrupt goes on: handlers are idempotent (they store only if the file still
    holds the token that was sent). Any other failure is logged: nobody is waiting for it.
    """
    if value is None:
        return  # the request failed: nothing came that could be stored
    try:
        try:
            late(*value)
        except INTERRUPTS:
            late(*value)
            raise
    except Exception as exc:  # noqa: BLE001 - nobody to raise to
        logger.warning("handling a late answer failed (%s)", type(exc).__name__)


def _await_after_interrupt(flight: _Flight, late: LateAnswer | None, wait: Callable[[], bool]) -> bool:
    """The caller was interrupted (Ctrl-C; the CLI's SIGTERM) while ``flight`` was on its way. True once
    the answer came and was handed to ``late``; False: leave the flight (``_leave``), then re-raise.

    Without ``late`` the flight is left at once (its connection shut down). With it -- a refresh the
    server may already have carried out, whose answer is then the only copy of the rotated token --
    the caller keeps waiting, within the request's own deadline (``wait``), and hands the answer to
    ``late`` itself, in its own thread (which may hold the credentials lock: it is re-entrant), so it
    is stored before the interrupt takes effect. No answer by the deadline: the flight is left to the
    late-answer path, as when a deadline passes (a process that then exits loses the answer; a host
    that goes on stores it). A second interrupt cuts this short the same way (the caller's
    ``finally``): whoever presses Ctrl-C twice gets out at once.
    """
    if late is None:
        return False
    logger.info("interrupted while a refresh was on its way; waiting for its answer first")
    if not wait():
        logger.info("no answer within the deadline: the refresh's answer is left to the late-answer path")
        return False
    _hand_over(late, flight.value)
    return True


def _leave(flight: _Flight, late: LateAnswer | None, abandon: Callable[[], bool]) -> None:
    """Abandon an interrupted caller's flight to its worker; if its answer came just now, hand it over here."""
    if not abandon() and late is not None:
        _hand_over(late, flight.value)


class HttpsClient:
    """HTTPS requests with our trust, deadlines, body cap and logs. Thread-safe; call :meth:`close` (or use ``with``)."""

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

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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
        body_for_any_status: bool = True,
        response_headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """One HTTPS request with this client's trust, timeouts, total deadline, body cap and logs.

        ``url`` must be an ``https://`` URL without user info, query or fragment (else
        InvalidServerUrlError, before any traffic). ``form`` is sent form-encoded, ``json`` as
        JSON (at most one of them). ``deadline`` (seconds, default the client's total timeout)
        bounds the whole exchange. Returns ``(status, body)``; the body is read (capped:
        MalformedResponseError above ``max_body_bytes``) for every status, or only for a 200 when
        ``body_for_any_status`` is False (the body of an error is then never looked at), and
        redirects are returned, not followed. Raises NetworkError (no answer within the
        deadline, DNS, refused, reset), TLSVerificationError; a header value that is not
        printable ASCII (e.g. a damaged token) raises TokenRejectedError without sending anything.

        For a request the server may carry out although its answer comes too late (a refresh
        that rotates a token): ``on_late`` receives ``(status, body)`` of an answer that arrives
        after the caller gave up (within the late-answer window, from the worker thread); ``key``
        (the refresh token) makes a second request with the same key, while the first is still
        in flight or its late answer is being handed over, wait for the first one's answer
        instead of being sent. A caller interrupted while such a request is on its way (Ctrl-C)
        waits for the answer within the deadline, hands it to ``on_late`` in its own thread and
        then re-raises the interrupt; ``on_late`` must therefore be idempotent (an interrupt
        that cuts it short gets it called once more).

        ``response_headers``: a dict that receives the answer's headers (names in lower case),
        for a caller that needs one (`auth doctor` reads ``date``).
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
            body_for_any_status=body_for_any_status,
            late=on_late,
            response_headers=response_headers,
        )

    # -- internals

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
        second caller waits (up to the total deadline) for the first request's outcome. The key
        stays registered until that outcome is settled -- a late answer stored or discarded --
        so a caller that comes while a late answer is being stored gets that answer too.
        """
        if key is not None:
            with self._lock:
                earlier = self._refreshing.get(key)
            if earlier is not None:
                return self._outcome_of(earlier, url, options.get("late"))
        return self._send(method, url, key=key, **options)

    def _outcome_of(self, earlier: _Flight, url: str, late: LateAnswer | None) -> tuple[int, bytes]:
        """The outcome of ``earlier``, a request with the same key, within the total deadline.

        Interrupted while waiting for it, this caller keeps waiting (within the same deadline) and
        hands an answer that comes to its own ``late`` handler before the interrupt goes on: in a
        process about to exit, the earlier request's background handler would not get the time.
        """
        until = time.monotonic() + self._total_timeout
        try:
            if not earlier.done.is_set():
                logger.debug("a refresh with this token is still in flight; waiting for its answer")
            answered = earlier.done.wait(self._total_timeout)
        except INTERRUPTS:
            if late is not None:
                logger.info("interrupted while a refresh was on its way; waiting for its answer first")
                if earlier.done.wait(max(0.0, until - time.monotonic())):  # a second interrupt: gone at once
                    _hand_over(late, earlier.value)
            raise
        if not answered:
            raise NetworkError(f"{_host_of(url)}: no answer within {self._total_timeout:g} s")
        if earlier.error is not None:
            raise earlier.error
        assert earlier.value is not None
        return earlier.value

    def _forget(self, key: str, flight: _Flight) -> None:
        with self._lock:
            if self._refreshing.get(key) is flight:
                del self._refreshing[key]

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
        response_headers: dict[str, str] | None = None,
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
        exchange = _Exchange(method, url, path, json, form, headers, started, listen, body_for_any_status,
                             response_headers)
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
            if not flight.finish(value, error):
                return  # the caller has the outcome, and settles the key
            try:
                client.close()
                if late is not None:
                    _hand_over(late, value)
            finally:
                if key is not None:  # only now: until the late answer is stored, it is the answer
                    self._forget(key, flight)

        def abandon() -> bool:
            """Leave the flight to the worker (False: its answer came just now, take it)."""
            if not flight.abandon(listen - (time.monotonic() - started)):
                return False
            self._detach(client)  # the next request opens a new connection
            return True

        worker = threading.Thread(target=work, name="kitty-auth-http", daemon=True)
        read_timeout = client.timeout.read if late is not None else None
        try:
            # Everything from the start of the worker to the return is guarded: an interrupt that lands
            # just before the wait (the caller's thread descheduled while the worker sent the request)
            # or just after the answer came is handled like one during the wait.
            try:
                worker.start()
                answered = flight.wait(deadline, started, read_timeout)
                if not answered and abandon():
                    self._log(method, path, 0, started, note="total deadline exceeded")
                    # Which limit ended the wait, as the wait saw it: measuring again could put a deadline
                    # reached a hair early (Windows' millisecond clock, float rounding) below the deadline.
                    cause = f"no answer within {deadline:g} s" if flight.deadline_passed else "timed out"
                    raise NetworkError(f"{_host_of(url)}: {cause}")
                if flight.error is not None:
                    raise flight.error
                assert flight.value is not None
                return flight.value
            except INTERRUPTS:
                if worker.ident is None:
                    raise  # interrupted before anything was sent
                handed = False
                try:
                    handed = _await_after_interrupt(flight, late, lambda: flight.wait(deadline, started, read_timeout))
                finally:  # also when a second interrupt cut the wait short
                    if not handed:
                        _leave(flight, late, abandon)
                raise
        finally:
            if key is not None and not flight.abandoned:
                self._forget(key, flight)

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
                if ex.response_headers is not None:
                    ex.response_headers.update((name.lower(), value) for name, value in response.headers.items())
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
            if is_cert_verification_failure(exc):
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


def raise_for_status(status: int, hint: str = CHECK_URL_HINT) -> None:
    """Map a status that is not the call's success to the errors both protocols share.

    3xx: a redirect (never followed); 429: rate limited; 5xx: server unavailable; anything else:
    an unexpected status with ``hint``. Always raises.
    """
    if 300 <= status < 400:
        raise UnexpectedStatusError(status, REDIRECT_HINT)
    if status == 429:
        raise RateLimitedError(status)
    if 500 <= status < 600:
        raise ServerUnavailableError(status)
    raise UnexpectedStatusError(status, hint)
