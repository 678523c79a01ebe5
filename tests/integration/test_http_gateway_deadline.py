"""The gateway's total deadline: what happens to a request whose answer is late, or never comes.

Real TLS on loopback, so the sockets are real: a server that trickles response *header* bytes
(each within the read timeout), one that reads the request and stays silent, one that answers
a refresh only after the caller's deadline (the server has rotated the token by then). The time
bounds asserted are generous hang checks, not speed checks; thread ends are polled.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import trustme

from kitty_auth.adapters.clock import SystemClock
from kitty_auth.adapters.https_client import _Exchange
from kitty_auth.adapters.oauth_gateway import HttpxOAuthGateway
from kitty_auth.adapters.session_gateway import SessionTokenGateway
from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway
from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.errors import CredentialsLockTimeoutError, NetworkError
from kitty_auth.domain.model import Credentials, IssuedTokens, LoginMethod, OAuthClient, TokenPair
from kitty_auth.domain.use_cases import EnsureFreshToken
from kitty_auth.entrypoints.cli import Terminated, _on_sigterm
from kitty_auth.testing import make_jwt
from portability import UNDER_WINE, wine_tls_gap

NOW = datetime.now(UTC)


def jwt(kind: str, lifetime: timedelta) -> str:
    return make_jwt(iat=NOW, lifetime=lifetime, kind=kind)


def http_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("kitty-auth-http")]


def wait_until(condition: Callable[[], bool], bound: float) -> bool:
    """Poll ``condition`` until true or ``bound`` seconds passed (a hang bound, not a timing claim)."""
    end = time.monotonic() + bound
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


class ScriptedTLSServer:
    """Accepts TLS connections; for each request runs ``script(tls, request_bytes)``."""

    def __init__(self, ca: trustme.CA, script: Callable[[ssl.SSLSocket, bytes], None]) -> None:
        self._ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self._ctx)
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._script = script
        self.port = self._sock.getsockname()[1]
        self.url = f"https://127.0.0.1:{self.port}"
        self.requests = 0
        self.closed = threading.Event()  # the client closed its end of a connection
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        try:
            with self._ctx.wrap_socket(conn, server_side=True) as tls:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = tls.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    body += tls.recv(65536)
                self.requests += 1
                self._script(tls, body)
        except OSError:
            pass
        finally:
            self.closed.set()

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    if UNDER_WINE:  # every test here completes a handshake trusted through SSL_CERT_FILE
        pytest.skip(wine_tls_gap.kwargs["reason"])
    authority = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    for name in ("SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    return authority


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[Callable[[Callable[[ssl.SSLSocket, bytes], None]], ScriptedTLSServer]]:
    servers: list[ScriptedTLSServer] = []

    def make(script: Callable[[ssl.SSLSocket, bytes], None]) -> ScriptedTLSServer:
        servers.append(ScriptedTLSServer(ca, script))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def answer(tls: ssl.SSLSocket, payload: dict[str, object]) -> None:
    data = json.dumps(payload).encode()
    tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                + str(len(data)).encode() + b"\r\n\r\n" + data)


def trickle_headers(seconds: float, step: float) -> Callable[[ssl.SSLSocket, bytes], None]:
    def script(tls: ssl.SSLSocket, body: bytes) -> None:
        tls.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            time.sleep(step)
            tls.sendall(b"a")

    return script


def silent(release: threading.Event) -> Callable[[ssl.SSLSocket, bytes], None]:
    def script(tls: ssl.SSLSocket, body: bytes) -> None:
        # Read the request, say nothing; return when the client closes (recv gives b"").
        tls.settimeout(60)
        while not release.is_set():
            if not tls.recv(1):
                return

    return script


# --------------------------------------------------------------------------- deadline and threads


def test_total_deadline_bounds_a_trickled_header_and_the_worker_ends(server) -> None:
    srv = server(trickle_headers(seconds=60.0, step=0.3))
    before = len(http_threads())
    gw = HttpxTokenGateway(timeout=httpx.Timeout(1.0), total_timeout=1.0)
    started = time.monotonic()
    with pytest.raises(NetworkError) as info:
        gw.ws_token(srv.url, "a.b.c")
    elapsed = time.monotonic() - started
    assert elapsed < 10.0, f"took {elapsed:.1f} s despite total_timeout=1 s (server trickles for 60 s)"
    assert str(info.value).startswith("Cannot reach server. Check your connection. (127.0.0.1:")
    # The abandoned worker is woken (its socket shut down) instead of reading for 60 s.
    assert wait_until(lambda: len(http_threads()) == before, bound=10.0), "worker thread still alive"
    assert srv.closed.wait(10.0)
    gw.close()


def test_an_abandoned_request_on_a_silent_server_is_closed_at_once(server) -> None:
    release = threading.Event()
    srv = server(silent(release))
    before = len(http_threads())
    # A read timeout far beyond the bound below: only the shutdown can end the worker in time.
    gw = HttpxTokenGateway(timeout=httpx.Timeout(60.0), total_timeout=0.5)
    with pytest.raises(NetworkError):
        gw.obtain(srv.url, "u", "p")
    try:
        assert srv.closed.wait(10.0), "the server never saw the connection closed"
        assert wait_until(lambda: len(http_threads()) == before, bound=10.0)
    finally:
        release.set()
        gw.close()


def test_a_request_is_not_sent_once_its_caller_gave_up(server, monkeypatch: pytest.MonkeyPatch) -> None:
    # Stands in for a DNS lookup that returns after the deadline: the connection is made late.
    srv = server(lambda tls, body: answer(tls, {"access": "a", "refresh": "r"}))
    slow = threading.Event()
    real = socket.create_connection

    def late_connect(*args, **kwargs):
        slow.wait(5.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", late_connect)
    gw = HttpxTokenGateway(total_timeout=0.3)
    with pytest.raises(NetworkError):
        gw.obtain(srv.url, "u", "p")
    slow.set()
    assert wait_until(lambda: not http_threads(), bound=10.0)
    assert srv.requests == 0
    gw.close()


# --------------------------------------------------------------------------- late refresh answers


def late_refresh_server(server, delay: float, pair: dict[str, str]) -> ScriptedTLSServer:
    def script(tls: ssl.SSLSocket, body: bytes) -> None:
        time.sleep(delay)  # the server has processed the refresh; its answer is late
        answer(tls, pair)

    return server(script)


def test_a_late_refresh_answer_is_handed_over_after_the_caller_gave_up(server) -> None:
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    srv = late_refresh_server(server, 1.5, pair)
    got: list[IssuedTokens] = []
    arrived = threading.Event()
    gw = HttpxTokenGateway(total_timeout=0.5, late_answer_window=10.0)
    with pytest.raises(NetworkError):
        gw.refresh(srv.url, "old-refresh", on_late=lambda issued: (got.append(issued), arrived.set()))
    assert not got
    assert arrived.wait(10.0)
    assert (got[0].access, got[0].refresh) == (pair["access"], pair["refresh"])
    assert wait_until(lambda: not http_threads(), bound=10.0)
    gw.close()


def test_a_late_refresh_is_not_listened_to_past_its_window(server) -> None:
    release = threading.Event()
    srv = server(silent(release))
    gw = HttpxTokenGateway(timeout=httpx.Timeout(60.0), total_timeout=0.3, late_answer_window=1.0)
    try:
        with pytest.raises(NetworkError):
            gw.refresh(srv.url, "old-refresh", on_late=lambda issued: None)
        assert srv.closed.wait(10.0)
        assert wait_until(lambda: not http_threads(), bound=10.0)
    finally:
        release.set()
        gw.close()


Refresh = Callable[[HttpxTokenGateway, str, Callable[[IssuedTokens], None] | None], IssuedTokens]


def assert_a_pending_refresh_is_waited_for(server, payload: dict[str, object], refresh: Refresh,
                                           new_refresh: object) -> None:
    """``refresh`` (gateway, server URL, on_late) gives up on its first call while the server holds the answer;
    a second call with the same token waits for that answer instead of sending the token again."""
    release = threading.Event()

    def script(tls: ssl.SSLSocket, body: bytes) -> None:
        release.wait(30)  # the server has rotated the token; the answer waits for the test
        answer(tls, payload)

    srv = server(script)
    gw = HttpxTokenGateway(total_timeout=2.0, late_answer_window=30.0)
    with pytest.raises(NetworkError):
        refresh(gw, srv.url, lambda issued: None)
    second: list[object] = []
    caller = threading.Thread(target=lambda: second.append(refresh(gw, srv.url, None)))
    caller.start()
    release.set()
    caller.join(30)
    assert isinstance(second[0], IssuedTokens) and second[0].refresh == new_refresh
    assert srv.requests == 1  # the old token was not presented a second time
    gw.close()


def test_the_same_refresh_token_is_not_sent_twice_while_its_answer_is_pending(server) -> None:
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    assert_a_pending_refresh_is_waited_for(
        server, pair, lambda gw, url, on_late: gw.refresh(url, "old-refresh", on_late=on_late), pair["refresh"])


def test_a_late_refresh_answer_keeps_the_session_and_the_lock_is_released(server, tmp_path: Path) -> None:
    """End to end in one process: the refresh times out, the lock is free, the late answer is stored."""
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    srv = late_refresh_server(server, 1.5, pair)
    path = tmp_path / "credentials"
    repo = TomlCredentialRepository(path, lock_timeout=5.0)
    expired = TokenPair(jwt("access", timedelta(minutes=15)), "old-refresh",
                        access_expires_at=NOW - timedelta(minutes=1), refresh_expires_at=NOW + timedelta(days=6))
    repo.save(Credentials(tokens=expired, username="u", server_url=srv.url))
    gw = HttpxTokenGateway(total_timeout=0.5, late_answer_window=10.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw), SystemClock())

    with pytest.raises(NetworkError):
        use_case.execute()

    other_process = TomlCredentialRepository(path, lock_timeout=0.0)
    try:
        with other_process.lock():
            pass  # free right after the failure, while the late answer is still on its way
    except CredentialsLockTimeoutError:
        pytest.fail("the credentials lock was still held after the refresh gave up")
    assert wait_until(lambda: repo.load().tokens.refresh == pair["refresh"], bound=10.0)
    assert use_case.execute().tokens.access == pair["access"]
    assert srv.requests == 1
    gw.close()


def test_a_refresh_on_trickled_headers_keeps_the_session_and_releases_the_lock(server, tmp_path: Path) -> None:
    """The README's trickled-header row as written: the refresh gives up at the total deadline, the
    lock is free at once, the file is byte for byte what it was, and the worker ends with its window."""
    srv = server(trickle_headers(seconds=60.0, step=0.3))
    path = tmp_path / "credentials"
    repo = TomlCredentialRepository(path, lock_timeout=5.0)
    expired = TokenPair(jwt("access", timedelta(minutes=15)), "old-refresh",
                        access_expires_at=NOW - timedelta(minutes=1), refresh_expires_at=NOW + timedelta(days=6))
    repo.save(Credentials(tokens=expired, username="u", server_url=srv.url))
    stored = path.read_bytes()
    before = len(http_threads())
    gw = HttpxTokenGateway(timeout=httpx.Timeout(1.0), total_timeout=1.0, late_answer_window=2.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw), SystemClock())

    with pytest.raises(NetworkError) as info:
        use_case.execute()

    assert str(info.value) == "Cannot reach server. Check your connection. (127.0.0.1:%d: no answer within 1 s)" % srv.port
    try:
        with TomlCredentialRepository(path, lock_timeout=0.0).lock():
            pass
    except CredentialsLockTimeoutError:
        pytest.fail("the credentials lock was still held after the refresh gave up")
    assert path.read_bytes() == stored
    assert wait_until(lambda: len(http_threads()) == before, bound=15.0), "worker thread still alive"
    assert srv.closed.wait(10.0)
    assert path.read_bytes() == stored
    gw.close()


def test_a_refresh_listening_for_a_late_answer_still_releases_its_caller_after_the_read_timeout(server) -> None:
    release = threading.Event()
    srv = server(silent(release))
    gw = HttpxTokenGateway(timeout=httpx.Timeout(1.0), total_timeout=8.0, late_answer_window=30.0)
    started = time.monotonic()
    try:
        with pytest.raises(NetworkError) as info:
            gw.refresh(srv.url, "old-refresh", on_late=lambda issued: None)
        assert time.monotonic() - started < 6.0  # 1 s read timeout, not the 8 s deadline (hang bound)
        assert str(info.value).endswith(": timed out)")
        assert not srv.closed.is_set()  # ...while the worker keeps listening for the answer
    finally:
        release.set()
        gw.close()


# --------------------------------------------------------------------------- late refresh answers: OAuth sessions

OAUTH_PAIR = {"access_token": "at-late-access-0123456789", "refresh_token": "rt-late-refresh-0123456789",
              "token_type": "Bearer", "expires_in": 900}


def oauth_session(server_url: str, *, access_expires_at: datetime = NOW + timedelta(minutes=15)) -> Credentials:
    return Credentials(
        tokens=TokenPair("at-old-access-0123456789", "rt-old-refresh-0123456789", access_expires_at, None),
        username="user@example.com", server_url=server_url, login_method=LoginMethod.DEVICE,
        oauth=OAuthClient("cli_native", server_url + "/oauth/token", server_url + "/oauth/revoke"),
    )


def test_a_late_oauth_refresh_answer_is_handed_over_after_the_caller_gave_up(server) -> None:
    bodies: list[bytes] = []

    def script(tls: ssl.SSLSocket, body: bytes) -> None:
        bodies.append(body)
        time.sleep(1.5)  # the server has rotated the refresh token; its answer is late
        answer(tls, OAUTH_PAIR)

    srv = server(script)
    earlier = set(http_threads())  # an earlier test's listener may still be winding down
    got: list[IssuedTokens] = []
    arrived = threading.Event()
    gw = HttpxTokenGateway(total_timeout=0.5, late_answer_window=10.0)
    with pytest.raises(NetworkError):
        HttpxOAuthGateway(gw).refresh(oauth_session(srv.url),
                                      on_late=lambda issued: (got.append(issued), arrived.set()))
    assert not got
    assert arrived.wait(10.0)
    assert (got[0].access, got[0].refresh) == (OAUTH_PAIR["access_token"], OAUTH_PAIR["refresh_token"])
    assert got[0].expires_in == 900
    assert b"grant_type=refresh_token" in bodies[0] and b"client_id=cli_native" in bodies[0]
    assert wait_until(lambda: not set(http_threads()) - earlier, bound=10.0)
    gw.close()


def test_the_same_oauth_refresh_token_is_not_sent_twice_while_its_answer_is_pending(server) -> None:
    assert_a_pending_refresh_is_waited_for(
        server, OAUTH_PAIR,
        lambda gw, url, on_late: HttpxOAuthGateway(gw).refresh(oauth_session(url), on_late=on_late),
        OAUTH_PAIR["refresh_token"])


def test_a_late_oauth_refresh_answer_keeps_the_session(server, tmp_path: Path) -> None:
    """As for password sessions: the refresh times out, the lock is free, the late answer is stored."""
    srv = server(lambda tls, body: (time.sleep(1.5), answer(tls, OAUTH_PAIR)))
    path = tmp_path / "credentials"
    repo = TomlCredentialRepository(path, lock_timeout=5.0)
    repo.save(oauth_session(srv.url, access_expires_at=NOW - timedelta(minutes=1)))
    gw = HttpxTokenGateway(total_timeout=0.5, late_answer_window=10.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw, lambda: HttpxOAuthGateway(gw)), SystemClock())

    with pytest.raises(NetworkError):
        use_case.execute()

    assert wait_until(lambda: repo.load().tokens.refresh == OAUTH_PAIR["refresh_token"], bound=10.0)
    stored = repo.load()
    assert stored.oauth is not None and stored.login_method is LoginMethod.DEVICE  # still an OAuth session
    assert stored.tokens.refresh_expires_at is None  # the server named no refresh lifetime: unknown
    assert use_case.execute().tokens.access == OAUTH_PAIR["access_token"]
    assert srv.requests == 1
    gw.close()


# --------------------------------------------------------------------------- interrupts (Ctrl-C, SIGTERM)
#
# A real signal to the main thread (which runs the test and the request's caller), sent once the server holds
# the request: the server has rotated the token, its answer is on its way. Each step waits on an event: the
# server's "request received", and the core's own log line saying it now waits for the answer after the
# interrupt; nothing waits on a fixed time.

WAITING_AFTER_INTERRUPT = "interrupted while a refresh was on its way; waiting for its answer first"


class HeldAnswer:
    """A server that holds each request until ``release`` is set, then answers ``payload``."""

    def __init__(self, server, payload: dict[str, object]) -> None:
        self.received = threading.Event()
        self.release = threading.Event()

        def script(tls: ssl.SSLSocket, body: bytes) -> None:
            self.received.set()
            self.release.wait(30)  # the server has carried the refresh out; its answer waits for the test
            answer(tls, payload)

        self.srv: ScriptedTLSServer = server(script)
        self.url = self.srv.url


class LogEvent(logging.Handler):
    """An event set when the ``kitty_auth.http`` logger logs ``message``."""

    def __init__(self, message: str) -> None:
        super().__init__(logging.DEBUG)
        self.message, self.seen = message, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.seen.set()


@pytest.fixture
def core_log() -> Iterator[Callable[[str], threading.Event]]:
    """``core_log(message)``: an event set when the HTTPS core logs ``message``."""
    log = logging.getLogger("kitty_auth.http")
    level, handlers = log.level, []

    def watch(message: str) -> threading.Event:
        handler = LogEvent(message)
        log.addHandler(handler)
        handlers.append(handler)
        return handler.seen

    log.setLevel(logging.DEBUG)
    yield watch
    log.setLevel(level)
    for handler in handlers:
        log.removeHandler(handler)


SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@contextmanager
def signals_when(*steps: tuple[threading.Event, int]) -> Iterator[None]:
    """Send each ``(event, signum)`` to the main thread (the caller's), in order, once its event is set, as
    a terminal's Ctrl-C or `kill` would. SIGINT raises KeyboardInterrupt, as Python's own handler does;
    SIGTERM goes to the CLI's handler, which raises ``Terminated``. Both only inside the block: a signal
    that arrived after it (a bug) would otherwise end the whole test session, so it fails the test."""
    assert threading.current_thread() is threading.main_thread()
    target, stop, armed, strays = threading.main_thread().ident, threading.Event(), [True], []
    assert target is not None

    def handler(signum: int, frame: object) -> None:
        if not armed[0]:
            strays.append(signum)
        elif signum == signal.SIGTERM:
            _on_sigterm(signum, frame)
        else:
            raise KeyboardInterrupt

    def fire() -> None:
        for event, signum in steps:
            while not event.wait(0.05):
                if stop.is_set():
                    return
            signal.pthread_kill(target, signum)

    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS.values()}
    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    try:
        yield
    finally:
        armed[0] = False
        stop.set()
        thread.join(10)
        for signum, old in previous.items():
            signal.signal(signum, old)
    assert not strays, "a signal arrived after the interrupted call had returned"


def release_when(event: threading.Event, held: HeldAnswer) -> None:
    threading.Thread(target=lambda: event.wait(30) and held.release.set(), daemon=True).start()


def expired_password_session(repo: TomlCredentialRepository, url: str) -> None:
    expired = TokenPair(jwt("access", timedelta(minutes=15)), "old-refresh",
                        access_expires_at=NOW - timedelta(minutes=1), refresh_expires_at=NOW + timedelta(days=6))
    repo.save(Credentials(tokens=expired, username="u", server_url=url))


@pytest.mark.parametrize("name", list(SIGNALS))
def test_an_interrupt_while_a_rotated_answer_is_on_its_way_stores_it_first(server, core_log, tmp_path: Path,
                                                                          name: str) -> None:
    """The review's Ctrl-C (and SIGTERM) case: the server has rotated, the answer takes a moment; the caller is
    interrupted. The answer is awaited and stored before the interrupt goes on, and the lock is free after."""
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    held = HeldAnswer(server, pair)
    path = tmp_path / "credentials"
    repo = TomlCredentialRepository(path, lock_timeout=5.0)
    expired_password_session(repo, held.url)
    gw = HttpxTokenGateway(late_answer_window=30.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw), SystemClock())
    release_when(core_log(WAITING_AFTER_INTERRUPT), held)

    with signals_when((held.received, SIGNALS[name])):
        with pytest.raises(Terminated if name == "SIGTERM" else KeyboardInterrupt):
            use_case.execute()

    assert repo.load().tokens.refresh == pair["refresh"]  # stored already: no waiting for a background thread
    with TomlCredentialRepository(path, lock_timeout=0.0).lock():
        pass  # and the lock was released on the way out
    assert use_case.execute().tokens.access == pair["access"] and held.srv.requests == 1
    gw.close()


def test_an_interrupted_oauth_refresh_is_stored_first_too(server, core_log, tmp_path: Path) -> None:
    held = HeldAnswer(server, OAUTH_PAIR)
    repo = TomlCredentialRepository(tmp_path / "credentials", lock_timeout=5.0)
    repo.save(oauth_session(held.url, access_expires_at=NOW - timedelta(minutes=1)))
    gw = HttpxTokenGateway(late_answer_window=30.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw, lambda: HttpxOAuthGateway(gw)), SystemClock())
    release_when(core_log(WAITING_AFTER_INTERRUPT), held)

    with signals_when((held.received, signal.SIGINT)), pytest.raises(KeyboardInterrupt):
        use_case.execute()

    stored = repo.load()
    assert stored.tokens.refresh == OAUTH_PAIR["refresh_token"] and stored.oauth is not None
    gw.close()


def test_the_answer_goes_to_on_late_in_the_callers_thread_before_the_interrupt(server, core_log) -> None:
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    held = HeldAnswer(server, pair)
    got: list[tuple[str, str]] = []
    gw = HttpxTokenGateway(late_answer_window=30.0)
    release_when(core_log(WAITING_AFTER_INTERRUPT), held)

    with signals_when((held.received, signal.SIGINT)), pytest.raises(KeyboardInterrupt):
        gw.refresh(held.url, "old-refresh",
                   on_late=lambda issued: got.append((issued.refresh, threading.current_thread().name)))

    assert got == [(pair["refresh"], threading.main_thread().name)]
    gw.close()


def test_an_interrupted_caller_whose_answer_misses_the_deadline_leaves_it_to_the_late_answer_path(
        server, tmp_path: Path) -> None:
    """The REPL case: the interrupt is caught and the process goes on. Before the fix the flight was never
    abandoned, so the answer that came later was neither returned nor handed to the late-answer path."""
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    held = HeldAnswer(server, pair)
    path = tmp_path / "credentials"
    repo = TomlCredentialRepository(path, lock_timeout=5.0)
    expired_password_session(repo, held.url)
    gw = HttpxTokenGateway(total_timeout=1.0, late_answer_window=30.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw), SystemClock())

    with signals_when((held.received, signal.SIGINT)), pytest.raises(KeyboardInterrupt):
        use_case.execute()  # waits out its 1 s deadline after the interrupt: the server still holds the answer
    held.release.set()

    assert wait_until(lambda: repo.load().tokens.refresh == pair["refresh"], bound=10.0)
    assert use_case.execute().tokens.access == pair["access"] and held.srv.requests == 1
    gw.close()


def test_a_second_ctrl_c_stops_waiting_at_once_and_the_answer_still_reaches_the_late_answer_path(
        server, core_log, tmp_path: Path) -> None:
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    held = HeldAnswer(server, pair)
    path = tmp_path / "credentials"
    repo = TomlCredentialRepository(path, lock_timeout=5.0)
    expired_password_session(repo, held.url)
    gw = HttpxTokenGateway(late_answer_window=30.0)
    use_case = EnsureFreshToken(repo, SessionTokenGateway(gw), SystemClock())
    waiting = core_log(WAITING_AFTER_INTERRUPT)

    with signals_when((held.received, signal.SIGINT), (waiting, signal.SIGINT)):
        with pytest.raises(KeyboardInterrupt):
            use_case.execute()
    assert not held.release.is_set() and repo.load().tokens.refresh == "old-refresh"  # gone before the answer
    held.release.set()

    assert wait_until(lambda: repo.load().tokens.refresh == pair["refresh"], bound=10.0)  # a host that goes on
    gw.close()


def test_a_caller_interrupted_while_waiting_for_an_earlier_flight_hands_its_answer_over(server, core_log) -> None:
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    held = HeldAnswer(server, pair)
    gw = HttpxTokenGateway(total_timeout=0.5, late_answer_window=30.0)
    background: list[str] = []
    with pytest.raises(NetworkError):  # the first caller gives up; its request stays in flight
        gw.refresh(held.url, "old-refresh", on_late=lambda issued: background.append(issued.refresh))
    gw._total_timeout = 8.0  # the second caller waits up to 8 s for the first one's answer
    got: list[str] = []
    waiting_for_the_first = core_log("a refresh with this token is still in flight; waiting for its answer")
    release_when(core_log(WAITING_AFTER_INTERRUPT), held)

    with signals_when((waiting_for_the_first, signal.SIGINT)), pytest.raises(KeyboardInterrupt):
        gw.refresh(held.url, "old-refresh", on_late=lambda issued: got.append(issued.refresh))

    assert got == [pair["refresh"]] and held.srv.requests == 1
    gw.close()


def test_an_interrupted_request_that_changes_nothing_is_shut_down_at_once(server) -> None:
    release = threading.Event()
    received = threading.Event()

    def script(tls: ssl.SSLSocket, body: bytes) -> None:
        received.set()
        silent(release)(tls, body)

    srv = server(script)
    before = len(http_threads())
    gw = HttpxTokenGateway(timeout=httpx.Timeout(60.0), total_timeout=60.0)  # only the shutdown ends it in time
    try:
        with signals_when((received, signal.SIGINT)), pytest.raises(KeyboardInterrupt):
            gw.ws_token(srv.url, "a.b.c")
        assert srv.closed.wait(10.0), "the connection of the interrupted request stayed open"
        assert wait_until(lambda: len(http_threads()) == before, bound=10.0)
    finally:
        release.set()
        gw.close()


def test_a_late_answer_being_stored_is_still_the_answer_for_the_same_token(server) -> None:
    """The review's race: the worker dropped the token from the in-flight table before its late answer was
    stored, so a refresh starting in that gap sent the rotated-out token again (and lost the session)."""
    pair = {"access": jwt("access", timedelta(minutes=15)), "refresh": jwt("refresh", timedelta(days=7))}
    held = HeldAnswer(server, pair)
    storing, stored = threading.Event(), threading.Event()

    def slow_store(issued: IssuedTokens) -> None:  # stands in for _store_late waiting for the lock
        storing.set()
        stored.wait(30)

    gw = HttpxTokenGateway(total_timeout=0.5, late_answer_window=30.0)
    with pytest.raises(NetworkError):
        gw.refresh(held.url, "old-refresh", on_late=slow_store)
    held.release.set()
    assert storing.wait(10.0)  # the worker has the answer and is storing it: the gap
    try:
        second = gw.refresh(held.url, "old-refresh")
    finally:
        stored.set()
    assert second.refresh == pair["refresh"] and held.srv.requests == 1  # the old token was not sent again
    gw.close()


def test_an_exchange_shows_no_secret_in_its_repr() -> None:
    exchange = _Exchange("POST", "https://example.test/api/v1/token/", "/api/v1/token/",
                         {"username": "u", "password": "pw-secret-value"},
                         {"refresh_token": "rt-secret-value"}, {"Authorization": "Bearer at-secret-value"},
                         0.0, 8.0, False)
    text = repr(exchange)
    assert "/api/v1/token/" in text
    assert not any(secret in text for secret in ("pw-secret-value", "rt-secret-value", "at-secret-value"))
