"""The loopback listener over real sockets, and the webbrowser adapter in fresh interpreters (BROWSER honoured)."""

from __future__ import annotations

import http.client
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kitty_auth.adapters.oauth_loopback import MAX_CONNECTIONS, LoopbackCallbackListener
from kitty_auth.domain.oauth import CallbackPage

HANG = 30


def get(port: int, path: str) -> tuple[int, str, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        conn.close()


def in_background(fn, *args):  # noqa: ANN001, ANN201
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("value", fn(*args)), daemon=True)
    thread.start()
    return thread, result


def test_binds_loopback_on_an_ephemeral_port() -> None:
    with LoopbackCallbackListener() as listener:
        assert listener.redirect_uri == f"http://127.0.0.1:{listener.port}/callback"
        assert listener.port > 0


def test_the_page_waits_for_the_logins_answer_and_tells_it() -> None:
    with LoopbackCallbackListener() as listener:
        thread, result = in_background(get, listener.port, "/callback?code=c0de-secret-value&state=s1")
        callback = listener.next_callback(HANG)
        assert callback is not None and dict(callback.params) == {"code": "c0de-secret-value", "state": "s1"}
        assert thread.is_alive()  # the tab shows nothing yet: the exchange has not happened
        callback.answer(CallbackPage.LOGGED_IN)
        thread.join(HANG)
        status, body, headers = result["value"]  # type: ignore[misc]
        assert status == 200 and "Logged in" in body
        assert "c0de-secret-value" not in body and "s1" not in body
        assert headers["Cache-Control"] == "no-store" and headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize(("page", "status", "text"), [
    (CallbackPage.DENIED, 403, "Login denied"),
    (CallbackPage.FAILED, 502, "Login failed"),
    (CallbackPage.FOREIGN, 400, "Not this login"),
])
def test_denial_failure_and_foreign_pages_never_say_logged_in(page: CallbackPage, status: int, text: str) -> None:
    with LoopbackCallbackListener() as listener:
        thread, result = in_background(get, listener.port, "/callback?state=x&error=access_denied")
        callback = listener.next_callback(HANG)
        assert callback is not None
        callback.answer(page)
        thread.join(HANG)
        got_status, body, _ = result["value"]  # type: ignore[misc]
        assert got_status == status and text in body and "logged in" not in body.lower()


def test_other_paths_are_404_and_never_reach_the_login() -> None:
    with LoopbackCallbackListener() as listener:
        assert get(listener.port, "/favicon.ico")[0] == 404
        assert listener.next_callback(0.2) is None


def test_a_repeated_parameter_is_handed_over_as_empty_params() -> None:
    with LoopbackCallbackListener() as listener:
        thread, _ = in_background(get, listener.port, "/callback?state=a&state=b&code=c")
        callback = listener.next_callback(HANG)
        assert callback is not None and dict(callback.params) == {}
        callback.answer(CallbackPage.FOREIGN)
        thread.join(HANG)


def test_a_callback_nobody_takes_is_told_the_login_is_over() -> None:
    listener = LoopbackCallbackListener()
    thread, result = in_background(get, listener.port, "/callback?code=x&state=y")
    for _ in range(100):  # wait until the request is queued
        if not listener._queue.empty():
            break
        threading.Event().wait(0.05)
    listener.close()
    thread.join(HANG)
    assert result["value"][0] == 410  # type: ignore[index]


def test_the_port_is_released_on_close() -> None:
    listener = LoopbackCallbackListener()
    port = listener.port
    listener.close()
    with pytest.raises(OSError):
        get(port, "/callback")


def test_nothing_is_logged_by_http_server(capfd: pytest.CaptureFixture[str]) -> None:
    with LoopbackCallbackListener() as listener:
        thread, _ = in_background(get, listener.port, "/callback?code=c0de-secret-value&state=s")
        callback = listener.next_callback(HANG)
        assert callback is not None
        callback.answer(CallbackPage.FAILED)
        thread.join(HANG)
    out, err = capfd.readouterr()
    assert "c0de-secret-value" not in out + err


