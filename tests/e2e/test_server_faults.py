"""Every server-side fault, end to end: the installed CLI (login) and the installed library in a fresh
interpreter (refresh, ws-token) against the reference server over TLS, at DEBUG.

Each fault must give the contract's sentence, exit 1, no traceback (the harness asserts that), and leave
the credentials file byte-for-byte as it was (bytes and mode), except where the contract says the session
ends (a rejected refresh). The harness's teardown also fails a test if any token or password shows up in
any output or in the server log.
"""

from __future__ import annotations

import os
import socket
import stat
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from refserver import DEMO_PASSWORD, DEMO_USERNAME, REFRESH_PATH, TOKEN_PATH, WS_TOKEN_PATH

from .conftest import E2E

pytestmark = pytest.mark.e2e

# The contract's sentences (CONTRACT.md, "Errors"), or the part of the message that carries them.
UNAVAILABLE = "Server temporarily unavailable"
UNREACHABLE = "Cannot reach server. Check your connection."
NOT_UNDERSTOOD = "The server's response was not understood"
UNTRUSTED = "The server's certificate could not be verified"
RATE_LIMITED = "Server is limiting requests (HTTP 429)"
REDIRECTED = "unexpected HTTP status 302; the server redirected the request"
SESSION_EXPIRED = "Session expired. Please log in again."
HANG_BOUND = 10.0  # the contract: a whole login ends in under 10 s even when the server never answers

JSON = "application/json"
BIG = 2_000_000  # twice the client's 1 MB cap

# fault name -> (RefServer.add_fault keyword arguments, the sentence the user must see)
FAULTS: dict[str, tuple[dict, str]] = {
    "500": ({"status": 500, "body": "<h1>Server Error (500)</h1>", "content_type": "text/html"}, UNAVAILABLE),
    "502": ({"status": 502, "body": "<html>Bad Gateway</html>", "content_type": "text/html"}, UNAVAILABLE),
    "503": ({"status": 503, "body": '{"detail": "maintenance"}', "headers": {"Retry-After": "30"}}, UNAVAILABLE),
    "429": ({"status": 429, "body": '{"detail": "Request was throttled."}', "headers": {"Retry-After": "5"}},
            RATE_LIMITED),
    "302 redirect": ({"status": 302, "body": "", "headers": {"Location": "https://evil.example/api/v1/token/"}},
                     REDIRECTED),
    "html with 200": ({"status": 200, "body": "<!doctype html><html><body>Welcome</body></html>",
                       "content_type": "text/html"}, NOT_UNDERSTOOD),
    "truncated json with 200": ({"status": 200, "body": '{"access": "eyJhbGciOiJIUzI1NiJ9.e30.x", "refr'},
                                NOT_UNDERSTOOD),
    "json not an object": ({"status": 200, "body": "[]"}, NOT_UNDERSTOOD),
    "oversized body (declared)": ({"status": 200, "body": '{"access": "' + "a" * BIG + '"}',
                                   "headers": {"Content-Length": str(BIG + 14)}}, NOT_UNDERSTOOD),
    "oversized body (undeclared)": ({"status": 200, "body": '{"access": "' + "a" * BIG + '"}'}, NOT_UNDERSTOOD),
    "connection dropped": ({"close": True}, UNREACHABLE),
}

# bodies that are well-formed JSON but not what the endpoint promises
BAD_PAIRS = {
    "missing refresh": '{"access": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}',
    "mistyped fields": '{"access": 1, "refresh": true}',
    "null field": '{"access": null, "refresh": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}',
    "token with a space": '{"access": "eyJ a.b.c", "refresh": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}',
    "empty token": '{"access": "", "refresh": "eyJhbGciOiJIUzI1NiJ9.e30.sig"}',
}
BAD_WS = {
    "missing ws_token": '{"expires_at": "2030-01-01T00:00:00Z", "expires_in": 900}',
    "expires_at not a date": '{"ws_token": "opaque-ws-token", "expires_at": "soon", "expires_in": 900}',
    "expires_at without zone": '{"ws_token": "opaque-ws-token", "expires_at": "2030-01-01T00:00:00", "expires_in": 900}',
    "expires_in a string": '{"ws_token": "opaque-ws-token", "expires_at": "2030-01-01T00:00:00Z", "expires_in": "900"}',
    "ws_token a number": '{"ws_token": 12345678, "expires_at": "2030-01-01T00:00:00Z", "expires_in": 900}',
}


