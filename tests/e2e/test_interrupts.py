"""SIGINT and SIGTERM end to end: the installed library and the installed CLI as subprocesses, against the reference
server over TLS, signalled while a request the server has carried out is still waiting for its answer.

The server's view runs first (simplejwt and django-oauth-toolkit rotate the refresh token and blacklist the old one),
then its answer waits HELD s: well inside the client's 5 s read timeout, so the answer is awaited after the signal.
Each signal is sent once the server's log shows the view has run (or, for a login, that the request is waiting):
events, not fixed times. The harness checks every run for tracebacks and leaked secrets.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from refserver import DEMO_PASSWORD, DEMO_USERNAME, REFRESH_PATH, TOKEN_PATH

from .conftest import CLI, E2E, HANG_LIMIT, Run
from .test_oauth_e2e import Running, pending_device_codes
from .test_server_faults import REFRESH, instant, set_stored, snapshot

pytestmark = pytest.mark.e2e

HELD = 3.0  # seconds the server holds a processed request's answer: less than the client's 5 s read timeout
OAUTH_TOKEN = "/oauth/token"
ME = "/api/v1/me"
SIGNALS = {"SIGINT": (signal.SIGINT, 130), "SIGTERM": (signal.SIGTERM, 143)}

# A host program: the library's get_access_token(), with the host's own handling of the two signals (the library
# installs none). Ctrl-C reaches it as KeyboardInterrupt; its SIGTERM handler exits, as many hosts' do.
HOST = """
import signal, sys, kitty_auth
signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
client = kitty_auth.AuthClient()
try:
    client.get_access_token()
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
    sys.exit(130)
finally:
    client.close()
print("ok")
"""

# A REPL, or a host that catches Ctrl-C around one call and goes on; the next call comes once the test says the
# server's answer has gone out (a line on stdin).
REPL = """
import sys, kitty_auth
client = kitty_auth.AuthClient()
try:
    client.get_access_token()
    sys.exit("the first call should have been interrupted")
except KeyboardInterrupt:
    print("interrupted", file=sys.stderr)
sys.stdin.readline()
assert client.get_access_token()
client.close()
print("ok")
"""


# ----------------------------------------------------------------------------------------------- helpers


def background(e2e: E2E, args: list[str], input: str | None = None, *, stdin: bool = False) -> Running:
    """``args`` (the CLI or a Python program) started in the background, its stderr read as it comes; ``input``
    is written to its stdin, which ``stdin=True`` keeps open for the test to write more."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE if input is not None or stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e2e.env())
    if input is not None:
        assert proc.stdin is not None
        proc.stdin.write(input)
        proc.stdin.flush()
    if proc.stdin is not None and not stdin:
        proc.stdin.close()
    return Running(e2e, proc, args[1:], e2e.home.parent / "unused-browser-url")


def library(e2e: E2E, code: str, *, stdin: bool = False) -> Running:
    return background(e2e, [sys.executable, "-c", code], stdin=stdin)


def server_log_shows(e2e: E2E, condition: Callable[[dict[str, Any]], bool]) -> None:
    """Wait until an entry of the server's request log satisfies ``condition`` (a hang bound, not a timing claim)."""
    deadline = time.monotonic() + HANG_LIMIT
    while not any(condition(entry) for entry in e2e.server.stats()["log"]):
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.05)


def processed(path: str) -> Callable[[dict[str, Any]], bool]:
    """The server's view for ``path`` has run and answered 200 (the answer itself is held back)."""
    return lambda entry: entry["path"] == path and entry.get("view_status") == 200


def arrived(path: str) -> Callable[[dict[str, Any]], bool]:
    return lambda entry: entry["path"] == path


def stored_tokens(e2e: E2E) -> dict[str, Any]:
    return tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))["tokens"]


def device_session(e2e: E2E) -> None:
    """An OAuth session, logged in with the device flow; the test approves the code through the control API."""
    running = background(e2e, [CLI, "auth", "login", "--device"])
    complete = running.wait_for_line("https://")  # verification_uri_complete: carries the user code
    pending_device_codes(e2e)
    assert e2e.server.decide_device_code(dict(parse_qsl(urlsplit(complete).query))["user_code"])
    run = running.finish()
    assert run.returncode == 0, run.output


def oauth_refresh_tokens(e2e: E2E) -> set[str]:
    """Every OAuth refresh token the server has issued (read from its database)."""
    with sqlite3.connect(e2e.server.state_dir / "db.sqlite3", timeout=10) as db:
        return {row[0] for row in db.execute("SELECT token FROM oauth2_provider_refreshtoken")}


def assert_interrupted(run: Run, code: int) -> None:
    assert run.returncode == code, run.output
    assert "Traceback" not in run.output


# ----------------------------------------------------------------------------------------------- the library


@pytest.fixture
def password_session(e2e: E2E) -> E2E:
    run = e2e.login()
    assert run.returncode == 0, run.output
    set_stored(e2e, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))  # the next call refreshes
    e2e.server.reset_stats()
    return e2e


@pytest.fixture
def oauth_session(e2e: E2E) -> E2E:
    device_session(e2e)
    set_stored(e2e, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))
    e2e.server.reset_stats()
    return e2e


