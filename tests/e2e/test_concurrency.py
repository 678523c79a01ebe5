"""Single-flight refresh across processes, end to end: the installed library in many subprocesses
against the reference server over TLS, at DEBUG, with the E2E leak check.

Processes print only SHA-256 hashes of the tokens they get; ws tokens they obtain go to
$E2E_SECRETS_OUT so that they join the leak check.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import filelock
import pytest

from refserver import REFRESH_PATH, WS_TOKEN_PATH

from .conftest import E2E, Run

pytestmark = pytest.mark.e2e

PROCESSES = 16
STEP_LIMIT = 60  # seconds: upper bound for any one wait below (hang guard, not a speed claim)

# Imports, builds a client, signals "ready", waits for the go-file, then asks for a token and
# proves the server accepts it (a ws token for exactly that access token). It also signals, by
# creating its "waiting" file, the moment it first finds the credentials lock taken (filelock's
# own DEBUG record), so a test can release the lock only once every worker is queued on it.
WORKER = r"""
import hashlib, json, logging, os, sys, time
from pathlib import Path
import kitty_auth
# A library installs no log handler; this host logs everything (incl. httpx) at $SPEC_KITTY_LOG_LEVEL.
logging.basicConfig(level=os.environ.get("SPEC_KITTY_LOG_LEVEL", "WARNING"), stream=sys.stderr)
import filelock, httpx, tomlkit, truststore  # warm: the burst should measure refreshes, not imports

ready, go, waiting = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])


class QueuedOnTheLock(logging.Handler):
    def emit(self, record):
        if "not acquired" in record.getMessage() and "credentials.lock" in record.getMessage():
            waiting.touch()


logging.getLogger("filelock").addHandler(QueuedOnTheLock(logging.DEBUG))
logging.getLogger("filelock").setLevel(logging.DEBUG)
client = kitty_auth.AuthClient()
ready.touch()
deadline = time.monotonic() + 60
while not go.exists():
    if time.monotonic() > deadline:
        sys.exit(5)
    time.sleep(0.005)
try:
    token = client.get_access_token()
    ws = client.obtain_ws_token(access_token=token)
except kitty_auth.AuthError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(1)
finally:
    client.close()
with open(os.environ["E2E_SECRETS_OUT"], "a") as out:
    out.write(ws.ws_token + "\n")
print(json.dumps({"sha256": hashlib.sha256(token.encode()).hexdigest()}))
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored(e2e: E2E) -> dict:
    return tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))


def stored_access_expiry(e2e: E2E) -> datetime:
    return datetime.fromisoformat(stored(e2e)["tokens"]["access_expires_at"].replace("Z", "+00:00"))


def wait_for(predicate, what: str, limit: float = STEP_LIMIT) -> None:
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def requests(e2e: E2E) -> dict[str, int]:
    return e2e.server.stats()["requests"]


def ws_token_status(e2e: E2E, access: str) -> int:
    """POST /api/v1/ws-token/ with ``access`` from this process: does the server accept it?"""
    address = urlsplit(e2e.server.url)
    conn = http.client.HTTPSConnection(address.hostname, address.port, context=e2e.server.ssl_context(), timeout=10)
    try:
        conn.request("POST", WS_TOKEN_PATH, body="{}", headers={
            "Authorization": f"Bearer {access}", "Content-Type": "application/json"})
        response = conn.getresponse()
        body = response.read().decode()
    finally:
        conn.close()
    if response.status == 200:
        e2e.secrets.add(json.loads(body)["ws_token"])
    return response.status


