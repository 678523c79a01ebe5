"""The loopback redirect listener (RFC 8252 section 7.3): a one-login HTTP server on 127.0.0.1 with the standard library.

* Bound to ``127.0.0.1`` on an ephemeral port chosen by the OS (never a fixed range: nothing
  for another local program to squat on, nothing for a firewall rule to get wrong), before
  the browser is opened; the redirect URI is ``http://127.0.0.1:PORT/callback``.
* Only requests whose ``Host`` header is exactly ``127.0.0.1:PORT`` are served. Any other name
  (``localhost`` included), port, or a missing or repeated Host gets a "wrong address" page and
  never reaches the login: a web page whose own name resolves to 127.0.0.1 (DNS rebinding)
  cannot talk to the listener.
* Each connection has ``read_timeout`` seconds (5) to send its request line and headers, in
  total: a client that sends nothing, or trickles, is dropped. At most ``MAX_CONNECTIONS`` (16)
  are served at once, each on its own thread; more are closed as soon as they are accepted.
* Each ``GET /callback`` is handed to the login (``next_callback``) and the browser's request
  is held open until the login answers it, so the page tells the outcome: "logged in" only
  after the code was exchanged and the session stored; the denial, the failure or "not this
  login" otherwise. If the login does not answer within ``answer_timeout`` the page says the
  outcome is unknown and the terminal has it. ``next_callback`` waits in half-second slices on a
  ``SimpleQueue``, so a Ctrl-C ends the wait at once even when one of the listener's threads took
  the signal, and never leaves a lock held that ``close()`` would then wait for.
* Pages never contain a code, token or ``state``; they carry ``Cache-Control: no-store``,
  ``Referrer-Policy: no-referrer`` and a CSP that forbids every load. Requests are not logged
  (http.server would print the query, which holds the code), and a connection the browser
  resets is logged at DEBUG in one line (socketserver would print a traceback on stderr).
* ``close()`` releases the port; a request already queued but never taken by the login (a
  replayed or late callback) is answered "this login is over", one taken but never answered
  (the login was interrupted) "outcome unknown"; connections still sending their request are
  dropped. It returns once every connection's thread has ended and its socket is closed.
"""

from __future__ import annotations

import html
import io
import logging
import queue
import socket
import sys
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from kitty_auth.domain.oauth import CallbackPage

logger = logging.getLogger("kitty_auth.oauth")

HOST: Final = "127.0.0.1"
CALLBACK_PATH: Final = "/callback"
_MAX_QUERY: Final = 8192
READ_TIMEOUT: Final = 5.0  # seconds for a connection's request line and headers, all of them
MAX_CONNECTIONS: Final = 16  # a browser opens at most 6 per host
_WAIT_SLICE: Final = 0.5  # seconds: how late a Ctrl-C during next_callback may be acted on

_PAGES: Final[dict[CallbackPage | str, tuple[int, str, str]]] = {
    CallbackPage.LOGGED_IN: (200, "Logged in",
                             "You are logged in to spec-kitty. You can close this tab and return to the terminal."),
    CallbackPage.DENIED: (403, "Login denied",
                          "The login was denied, so nothing was stored. You can close this tab."),
    CallbackPage.FAILED: (502, "Login failed",
                          "The login did not complete and nothing was stored; the terminal says why."),
    CallbackPage.FOREIGN: (400, "Not this login",
                           "This request does not belong to the login waiting in the terminal (its state does "
                           "not match), so it was ignored. Finish the login in the tab the terminal opened."),
    "over": (410, "This login is over", "This login has already ended; nothing was done with this request."),
    "unknown": (504, "Outcome unknown", "The terminal did not answer in time; it shows whether the login worked."),
    "not_found": (404, "Not found", "Nothing here."),
    "wrong_host": (421, "Wrong address",
                   "The login listener answers only at its own 127.0.0.1 address; nothing was done with this request."),
}


