"""Several accounts through the CLI (fakes behind a real container): login adds, switch, status --all,
logout and logout --all, whoami."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from test_cli import JSON_KEYS, PASSWORD, SERVER, USER, World

from kitty_auth.domain.accounts import AmbiguousSessionError, choose, switch_target
from kitty_auth.domain.use_cases import ListSessions, Switch

SECOND = "second@example.com"
THIRD = "third@example.com"


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.gateway.users.update({SECOND: "pw2", THIRD: "pw3"})
    return world


def login_as(world: World, user: str, password: str, *extra: str):
    result = world.run("login", "-u", user, "--password-stdin", *extra, input=password + "\n")
    assert result.exit_code == 0, result.output
    return result


def accounts(world: World) -> list[tuple[str, bool]]:
    return [(s.credentials.username, s.active) for s in world.repo.sessions()]


def test_a_login_as_another_user_adds_a_session_and_makes_it_active(world: World) -> None:
    login_as(world, USER, PASSWORD)
    login_as(world, SECOND, "pw2")
    assert accounts(world) == [(SECOND, True), (USER, False)]
    again = login_as(world, USER, PASSWORD)  # stored and valid: used, not logged in again
    assert "Already logged in as user@example.com" in again.output and "now the active one" in again.output
    assert accounts(world) == [(USER, True), (SECOND, False)]
    assert world.gateway.calls.count("obtain") == 2


def test_switch_with_two_sessions_and_no_option_takes_the_other(world: World) -> None:
    login_as(world, USER, PASSWORD)
    login_as(world, SECOND, "pw2")
    result = world.run("switch")
    assert result.exit_code == 0 and result.output == f"Switched to {USER} at {SERVER}.\n"
    assert accounts(world) == [(USER, True), (SECOND, False)]
    result = world.run("switch", "--user", USER)
    assert result.exit_code == 0 and result.output == f"Already using {USER} at {SERVER}.\n"


def test_switch_that_is_ambiguous_is_a_usage_error_listing_the_choices(world: World) -> None:
    for user, password in ((USER, PASSWORD), (SECOND, "pw2"), (THIRD, "pw3")):
        login_as(world, user, password)
    result = world.run("switch")
    assert result.exit_code == 2
    assert f"--server {SERVER} --user {USER}" in result.output and f"--user {SECOND}" in result.output
    assert "Traceback" not in result.output
    assert accounts(world)[0] == (THIRD, True)
    result = world.run("switch", "--user", "nobody@example.com")
    assert result.exit_code == 1 and "No stored session for user nobody@example.com" in result.output
    result = world.run("switch", "--server", "other.example.test")
    assert result.exit_code == 1 and "No stored session at https://other.example.test" in result.output


def test_status_all_lists_every_session_active_first(world: World) -> None:
    login_as(world, USER, PASSWORD)
    world.clock.advance(timedelta(minutes=5))
    login_as(world, SECOND, "pw2")
    result = world.run("status", "--all")
    assert result.exit_code == 0
    blocks = result.output.split("\n\n")
    assert blocks[0].startswith(f"Logged in as {SECOND} (active)")
    assert blocks[1].startswith(f"Logged in as {USER} (not active; last used")
    as_json = world.run("status", "--all", "--json")
    data = json.loads(as_json.output)
    assert [(d["username"], d["active"]) for d in data] == [(SECOND, True), (USER, False)]
    assert all(set(d) == JSON_KEYS | {"active"} for d in data)


def test_status_all_exit_code_is_0_when_any_session_is_logged_in(world: World) -> None:
    assert world.run("status", "--all").exit_code == 1
    assert json.loads(world.run("status", "--all", "--json").output) == []
    login_as(world, USER, PASSWORD)
    world.clock.advance(timedelta(days=6))
    login_as(world, SECOND, "pw2")
    world.clock.advance(timedelta(days=1, seconds=1))  # the first one's refresh token has expired
    assert world.run("status", "--all").exit_code == 0
    world.clock.advance(timedelta(days=7))
    assert world.run("status", "--all").exit_code == 1


def test_status_mentions_the_other_sessions(world: World) -> None:
    login_as(world, USER, PASSWORD)
    assert "other stored session" not in world.run("status").output
    login_as(world, SECOND, "pw2")
    out = world.run("status").output
    assert out.startswith(f"Logged in as {SECOND}\n")
    assert "1 other stored session: `kitty-auth auth status --all` lists them" in out


def test_logout_makes_the_most_recently_used_other_session_active_and_says_so(world: World) -> None:
    for user, password in ((USER, PASSWORD), (SECOND, "pw2"), (THIRD, "pw3")):
        login_as(world, user, password)
    result = world.run("logout")
    lines = result.output.splitlines()
    assert result.exit_code == 0 and lines[0] == "Logged out; stored credentials removed."
    assert lines[2] == (f"Now using {SECOND} at {SERVER}, the most recently used of the other stored sessions "
                        "(`kitty-auth auth switch` chooses another).")
    assert accounts(world) == [(SECOND, True), (USER, False)]


def test_logout_all_removes_and_revokes_every_session(world: World) -> None:
    for user, password in ((USER, PASSWORD), (SECOND, "pw2")):
        login_as(world, user, password)
    refresh_tokens = [s.credentials.tokens.refresh for s in world.repo.sessions()]
    result = world.run("logout", "--all")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Logged out of 2 sessions; stored credentials removed."
    assert lines[1] == f"  {SECOND} at {SERVER}: The server revoked the session."
    assert lines[2] == f"  {USER} at {SERVER}: The server revoked the session."
    assert world.repo.sessions() == []
    assert world.oauth.revoked == set(refresh_tokens)
    local = world.run("logout", "--all", "--local")
    assert local.output.splitlines() == ["Logged out; no session was stored.",
                                         "The session was not revoked: none was stored."]


def test_whoami_prints_one_line_and_fails_when_logged_out(world: World) -> None:
    result = world.run("whoami")
    assert result.exit_code == 1 and "Not logged in" in result.output
    login_as(world, USER, PASSWORD)
    result = world.run("whoami")
    assert result.exit_code == 0 and result.output == f"{USER} at {SERVER}\n"
    world.clock.advance(timedelta(days=8))
    result = world.run("whoami")
    assert result.exit_code == 1 and "Session expired for user@example.com" in result.output


# -- the domain's choices ---------------------------------------------------------------------


def test_choose_and_switch_target(world: World) -> None:
    for user, password in ((USER, PASSWORD), (SECOND, "pw2")):
        login_as(world, user, password)
    sessions = world.repo.sessions()
    assert choose(sessions, None, None).credentials.username == SECOND
    assert choose(sessions, None, USER).credentials.username == USER
    assert choose(sessions, SERVER, None).credentials.username == SECOND  # the active one on that server
    assert switch_target(sessions, None, None).credentials.username == USER
    login_as(world, THIRD, "pw3")
    with pytest.raises(AmbiguousSessionError):
        switch_target(world.repo.sessions(), None, None)
    with pytest.raises(AmbiguousSessionError):
        switch_target(world.repo.sessions(), SERVER, None)


def test_switch_and_list_sessions_use_cases(world: World) -> None:
    for user, password in ((USER, PASSWORD), (SECOND, "pw2")):
        login_as(world, user, password)
    creds, changed = Switch(world.repo).execute(None, USER)
    assert changed and creds.username == USER and world.repo.load() == creds
    listed = ListSessions(world.repo, world.clock).execute()
    assert [(s.credentials.username, s.active, r.authenticated) for s, r in listed] == [
        (USER, True, True), (SECOND, False, True)]


def test_library_and_host_logout_leave_no_session_active_and_say_nothing_of_the_others(world: World) -> None:
    """Only `auth logout` makes another stored session active (and says so): the library's
    clear_credentials and a rejected session leave the others stored, none active."""
    from kitty_auth.entrypoints.library import AuthClient

    login_as(world, USER, PASSWORD)
    login_as(world, SECOND, "pw2")
    assert AuthClient(container=world.container).clear_credentials() is True
    assert accounts(world) == [(USER, False)]
    out = world.run("status")
    assert out.exit_code == 1 and "Not logged in" in out.output and "1 other stored session" in out.output
    switched = world.run("switch")
    assert switched.exit_code == 0 and accounts(world) == [(USER, True)]


def test_a_late_refresh_answer_lands_on_its_own_account_after_a_switch(world: World) -> None:
    """A refresh answered after its caller gave up (the server has rotated the token) is stored on
    the account that sent it, even when another session became active meanwhile."""
    from kitty_auth.domain.use_cases import EnsureFreshToken

    login_as(world, USER, PASSWORD)
    first = world.repo.load()
    world.gateway.answer_late = 1
    world.clock.advance(timedelta(minutes=16))
    with pytest.raises(Exception):
        EnsureFreshToken(world.repo, world.gateway, world.clock).execute()
    login_as(world, SECOND, "pw2")  # the user switches accounts before the late answer arrives
    world.gateway.late_answers.pop()()
    stored = {s.credentials.username: s.credentials for s in world.repo.sessions()}
    assert stored[USER].tokens.refresh != first.tokens.refresh  # the rotated pair was kept
    assert stored[USER].tokens.refresh in world.gateway.valid_refresh
    assert world.repo.load().username == SECOND
