"""The installed CLI against the reference server over real TLS: what a user sees and what lands on disk."""

from __future__ import annotations

import json
import os
import select
import stat
import subprocess
import sys
import time
import tomllib
from datetime import UTC, datetime

import pytest

from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME

from .conftest import CLI, E2E, HANG_LIMIT, PYTHON, WINDOWS_CLIENT, client_path, posix_client

pytestmark = pytest.mark.e2e


@pytest.fixture(autouse=True)
def password_server(e2e: E2E) -> None:
    """These tests are about a password (simplejwt) server: no OAuth metadata, so plain
    `auth login` prompts for a username and password (the contract's method choice)."""
    e2e.server.set_options(oauth_metadata="off")


def mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def private(path, expected: int = 0o600) -> bool:
    """The POSIX mode is ``expected``; with the Windows CLI, where kitty-auth sets no modes (the user
    profile's ACL protects the file; under Wine the Linux mode is Wine's default), always true."""
    return WINDOWS_CLIENT or mode(path) == expected


def stored(e2e: E2E) -> dict:
    return tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))


def test_login_status_logout_with_password_stdin(e2e: E2E):
    run = e2e.login()
    assert run.returncode == 0, run.output
    assert f"Logged in as {DEMO_USERNAME} at {e2e.server.url}." in run.stdout

    data = stored(e2e)
    assert set(data) == {"tokens", "user", "server"}
    assert data["user"]["username"] == DEMO_USERNAME and set(data["user"]) <= {"username", "team_slug"}
    assert data["server"] == {"url": e2e.server.url}
    assert data["tokens"]["access"].count(".") == 2 and data["tokens"]["refresh"].count(".") == 2
    for key in ("access_expires_at", "refresh_expires_at"):
        assert data["tokens"][key].endswith("Z")
    assert private(e2e.credentials) and private(e2e.home, 0o700)
    assert DEMO_PASSWORD not in e2e.credentials.read_text()
    assert e2e.server.stats()["requests"].get("/api/v1/token/") == 1

    status = e2e.cli("status")
    assert status.returncode == 0
    assert DEMO_USERNAME in status.stdout and e2e.server.url in status.stdout
    assert "expires in 14 minutes" in status.stdout or "expires in 15 minutes" in status.stdout
    assert "expires in 6 days" in status.stdout or "expires in 7 days" in status.stdout

    as_json = e2e.cli("status", "--json")
    assert as_json.returncode == 0
    report = json.loads(as_json.stdout)
    assert report == {
        "authenticated": True, "username": DEMO_USERNAME, "server_url": e2e.server.url,
        "access_expires_at": data["tokens"]["access_expires_at"],
        "refresh_expires_at": data["tokens"]["refresh_expires_at"],
        "login_method": "password", "team_slug": data["user"].get("team_slug"), "session_id": None,
        "machine_client_id": None,
        "token_source": "credentials_file",
    }
    access_exp = datetime.fromisoformat(report["access_expires_at"].replace("Z", "+00:00"))
    assert 800 < (access_exp - datetime.now(UTC)).total_seconds() <= 900

    again = e2e.login()
    assert again.returncode == 0 and "Already logged in as" in again.stdout
    assert e2e.server.stats()["requests"].get("/api/v1/token/") == 1  # no request sent

    out = e2e.cli("logout")
    assert out.returncode == 0 and "Logged out" in out.stdout
    assert not e2e.credentials.exists()
    after = e2e.cli("status", "--json")
    assert after.returncode == 1 and json.loads(after.stdout)["authenticated"] is False
    assert e2e.cli("logout").returncode == 0


