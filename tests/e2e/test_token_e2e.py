"""`auth token` and SPEC_KITTY_SAAS_TOKEN end to end: the installed CLI and library against the reference server.

`auth token` prints a token by request, so its stdout is checked to be that token alone and only its stderr
joins the leak check (``E2E.token``); every value of SPEC_KITTY_SAAS_TOKEN is a secret for the leak check too.
"""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from refserver import OAUTH_TOKEN_PATH, REFRESH_PATH, SYNC_HEALTH_PATH, WS_TOKEN_PATH

from .conftest import CLI, E2E
from .test_interrupts import (  # noqa: F401 (password_session is a fixture)
    SIGNALS,
    assert_interrupted,
    background,
    password_session,
    processed,
    server_log_shows,
    stored_tokens,
)
from .test_machine_e2e import login as machine_login
from .test_machine_e2e import machine
from .test_server_faults import instant, set_stored, snapshot

pytestmark = pytest.mark.e2e

VARIABLE = "SPEC_KITTY_SAAS_TOKEN"

# Sends the access token in $TOKEN_UNDER_TEST to the server's Bearer-protected health endpoint, as a script would.
USE_TOKEN = """
import os, httpx
response = httpx.get(os.environ["SPEC_KITTY_SAAS_URL"] + "{path}", verify=os.environ["SSL_CERT_FILE"],
                     headers={{"Authorization": "Bearer " + os.environ["TOKEN_UNDER_TEST"]}})
print(response.status_code)
""".format(path=SYNC_HEALTH_PATH)

# The library's consumers with whatever token source the environment gives.
LIBRARY = """
import asyncio, os, httpx, kitty_auth
client = kitty_auth.AuthClient()
print(client.get_access_token() == os.environ["SPEC_KITTY_SAAS_TOKEN"].strip())
ws = client.obtain_ws_token()
open(os.environ["E2E_SECRETS_OUT"], "a").write(ws.ws_token + "\\n")
with httpx.Client(auth=kitty_auth.BearerAuth(), verify=os.environ["SSL_CERT_FILE"]) as http:
    print(http.get(os.environ["SPEC_KITTY_SAAS_URL"] + "{path}").status_code)

async def live():
    async with kitty_auth.WebSocketClient() as live:
        print((await live.receive())["type"])

asyncio.run(live())
""".format(path=SYNC_HEALTH_PATH)

REJECTED = """
import os, httpx, kitty_auth
try:
    kitty_auth.AuthClient().obtain_ws_token()
except kitty_auth.EnvironmentTokenRejectedError as exc:
    print("ws-token:", exc)
with httpx.Client(auth=kitty_auth.BearerAuth(), verify=os.environ["SSL_CERT_FILE"]) as http:
    try:
        http.get(os.environ["SPEC_KITTY_SAAS_URL"] + "{path}")
    except kitty_auth.EnvironmentTokenRejectedError as exc:
        print("bearer:", exc)
""".format(path=SYNC_HEALTH_PATH)


def stored(e2e: E2E) -> dict[str, Any]:
    return tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))


def refreshes(e2e: E2E) -> int:
    return e2e.server.stats()["requests"].get(REFRESH_PATH, 0)


def works(e2e: E2E, token: str) -> bool:
    run = e2e.library(USE_TOKEN, TOKEN_UNDER_TEST=token)
    assert run.returncode == 0, run.output
    return run.stdout.strip() == "200"


@pytest.fixture
def logged_in(e2e: E2E) -> E2E:
    run = e2e.login()
    assert run.returncode == 0, run.output
    return e2e


# --------------------------------------------------------------------------- auth token


def test_token_prints_the_stored_access_token_and_refreshes_it_when_needed(logged_in: E2E) -> None:
    e2e = logged_in
    run = e2e.token()
    assert run.returncode == 0, run.output
    assert run.stdout == stored(e2e)["tokens"]["access"] + "\n" and works(e2e, run.stdout.strip())
    assert refreshes(e2e) == 0

    set_stored(e2e, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))
    before = stored(e2e)["tokens"]["refresh"]
    run = e2e.token()
    assert run.returncode == 0, run.output
    after = stored(e2e)["tokens"]
    assert after["refresh"] != before and refreshes(e2e) == 1  # refreshed once, the rotated token stored
    assert run.stdout == after["access"] + "\n" and works(e2e, run.stdout.strip())


def test_token_without_a_session_is_one_sentence_naming_the_login_command(e2e: E2E) -> None:
    run = e2e.token()
    assert run.returncode == 1 and run.stdout == ""
    assert "Error: Not logged in. Run `kitty-auth auth login` first." in run.stderr


@pytest.mark.parametrize("name", list(SIGNALS))
def test_an_interrupt_during_its_refresh_never_loses_the_session(password_session: E2E, name: str) -> None:
    """The server rotates the refresh token, then holds its answer 2 s; SIGINT or SIGTERM comes meanwhile.
    The answer is awaited and stored before the CLI exits 130 (143); the next `auth token` works."""
    e2e = password_session  # logged in, the access token made to look expired: the next call refreshes
    signum, code = SIGNALS[name]
    e2e.server.add_fault(REFRESH_PATH, after_view=True, delay=2, count=1)
    running = background(e2e, [CLI, "auth", "token"])
    server_log_shows(e2e, processed(REFRESH_PATH))  # rotated; the answer is on its way
    running.proc.send_signal(signum)
    run = running.finish()
    assert_interrupted(run, code)
    assert run.stdout == ""
    assert e2e.server.refresh_token_accepted(stored_tokens(e2e)["refresh"])  # the rotated session was stored
    again = e2e.token()
    assert again.returncode == 0, again.output
    assert again.stdout == stored_tokens(e2e)["access"] + "\n" and works(e2e, again.stdout.strip())
    assert refreshes(e2e) == 1  # the stored answer made a second refresh unnecessary