def render(page: CallbackPage | str) -> tuple[int, bytes]:
    status, title, text = _PAGES[page]
    body = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>spec-kitty: {html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;color:#222}</style>"
        f"</head><body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return status, body.encode("utf-8")


class _Pending:
    """One callback request waiting for the login's answer (the PendingCallback port)."""

    def __init__(self, params: Mapping[str, str]) -> None:
        self._params = dict(params)
        self._page: CallbackPage | str | None = None
        self._answered = threading.Event()

    @property
    def params(self) -> Mapping[str, str]:
        return self._params

    def answer(self, page: CallbackPage | str) -> None:
        if not self._answered.is_set():
            self._page = page
            self._answered.set()

    def wait(self, timeout: float) -> CallbackPage | str:
        self._answered.wait(timeout)
        return self._page if self._page is not None else "unknown"


def _query_params(query: str) -> dict[str, str]:
    """The query as a dict; a repeated name or an oversized query yields {} (judged foreign)."""
    if len(query) > _MAX_QUERY:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=False, max_num_fields=20)
    except ValueError:
        return {}
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            return {}
        params[name] = value
    return params


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes until a deadline: the whole request must be in by then, however slowly it trickles."""

    def __init__(self, sock: socket.socket, timeout: float) -> None:
        self._sock = sock
        self._deadline = time.monotonic() + timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request was not received in time")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Server(HTTPServer):
    """An HTTPServer that serves each connection on its own thread, at most ``max_connections`` at once,
    and can end them all (ThreadingHTTPServer has no cap, and leaves daemon threads running after close)."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int, max_connections: int) -> None:
        super().__init__((HOST, port), handler)
        self._max_connections = max_connections
        self._lock = threading.Lock()
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._reading: set[socket.socket] = set()  # connections whose request is not in yet
        self._ending = False

    def process_request(self, request: socket.socket, client_address: object) -> None:  # type: ignore[override]
        with self._lock:
            admitted = not self._ending and len(self._connections) < self._max_connections
            if admitted:
                thread = threading.Thread(target=self._serve, args=(request, client_address),
                                          name="kitty-auth-loopback-connection", daemon=True)
                self._connections[request] = thread
                self._reading.add(request)
        if not admitted:
            self.shutdown_request(request)
            return
        thread.start()

    def _serve(self, request: socket.socket, client_address: object) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self._lock:  # closed under the lock: end_connections never shuts down a reused descriptor
                self._connections.pop(request, None)
                self._reading.discard(request)
                self.shutdown_request(request)

    def request_received(self, request: socket.socket) -> None:
        """The request line and headers are in: from now on the connection only answers."""
        with self._lock:
            self._reading.discard(request)

    def handle_error(self, request: object, client_address: object) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):  # the browser reset or closed the connection
            logger.debug("loopback connection ended: %s", type(exc).__name__)
        else:  # a bug: its type and place, never the request (which holds the code)
            logger.error("loopback connection failed: %s", type(exc).__name__, exc_info=True)

    def end_connections(self, timeout: float) -> None:
        """Drop the connections still sending their request, then wait for every connection's thread."""
        with self._lock:
            self._ending = True
            for sock in self._reading:
                try:
                    sock.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked reading it
                except OSError:
                    pass
            threads = list(self._connections.values())
        end = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))


class LoopbackCallbackListener:
    """The CallbackListener port. Start it, put ``redirect_uri`` in the authorization URL, then wait."""

    def __init__(self, *, port: int = 0, answer_timeout: float = 60.0, read_timeout: float = READ_TIMEOUT,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        # SimpleQueue, not Queue: Queue.get holds a Python-level mutex that a Ctrl-C landing at the wrong bytecode
        # leaves locked, and close() (which runs next) then blocks on it forever. SimpleQueue's get is in C.
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._held: set[_Pending] = set()  # callbacks whose browser request waits for an answer
        self._answer_timeout = answer_timeout
        self._read_timeout = read_timeout
        listener = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "spec-kitty-login"
            sys_version = ""
            protocol_version = "HTTP/1.1"

            timeout = read_timeout  # for writing the page; reading has its own deadline (setup)

            def setup(self) -> None:
                super().setup()
                self.rfile.close()
                self.rfile = io.BufferedReader(_DeadlineReader(self.connection, read_timeout))

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                listener._server.request_received(self.connection)
                self.connection.settimeout(read_timeout)
                if self.headers.get_all("Host") != [f"{HOST}:{listener._port}"]:
                    self._send("wrong_host")
                    return
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self._send("not_found")
                    return
                pending = _Pending(_query_params(parts.query))
                with listener._lock:  # close() answers whatever is held once it has set _closed
                    over = listener._closed
                    if not over:
                        listener._held.add(pending)
                        listener._queue.put(pending)
                if over:
                    self._send("over")
                    return
                try:
                    page = pending.wait(listener._answer_timeout)
                finally:
                    with listener._lock:
                        listener._held.discard(pending)
                self._send(page)

            def _send(self, page: CallbackPage | str) -> None:
                status, body = render(page)
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.send_header("Referrer-Policy", "no-referrer")
                self.send_header("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
                self.send_header("X-Content-Type-Options", "nosniff")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                return  # the request line holds the authorization code

        self._server = _Server(Handler, port, max_connections)
        self._port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="kitty-auth-loopback", daemon=True)
        self._thread.start()
        logger.debug("loopback listener on %s:%d", HOST, self._port)

    @property
    def port(self) -> int:
        return self._port

    @property
    def redirect_uri(self) -> str:
        return f"http://{HOST}:{self._port}{CALLBACK_PATH}"

    def next_callback(self, timeout: float) -> _Pending | None:
        # Waited for in short slices: Python acts on a signal only when the main thread runs bytecode, so a Ctrl-C
        # taken by another thread, or just before the main thread blocks, would otherwise wait out the whole timeout.
        # The queue is a SimpleQueue (see __init__): an interrupted get leaves no lock held.
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            try:
                return self._queue.get(timeout=min(_WAIT_SLICE, max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                if time.monotonic() >= deadline:
                    return None

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            held = list(self._held)
        while True:  # requests nobody will take: tell their tabs the login is over
            try:
                self._queue.get_nowait().answer("over")
            except queue.Empty:
                break
        for pending in held:  # taken but never answered (the login was interrupted): the terminal knows
            pending.answer("unknown")
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        self._server.end_connections(timeout=self._read_timeout + 1)

    def __enter__(self) -> LoopbackCallbackListener:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