@posix_client
def test_login_by_prompt_in_a_terminal_does_not_echo_the_password(e2e: E2E):
    """A real pseudo-terminal: the prompts appear and the typed password is not echoed back."""
    import pty

    e2e.secrets.add(DEMO_PASSWORD)
    master, slave = pty.openpty()
    proc = subprocess.Popen([CLI, "auth", "login"], stdin=slave, stdout=slave, stderr=slave,
                            env=e2e.env(), close_fds=True, start_new_session=True)
    os.close(slave)
    transcript = b""

    def read_until(marker: bytes, deadline: float) -> None:
        nonlocal transcript
        while marker not in transcript:
            assert time.monotonic() < deadline, f"timed out waiting for {marker!r}: {transcript!r}"
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                transcript += chunk

    deadline = time.monotonic() + HANG_LIMIT
    try:
        read_until(b"Username", deadline)
        os.write(master, DEMO_USERNAME.encode() + b"\n")
        read_until(b"Password", deadline)
        os.write(master, DEMO_PASSWORD.encode() + b"\n")
        read_until(b"Logged in as", deadline)
        read_until(b"\n", deadline)
        assert proc.wait(timeout=HANG_LIMIT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    text = transcript.decode(errors="replace")
    e2e.outputs.append(text)
    assert DEMO_USERNAME in text  # the username is echoed (visible prompt)
    assert DEMO_PASSWORD not in text  # the password is not
    assert f"Logged in as {DEMO_USERNAME}" in text
    assert private(e2e.credentials)


def test_wrong_password_stores_nothing(e2e: E2E):
    run = e2e.login(password="not-the-password")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == "Error: Invalid username or password."  # (DEBUG lines above)
    assert not e2e.credentials.exists()


def test_plain_http_url_is_refused_with_no_request_sent(e2e: E2E):
    http_url = e2e.server.url.replace("https://", "http://")
    run = e2e.login("x", "y", "--server", http_url)
    assert run.returncode == 1
    assert "HTTPS is required" in run.stderr
    run = e2e.login(SPEC_KITTY_SAAS_URL=http_url)
    assert run.returncode == 1 and "HTTPS is required" in run.stderr
    assert e2e.server.stats()["requests"] == {}
    assert not e2e.credentials.exists()


def test_password_stdin_without_username_is_a_usage_error(e2e: E2E):
    run = e2e.cli("login", "--password-stdin", input=DEMO_PASSWORD + "\n")
    assert run.returncode == 2
    assert "--password-stdin requires --username" in run.stderr
    assert e2e.server.stats()["requests"] == {}


def test_python_dash_m_runs_the_same_cli(e2e: E2E):
    proc = subprocess.run([PYTHON, "-m", "kitty_auth", "auth", "status", "--json"], capture_output=True,
                          text=True, env=e2e.env(), timeout=HANG_LIMIT)
    assert proc.returncode == 1
    assert json.loads(proc.stdout)["authenticated"] is False


REFRESH_AND_WS = """
import os, kitty_auth
client = kitty_auth.AuthClient()
before = kitty_auth.CredentialStore().load()
token = client.get_access_token()
after = kitty_auth.CredentialStore().load()
ws = client.obtain_ws_token()
with open(os.environ["E2E_SECRETS_OUT"], "a") as fh:
    fh.write(ws.ws_token + "\\n")
print("rotated" if after.tokens.refresh != before.tokens.refresh else "same-refresh")
print("returned-stored" if token == after.tokens.access else "returned-other")
print("ws", ws.expires_in, ws.expires_at.tzinfo is not None)
client.close()
"""


def test_expired_access_token_is_refreshed_with_rotation_and_ws_token_obtained(e2e: E2E):
    e2e.server.set_lifetimes(access=3)
    assert e2e.login().returncode == 0
    old, old_file = stored(e2e), e2e.credentials.read_text()
    time.sleep(3.5)  # the 3 s access token is now expired
    # The refreshed token lives 15 minutes: a slow machine (or Wine) taking more than its margin
    # between the refresh and the ws-token request must not cause a second refresh.
    e2e.server.set_lifetimes(access=900)
    run = e2e.library(REFRESH_AND_WS)
    assert run.returncode == 0, run.output
    assert run.stdout.split("\n")[:3] == ["rotated", "returned-stored", "ws 900 True"]
    stats = e2e.server.stats()["requests"]
    assert stats.get("/api/v1/token/refresh/") == 1 and stats.get("/api/v1/ws-token/") == 1
    new = stored(e2e)
    assert new["tokens"]["refresh"] != old["tokens"]["refresh"]
    assert private(e2e.credentials)
    # the rotated-out refresh token is blacklisted by the server: put the old session (its access
    # token long expired) back, and its refresh is refused
    e2e.credentials.write_text(old_file)
    run = e2e.library(
        "import kitty_auth\n"
        "try:\n    kitty_auth.AuthClient().get_access_token()\n"
        "except kitty_auth.SessionExpiredError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    assert run.returncode == 0 and "SessionExpiredError Session expired. Please log in again." in run.stdout
    assert not e2e.credentials.exists()  # a rejected refresh ends the session


def test_plain_login_targets_the_server_of_the_stored_session(e2e: E2E):
    """After `login --server X`, a plain `login` (nothing configured) is about X, not the default server."""
    nothing_configured = {"SPEC_KITTY_SAAS_URL": ""}
    assert e2e.login(DEMO_USERNAME, DEMO_PASSWORD, "--server", e2e.server.url, **nothing_configured).returncode == 0
    again = e2e.cli("login", input="", **nothing_configured)
    assert again.returncode == 0, again.output
    assert f"Already logged in as {DEMO_USERNAME} at {e2e.server.url}" in again.stdout
    assert e2e.server.stats()["requests"].get("/api/v1/token/") == 1


def test_a_bare_host_implies_https(e2e: E2E):
    bare = e2e.server.url.removeprefix("https://").upper()  # 127.0.0.1:PORT, as gh and docker accept it
    run = e2e.login(DEMO_USERNAME, DEMO_PASSWORD, "--server", bare + "/")
    assert run.returncode == 0, run.output
    assert stored(e2e)["server"]["url"] == e2e.server.url


# ------------------------------------------------------------------------------ on a terminal of its own


class Terminal:
    """The installed CLI on a pseudo-terminal that is its controlling terminal (pty.fork), as in a shell.

    Typing Ctrl-C (byte 0x03) makes the terminal send SIGINT to the CLI, exactly as a user's key does.
    """

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        import pty

        pid, fd = pty.fork()
        if pid == 0:  # the child: become the CLI at once
            try:
                os.execve(CLI, [CLI, *args], env)
            finally:
                os._exit(127)
        self.pid, self.fd, self.transcript = pid, fd, b""
        self.deadline = time.monotonic() + HANG_LIMIT

    def _read(self, wait: float) -> bool:
        ready, _, _ = select.select([self.fd], [], [], wait)
        if not ready:
            return True
        try:
            chunk = os.read(self.fd, 4096)
        except OSError:  # EIO: the CLI has exited and closed the terminal
            return False
        self.transcript += chunk
        return bool(chunk)

    def read_until(self, marker: bytes) -> None:
        while marker not in self.transcript:
            assert time.monotonic() < self.deadline, f"timed out waiting for {marker!r}: {self.transcript!r}"
            if not self._read(0.5):
                raise AssertionError(f"the CLI exited before {marker!r}: {self.transcript!r}")

    def type(self, data: bytes) -> None:
        os.write(self.fd, data)

    def wait(self) -> int:
        while True:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                while self._read(0.1):  # what it wrote before exiting
                    pass
                return os.waitstatus_to_exitcode(status)
            assert time.monotonic() < self.deadline, f"the CLI did not exit: {self.transcript!r}"
            self._read(0.2)

    def lines(self) -> list[str]:
        return [line for line in self.transcript.decode(errors="replace").split("\r\n")]

    def close(self) -> None:
        try:
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def terminal(e2e: E2E):
    opened: list[Terminal] = []

    def start(*args: str, **env: str) -> Terminal:
        term = Terminal(["auth", *args], e2e.env(**env))
        opened.append(term)
        return term

    yield start
    for term in opened:
        term.close()
        e2e.outputs.append(term.transcript.decode(errors="replace"))


def _ends_with_aborted_on_its_own_line(term: Terminal) -> list[str]:
    lines = term.lines()
    while lines and lines[-1] == "":
        lines.pop()
    assert lines[-1] == "Aborted.", lines
    return lines


@posix_client
@pytest.mark.parametrize("prompt", ["Username", "Password"])
def test_ctrl_c_at_a_prompt_exits_130_with_aborted_on_a_line_of_its_own(e2e: E2E, terminal, prompt: str):
    term = terminal("login")
    term.read_until(f"Logging in to {e2e.server.url}.".encode())  # the prompts say which server
    term.read_until(b"Username: ")
    if prompt == "Password":
        term.type(DEMO_USERNAME.encode() + b"\n")
        term.read_until(b"Password: ")
    term.type(b"\x03")  # Ctrl-C
    assert term.wait() == 130
    lines = _ends_with_aborted_on_its_own_line(term)
    assert lines[-2].replace("^C", "").strip() == f"{prompt}:", lines  # the prompt's line holds nothing else
    assert "Traceback" not in term.transcript.decode(errors="replace")
    # Only the metadata look-up that chose the password method; no token request was sent.
    assert not e2e.credentials.exists()
    assert set(e2e.server.stats()["requests"]) == {"/.well-known/oauth-authorization-server"}


@posix_client
def test_a_slow_server_is_named_on_the_terminal_and_ctrl_c_exits_130(e2e: E2E, terminal):
    e2e.server.add_fault("/api/v1/token/", delay=60, count=1)
    e2e.secrets.add(DEMO_PASSWORD)
    term = terminal("login")
    term.read_until(b"Username: ")
    term.type(DEMO_USERNAME.encode() + b"\n")
    term.read_until(b"Password: ")
    term.type(DEMO_PASSWORD.encode() + b"\n")
    host = e2e.server.url.removeprefix("https://")
    term.read_until(f"Contacting {host}…".encode())  # shown after about a second without an answer
    term.type(b"\x03")
    assert term.wait() == 130
    lines = _ends_with_aborted_on_its_own_line(term)
    assert f"Contacting {host}…" in lines
    assert not e2e.credentials.exists()


@posix_client
def test_a_wait_for_the_lock_names_the_holding_process_not_the_server(e2e: E2E, terminal):
    """The login takes the credentials lock before sending: while another process holds it, the
    terminal says so (the server has not even been asked), and Ctrl-C still exits 130."""
    holder = hold_lock(e2e, 300)
    try:
        e2e.secrets.add(DEMO_PASSWORD)
        term = terminal("login")
        term.read_until(b"Username: ")
        term.type(DEMO_USERNAME.encode() + b"\n")
        term.read_until(b"Password: ")
        term.type(DEMO_PASSWORD.encode() + b"\n")
        notice = (f"Waiting for another spec-kitty process (process {holder.pid}) to release the credentials "
                  f"lock {e2e.home / 'credentials.lock'}…")
        term.read_until(notice.encode())
        term.type(b"\x03")
        assert term.wait() == 130
    finally:
        holder.kill()
        holder.wait()
    lines = _ends_with_aborted_on_its_own_line(term)
    assert notice in lines and not any("Contacting" in line for line in lines), lines
    assert "/api/v1/token/" not in e2e.server.stats()["requests"]
    assert not e2e.credentials.exists()


def test_no_waiting_notice_when_stderr_is_not_a_terminal(e2e: E2E):
    e2e.server.add_fault("/api/v1/token/", delay=1.5, count=1)
    run = e2e.login()
    assert run.returncode == 0, run.output
    assert "Contacting" not in run.output


# ------------------------------------------------------------------------------ logout and a busy lock

LOCK_HOLDER = """
import sys, time, filelock
lock = filelock.FileLock(sys.argv[1], mode=0o600)
lock.acquire()
print("locked", flush=True)
time.sleep(float(sys.argv[2]))  # a refresh in progress (short) or a stuck holder (long)
lock.release()
time.sleep(120)
"""

# The contract: logout finishes within 6 s. A hang bound with room for a loaded machine, far below the 20 s
# every other command waits for the lock.
LOGOUT_HANG_BOUND = 12.0


def hold_lock(e2e: E2E, seconds: float) -> subprocess.Popen[str]:
    holder = subprocess.Popen([PYTHON, "-c", LOCK_HOLDER, client_path(e2e.home / "credentials.lock"), str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    return holder


def test_logout_with_a_stuck_lock_holder_ends_within_the_bound_and_keeps_the_session(e2e: E2E):
    assert e2e.login().returncode == 0
    before = e2e.credentials.read_bytes()
    holder = hold_lock(e2e, 300)
    try:
        started = time.monotonic()
        run = e2e.cli("logout", timeout=LOGOUT_HANG_BOUND + 5)
        elapsed = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert elapsed < LOGOUT_HANG_BOUND, f"{elapsed:.1f} s"
    assert run.returncode == 1 and run.stdout == ""
    assert f"credentials lock {client_path(e2e.home / 'credentials.lock')}" in run.stderr
    assert "you are still logged in" in run.stderr
    if WINDOWS_CLIENT:  # no holder PID is written or looked up on Windows (toml_repository)
        assert "held by process" not in run.stderr
    else:
        assert f"(held by process {holder.pid})" in run.stderr
    assert e2e.credentials.read_bytes() == before  # nothing removed, nothing revoked
    assert "/api/v1/token/blacklist/" not in e2e.server.stats()["requests"]
    # once the holder is gone, logout works
    assert e2e.cli("logout").returncode == 0 and not e2e.credentials.exists()


@pytest.mark.skipif(WINDOWS_CLIENT, reason="the 4.5 s logout budget covers lazy imports (tomlkit, httpx, "
                    "truststore), which take 5-7 s under Wine, not on Windows: the revoke is then skipped")
def test_logout_waits_for_a_refresh_in_progress_then_logs_out_and_revokes(e2e: E2E):
    assert e2e.login().returncode == 0
    holder = hold_lock(e2e, 1.0)
    try:
        run = e2e.cli("logout", timeout=LOGOUT_HANG_BOUND + 5)
    finally:
        holder.kill()
        holder.wait()
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines() == ["Logged out; stored credentials removed.", "The server revoked the session."]
    assert not e2e.credentials.exists()
