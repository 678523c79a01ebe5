"""kitty_auth.spec_kitty2: spec-kitty 2.1.3's sync.auth API over our use cases, with in-memory fakes.

File-level behaviour (paths reassigned after construction, symlinks, naive timestamps) uses
the real TOML repository in a temporary HOME; everything else runs on the fakes.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dependency_injector import providers

import kitty_auth
import kitty_auth.spec_kitty2 as sk2
from kitty_auth.domain.errors import NetworkError, TokenRejectedError
from kitty_auth.domain.ports import IssuedTokens
from kitty_auth.testing import FakeClock, FakeTokenGateway, InMemoryCredentialRepository
from portability import WINDOWS, needs_symlinks

SERVER = "https://sync.example.com"
USER, PASSWORD = "user@example.com", "s3cret"
GATE = "SPEC_KITTY_ENABLE_SAAS_SYNC"
DISABLED = "SaaS sync is disabled by feature flag. Set SPEC_KITTY_ENABLE_SAAS_SYNC=1 to enable."


class TeamGateway(FakeTokenGateway):
    """The fake server, naming a team in token responses while ``team`` is set."""

    team: str | None = "acme"

    def _issue(self) -> IssuedTokens:
        return dataclasses.replace(super()._issue(), team_slug=self.team)


@dataclasses.dataclass
class World:
    client: sk2.AuthClient
    store: sk2.CredentialStore
    repo: InMemoryCredentialRepository
    gateway: TeamGateway
    clock: FakeClock

    def login(self) -> None:
        assert self.client.obtain_tokens(USER, PASSWORD) is True


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # Path.home() on Windows
    monkeypatch.setenv(GATE, "1")
    return tmp_path


@pytest.fixture
def world(home: Path) -> World:
    clock = FakeClock(datetime(2026, 2, 3, 16, 30, tzinfo=UTC))
    gateway = TeamGateway(clock=clock, users={USER: PASSWORD})
    repo = InMemoryCredentialRepository()

    def configure(container) -> None:
        container.clock.override(providers.Object(clock))
        container.gateway.override(providers.Object(gateway))
        container.repository.override(providers.Object(repo))

    store = sk2.CredentialStore(configure=configure)
    client = sk2.AuthClient(credential_store=store)
    client.config.get_server_url = lambda: SERVER
    return World(client, store, repo, gateway, clock)


# -- the module's face ------------------------------------------------------------------------


def test_star_import_gives_the_hosts_names() -> None:
    namespace: dict[str, object] = {}
    exec("from kitty_auth.spec_kitty2 import *", namespace)
    for name in ("AuthClient", "AuthenticationError", "CredentialStore", "SPEC_KITTY_DIR",
                 "CREDENTIALS_PATH", "LOCK_PATH", "SyncConfig"):
        assert name in namespace, name
    assert issubclass(sk2.AuthenticationError, kitty_auth.AuthError)
    assert sk2.LOCK_PATH == sk2.CREDENTIALS_PATH.with_suffix(".lock")


def test_store_paths_come_from_home_when_created(home: Path) -> None:
    store = sk2.CredentialStore()
    assert store.credentials_path == home / ".spec-kitty" / "credentials"
    assert store.lock_path == home / ".spec-kitty" / "credentials.lock"
    assert sk2.AuthClient().config.config_file == home / ".spec-kitty" / "config.toml"


# -- the feature gate -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "operation"),
    [("obtain_tokens", "auth login"), ("refresh_tokens", "token refresh"),
     ("obtain_ws_token", "websocket token exchange")],
)
def test_gate_off_refuses_network_calls_with_the_hosts_sentence(
    world: World, monkeypatch: pytest.MonkeyPatch, call: str, operation: str
) -> None:
    world.login()
    calls_before = list(world.gateway.calls)
    monkeypatch.delenv(GATE)
    args = (USER, PASSWORD) if call == "obtain_tokens" else ()
    with pytest.raises(sk2.AuthenticationError) as info:
        getattr(world.client, call)(*args)
    assert str(info.value) == f"{DISABLED} Operation: {operation}."
    assert world.gateway.calls == calls_before


def test_gate_off_get_access_token_uses_a_valid_token_but_never_refreshes(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.login()
    monkeypatch.setenv(GATE, "no")
    assert world.client.get_access_token() == world.repo.credentials.tokens.access
    world.clock.advance(timedelta(minutes=16))
    assert world.client.get_access_token() is None
    assert "refresh" not in world.gateway.calls


# -- login, refresh, ws token -----------------------------------------------------------------


def test_login_stores_the_session_with_the_servers_team(world: World) -> None:
    world.login()
    store = world.client.credential_store
    assert store.get_username() == USER
    assert store.get_server_url() == SERVER
    assert store.get_team_slug() == "acme" == world.client.get_team_slug()
    assert store.get_access_token() == world.repo.credentials.tokens.access
    assert world.client.is_authenticated()


def test_login_refused_is_the_hosts_invalid_password_sentence_and_stores_nothing(world: World) -> None:
    with pytest.raises(sk2.AuthenticationError) as info:
        world.client.obtain_tokens(USER, "wrong")
    assert "invalid username or password" in str(info.value).lower()
    assert world.repo.credentials is None
    assert not world.client.is_authenticated()


def test_login_unreachable_server_says_cannot_reach_server(world: World) -> None:
    world.gateway.fail_next("obtain", NetworkError())
    with pytest.raises(sk2.AuthenticationError, match="Cannot reach server"):
        world.client.obtain_tokens(USER, PASSWORD)


def test_non_https_server_is_refused_before_any_request(world: World) -> None:
    world.client.config.get_server_url = lambda: "http://insecure.example.com"
    with pytest.raises(sk2.AuthenticationError, match="https://"):
        world.client.obtain_tokens(USER, PASSWORD)
    assert world.gateway.calls == []


def test_refresh_rotates_and_keeps_the_team_when_the_server_names_none(world: World) -> None:
    world.login()
    old = world.repo.credentials.tokens
    world.gateway.team = None
    assert world.client.refresh_tokens() is True
    new = world.repo.credentials
    assert new.tokens.refresh != old.refresh and new.tokens.access != old.access
    assert new.team_slug == "acme"


def test_refresh_takes_the_team_the_server_names(world: World) -> None:
    world.login()
    world.gateway.team = "new-team"
    world.client.refresh_tokens()
    assert world.client.get_team_slug() == "new-team"


def test_refresh_without_a_valid_refresh_token_mentions_the_refresh_token(world: World) -> None:
    with pytest.raises(sk2.AuthenticationError, match="No valid refresh token"):
        world.client.refresh_tokens()
    world.login()
    world.clock.advance(timedelta(days=8))
    with pytest.raises(sk2.AuthenticationError, match="refresh token"):
        world.client.refresh_tokens()
    assert "refresh" not in world.gateway.calls


def test_rejected_refresh_ends_the_session(world: World) -> None:
    world.login()
    world.gateway.valid_refresh.clear()  # the server blacklisted it
    with pytest.raises(sk2.AuthenticationError, match="Session expired"):
        world.client.refresh_tokens()
    assert world.repo.credentials is None
    assert not world.client.is_authenticated()


def test_get_access_token_refreshes_an_expired_token_once(world: World) -> None:
    world.login()
    world.clock.advance(timedelta(minutes=16))
    token = world.client.get_access_token()
    assert token == world.repo.credentials.tokens.access
    assert world.client.get_access_token() == token
    assert world.gateway.calls.count("refresh") == 1


@pytest.mark.parametrize("failure", ["logged_out", "rejected", "network"])
def test_get_access_token_returns_none_instead_of_raising(world: World, failure: str) -> None:
    if failure != "logged_out":
        world.login()
        world.clock.advance(timedelta(minutes=16))
    if failure == "rejected":
        world.gateway.fail_next("refresh", TokenRejectedError())
    if failure == "network":
        world.gateway.fail_next("refresh", NetworkError())
    assert world.client.get_access_token() is None
    if failure == "network":
        assert world.repo.credentials is not None  # a transient failure never costs the session


def test_an_interrupted_refresh_stores_the_answer_and_the_interrupt_reaches_the_host(world: World) -> None:
    """Ctrl-C is not turned into None: the host sees it, and the session the server rotated is kept."""
    world.login()
    old = world.repo.credentials.tokens.refresh
    world.clock.advance(timedelta(minutes=16))

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    world.repo.on_save.append(ctrl_c)  # Ctrl-C while the refreshed session is being saved
    with pytest.raises(KeyboardInterrupt):
        world.client.get_access_token()
    assert world.repo.credentials.tokens.refresh not in (old, None)
    assert world.repo.credentials.tokens.refresh in world.gateway.valid_refresh
    assert world.client.get_access_token() == world.repo.credentials.tokens.access
    assert world.gateway.calls.count("refresh") == 1


def test_obtain_ws_token_returns_the_token_string(world: World) -> None:
    world.login()
    token = world.client.obtain_ws_token()
    assert isinstance(token, str) and token
    assert world.gateway.calls.count("ws_token") == 1


def test_ws_token_401_refreshes_once_and_retries(world: World) -> None:
    world.login()
    world.gateway.revoke_access()
    assert isinstance(world.client.obtain_ws_token(), str)
    assert world.gateway.calls.count("refresh") == 1
    assert world.gateway.calls.count("ws_token") == 2


def test_ws_token_when_logged_out_is_an_authentication_error(world: World) -> None:
    with pytest.raises(sk2.AuthenticationError, match="Not authenticated"):
        world.client.obtain_ws_token()


def test_clear_credentials_and_team_slug_when_logged_out(world: World) -> None:
    world.login()
    world.client.clear_credentials()
    assert world.repo.credentials is None
    assert world.client.get_team_slug() is None
    assert world.client.credential_store.load() is None


def test_context_manager_returns_false(world: World) -> None:
    with world.client as client:
        assert client is world.client
    assert world.client.__exit__(None, None, None) is False


# -- the store's file ---------------------------------------------------------------------------


def _save(store: sk2.CredentialStore, *, when: datetime | None = None, **extra: object) -> None:
    now = when or datetime.now(UTC)
    store.save(access_token="access-token-1", refresh_token="refresh-token-1",
               access_expires_at=now + timedelta(minutes=15), refresh_expires_at=now + timedelta(days=7),
               username=USER, server_url=SERVER, **extra)


def test_save_then_load_as_the_hosts_dict(home: Path) -> None:
    store = sk2.CredentialStore()
    _save(store, team_slug="acme")
    data = store.load()
    assert data["tokens"]["access"] == "access-token-1"
    assert data["tokens"]["refresh"] == "refresh-token-1"
    assert data["user"] == {"username": USER, "team_slug": "acme"}
    assert data["server"] == {"url": SERVER}
    info = store.get_token_expiry_info()
    assert info["access_expires_at"].endswith("Z") and info["refresh_expires_at"].endswith("Z")
    assert WINDOWS or os.stat(store.credentials_path).st_mode & 0o777 == 0o600  # (portability.posix_modes)


def test_naive_datetimes_are_utc(home: Path) -> None:
    store = sk2.CredentialStore()
    naive_now = datetime.now(UTC).replace(tzinfo=None)
    store.save(access_token="a-naive", refresh_token="r-naive",
               access_expires_at=naive_now + timedelta(minutes=15),
               refresh_expires_at=naive_now + timedelta(days=7), username=USER, server_url=SERVER)
    stored = tomllib.loads(store.credentials_path.read_text())["tokens"]["access_expires_at"]
    assert stored == (naive_now + timedelta(minutes=15)).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert store.get_access_token() == "a-naive"


def test_paths_reassigned_after_construction_are_used(home: Path, tmp_path: Path) -> None:
    client = sk2.AuthClient()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    client.credential_store.credentials_path = elsewhere / "credentials"
    client.credential_store.lock_path = elsewhere / "credentials.lock"
    _save(client.credential_store)
    assert (elsewhere / "credentials").exists()
    assert not (home / ".spec-kitty" / "credentials").exists()
    assert client.is_authenticated()
    assert client.get_access_token() == "access-token-1"  # the client reads through its store


def test_missing_or_corrupt_file_reads_as_none(home: Path) -> None:
    store = sk2.CredentialStore()
    assert store.load() is None and not store.exists()
    store.credentials_path.parent.mkdir()
    store.credentials_path.write_text("invalid toml {{{")
    assert store.exists()
    assert store.load() is None
    assert store.get_access_token() is None and store.get_username() is None
    assert not sk2.AuthClient().is_authenticated()


@needs_symlinks
def test_symlinked_file_is_never_followed_and_is_a_permission_error(home: Path, tmp_path: Path) -> None:
    store = sk2.CredentialStore()
    store.credentials_path.parent.mkdir()
    target = tmp_path / "target"
    target.write_text("untouched")
    store.credentials_path.symlink_to(target)
    assert store.load() is None
    with pytest.raises(sk2.AuthenticationError) as info:
        _save(store)
    assert isinstance(info.value, PermissionError)
    assert "Cannot access credentials file" in str(info.value)
    assert target.read_text() == "untouched"


def test_a_lock_path_set_after_construction_is_the_lock_used(home: Path) -> None:
    from filelock import FileLock

    store = sk2.CredentialStore(configure=lambda c: c.lock_timeout.override(providers.Object(0.2)))
    store.lock_path = home / "private.lock"
    _save(store)
    assert store.get_access_token() == "access-token-1"
    assert WINDOWS or (home / "private.lock").exists()  # filelock removes it on release on Windows
    assert not store.credentials_path.with_suffix(".lock").exists()
    # Held by another holder, that lock (not the default one) keeps our save out.
    with FileLock(str(home / "private.lock"), timeout=0):
        with pytest.raises(sk2.CredentialsAccessError):
            _save(store)


def test_a_replaced_credential_store_is_the_one_the_client_uses(home: Path, tmp_path: Path) -> None:
    client = sk2.AuthClient()
    store = sk2.CredentialStore()
    elsewhere = tmp_path / "other-home" / ".spec-kitty"
    store.credentials_path = elsewhere / "credentials"
    store.lock_path = elsewhere / "credentials.lock"
    client.credential_store = store
    _save(store, team_slug="acme")
    assert client.is_authenticated() and client.get_team_slug() == "acme"
    assert client.get_access_token() == "access-token-1"
    client.clear_credentials()
    assert not (elsewhere / "credentials").exists()