def all_faults(bad_bodies: dict[str, str]) -> dict[str, tuple[dict, str]]:
    faults = dict(FAULTS)
    for name, body in bad_bodies.items():
        faults[f"json with {name}"] = ({"status": 200, "body": body}, NOT_UNDERSTOOD)
    return faults


LOGIN_FAULTS = all_faults(BAD_PAIRS)
REFRESH_FAULTS = all_faults(BAD_PAIRS)
WS_FAULTS = all_faults(BAD_WS)


# ----------------------------------------------------------------------------------------------- helpers


def login(e2e: E2E, *extra: str, **env: str):
    """The demo user logs in with --password-stdin, with extra options."""
    return e2e.login(DEMO_USERNAME, DEMO_PASSWORD, *extra, **env)


def snapshot(path: Path) -> tuple[bytes, int] | None:
    """The credentials file's bytes and mode, or None when there is no file."""
    try:
        return path.read_bytes(), stat.S_IMODE(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None


def assert_failed_with(run, sentence: str) -> None:
    assert run.returncode == 1, run.output
    assert sentence in run.stderr, run.stderr
    assert "Traceback" not in run.output  # (the harness checks this too)


def set_stored(e2e: E2E, table: str, key: str, value: str) -> None:
    """Change one stored string (e.g. make the access token look expired) keeping the file's format."""
    text = e2e.credentials.read_text(encoding="utf-8")
    old = tomllib.loads(text)[table][key]
    e2e.credentials.write_text(text.replace(f'{key} = "{old}"', f'{key} = "{value}"'), encoding="utf-8")
    assert tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))[table][key] == value


def instant(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).strftime("%Y-%m-%dT%H:%M:%SZ")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[str]:
    """An https:// URL of a socket that accepts TCP connections and never says a word (no TLS handshake)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    import trustme

    path = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.fixture
def logged_in(e2e: E2E) -> E2E:
    run = e2e.login()
    assert run.returncode == 0, run.output
    e2e.server.reset_stats()
    return e2e


# The host's view: the installed library in a fresh interpreter; an AuthError becomes one line and exit 1,
# anything else escapes as a traceback (which the harness rejects).
LIBRARY = """
import sys, kitty_auth
client = kitty_auth.AuthClient()
try:
    result = client.{call}()
except kitty_auth.AuthError as exc:
    print(f"{{type(exc).__name__}}: {{exc}}", file=sys.stderr)
    sys.exit(1)
finally:
    client.close()
