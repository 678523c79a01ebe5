"""One contract suite for every CredentialRepository: the in-memory fake and the TOML file.

If the fake and the real adapter disagree on any of these behaviours, use-case tests written
against the fake would prove nothing about production.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.model import Credentials, Identity, LoginMethod, OAuthClient, Team, TokenPair
from kitty_auth.testing import InMemoryCredentialRepository, make_jwt

ISSUED = datetime(2026, 2, 3, 16, 30, 0, tzinfo=UTC)  # second precision: the file's precision


def make_credentials(username: str = "user@example.com", *, offset: int = 0) -> Credentials:
    start = ISSUED + timedelta(seconds=offset)
    return Credentials(
        tokens=TokenPair(
            access=make_jwt(iat=start, lifetime=timedelta(minutes=15), kind="access"),
            refresh=make_jwt(iat=start, lifetime=timedelta(days=7), kind="refresh"),
            access_expires_at=start + timedelta(minutes=15),
            refresh_expires_at=start + timedelta(days=7),
        ),
        username=username,
        server_url="https://spec-kitty-dev.fly.dev",
    )


@pytest.fixture(params=["memory", "toml"])
def repo(request: pytest.FixtureRequest, tmp_path: Path):
    if request.param == "memory":
        return InMemoryCredentialRepository()
    # a home that does not exist yet: the repository must create it on first write
    return TomlCredentialRepository(tmp_path / "home" / "credentials", lock_timeout=2.0)


def test_load_without_a_stored_session_returns_none(repo) -> None:
    assert repo.load() is None


def test_save_then_load_round_trips(repo) -> None:
    creds = make_credentials()
    repo.save(creds)
    loaded = repo.load()
    assert loaded == creds
    assert loaded.tokens.access == creds.tokens.access
    assert loaded.tokens.refresh_expires_at == creds.tokens.refresh_expires_at
    assert loaded.tokens.access_expires_at.utcoffset() == timedelta(0)


def oauth_credentials() -> Credentials:
    creds = make_credentials("zoe@example.com")
    return Credentials(
        tokens=TokenPair(creds.tokens.access, creds.tokens.refresh, creds.tokens.access_expires_at, None),
        username="zoe@example.com", server_url=creds.server_url, team_slug="zoe",
        login_method=LoginMethod.WEB, session_id="session-1",
        oauth=OAuthClient("spec-kitty-cli", "https://spec-kitty-dev.fly.dev/oauth/token/",
                          "https://spec-kitty-dev.fly.dev/oauth/revoke_token/"),
        identity=Identity("zoe@example.com", "Zoë", "42", (
            Team("1", "zoe", "Zoë", "owner", True), Team("2", "acme", "Acme", "member"))),
    )


def test_an_oauth_session_round_trips_with_everything_it_carries(repo) -> None:
    creds = oauth_credentials()
    repo.save(creds)
    loaded = repo.load()
    assert loaded == creds
    assert loaded.tokens.refresh_expires_at is None and loaded.is_authenticated(ISSUED + timedelta(days=365))
    assert (loaded.login_method, loaded.session_id, loaded.identity.team_slug) == (LoginMethod.WEB, "session-1", "zoe")


def test_a_team_slug_round_trips_and_a_new_session_replaces_all_fields(repo) -> None:
    repo.save(oauth_credentials())
    password = dataclasses.replace(make_credentials(), team_slug="acme")
    repo.save(password)
    loaded = repo.load()
    assert loaded == password
    assert (loaded.oauth, loaded.identity, loaded.session_id) == (None, None, None)
    assert loaded.login_method is LoginMethod.PASSWORD and loaded.team_slug == "acme"


def test_save_replaces_the_previous_session(repo) -> None:
    first, second = make_credentials("alice@example.com"), make_credentials("bob@example.com", offset=60)
    repo.save(first)
    repo.save(second)
    loaded = repo.load()
    assert loaded == second
    assert loaded != first


def test_clear_reports_whether_something_was_removed(repo) -> None:
    repo.save(make_credentials())
    assert repo.clear() is True
    assert repo.load() is None
    assert repo.clear() is False


def test_clear_without_anything_stored_returns_false(repo) -> None:
    assert repo.clear() is False
    assert repo.load() is None


def test_lock_is_reentrant_and_save_and_clear_work_inside_it(repo) -> None:
    creds = make_credentials()
    with repo.lock():
        with repo.lock():
            repo.save(creds)
            assert repo.load() == creds
        assert repo.clear() is True
        repo.save(creds)
    assert repo.load() == creds


def test_lock_excludes_another_thread_until_released(repo) -> None:
    entered = threading.Event()
    released_at: list[float] = []
    entered_at: list[float] = []

    def contender() -> None:
        with repo.lock():
            entered_at.append(time.monotonic())
            entered.set()

    with repo.lock():
        worker = threading.Thread(target=contender)
        worker.start()
        assert not entered.wait(0.3), "another thread entered while the lock was held"
        released_at.append(time.monotonic())
    worker.join(5)
    assert entered.is_set(), "the other thread never got the lock after release"
    assert entered_at[0] >= released_at[0]


def test_repr_and_location_never_show_tokens(repo) -> None:
    creds = make_credentials()
    repo.save(creds)
    repo.load()
    shown = repr(repo) + str(repo) + repo.location
    assert repo.location
    for secret in (creds.tokens.access, creds.tokens.refresh):
        assert secret not in shown
        assert secret.split(".")[1] not in shown


# -- several accounts ------------------------------------------------------------------------

OTHER_SERVER = "https://other.example.com"


def on_server(creds: Credentials, server: str) -> Credentials:
    return dataclasses.replace(creds, server_url=server)


def labels(repo) -> list[tuple[str, str, bool]]:
    return [(s.credentials.username, s.credentials.server_url, s.active) for s in repo.sessions()]


def test_a_login_as_another_account_keeps_the_active_one_among_the_others(repo) -> None:
    first, second = make_credentials("first@example.com"), make_credentials("second@example.com")
    third = on_server(make_credentials("first@example.com"), OTHER_SERVER)
    repo.save(first)
    repo.save(second)
    repo.save(third)  # the same user on another server is another account
    assert repo.load() == third
    assert labels(repo) == [
        ("first@example.com", OTHER_SERVER, True),
        ("second@example.com", "https://spec-kitty-dev.fly.dev", False),
        ("first@example.com", "https://spec-kitty-dev.fly.dev", False),
    ]
    assert [s.credentials for s in repo.sessions()] == [third, second, first]
    assert all(s.last_used is not None for s in repo.sessions()[1:])


def test_a_login_as_a_stored_account_replaces_it_and_makes_it_active(repo) -> None:
    first, second = make_credentials("first@example.com"), make_credentials("second@example.com")
    repo.save(first)
    repo.save(second)
    again = make_credentials("first@example.com", offset=60)
    repo.save(again)
    assert [s.credentials for s in repo.sessions()] == [again, second]


def test_a_refresh_of_the_active_session_leaves_the_others_alone(repo) -> None:
    first, second = make_credentials("first@example.com"), make_credentials("second@example.com")
    repo.save(first)
    repo.save(second)
    refreshed = make_credentials("second@example.com", offset=120)
    repo.save(refreshed)
    assert [s.credentials for s in repo.sessions()] == [refreshed, first]


def test_activate_swaps_the_active_session(repo) -> None:
    first, second = make_credentials("first@example.com"), make_credentials("second@example.com")
    repo.save(first)
    repo.save(second)
    assert repo.activate("https://spec-kitty-dev.fly.dev", "first@example.com") == first
    assert [s.credentials for s in repo.sessions()] == [first, second]
    assert repo.load() == first
    assert repo.activate("https://spec-kitty-dev.fly.dev", "nobody@example.com") is None
    assert [s.credentials for s in repo.sessions()] == [first, second]


def test_clear_with_promote_makes_the_most_recent_other_session_active(repo) -> None:
    a, b, c = (make_credentials(f"{n}@example.com") for n in "abc")
    for creds in (a, b, c):
        repo.save(creds)
    assert repo.clear(promote=True) is True
    assert repo.load() == b and [s.credentials for s in repo.sessions()] == [b, a]
    assert repo.clear(promote=True) is True and repo.load() == a
    assert repo.clear(promote=True) is True and repo.load() is None and repo.sessions() == []
    assert repo.clear(promote=True) is False


def test_clear_without_promote_leaves_no_session_active(repo) -> None:
    a, b = make_credentials("a@example.com"), make_credentials("b@example.com")
    repo.save(a)
    repo.save(b)
    assert repo.clear() is True
    assert repo.load() is None
    assert [(s.credentials, s.active) for s in repo.sessions()] == [(a, False)]
    assert repo.clear() is False  # no active session to remove
    assert repo.activate("https://spec-kitty-dev.fly.dev", "a@example.com") == a
    assert repo.load() == a and [s.active for s in repo.sessions()] == [True]


def test_clear_all_removes_every_session(repo) -> None:
    a, b = make_credentials("a@example.com"), make_credentials("b@example.com")
    repo.save(a)
    repo.save(b)
    assert repo.clear_all() == [b, a]
    assert repo.load() is None and repo.sessions() == []
    assert repo.clear_all() == []


def test_an_account_view_refreshes_a_session_that_is_not_active_where_it_is(repo) -> None:
    a, b = make_credentials("a@example.com"), make_credentials("b@example.com")
    repo.save(a)
    repo.save(b)
    view = repo.for_account("https://spec-kitty-dev.fly.dev", "a@example.com")
    assert view.load() == a
    refreshed = make_credentials("a@example.com", offset=300)
    with view.lock():
        view.save(refreshed)
    assert repo.load() == b  # still the active one
    assert [s.credentials for s in repo.sessions()] == [b, refreshed]
    active_view = repo.for_account("https://spec-kitty-dev.fly.dev", "b@example.com")
    newer_b = make_credentials("b@example.com", offset=600)
    active_view.save(newer_b)
    assert [s.credentials for s in repo.sessions()] == [newer_b, refreshed]
    assert view.clear() is True and [s.credentials for s in repo.sessions()] == [newer_b]
    assert view.load() is None and view.clear() is False


def test_an_account_view_follows_its_account_through_a_switch(repo) -> None:
    a, b = make_credentials("a@example.com"), make_credentials("b@example.com")
    repo.save(a)
    view = repo.for_account("https://spec-kitty-dev.fly.dev", "a@example.com")
    repo.save(b)  # a is no longer active
    late = make_credentials("a@example.com", offset=30)
    view.save(late)  # e.g. a refresh answered late, stored after the switch
    assert repo.load() == b
    assert [s.credentials for s in repo.sessions()] == [b, late]