def run_burst(e2e: E2E, tmp_path: Path, n: int, before_go: Callable[[], None],
              after_go: Callable[[Callable[[], bool]], None] = lambda all_waiting: None) -> list[Run]:
    """Start ``n`` workers, wait until all are ready, run ``before_go``, release them at once,
    run ``after_go`` (given a predicate: is every worker queued on the credentials lock?), and
    collect their runs."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    go = barrier / "go"
    secrets_out = tmp_path / "secrets-out.txt"
    env = e2e.env(E2E_SECRETS_OUT=str(secrets_out))
    procs = []
    try:
        for i in range(n):
            out, err = (open(barrier / f"{i}.{s}", "w+") for s in ("out", "err"))
            proc = subprocess.Popen([sys.executable, "-c", WORKER, str(barrier / f"ready-{i}"), str(go),
                                     str(barrier / f"waiting-{i}")],
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, text=True)
            procs.append((proc, out, err))
        wait_for(lambda: all((barrier / f"ready-{i}").exists() or p.poll() is not None
                             for i, (p, _, _) in enumerate(procs)), "the workers to start")
        before_go()
        go.touch()
        after_go(lambda: all((barrier / f"waiting-{i}").exists() for i in range(n)))
        for proc, _, _ in procs:
            proc.wait(timeout=STEP_LIMIT)
    finally:
        for proc, _, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    runs = []
    for proc, out, err in procs:
        out.seek(0), err.seek(0)
        run = Run(["python", "-c", "WORKER"], proc.returncode, out.read(), err.read())
        out.close(), err.close()
        runs.append(run)
    if secrets_out.exists():
        e2e.secrets.update(line for line in secrets_out.read_text().splitlines() if line)
    for run in runs:
        e2e._record(run)  # joins the leak check; fails on a traceback
    return runs


def test_sixteen_processes_with_an_expired_token_refresh_exactly_once(e2e: E2E, tmp_path: Path):
    server = e2e.server
    server.set_lifetimes(access=2)  # log in with a token that expires for real in 2 s...
    assert e2e.login().returncode == 0
    server.set_lifetimes(access=900)  # ...and have the refresh issue a normal one
    before = stored(e2e)["tokens"]
    expiry = stored_access_expiry(e2e)

    # An explicit barrier instead of a slow refresh and a guess: this process holds the credentials
    # lock (as any other spec-kitty process could) until every released worker has found the token
    # expired and is queued on the lock; only then may one of them refresh.
    lock = filelock.FileLock(str(e2e.credentials.with_name("credentials.lock")))

    def when_expired_hold_the_lock():
        wait_for(lambda: datetime.now(UTC) > expiry + timedelta(seconds=1), "the access token to expire", 10)
        server.reset_stats()
        lock.acquire(timeout=STEP_LIMIT)

    def release_once_all_are_queued(all_waiting: Callable[[], bool]) -> None:
        try:
            wait_for(all_waiting, "every worker to queue on the credentials lock", 15)  # under their 20 s wait
        finally:
            lock.release()

    runs = run_burst(e2e, tmp_path, PROCESSES, when_expired_hold_the_lock, release_once_all_are_queued)

    for run in runs:
        assert run.returncode == 0, run.output
    seen = requests(e2e)
    assert seen.get(REFRESH_PATH) == 1, seen
    assert seen.get(WS_TOKEN_PATH) == PROCESSES, seen  # each token accepted at the first try

    after = stored(e2e)["tokens"]
    assert after["access"] != before["access"] and after["refresh"] != before["refresh"]
    hashes = {json.loads(run.stdout)["sha256"] for run in runs}
    assert hashes == {sha(after["access"])}  # everyone got the token now stored

    refreshed = [run for run in runs if "access token refreshed" in run.stderr]
    reused = [run for run in runs if "using tokens another process stored" in run.stderr]
    assert len(refreshed) == 1 and len(reused) == PROCESSES - 1


def test_stale_401_keeps_newer_tokens_and_a_genuine_401_ends_the_session(e2e: E2E):
    assert e2e.login().returncode == 0
    old_bytes = e2e.credentials.read_bytes()
    old_refresh = stored(e2e)["tokens"]["refresh"]

    rotate = e2e.library("import kitty_auth\nkitty_auth.AuthClient().refresh_tokens()")
    assert rotate.returncode == 0, rotate.output
    new_bytes = e2e.credentials.read_bytes()
    assert stored(e2e)["tokens"]["refresh"] != old_refresh  # rotated; the old one is blacklisted

    present_old = (
        "import os, sys, kitty_auth\n"
        "try:\n"
        "    kitty_auth.AuthClient().refresh_tokens(refresh_token=os.environ['OLD_REFRESH'])\n"
        "except kitty_auth.SessionExpiredError as exc:\n"
        "    print('SessionExpiredError:', exc)\n"
        "    sys.exit(3)\n"
    )
    # Stale: the server rejects a token that is no longer the one on disk -> newer tokens kept.
    stale = e2e.library(present_old, OLD_REFRESH=old_refresh)
    assert stale.returncode == 3, stale.output
    assert "Session expired. Please log in again." in stale.stdout
    assert e2e.credentials.read_bytes() == new_bytes
    assert e2e.cli("status").returncode == 0

    # Genuine: the disk still holds the rejected token -> the session ends.
    e2e.credentials.write_bytes(old_bytes)  # in place: keeps 0600
    genuine = e2e.library(present_old, OLD_REFRESH=old_refresh)
    assert genuine.returncode == 3, genuine.output
    assert not e2e.credentials.exists()
    assert e2e.cli("status").returncode == 1
    assert requests(e2e).get(REFRESH_PATH) == 3  # the rotation, then one per case


def test_transient_503_inside_the_margin_returns_the_still_valid_token(e2e: E2E):
    assert e2e.login().returncode == 0
    # A 900 s token gets a 60 s margin; move its stored expiry 20 s ahead: inside the margin
    # (refresh early) yet well above the 2 s floor, and the server still accepts it.
    soon = (datetime.now(UTC) + timedelta(seconds=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = re.sub(r'access_expires_at = "[^"]*"', f'access_expires_at = "{soon}"',
                  e2e.credentials.read_text(encoding="utf-8"))
    e2e.credentials.write_text(text, encoding="utf-8")  # in place: keeps 0600
    before = e2e.credentials.read_bytes()
    access = stored(e2e)["tokens"]["access"]
    e2e.server.reset_stats()
    e2e.server.add_fault(REFRESH_PATH, status=503, count=1)

    run = e2e.library(
        "import hashlib, logging, kitty_auth\n"
        "logging.basicConfig(level=logging.DEBUG)\n"
        "print(hashlib.sha256(kitty_auth.AuthClient().get_access_token().encode()).hexdigest())\n"
    )
    assert run.returncode == 0, run.output
    assert run.stdout.strip() == sha(access)
    assert "using the still-valid access token" in run.stderr
    assert requests(e2e).get(REFRESH_PATH) == 1  # it did try, and got the 503
    assert e2e.credentials.read_bytes() == before
    assert os.stat(e2e.credentials).st_mode & 0o777 == 0o600
    assert ws_token_status(e2e, access) == 200  # the returned token really is valid