print("ok")
"""
REFRESH = LIBRARY.format(call="get_access_token")
WS_TOKEN = LIBRARY.format(call="obtain_ws_token")


# ----------------------------------------------------------------------------------------------- login


@pytest.mark.parametrize("fault", list(LOGIN_FAULTS), ids=list(LOGIN_FAULTS))
def test_login_fault_keeps_the_stored_session(logged_in: E2E, fault: str) -> None:
    e2e, (kwargs, sentence) = logged_in, LOGIN_FAULTS[fault]
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(TOKEN_PATH, count=1, **kwargs)
    run = login(e2e, "--force")
    assert_failed_with(run, sentence)
    assert snapshot(e2e.credentials) == before
    assert e2e.server.stats()["requests"] == {TOKEN_PATH: 1}  # one request: no retry, no redirect followed


@pytest.mark.parametrize("fault", ["503", "html with 200", "connection dropped"])
def test_login_fault_on_a_fresh_machine_stores_nothing(e2e: E2E, fault: str) -> None:
    kwargs, sentence = LOGIN_FAULTS[fault]
    e2e.server.add_fault(TOKEN_PATH, count=1, **kwargs)
    assert_failed_with(login(e2e), sentence)
    assert not e2e.credentials.exists()


def test_login_against_a_server_that_never_answers_fails_within_10_s(logged_in: E2E) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(TOKEN_PATH, delay=60, count=1)
    started = time.monotonic()
    run = login(e2e, "--force")
    elapsed = time.monotonic() - started
    assert_failed_with(run, UNREACHABLE)
    assert elapsed < HANG_BOUND, f"login took {elapsed:.1f} s"
    assert snapshot(e2e.credentials) == before


def test_login_against_a_socket_that_never_does_tls_fails_within_10_s(e2e: E2E, silent_server: str) -> None:
    started = time.monotonic()
    run = login(e2e, "--server", silent_server)
    elapsed = time.monotonic() - started
    assert_failed_with(run, UNREACHABLE)
    assert elapsed < HANG_BOUND, f"login took {elapsed:.1f} s"
    assert not e2e.credentials.exists()


def test_login_connection_refused(logged_in: E2E) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    run = login(e2e, "--server", f"https://127.0.0.1:{closed_port()}", "--force")
    assert_failed_with(run, UNREACHABLE)
    assert snapshot(e2e.credentials) == before


@pytest.mark.parametrize("trust", ["os store only", "another CA"])
def test_login_to_a_server_whose_certificate_is_not_trusted(logged_in: E2E, other_ca: Path, trust: str) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    run = login(e2e, "--force", SSL_CERT_FILE="" if trust == "os store only" else str(other_ca))
    assert_failed_with(run, UNTRUSTED)
    assert snapshot(e2e.credentials) == before
    assert e2e.server.stats()["requests"] == {}  # the handshake failed: no request reached the server


# ----------------------------------------------------------------------------------------------- refresh


@pytest.fixture
def expired_access(logged_in: E2E) -> E2E:
    """Logged in, with the stored access token expired: the next get_access_token() must refresh."""
    set_stored(logged_in, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))
    return logged_in


@pytest.mark.parametrize("fault", list(REFRESH_FAULTS), ids=list(REFRESH_FAULTS))
def test_refresh_fault_keeps_the_stored_session(expired_access: E2E, fault: str) -> None:
    e2e, (kwargs, sentence) = expired_access, REFRESH_FAULTS[fault]
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(REFRESH_PATH, count=1, **kwargs)
    run = e2e.library(REFRESH)
    assert_failed_with(run, sentence)
    assert snapshot(e2e.credentials) == before
    assert e2e.server.stats()["requests"] == {REFRESH_PATH: 1}


def test_refresh_another_4xx_names_the_status_and_keeps_the_session(expired_access: E2E) -> None:
    e2e = expired_access
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(REFRESH_PATH, status=403, body='{"detail": "forbidden"}', count=1)
    run = e2e.library(REFRESH)
    assert_failed_with(run, "HTTP status 403")
    assert "auth login" in run.stderr
    assert snapshot(e2e.credentials) == before


def test_refresh_rejected_401_ends_the_session(expired_access: E2E) -> None:
    e2e = expired_access
    e2e.server.add_fault(REFRESH_PATH, status=401, count=1,
                         body='{"detail": "Token is blacklisted", "code": "token_not_valid"}')
    run = e2e.library(REFRESH)
    assert_failed_with(run, SESSION_EXPIRED)
    assert not e2e.credentials.exists()  # the contract's one exception: a rejected refresh ends the session
    status = e2e.cli("status")
    assert status.returncode == 1


def test_refresh_against_a_server_that_never_answers_fails_within_10_s(expired_access: E2E) -> None:
    e2e = expired_access
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(REFRESH_PATH, delay=60, count=1)
    started = time.monotonic()
    run = e2e.library(REFRESH)
    elapsed = time.monotonic() - started
    assert_failed_with(run, UNREACHABLE)
    assert elapsed < HANG_BOUND, f"refresh took {elapsed:.1f} s"
    assert snapshot(e2e.credentials) == before


def test_refresh_connection_refused(expired_access: E2E) -> None:
    e2e = expired_access
    set_stored(e2e, "server", "url", f"https://127.0.0.1:{closed_port()}")  # refresh goes to the stored server
    before = snapshot(e2e.credentials)
    run = e2e.library(REFRESH)
    assert_failed_with(run, UNREACHABLE)
    assert snapshot(e2e.credentials) == before


def test_refresh_with_an_untrusted_certificate(expired_access: E2E) -> None:
    e2e = expired_access
    before = snapshot(e2e.credentials)
    run = e2e.library(REFRESH, SSL_CERT_FILE="")
    assert_failed_with(run, UNTRUSTED)
    assert snapshot(e2e.credentials) == before


def test_transient_refresh_failure_inside_the_margin_uses_the_still_valid_token(logged_in: E2E) -> None:
    e2e = logged_in
    set_stored(e2e, "tokens", "access_expires_at", instant(timedelta(seconds=30)))  # inside the 60 s margin
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(REFRESH_PATH, status=503, count=1)
    run = e2e.library(REFRESH)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.output
    assert snapshot(e2e.credentials) == before
    assert e2e.server.stats()["requests"] == {REFRESH_PATH: 1}


# ----------------------------------------------------------------------------------------------- ws-token


@pytest.mark.parametrize("fault", list(WS_FAULTS), ids=list(WS_FAULTS))
def test_ws_token_fault_keeps_the_stored_session(logged_in: E2E, fault: str) -> None:
    e2e, (kwargs, sentence) = logged_in, WS_FAULTS[fault]
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(WS_TOKEN_PATH, count=1, **kwargs)
    run = e2e.library(WS_TOKEN)
    assert_failed_with(run, sentence)
    assert snapshot(e2e.credentials) == before
    assert e2e.server.stats()["requests"] == {WS_TOKEN_PATH: 1}


def test_ws_token_against_a_server_that_never_answers_fails_within_10_s(logged_in: E2E) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    e2e.server.add_fault(WS_TOKEN_PATH, delay=60, count=1)
    started = time.monotonic()
    run = e2e.library(WS_TOKEN)
    elapsed = time.monotonic() - started
    assert_failed_with(run, UNREACHABLE)
    assert elapsed < HANG_BOUND, f"ws-token took {elapsed:.1f} s"
    assert snapshot(e2e.credentials) == before


def test_ws_token_with_an_untrusted_certificate(logged_in: E2E, other_ca: Path) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    run = e2e.library(WS_TOKEN, SSL_CERT_FILE=str(other_ca))
    assert_failed_with(run, UNTRUSTED)
    assert snapshot(e2e.credentials) == before


def test_ws_token_still_401_after_one_refresh_ends_the_session(logged_in: E2E) -> None:
    e2e = logged_in
    e2e.server.add_fault(WS_TOKEN_PATH, status=401, count=2,
                         body='{"detail": "Given token not valid for any token type", "code": "token_not_valid"}')
    run = e2e.library(WS_TOKEN)
    assert_failed_with(run, SESSION_EXPIRED)
    assert not e2e.credentials.exists()
    assert e2e.server.stats()["requests"] == {WS_TOKEN_PATH: 2, REFRESH_PATH: 1}



# --------------------------------------------------------------- the server refreshed, the answer was late

# The server's view runs (simplejwt rotates the refresh token and blacklists the old one), then the
# answer waits LATE s: past the client's 5 s read timeout, inside its 30 s late-answer window.
LATE = 10.0

SAME_PROCESS_RETRY = """
import os, sys, kitty_auth
client = kitty_auth.AuthClient()
try:
    client.get_access_token()
    sys.exit("the first refresh should have given up")