# --------------------------------------------------------------------------- hostile and broken clients


def raw(port: int, request: bytes) -> bytes:
    """Send ``request`` as it is and read the whole answer (the listener closes every connection)."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def dropped(sock: socket.socket) -> bool:
    """The listener closed its end: the socket reads end of file (or a reset) without blocking."""
    if not select.select([sock], [], [], 0)[0]:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionError:
        return True


def handler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t is not threading.main_thread()]


def open_sockets() -> int | None:
    """This process's open sockets, read from Linux's /proc (None elsewhere: Windows, macOS, and Wine, whose
    Windows programs see the Linux /proc of the Wine process, not their own handles)."""
    if not sys.platform.startswith("linux"):
        return None
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:
            pass  # the directory listing's own descriptor, closed by now
    return count


def wait_until(condition, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + HANG  # a hang bound only
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


HOSTS = {
    "localhost": "Host: localhost:{port}",
    "another name (DNS rebinding)": "Host: attacker.example:{port}",
    "no port": "Host: 127.0.0.1",
    "another port": "Host: 127.0.0.1:{other}",
    "a suffix": "Host: 127.0.0.1:{port}.attacker.example",
    "two Host headers": "Host: 127.0.0.1:{port}\r\nHost: attacker.example:{port}",
    "missing": "",
}


@pytest.mark.parametrize("host", HOSTS.values(), ids=HOSTS.keys())
def test_a_request_not_addressed_to_127_0_0_1_and_this_port_is_refused_and_never_reaches_the_login(host: str) -> None:
    with LoopbackCallbackListener() as listener:
        lines = ["GET /callback?code=c0de-secret-value&state=s1 HTTP/1.1"]
        lines += [host.format(port=listener.port, other=listener.port + 1)] if host else []
        answer = raw(listener.port, ("\r\n".join(lines) + "\r\n\r\n").encode()).decode()
        assert answer.startswith("HTTP/1.1 421 ") and "Wrong address" in answer
        assert "c0de-secret-value" not in answer and "s1" not in answer.split("\r\n\r\n", 1)[1]
        assert listener.next_callback(0) is None  # answered without queuing anything


def test_the_exact_host_is_served() -> None:
    with LoopbackCallbackListener() as listener:
        answer = raw(listener.port, f"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1:{listener.port}\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.1 404 ")


def test_a_client_that_sends_nothing_is_dropped_after_the_read_timeout() -> None:
    with LoopbackCallbackListener(read_timeout=1) as listener, \
            socket.create_connection(("127.0.0.1", listener.port), timeout=HANG) as sock:
        wait_until(lambda: dropped(sock), "an idle connection was never dropped")
        assert listener.next_callback(0) is None


def test_a_client_that_trickles_its_request_is_dropped_after_the_read_timeout() -> None:
    """A byte every 50 ms keeps each read short: only a deadline for the whole request line and headers ends it."""
    with LoopbackCallbackListener(read_timeout=1) as listener, \
            socket.create_connection(("127.0.0.1", listener.port), timeout=HANG) as sock:
        request = f"GET /callback?code=x&state=y HTTP/1.1\r\nHost: 127.0.0.1:{listener.port}\r\nX-Slow: "
        sock.sendall(request.encode())
        deadline = time.monotonic() + HANG  # a hang bound only
        while not dropped(sock):
            assert time.monotonic() < deadline, "a trickling client was never dropped"
            try:
                sock.sendall(b"a")
            except ConnectionError:
                break
            time.sleep(0.05)
        assert listener.next_callback(0) is None


def test_many_idle_connections_hold_a_bounded_number_of_threads_and_close_leaves_none() -> None:
    threads_before, sockets_before = len(handler_threads()), open_sockets()
    listener = LoopbackCallbackListener()
    idle = []
    for _ in range(200):
        idle.append(socket.create_connection(("127.0.0.1", listener.port), timeout=HANG))
        time.sleep(0.001)  # lets the accept loop keep up (a full listen backlog costs a 1 s SYN retransmit)
    try:
        # The listener accepts in order: once a later connection is answered (or dropped), all 200 were accepted.
        with socket.create_connection(("127.0.0.1", listener.port), timeout=HANG) as probe:
            probe.sendall(f"GET /favicon.ico HTTP/1.1\r\nHost: 127.0.0.1:{listener.port}\r\n\r\n".encode())
            try:
                probe.recv(1)
            except ConnectionError:
                pass
        assert len(handler_threads()) - threads_before <= MAX_CONNECTIONS + 1  # + the accept loop
        listener.close()
        assert len(handler_threads()) == threads_before  # right after close(): nothing left running
        if sockets_before is not None:
            assert open_sockets() == sockets_before + len(idle)  # only the test's own ends remain
        for sock in idle:
            sock.settimeout(HANG)
            try:
                assert sock.recv(1) == b""
            except ConnectionError:
                pass
    finally:
        listener.close()
        for sock in idle:
            sock.close()


def reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP reset, as when a browser tab is killed."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_connection_reset_by_the_browser_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    threads_before = len(handler_threads())
    with LoopbackCallbackListener() as listener:
        reset(socket.create_connection(("127.0.0.1", listener.port), timeout=HANG))  # before any request
        held = socket.create_connection(("127.0.0.1", listener.port), timeout=HANG)  # while its request is held
        held.sendall(f"GET /callback?code=c0de-secret-value&state=s HTTP/1.1\r\nHost: 127.0.0.1:{listener.port}\r\n\r\n".encode())
        callback = listener.next_callback(HANG)
        assert callback is not None
        reset(held)
        callback.answer(CallbackPage.LOGGED_IN)
    wait_until(lambda: len(handler_threads()) == threads_before, "a connection thread outlived close()")
    out, err = capfd.readouterr()
    assert "Traceback" not in err and "ConnectionResetError" not in err and "BrokenPipeError" not in err
    assert out + err == ""


ANSWER_THEN_EXIT = """
import os, sys
from kitty_auth.adapters.oauth_loopback import LoopbackCallbackListener
from kitty_auth.domain.oauth import CallbackPage
listener = LoopbackCallbackListener()
print(listener.port, flush=True)
listener.next_callback(float(sys.argv[1])).answer(CallbackPage.LOGGED_IN)
listener.close()
os._exit(0)  # as the CLI does right after: print "Logged in", exit
"""


def test_the_page_is_sent_before_close_returns_so_a_cli_that_exits_next_still_shows_it() -> None:
    """A daemon thread still writing the page when the process exits loses it: the browser gets an empty answer
    (measured under load before close() joined its threads: 19 pages lost out of 60)."""
    proc = subprocess.Popen([sys.executable, "-c", ANSWER_THEN_EXIT, str(HANG)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        answer = raw(port, f"GET /callback?code=x&state=y HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert proc.wait(HANG) == 0
    finally:
        proc.kill()
    assert answer.startswith(b"HTTP/1.1 200 ") and b"Logged in" in answer


WAIT_FOR_A_CALLBACK = """
try:
    print("waiting", flush=True)  # inside the try: a signal sent at once may land before the wait starts
    listener.next_callback(float(sys.argv[1]))
