"""`auth login --machine` end to end: the installed `kitty-auth` CLI and library against the reference server's machine
clients (refserver/machine.py) over TLS, at DEBUG, with the leak check extended to client secrets (never in any output,
log or file of the home).

Both answers of the client credentials grant are covered: with a refresh token (spec-kitty's SaaS; the session then
refreshes with `client_id=cli_native`) and without (plain RFC 6749 4.4.3; renewed by running the grant again).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import filelock
import pytest

from e2e.conftest import E2E, Run
from e2e.test_concurrency import PROCESSES, run_burst, wait_for, ws_token_status
from refserver import OAUTH_TOKEN_PATH

pytestmark = pytest.mark.e2e

CLIENT_ID = "ci-bot"
EMAIL = "ci-bot@spec-kitty.test"
ID_VAR, FILE_VAR, SECRET_VAR = ("SPEC_KITTY_MACHINE_CLIENT_ID", "SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE",
                                "SPEC_KITTY_MACHINE_CLIENT_SECRET")
MODES = pytest.mark.parametrize("refresh", [True, False], ids=["with-refresh-token", "plain"])

# A spec-kitty process asking for a token: prints the SHA-256 of what it got, or the error's class and sentence. Like a
# host, it logs everything (httpx and httpcore included) at $SPEC_KITTY_LOG_LEVEL (DEBUG) on stderr: the leak check reads it.
GET_TOKEN = """
import hashlib, json, logging, os, sys, kitty_auth
logging.basicConfig(level=os.environ["SPEC_KITTY_LOG_LEVEL"], stream=sys.stderr)
client = kitty_auth.AuthClient()
try:
    token = client.get_access_token()