except kitty_auth.NetworkError as exc:
    print(f"first: {exc}", file=sys.stderr)
ws = client.obtain_ws_token()  # the same long-lived process asks again before the answer is in
with open(os.environ["E2E_SECRETS_OUT"], "a") as out:
    out.write(ws.ws_token + "\\n")
client.close()
print("ok")
"""

def stored_refresh(e2e: E2E) -> str:
    return tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))["tokens"]["refresh"]


def test_a_late_refresh_answer_is_not_thrown_away_by_a_long_running_process(expired_access: E2E) -> None:
    """The review's reproduction: get_access_token() -> NetworkError, then obtain_ws_token() in the same
    process used to present the blacklisted token and end the session."""
    e2e = expired_access
    old = stored_refresh(e2e)
    e2e.server.add_fault(REFRESH_PATH, after_view=True, delay=LATE, count=1)
    run = e2e.library(SAME_PROCESS_RETRY)
    assert run.returncode == 0, run.output
    assert UNREACHABLE in run.stderr  # the first call did give up
    new = stored_refresh(e2e)
    assert new != old and not e2e.server.refresh_token_accepted(old)
    assert e2e.server.refresh_token_accepted(new)  # the late answer is what is stored
    assert e2e.server.stats()["requests"] == {REFRESH_PATH: 1, WS_TOKEN_PATH: 1}  # old token sent once


def test_a_late_refresh_answer_is_stored_when_it_arrives(expired_access: E2E) -> None:
    e2e = expired_access
    old = stored_refresh(e2e)
    e2e.server.add_fault(REFRESH_PATH, after_view=True, delay=LATE, count=1)
    # A host that goes on working after the failure; the answer is stored in the background.
    run = e2e.library(
        "import os, sys, time, tomllib, kitty_auth\n"
        "from pathlib import Path\n"
        "client = kitty_auth.AuthClient()\n"
        "try:\n"
        "    client.get_access_token()\n"
        "except kitty_auth.NetworkError as exc:\n"
        "    print(f'first: {exc}', file=sys.stderr)\n"
        "path = Path(os.environ['SPEC_KITTY_HOME']) / 'credentials'\n"
        "end = time.monotonic() + 60  # a hang bound: the answer comes about 5 s later\n"
        "while tomllib.loads(path.read_text())['tokens']['refresh'] == os.environ['OLD_REFRESH']:\n"
        "    if time.monotonic() > end:\n"
        "        sys.exit('the late answer was never stored')\n"
        "    time.sleep(0.1)\n"
        "client.close()\n"
        "print('ok')\n",
        OLD_REFRESH=old,
    )
    assert run.returncode == 0, run.output
    new = stored_refresh(e2e)
    assert new != old and e2e.server.refresh_token_accepted(new)
    after = e2e.library(REFRESH)  # the next process uses the stored tokens: no refresh
    assert after.returncode == 0, after.output
    assert e2e.server.stats()["requests"] == {REFRESH_PATH: 1}


def test_a_short_process_that_exits_before_the_late_answer_loses_the_session(expired_access: E2E) -> None:
    """What cannot be recovered (README, Reliability): the server rotated and blacklisted the token, its
    answer came after the process had exited, so the only valid refresh token was never stored."""
    e2e = expired_access
    old = stored_refresh(e2e)
    e2e.server.add_fault(REFRESH_PATH, after_view=True, delay=LATE, count=1)
    first = e2e.library(REFRESH)
    assert_failed_with(first, UNREACHABLE)
    assert stored_refresh(e2e) == old and not e2e.server.refresh_token_accepted(old)
    second = e2e.library(REFRESH)
    assert_failed_with(second, SESSION_EXPIRED)
    assert not e2e.credentials.exists()