@pytest.mark.parametrize("refresh", [True, False], ids=["with-refresh-token", "plain"])
def test_the_ci_recipe_machine_login_then_auth_token_in_each_step(e2e: E2E, tmp_path: Path, refresh: bool) -> None:
    """README's GitHub Actions recipe: `login --machine` with the secret from a file, then `auth token` per step;
    once the access token has expired, `auth token` renews it (refresh, or the grant again) and prints the new one."""
    env = machine(e2e, tmp_path, refresh=refresh)
    machine_login(e2e, env)
    first = e2e.token(**env)
    assert first.returncode == 0 and works(e2e, first.stdout.strip()), first.output
    set_stored(e2e, "tokens", "access_expires_at", instant(-timedelta(minutes=1)))
    e2e.server.reset_stats()
    later = e2e.token(**env)
    assert later.returncode == 0, later.output
    assert later.stdout != first.stdout and later.stdout == stored(e2e)["tokens"]["access"] + "\n"
    assert e2e.server.stats()["requests"].get(OAUTH_TOKEN_PATH) == 1 and works(e2e, later.stdout.strip())


# --------------------------------------------------------------------------- SPEC_KITTY_SAAS_TOKEN


def other_home(e2e: E2E) -> Path:
    return e2e.home.parent / "ci-runner-home"  # a machine where nobody logged in


def files_under(home: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in home.rglob("*") if p.is_file()} if home.exists() else {}


def test_the_variable_serves_every_consumer_and_is_never_written(logged_in: E2E) -> None:
    e2e = logged_in
    value = stored(e2e)["tokens"]["access"]  # a real access token, handed to another machine
    home = other_home(e2e)
    e2e.server.reset_stats()
    env = {"SPEC_KITTY_HOME": str(home), VARIABLE: f"  {value}\n"}  # stripped

    run = e2e.token(**env)
    assert run.returncode == 0 and run.stdout == value + "\n", run.output
    status = e2e.cli("status", **env)
    assert status.returncode == 0, status.output
    assert status.stdout.startswith(f"Using the access token in {VARIABLE} for {e2e.server.url}")
    as_json = e2e.cli("status", "--json", **env)
    assert as_json.returncode == 0 and f'"token_source": "{VARIABLE}"' in as_json.stdout
    whoami = e2e.cli("whoami", **env)
    assert whoami.returncode == 0 and whoami.stdout == f"token from {VARIABLE} at {e2e.server.url}\n"

    lib = e2e.library(LIBRARY, **env)
    assert lib.returncode == 0, lib.output
    assert lib.stdout.split() == ["True", "200", "snapshot"]
    assert e2e.server.stats()["requests"].get(WS_TOKEN_PATH, 0) == 2  # obtain_ws_token and the live connection
    assert refreshes(e2e) == 0
    assert not any(value.encode() in data for data in files_under(home).values())  # never written anywhere


def test_a_401_for_the_variables_token_names_it_and_touches_no_stored_session(logged_in: E2E) -> None:
    e2e = logged_in
    before = snapshot(e2e.credentials)
    e2e.server.reset_stats()
    bogus = "not-a-token-the-server-knows-0123456789"
    run = e2e.library(REJECTED, **{VARIABLE: bogus})
    assert run.returncode == 0, run.output
    lines = run.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == ["ws-token", "bearer"]
    assert all(f"The server refused the token in {VARIABLE} (HTTP 401)" in line for line in lines)
    assert refreshes(e2e) == 0 and snapshot(e2e.credentials) == before
    assert e2e.token().stdout == stored(e2e)["tokens"]["access"] + "\n"  # the stored session still works


def test_a_value_no_header_can_carry_is_one_error_naming_the_variable(e2e: E2E) -> None:
    value = "several words are not a token"
    run = e2e.token(**{VARIABLE: value})
    assert run.returncode == 1 and run.stdout == ""
    assert f"{VARIABLE} cannot be used as an access token" in run.stderr and value not in run.output
    code = ("import kitty_auth\n"
            "try:\n    kitty_auth.AuthClient().get_access_token()\n"
            "except kitty_auth.InvalidEnvironmentTokenError as exc:\n    print(exc)\n")
    lib = e2e.library(code, **{VARIABLE: value})
    assert lib.returncode == 0 and lib.stdout.startswith(f"{VARIABLE} cannot be used") and value not in lib.output


def test_login_and_logout_say_the_variable_is_set_and_do_their_job(e2e: E2E) -> None:
    env = {VARIABLE: "some-token-from-the-ci-0123456789"}
    login = e2e.login(**env)
    assert login.returncode == 0 and e2e.credentials.exists(), login.output
    assert [line for line in login.stderr.splitlines() if line.startswith("Warning:")] == [
        f"Warning: {VARIABLE} is set: spec-kitty programs use its token, not the session this login stores, "
        f"until {VARIABLE} is unset."]
    logout = e2e.cli("logout", **env)
    assert logout.returncode == 0 and not e2e.credentials.exists(), logout.output
    assert "The server revoked the session." in logout.stdout
    assert [line for line in logout.stderr.splitlines() if line.startswith("Warning:")] == [
        f"Warning: {VARIABLE} is set: spec-kitty programs still get an access token from it after this logout."]