except kitty_auth.AuthError as exc:
    print(json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    sys.exit(1)
finally:
    client.close()
print(json.dumps({"sha256": hashlib.sha256(token.encode()).hexdigest()}))
"""


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored(e2e: E2E) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))


def secret_file(tmp_path: Path, secret: str) -> Path:
    """The secret as a CI step writes it (`echo "$SECRET" > file`, mode 600)."""
    path = tmp_path / "machine-secret"
    path.write_text(secret + "\n")
    path.chmod(0o600)
    return path


def machine(e2e: E2E, tmp_path: Path, *, refresh: bool = True, from_file: bool = True) -> dict[str, str]:
    """A machine client on the server (answering with or without a refresh token) and the environment naming it."""
    e2e.server.set_options(machine_refresh_token=refresh)
    secret = e2e.machine_client(CLIENT_ID)
    if from_file:
        return {ID_VAR: CLIENT_ID, FILE_VAR: str(secret_file(tmp_path, secret))}
    return {ID_VAR: CLIENT_ID, SECRET_VAR: secret}


def login(e2e: E2E, env: dict[str, str], *args: str) -> Run:
    run = e2e.cli("login", "--machine", *args, **env)
    assert run.returncode == 0, run.output
    return run


def expire_access(e2e: E2E) -> None:
    """Wait until the stored access token has expired for real (log in with `set_lifetimes(access=2)` first)."""
    expiry = datetime.fromisoformat(stored(e2e)["tokens"]["access_expires_at"].replace("Z", "+00:00"))
    wait_for(lambda: datetime.now(UTC) > expiry, "the access token to expire", 10)


def get_token(e2e: E2E, **env: str) -> tuple[Run, dict]:  # type: ignore[type-arg]
    run = e2e.library(GET_TOKEN, **env)
    return run, json.loads(run.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------- login


@MODES
def test_login_with_the_secret_from_a_file(e2e: E2E, tmp_path: Path, refresh: bool) -> None:
    env = machine(e2e, tmp_path, refresh=refresh)
    run = login(e2e, env)
    assert f"Logging in to {e2e.server.url} as machine client {CLIENT_ID}." in run.stderr
    assert run.stdout == f"Logged in as {EMAIL} at {e2e.server.url} (team ci-bot).\n"
    data = stored(e2e)
    assert data["session"]["method"] == "machine" and data["machine"] == {"client_id": CLIENT_ID}
    assert ("refresh" in data["tokens"]) is refresh and data["oauth"]["client_id"] == "cli_native"
    assert oct(e2e.credentials.stat().st_mode & 0o777) == "0o600"
    status = e2e.cli("status", "--json")  # no machine variables: status needs none
    assert status.returncode == 0, status.output
    info = json.loads(status.stdout)
    assert (info["login_method"], info["machine_client_id"], info["username"]) == ("machine", CLIENT_ID, EMAIL)
    text = e2e.cli("status").stdout
    assert "Login method:   machine (OAuth client credentials)" in text and f"Machine client: {CLIENT_ID}" in text


def test_login_with_the_secret_from_the_variable_and_then_already_logged_in(e2e: E2E, tmp_path: Path) -> None:
    env = machine(e2e, tmp_path, refresh=False, from_file=False)
    login(e2e, env)
    e2e.server.reset_stats()
    again = login(e2e, env)
    assert again.stdout.startswith(f"Already logged in as {EMAIL} (machine client {CLIENT_ID})")
    assert e2e.server.stats()["requests"] == {}
    login(e2e, env, "--force")
    assert e2e.server.stats()["requests"].get(OAUTH_TOKEN_PATH) == 1


@pytest.mark.parametrize("case", ["wrong-secret", "unknown-client", "revoked-principal"])
def test_a_refused_client_is_one_sentence_that_does_not_guess_and_stores_nothing(e2e: E2E, tmp_path: Path,
                                                                                  case: str) -> None:
    env = machine(e2e, tmp_path)
    if case == "wrong-secret":
        env[FILE_VAR] = str(secret_file(tmp_path / "..", "mcs_not-the-secret-0123456789"))
    elif case == "unknown-client":
        env[ID_VAR] = "ci-nobody"
    else:
        assert e2e.server.revoke_machine_client(CLIENT_ID)
    run = e2e.cli("login", "--machine", **env)
    assert run.returncode == 1 and run.stdout == ""
    error = [line for line in run.stderr.splitlines() if line.startswith("Error:")]
    assert error == ["Error: The server did not accept the machine client's credentials (invalid_client): the client "
                     "id may be unknown, the secret wrong, or the client revoked; check SPEC_KITTY_MACHINE_CLIENT_ID "
                     "and the secret in SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE (a file holding the secret) or "
                     "SPEC_KITTY_MACHINE_CLIENT_SECRET."]
    assert not e2e.credentials.exists()


@pytest.mark.parametrize("unset", [ID_VAR, FILE_VAR])
def test_missing_variables_send_nothing(e2e: E2E, tmp_path: Path, unset: str) -> None:
    env = machine(e2e, tmp_path) | {unset: ""}
    e2e.server.reset_stats()
    run = e2e.cli("login", "--machine", **env)
    assert run.returncode == 1
    assert [line for line in run.stderr.splitlines() if line.startswith("Error:")][0].startswith(
        f"Error: Machine login needs {ID_VAR} and a client secret in {FILE_VAR}")
    assert e2e.server.stats()["requests"] == {} and not e2e.credentials.exists()


def test_a_secret_file_open_to_others_is_refused(e2e: E2E, tmp_path: Path) -> None:
    env = machine(e2e, tmp_path)
    Path(env[FILE_VAR]).chmod(0o644)
    e2e.server.reset_stats()
    run = e2e.cli("login", "--machine", **env)
    assert run.returncode == 1 and f"chmod 600 {env[FILE_VAR]}" in run.stderr
    assert e2e.server.stats()["requests"] == {}


# ------------------------------------------------------------------------------------------- renewal


def test_a_session_with_a_refresh_token_refreshes_with_cli_native_and_needs_no_secret(e2e: E2E, tmp_path: Path) -> None:
    e2e.server.set_lifetimes(access=2)
    login(e2e, machine(e2e, tmp_path, refresh=True))
    e2e.server.set_lifetimes(access=900)
    before = stored(e2e)["tokens"]
    expire_access(e2e)
    run, answer = get_token(e2e)  # no machine variables in this process
    assert run.returncode == 0, run.output
    after = stored(e2e)["tokens"]
    assert answer["sha256"] == sha(after["access"]) and after["refresh"] != before["refresh"]
    assert not e2e.server.refresh_token_accepted(before["refresh"])  # rotated by the refresh-token grant...
    assert e2e.server.refresh_token_accepted(after["refresh"])  # ...which only cli_native's tokens pass


@pytest.mark.parametrize("from_file", [True, False], ids=["secret-file", "secret-variable"])
def test_a_plain_session_is_renewed_by_the_grant_with_this_processs_secret(e2e: E2E, tmp_path: Path,
                                                                          from_file: bool) -> None:
    e2e.server.set_lifetimes(access=2)
    env = machine(e2e, tmp_path, refresh=False, from_file=from_file)
    login(e2e, env)
    e2e.server.set_lifetimes(access=900)
    before = stored(e2e)["tokens"]
    expire_access(e2e)
    e2e.server.reset_stats()
    run, answer = get_token(e2e, **env)
    assert run.returncode == 0, run.output
    after = stored(e2e)["tokens"]
    assert answer["sha256"] == sha(after["access"]) and after["access"] != before["access"] and "refresh" not in after
    assert e2e.server.stats()["requests"] == {OAUTH_TOKEN_PATH: 1}
    assert "machine session renewed by its client credentials grant" in run.stderr


def test_without_the_secret_renewal_fails_with_the_variables_and_the_session_stays(e2e: E2E, tmp_path: Path) -> None:
    e2e.server.set_lifetimes(access=2)
    env = machine(e2e, tmp_path, refresh=False)
    login(e2e, env)
    e2e.server.set_lifetimes(access=900)
    expire_access(e2e)
    before = e2e.credentials.read_bytes()
    e2e.server.reset_stats()
    run, answer = get_token(e2e)  # this process has no secret
    assert run.returncode == 1 and answer["error"] == "RenewalUnavailableError"
    assert answer["message"].startswith("Session expired. Please log in again. ")
    assert FILE_VAR in answer["message"] and SECRET_VAR in answer["message"]
    assert e2e.credentials.read_bytes() == before and e2e.server.stats()["requests"] == {}
    run, answer = get_token(e2e, **env)  # another process, with the secret, still renews the stored session
    assert run.returncode == 0 and answer["sha256"] == sha(stored(e2e)["tokens"]["access"])


def test_a_revoked_principal_ends_the_plain_session_at_its_next_renewal(e2e: E2E, tmp_path: Path) -> None:
    e2e.server.set_lifetimes(access=2)
    env = machine(e2e, tmp_path, refresh=False)
    login(e2e, env)
    e2e.server.set_lifetimes(access=900)
    assert e2e.server.revoke_machine_client(CLIENT_ID)
    expire_access(e2e)
    run, answer = get_token(e2e, **env)
    assert run.returncode == 1 and answer == {"error": "SessionExpiredError",
                                              "message": "Session expired. Please log in again."}
    assert not e2e.credentials.exists()


@MODES
def test_sixteen_processes_renewing_at_once_send_one_request(e2e: E2E, tmp_path: Path, refresh: bool) -> None:
    server = e2e.server
    server.set_lifetimes(access=2)
    e2e.extra_env = machine(e2e, tmp_path, refresh=refresh)  # every worker has the secret
    login(e2e, {})
    server.set_lifetimes(access=900)
    before = stored(e2e)["tokens"]
    lock = filelock.FileLock(str(e2e.credentials.with_name("credentials.lock")))

    def when_expired_hold_the_lock() -> None:
        expire_access(e2e)
        server.reset_stats()
        lock.acquire(timeout=60)

    def release_once_all_are_queued(all_waiting: Callable[[], bool]) -> None:
        try:
            wait_for(all_waiting, "every worker to queue on the credentials lock", 15)
        finally:
            lock.release()

    runs = run_burst(e2e, tmp_path, PROCESSES, when_expired_hold_the_lock, release_once_all_are_queued)
    for run in runs:
        assert run.returncode == 0, run.output
    seen = server.stats()["requests"]
    assert seen.get(OAUTH_TOKEN_PATH) == 1, seen  # one grant (or one refresh) for all sixteen
    after = stored(e2e)["tokens"]
    assert after["access"] != before["access"]
    assert {json.loads(run.stdout)["sha256"] for run in runs} == {sha(after["access"])}
    renewed = [run for run in runs if "access token refreshed" in run.stderr]
    assert len(renewed) == 1
    if not refresh:
        assert "machine session renewed by its client credentials grant" in renewed[0].stderr


# ------------------------------------------------------------------------------------------- logout


@MODES
def test_logout_revokes(e2e: E2E, tmp_path: Path, refresh: bool) -> None:
    env = machine(e2e, tmp_path, refresh=refresh)
    login(e2e, env)
    tokens = stored(e2e)["tokens"]
    run = e2e.cli("logout", **env)
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines() == ["Logged out; stored credentials removed.", "The server revoked the session."]
    assert not e2e.credentials.exists()
    assert ws_token_status(e2e, tokens["access"]) == 401  # the access token is dead too
    if refresh:
        assert not e2e.server.refresh_token_accepted(tokens["refresh"])


def test_logout_of_a_plain_session_without_the_secret_says_why_it_was_not_revoked(e2e: E2E, tmp_path: Path) -> None:
    login(e2e, machine(e2e, tmp_path, refresh=False))
    access = stored(e2e)["tokens"]["access"]
    run = e2e.cli("logout")
    assert run.returncode == 0 and not e2e.credentials.exists()
    first, second = run.stdout.splitlines()
    assert first == "Logged out; stored credentials removed."
    assert second.startswith("The session was not revoked: revoking a machine session without a refresh token needs")
    assert FILE_VAR in second and SECRET_VAR in second
    assert ws_token_status(e2e, access) == 200  # still valid until it expires, as the sentence says


def test_the_login_sends_one_discovery_one_grant_and_one_me(e2e: E2E, tmp_path: Path) -> None:
    env = machine(e2e, tmp_path)
    e2e.server.reset_stats()
    login(e2e, env)
    assert [entry["path"] for entry in e2e.server.stats()["log"]] == [
        "/.well-known/oauth-authorization-server", OAUTH_TOKEN_PATH, "/api/v1/me"]
