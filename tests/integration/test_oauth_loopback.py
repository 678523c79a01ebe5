"""The loopback listener over real sockets, and the webbrowser adapter in fresh interpreters (BROWSER honoured)."""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kitty_auth.adapters.oauth_loopback import LoopbackCallbackListener
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