except KeyboardInterrupt:
    sys.exit(130)
sys.exit("the wait ended without the interrupt")
"""

CTRL_C_ELSEWHERE = """
import signal, sys
from kitty_auth.adapters.oauth_loopback import LoopbackCallbackListener
listener = LoopbackCallbackListener()  # its threads start with SIGINT deliverable
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})  # the kernel hands SIGINT to one of them
""" + WAIT_FOR_A_CALLBACK

CTRL_C_FROM_A_THREAD = """
import signal, sys, threading, time
from kitty_auth.adapters.oauth_loopback import LoopbackCallbackListener
listener = LoopbackCallbackListener()
def interrupt():
    time.sleep(0.5)  # the main thread is blocked in the wait by then
    signal.raise_signal(signal.SIGINT)  # the handler runs on this thread, as Windows runs a console's Ctrl-C
threading.Thread(target=interrupt, daemon=True).start()
""" + WAIT_FOR_A_CALLBACK


def wait_ends_with_ctrl_c(script: str, *, send_sigint: bool) -> None:
    proc = subprocess.Popen([sys.executable, "-c", script, str(HANG * 10)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "waiting\n"
        if send_sigint:
            time.sleep(0.5)  # most often the child is blocked in the wait by then (the case under test)
            proc.send_signal(signal.SIGINT)
        assert proc.wait(HANG) == 130  # a hang bound: the wait itself is ten times longer
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"),
                    reason="no pthread_sigmask (Windows): a console's Ctrl-C always runs on a thread of its own there, "
                    "which the next test plays")
def test_ctrl_c_ends_the_wait_for_a_callback_even_when_the_signal_lands_on_another_thread() -> None:
    """Python runs a signal's handler in the main thread, between bytecodes: a SIGINT that another thread takes (or
    that the main thread takes just before it blocks) used to wait out the whole login timeout, 5 minutes (seen once
    in about 55 Ctrl-Cs under load)."""
    wait_ends_with_ctrl_c(CTRL_C_ELSEWHERE, send_sigint=True)


def test_ctrl_c_handled_on_another_thread_ends_the_wait_for_a_callback() -> None:
    """Windows runs a console's Ctrl-C handler on a new thread; POSIX does the same for a signal raised by a thread.
    Python then only sets a flag for the main thread, which must not be blocked for the whole login timeout."""
    wait_ends_with_ctrl_c(CTRL_C_FROM_A_THREAD, send_sigint=False)


def test_close_answers_a_taken_but_unanswered_callback_at_once() -> None:
    listener = LoopbackCallbackListener(answer_timeout=HANG * 10)
    thread, result = in_background(get, listener.port, "/callback?code=x&state=y")
    assert listener.next_callback(HANG) is not None  # taken, then the login is interrupted before answering
    listener.close()
    thread.join(HANG)
    assert result["value"][0] == 504  # type: ignore[index]  # "outcome unknown: the terminal has it"


# --------------------------------------------------------------------------- the browser adapter

OPEN = "from kitty_auth.adapters.oauth_browser import WebBrowser; import sys; print(WebBrowser().open(sys.argv[1]))"


def run_open(url: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "DISPLAY", "WAYLAND_DISPLAY")}
    proc = subprocess.run([sys.executable, "-c", OPEN, url], env={**base, **env}, capture_output=True,
                          text=True, timeout=HANG, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_browser_env_is_honoured(tmp_path: Path) -> None:
    seen = tmp_path / "url.txt"
    if os.name == "nt":  # a batch file; %* is the URL as given (cmd splits %1 at "=")
        script = tmp_path / "browser.cmd"
        script.write_text(f'@echo off\r\n>"{seen}" echo %*\r\n')
    else:
        script = tmp_path / "browser.sh"
        script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > "{seen}"\n')
        script.chmod(0o755)
    assert run_open("https://auth.example.test/oauth/authorize?x=1", BROWSER=str(script)) == "True"
    assert seen.read_text().rstrip("\r\n") == "https://auth.example.test/oauth/authorize?x=1"


def test_a_browser_that_fails_counts_as_none(tmp_path: Path) -> None:
    assert run_open("https://auth.example.test/", BROWSER="/bin/false") == "False"


@pytest.mark.skipif(sys.platform in ("darwin", "win32", "cygwin"),
                    reason="Linux/BSD rule: macOS and Windows always have a default browser, which this test "
                    "would open for real (under Wine: the Linux host's)")
def test_no_display_and_no_browser_env_means_no_browser() -> None:
    # Linux/BSD without a display: webbrowser would only find text browsers, which would take over this terminal.
    assert run_open("https://auth.example.test/") == "False"
