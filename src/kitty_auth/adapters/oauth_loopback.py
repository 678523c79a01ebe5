"""The loopback redirect listener (RFC 8252 section 7.3): a one-login HTTP server on 127.0.0.1 with the standard library.

* Bound to ``127.0.0.1`` on an ephemeral port chosen by the OS (never a fixed range: nothing
  for another local program to squat on, nothing for a firewall rule to get wrong), before
  the browser is opened; the redirect URI is ``http://127.0.0.1:PORT/callback``.
* Each ``GET /callback`` is handed to the login (``next_callback``) and the browser's request
  is held open until the login answers it, so the page tells the outcome: "logged in" only
  after the code was exchanged and the session stored; the denial, the failure or "not this
  login" otherwise. If the login does not answer within ``answer_timeout`` the page says the
  outcome is unknown and the terminal has it.
* Pages never contain a code, token or ``state``; they carry ``Cache-Control: no-store``,
  ``Referrer-Policy: no-referrer`` and a CSP that forbids every load. Requests are not logged
  (http.server would print the query, which holds the code).
* After ``close()`` the port is released; a request already queued but never taken by the
  login (a replayed or late callback) is answered "this login is over".
"""

from __future__ import annotations

import html
import logging
import queue
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import parse_qsl, urlsplit

from kitty_auth.domain.oauth import CallbackPage

logger = logging.getLogger("kitty_auth.oauth")

HOST: Final = "127.0.0.1"
CALLBACK_PATH: Final = "/callback"
_MAX_QUERY: Final = 8192

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


class LoopbackCallbackListener:
    """The CallbackListener port. Start it, put ``redirect_uri`` in the authorization URL, then wait."""

    def __init__(self, *, port: int = 0, answer_timeout: float = 60.0) -> None:
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._closed = threading.Event()
        self._answer_timeout = answer_timeout
        listener = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "spec-kitty-login"
            sys_version = ""
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self._send("not_found")
                    return
                pending = _Pending(_query_params(parts.query))
                if listener._closed.is_set():
                    self._send("over")
                    return
                listener._queue.put(pending)
                if listener._closed.is_set():  # closed while we queued: nobody will take it
                    pending.answer("over")
                self._send(pending.wait(listener._answer_timeout))

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

        self._server = ThreadingHTTPServer((HOST, port), Handler)
        self._server.daemon_threads = True
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
        try:
            return self._queue.get(timeout=max(0.0, timeout))
        except queue.Empty:
            return None

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        while True:  # requests nobody will take: tell their tabs the login is over
            try:
                self._queue.get_nowait().answer("over")
            except queue.Empty:
                break
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)

    def __enter__(self) -> LoopbackCallbackListener:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