@pytest.mark.parametrize("kind", ["password", "oauth"])
@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_host_signalled_while_the_rotated_answer_is_on_its_way_keeps_the_session(
        request: pytest.FixtureRequest, kind: str, name: str) -> None:
    """The review's measurement: the refresh is sent, the server rotates, the answer takes a moment, Ctrl-C (or
    SIGTERM) arrives. The answer is awaited and stored before the process exits 130 (143), and the next process
    uses it without refreshing again."""
    e2e: E2E = request.getfixturevalue(f"{kind}_session")
    path = REFRESH_PATH if kind == "password" else OAUTH_TOKEN
    signum, code = SIGNALS[name]
    old = stored_tokens(e2e)["refresh"]
    e2e.server.add_fault(path, after_view=True, delay=HELD, count=1)

    running = library(e2e, HOST)
    server_log_shows(e2e, processed(path))  # rotated: the old token is dead, the new one is on its way
    running.proc.send_signal(signum)
    run = running.finish()

    assert_interrupted(run, code)
    new = stored_tokens(e2e)["refresh"]
    assert new != old and not e2e.server.refresh_token_accepted(old) and e2e.server.refresh_token_accepted(new)
    assert e2e.cli("status").returncode == 0
    after = e2e.library(REFRESH)  # the next process: the stored access token is fresh, no refresh
    assert after.returncode == 0, after.output
    assert e2e.server.stats()["requests"] == {path: 1}


def test_a_repl_that_catches_the_interrupt_gets_a_working_token_on_the_next_call(password_session: E2E) -> None:
    e2e = password_session
    e2e.server.add_fault(REFRESH_PATH, after_view=True, delay=HELD, count=1)
    running = library(e2e, REPL, stdin=True)
    server_log_shows(e2e, processed(REFRESH_PATH))
    running.proc.send_signal(signal.SIGINT)
    running.wait_for_line("interrupted")
    # Before the fix the answer, arriving after the interrupt, went nowhere: a later call resent the old token.
    server_log_shows(e2e, lambda entry: entry["path"] == REFRESH_PATH and entry["status"] == 200)
    assert running.proc.stdin is not None
    running.proc.stdin.write("go\n")
    running.proc.stdin.close()
    run = running.finish()
    assert run.returncode == 0 and run.stdout.strip() == "ok" and "interrupted" in run.stderr, run.output
    assert e2e.server.stats()["requests"] == {REFRESH_PATH: 1}  # the second call used the stored answer
    assert e2e.server.refresh_token_accepted(stored_tokens(e2e)["refresh"])


# ----------------------------------------------------------------------------------------------- the CLI


@pytest.mark.parametrize("name", list(SIGNALS))
def test_a_login_signalled_while_waiting_for_the_server_keeps_the_old_session(password_session: E2E,
                                                                              name: str) -> None:
    e2e = password_session
    signum, code = SIGNALS[name]
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(TOKEN_PATH, delay=30, count=1)  # held before the view: nothing is issued
    running = background(e2e, [CLI, "auth", "login", "-u", DEMO_USERNAME, "--password-stdin", "--force"],
                         input=DEMO_PASSWORD + "\n")
    server_log_shows(e2e, arrived(TOKEN_PATH))
    running.proc.send_signal(signum)
    run = running.finish()
    assert_interrupted(run, code)
    # The e2e runs at DEBUG: the abandoned request's worker thread may log its end (the pool closed
    # under it at exit) after the last sentence; that line is the debug log's, not the user's.
    said = [line for line in run.stderr.splitlines() if not line.startswith("DEBUG ")]
    assert said[-1] == ("Terminated." if name == "SIGTERM" else "Aborted."), run.stderr
    assert snapshot(e2e.credentials) == before  # the session from before is kept as it was
    assert e2e.cli("status").returncode == 0


@pytest.mark.parametrize("name", list(SIGNALS))
def test_an_oauth_login_signalled_after_the_code_exchange_revokes_what_the_server_issued(e2e: E2E,
                                                                                        name: str) -> None:
    """The review: Ctrl-C between the exchange and the save left a live session nobody held. Here the token
    endpoint has answered and `me` is held: the interrupted login revokes the tokens and says so."""
    signum, code = SIGNALS[name]
    issued_before = oauth_refresh_tokens(e2e)
    e2e.server.add_fault(ME, delay=30, count=1)
    running = background(e2e, [CLI, "auth", "login", "--device"])
    complete = running.wait_for_line("https://")
    pending_device_codes(e2e)
    assert e2e.server.decide_device_code(dict(parse_qsl(urlsplit(complete).query))["user_code"])
    server_log_shows(e2e, arrived(ME))  # the tokens are issued; `me` is waiting
    running.proc.send_signal(signum)
    run = running.finish()

    issued = oauth_refresh_tokens(e2e) - issued_before
    e2e.secrets.update(issued)
    assert_interrupted(run, code)
    assert "Login interrupted: nothing was stored, and the server revoked the session it had just issued." in run.stderr
    assert len(issued) == 1 and not e2e.server.refresh_token_accepted(issued.pop())
    assert not e2e.credentials.exists()
