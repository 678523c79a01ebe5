"""Several accounts with the installed CLI against the reference server: a second user and a second
server are added, `switch`, `status --all`, `whoami`, `logout` (the next one becomes active) and
`logout --all` (each revoked at its own server)."""

from __future__ import annotations

import json
import tomllib
from datetime import timedelta

import pytest
import tomlkit

from refserver import REFRESH_PATH
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME

from .conftest import E2E
from .test_server_faults import instant

pytestmark = pytest.mark.e2e

SECOND, SECOND_PASSWORD = "second@spec-kitty.test", "second-password"


@pytest.fixture(autouse=True)
def two_users(e2e: E2E) -> None:
    e2e.server.set_options(oauth_metadata="off")
    e2e.server.create_user(SECOND, SECOND_PASSWORD, team_slug="beta")


def sessions_on_disk(e2e: E2E) -> list[tuple[str, str]]:
    data = tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))
    active = [(data["user"]["username"], data["tokens"]["refresh"])] if "tokens" in data else []
    return active + [(o["user"]["username"], o["tokens"]["refresh"]) for o in data.get("other_sessions", [])]


def test_two_accounts_switch_status_whoami_and_logout(e2e: E2E) -> None:
    assert e2e.login().returncode == 0
    run = e2e.login(SECOND, SECOND_PASSWORD)
    assert run.returncode == 0 and f"Logged in as {SECOND} at {e2e.server.url}." in run.stdout
    assert [user for user, _ in sessions_on_disk(e2e)] == [SECOND, DEMO_USERNAME]
    assert e2e.cli("whoami").stdout == f"{SECOND} at {e2e.server.url} (team beta)\n"

    listed = json.loads(e2e.cli("status", "--all", "--json").stdout)
    assert [(s["username"], s["active"], s["authenticated"]) for s in listed] == [
        (SECOND, True, True), (DEMO_USERNAME, False, True)]

    switched = e2e.cli("switch")
    assert switched.returncode == 0 and switched.stdout == f"Switched to {DEMO_USERNAME} at {e2e.server.url}.\n"
    assert e2e.cli("whoami").stdout.startswith(f"{DEMO_USERNAME} at {e2e.server.url}")
    # the library and every spec-kitty program use the active session
    lib = e2e.library("import kitty_auth; print(kitty_auth.AuthClient().credentials().username)")
    assert lib.stdout.strip() == DEMO_USERNAME

    # logging in as a stored account uses it, without a request
    before = e2e.server.stats()["requests"].get("/api/v1/token/", 0)
    again = e2e.login(SECOND, SECOND_PASSWORD)
    assert again.returncode == 0 and "now the active one" in again.stdout
    assert e2e.server.stats()["requests"].get("/api/v1/token/", 0) == before

    stored = dict(sessions_on_disk(e2e))
    out = e2e.cli("logout")
    assert out.returncode == 0
    assert out.stdout.splitlines()[:2] == ["Logged out; stored credentials removed.", "The server revoked the session."]
    assert f"Now using {DEMO_USERNAME} at {e2e.server.url}" in out.stdout
    assert not e2e.server.refresh_token_accepted(stored[SECOND])
    assert e2e.server.refresh_token_accepted(stored[DEMO_USERNAME])
    assert e2e.cli("status").returncode == 0


def test_logout_all_revokes_every_session_and_leaves_no_file(e2e: E2E) -> None:
    assert e2e.login().returncode == 0
    assert e2e.login(SECOND, SECOND_PASSWORD).returncode == 0
    stored = dict(sessions_on_disk(e2e))
    run = e2e.cli("logout", "--all")
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines() == [
        "Logged out of 2 sessions; stored credentials removed.",
        f"  {SECOND} at {e2e.server.url}: The server revoked the session.",
        f"  {DEMO_USERNAME} at {e2e.server.url}: The server revoked the session.",
    ]
    assert not e2e.credentials.exists()
    assert not any(e2e.server.refresh_token_accepted(token) for token in stored.values())
    assert e2e.cli("status", "--all").returncode == 1


def expire_other_session_access(e2e: E2E, username: str) -> None:
    """Make a stored session that is not the active one need a refresh (its access token looks expired)."""
    doc = tomlkit.parse(e2e.credentials.read_text(encoding="utf-8"))
    others = [o for o in doc["other_sessions"] if o["user"]["username"] == username]
    assert len(others) == 1
    others[0]["tokens"]["access_expires_at"] = instant(-timedelta(minutes=1))
    e2e.credentials.write_text(tomlkit.dumps(doc), encoding="utf-8")


def test_an_inactive_account_is_refreshed_where_it_is_and_the_active_one_stays(e2e: E2E) -> None:
    assert e2e.login().returncode == 0
    assert e2e.login(SECOND, SECOND_PASSWORD).returncode == 0
    old = dict(sessions_on_disk(e2e))[DEMO_USERNAME]
    expire_other_session_access(e2e, DEMO_USERNAME)
    e2e.server.reset_stats()
    run = e2e.token("--user", DEMO_USERNAME)
    assert run.returncode == 0, run.output
    assert e2e.server.stats()["requests"].get(REFRESH_PATH, 0) == 1
    data = tomllib.loads(e2e.credentials.read_text(encoding="utf-8"))
    assert data["user"]["username"] == SECOND  # the active session stays active
    demo = [o for o in data["other_sessions"] if o["user"]["username"] == DEMO_USERNAME]
    assert run.stdout == demo[0]["tokens"]["access"] + "\n"  # refreshed where it is stored
    assert demo[0]["tokens"]["refresh"] != old and e2e.server.refresh_token_accepted(demo[0]["tokens"]["refresh"])
    assert not e2e.server.refresh_token_accepted(old)
    assert [user for user, _ in sessions_on_disk(e2e)] == [SECOND, DEMO_USERNAME]
    assert e2e.cli("status", "--all").returncode == 0
