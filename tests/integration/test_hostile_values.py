"""Hostile values from a server, a file or the environment: each one is a valid value or the documented error.

Every parser gets what a broken or hostile peer could hand it -- huge, NaN and infinite numbers,
year 1 and year 9999 with offsets, deep nesting, bytes that are not UTF-8, wrong types, blank and
whitespace strings, control characters: both protocols' gateways (simplejwt and OAuth, over
httpx.MockTransport), the credentials file, config.toml and the environment, the JWT claim reader,
the model's ``TokenPair.issued`` and ``Credentials.refreshed``, and the spec-kitty 2.x host API on
a hostile file and server. The property: a valid value or an AuthError (FormatError for the file
parser), never OverflowError, RecursionError, ValueError or TypeError. Each finding of issue 16
(section 3) is also pinned by an example-based test.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from dependency_injector import providers
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import kitty_auth.spec_kitty2 as sk2
from kitty_auth.adapters import credentials_format
from kitty_auth.adapters.oauth_gateway import (
    DeviceAuthorizationResponse,
    HttpxOAuthGateway,
    OAuthTokenResponse,
)
from kitty_auth.adapters.response_fields import parse
from kitty_auth.adapters.settings import ConfigFileError, choose_login_server, load_settings
from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway, TokenPairResponse, WsTokenResponse
from kitty_auth.adapters.toml_repository import TomlCredentialRepository
from kitty_auth.domain.errors import (
    AuthError,
    CorruptCredentialsError,
    MalformedResponseError,
    UnexpectedStatusError,
)
from kitty_auth.domain.model import (
    DEFAULT_SERVER_URL,
    Credentials,
    IssuedTokens,
    LoginMethod,
    OAuthClient,
    TokenPair,
    WsToken,
    format_instant,
    jwt_claims,
    token_lifetime,
)
from kitty_auth.domain.oauth import DeviceAuthorization, Endpoints, PollOutcome, check_endpoints
from kitty_auth.entrypoints.cli import cli
from kitty_auth.testing import make_jwt

SERVER = "https://auth.example.test"
ENDPOINTS = Endpoints.defaults(SERVER)
NOW = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)
GATE = "SPEC_KITTY_ENABLE_SAAS_SYNC"
FAST = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

# The instants of the issue: no UTC equivalent (the first two), Go's zero time, a "never".
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-05:00", "0001-01-01T00:00:00Z",
                "9999-12-31T23:59:59Z"]
DEEP_JSON = b"[" * 200_000  # the 200 KB of '[', under the 1 MB body cap
DEEP_TOML = b"a = " + b"[" * 100_000
BLANK = [" ", "\u00a0", "\u3000\u2002", "\u2028", "\u200b", "\ufeff \u00a0"]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def jwt_with_payload(payload: bytes) -> str:
    return f"{b64(b'{}')}.{b64(payload)}.sig"


def oauth_gateway(status: int, body: bytes) -> HttpxOAuthGateway:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, content=body))
    return HttpxOAuthGateway(HttpxTokenGateway(transport=transport))


def simplejwt_gateway(status: int, body: bytes) -> HttpxTokenGateway:
    return HttpxTokenGateway(transport=httpx.MockTransport(lambda request: httpx.Response(status, content=body)))


def oauth_session(*, access_expires_at: datetime = NOW + timedelta(minutes=15)) -> Credentials:
    return Credentials(
        tokens=TokenPair("at-access-0123456789", "rt-refresh-0123456789", access_expires_at, None),
        username="user@example.com", server_url=SERVER, login_method=LoginMethod.WEB,
        oauth=OAuthClient("cli_native", SERVER + "/oauth/token", SERVER + "/oauth/revoke"),
    )


def password_session(*, access_expires_at: datetime = NOW + timedelta(minutes=15)) -> Credentials:
    return Credentials(
        tokens=TokenPair("at-access-0123456789", "rt-refresh-0123456789", access_expires_at, None),
        username="user@example.com", server_url=SERVER,
    )


OAUTH_TOKEN_CALLS: dict[str, Callable[[HttpxOAuthGateway], object]] = {
    "exchange_code": lambda gw: gw.exchange_code(ENDPOINTS, "cli_native", "code", "verifier", "http://127.0.0.1:5/cb"),
    "poll_device": lambda gw: gw.poll_device(ENDPOINTS, "cli_native", "device-code-123"),
    "refresh": lambda gw: gw.refresh(oauth_session()),
}
OAUTH_ERROR_CALLS: dict[str, Callable[[HttpxOAuthGateway], object]] = {
    **OAUTH_TOKEN_CALLS,
    "start_device": lambda gw: gw.start_device(ENDPOINTS, "cli_native", "offline_access"),
}


def assert_storable(instant: datetime | None) -> None:
    """An instant the credentials file can hold: aware, and it reads back as written (to the second)."""
    if instant is None:
        return
    assert instant.tzinfo is not None
    assert credentials_format.parse_timestamp(format_instant(instant)) == instant.replace(microsecond=0)


def assert_valid_pair(pair: TokenPair) -> None:
    assert pair.access and pair.refresh
    assert_storable(pair.access_expires_at)
    assert_storable(pair.refresh_expires_at)


# =========================================================================== out-of-range instants


@pytest.mark.parametrize("dt", [datetime(1, 1, 1, tzinfo=UTC), datetime(999, 12, 31, 23, 59, 59, tzinfo=UTC),
                                datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)])
def test_instants_are_written_with_four_digit_years_that_read_back(dt: datetime) -> None:
    """Go's zero time came back as ``1-01-01T00:00:00Z`` on Python 3.11 (strftime's %Y), which cannot be read."""
    text = format_instant(dt)
    assert text[:4] == f"{dt.year:04d}" and text.endswith("Z")
    assert credentials_format.parse_timestamp(text) == dt


@pytest.mark.parametrize("call", sorted(OAUTH_TOKEN_CALLS))
@pytest.mark.parametrize("instant", OUT_OF_RANGE)
def test_out_of_range_instants_in_an_oauth_token_answer_are_malformed(call: str, instant: str) -> None:
    """Refused by the gateway itself, so a late refresh answer holding one is dropped there too."""
    body = json.dumps({"access_token": "at-new-123", "refresh_token": "rt-new-123", "token_type": "Bearer",
                       "refresh_token_expires_at": instant}).encode()
    with pytest.raises(MalformedResponseError):
        OAUTH_TOKEN_CALLS[call](oauth_gateway(200, body))


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
def test_out_of_range_instants_in_a_password_token_or_ws_token_answer_are_malformed(instant: str) -> None:
    pair = json.dumps({"access": "opaque-access", "refresh": "opaque-refresh",
                       "refresh_token_expires_at": instant}).encode()
    with pytest.raises(MalformedResponseError):
        simplejwt_gateway(200, pair).refresh(SERVER, "rt-old")
    ws = json.dumps({"ws_token": "ws-123", "expires_at": instant}).encode()
    with pytest.raises(MalformedResponseError):
        simplejwt_gateway(200, ws).ws_token(SERVER, "at-123")


@pytest.mark.parametrize("claims", [{"exp": -62135596800}, {"exp": 253402300799}, {"iat": 1770000000}],
                         ids=["exp-go-zero-time", "exp-9999-12-31", "no-exp"])
def test_a_jwt_expiring_in_year_1_or_9999_or_never_is_malformed(claims: dict[str, int]) -> None:
    hostile = jwt_with_payload(json.dumps(claims).encode())
    with pytest.raises(MalformedResponseError):
        TokenPair.issued(hostile, "rt-refresh", NOW)
    with pytest.raises(MalformedResponseError):
        oauth_session().refreshed(IssuedTokens(access=hostile, refresh="rt-new"), NOW)


def test_a_jwt_lifetime_too_small_for_a_timedelta_is_unknown() -> None:
    """exp 5e-324 after iat 0 is no time at all: the lifetime is unknown, never zero (found by the property below)."""
    assert token_lifetime(jwt_with_payload(b'{"exp": 5e-324, "iat": 0}')) is None


@pytest.mark.parametrize("at", [datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
                                datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))),
                                datetime(1, 1, 1, tzinfo=UTC), datetime(9999, 12, 31, tzinfo=UTC),
                                datetime(1, 1, 1)])
def test_the_model_refuses_out_of_range_refresh_expiries_as_malformed(at: datetime) -> None:
    """Whatever gateway built the IssuedTokens: ``from_issued`` and ``refreshed`` raise only MalformedResponseError."""
    issued = IssuedTokens(access="at-new", refresh="rt-new", refresh_expires_at=at)
    with pytest.raises(MalformedResponseError):
        TokenPair.from_issued(issued, NOW)
    with pytest.raises(MalformedResponseError):
        oauth_session().refreshed(issued, NOW)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HostWorld]:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(GATE, "1")
    for name in ("SPEC_KITTY_HOME", "SPEC_KITTY_SAAS_URL", "SPEC_KITTY_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    world = HostWorld(tmp_path / ".spec-kitty")
    yield world
    world.client.close()


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"


class HostWorld:
    """spec-kitty 2.x's AuthClient on a real credentials file, its server a MockTransport answering ``answer``."""

    def __init__(self, home: Path) -> None:
        home.mkdir(mode=0o700)
        self.home = home
        self.path = home / "credentials"
        self.answer = Answer()
        self.requests = 0

        def respond(request: httpx.Request) -> httpx.Response:
            self.requests += 1
            return httpx.Response(self.answer.status, content=self.answer.body)

        def configure(container) -> None:  # noqa: ANN001
            container.http.override(providers.Object(HttpxTokenGateway(transport=httpx.MockTransport(respond))))

        self.store = sk2.CredentialStore(configure=configure)
        self.client = sk2.AuthClient(credential_store=self.store)

    def write(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)

    def store_session(self, session: Credentials) -> None:
        TomlCredentialRepository(self.path).save(session)


@pytest.mark.parametrize("instant", OUT_OF_RANGE)
@pytest.mark.parametrize("make_session", [oauth_session, password_session], ids=["oauth", "password"])
def test_the_hosts_get_access_token_gives_none_for_an_out_of_range_refresh_answer(
    host: HostWorld, make_session: Callable[..., Credentials], instant: str,
) -> None:
    """It raised OverflowError; now the refresh is a malformed answer, so there is no token to give."""
    host.store_session(make_session(access_expires_at=datetime.now(UTC) - timedelta(minutes=1)))
    host.answer = Answer(200, json.dumps({
        "access_token": "at-new-123", "refresh_token": "rt-new-123", "access": "at-new-123", "refresh": "rt-new-123",
        "refresh_token_expires_at": instant}).encode())
    assert host.client.get_access_token() is None
    assert host.requests == 1
    assert host.store.load() is not None  # the stored session is kept


# =========================================================================== deep nesting


@pytest.mark.parametrize("call", sorted(OAUTH_ERROR_CALLS))
@pytest.mark.parametrize("body", [DEEP_JSON, b'{"error": ' + DEEP_JSON], ids=["array", "in-error"])
def test_a_deeply_nested_oauth_error_body_is_an_unexpected_status(call: str, body: bytes) -> None:
    """``json.loads`` raised RecursionError on it; the body is now parsed like every other one."""
    with pytest.raises(UnexpectedStatusError):
        OAUTH_ERROR_CALLS[call](oauth_gateway(400, body))


def test_the_oauth_error_code_is_still_read() -> None:
    body = json.dumps({"error": "invalid_grant", "error_description": [[["whatever"]]]}).encode()
    with pytest.raises(AuthError, match="invalid_grant"):
        OAUTH_ERROR_CALLS["exchange_code"](oauth_gateway(400, body))
    assert OAUTH_ERROR_CALLS["poll_device"](oauth_gateway(400, b'{"error": "slow_down"}')) is PollOutcome.SLOW_DOWN


def test_a_jwt_whose_payload_is_deeply_nested_is_not_read_as_one() -> None:
    token = jwt_with_payload(b"[" * 12_000)  # fits the 16,384-character token limit
    assert jwt_claims(token) is None and token_lifetime(token) is None
    pair = TokenPair.issued(token, "rt-refresh", NOW)  # an opaque token, then: the default lifetime
    assert pair.access_expires_at == NOW + timedelta(minutes=15)


@pytest.mark.parametrize("data", [DEEP_TOML, b"[tokens]\naccess = " + b"{a = " * 50_000])
def test_a_deeply_nested_credentials_file_is_corrupt(data: bytes, tmp_path: Path) -> None:
    with pytest.raises(credentials_format.FormatError):
        credentials_format.parse(data)
    path = tmp_path / "credentials"
    path.write_bytes(data)
    path.chmod(0o600)
    with pytest.raises(CorruptCredentialsError):
        TomlCredentialRepository(path).load()


@pytest.fixture
def logging_restored() -> Iterator[None]:
    """Put the root and kitty_auth loggers back as they were (the CLI configures them)."""
    loggers = [logging.getLogger(), logging.getLogger("kitty_auth")]
    saved = [(lg, lg.level, list(lg.handlers)) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


def test_status_and_the_host_on_a_deeply_nested_credentials_file(
    host: HostWorld, monkeypatch: pytest.MonkeyPatch, logging_restored: None,
) -> None:
    """`status` said "Unexpected internal error", `status --json` printed no object, the host's load() raised."""
    host.write(DEEP_TOML)
    monkeypatch.setenv("SPEC_KITTY_HOME", str(host.home))
    status = CliRunner().invoke(cli, ["auth", "status"], prog_name="kitty-auth")
    assert status.exit_code == 1 and "is not valid" in status.output and "internal error" not in status.output
    as_json = CliRunner().invoke(cli, ["auth", "status", "--json"], prog_name="kitty-auth")
    assert json.loads(as_json.stdout)["authenticated"] is False
    assert host.store.load() is None
    assert host.client.get_access_token() is None and not host.client.is_authenticated()


@pytest.mark.parametrize(("text", "cause"), [
    ("[sync]\nserver_url = " + "[" * 100_000, "not valid TOML: nested too deeply"),
    ("[sync]\nserver_url = " + "{a = " * 50_000, "not valid TOML: nested too deeply"),
    ("[sync]\nserver_url = " + "9" * 5000, "not valid TOML: a value out of range"),
])
def test_a_config_toml_nested_too_deeply_or_with_a_huge_number_is_a_config_error(
    host: HostWorld, text: str, cause: str,
) -> None:
    (host.home / "config.toml").write_text(text)
    found = load_settings({"SPEC_KITTY_HOME": str(host.home)})
    assert isinstance(found.config_error, ConfigFileError) and found.config_error.cause == cause
    with pytest.raises(ConfigFileError):
        choose_login_server(found, None, lambda: None)
    assert sk2.SyncConfig().get_server_url() == DEFAULT_SERVER_URL  # the host's rule: a warning and the default


def test_the_hosts_config_reader_takes_a_non_string_server_url_as_unset(host: HostWorld) -> None:
    """``str()`` of a TOML hex integer of 4,000 digits raised ValueError (Python's int-to-text limit)."""
    (host.home / "config.toml").write_text("[sync]\nserver_url = 0x" + "f" * 4000 + "\n")
    assert sk2.SyncConfig().get_server_url() == DEFAULT_SERVER_URL


# =========================================================================== blank identities


@pytest.mark.parametrize("email", BLANK)
def test_a_blank_email_from_me_is_malformed(email: str) -> None:
    """It passed the gateway, failed the file, and the login printed "Logged in as  at ..."."""
    with pytest.raises(MalformedResponseError):
        oauth_gateway(200, json.dumps({"email": email, "teams": []}).encode()).me(SERVER, "at-123")


@pytest.mark.parametrize("team", [{"id": " ", "slug": "acme"}, {"id": 1, "slug": "\u00a0"}, {"id": "", "slug": "a"}])
def test_a_blank_team_id_or_slug_from_me_is_malformed(team: dict[str, object]) -> None:
    body = json.dumps({"email": "a@b.test", "teams": [team]}).encode()
    with pytest.raises(MalformedResponseError):
        oauth_gateway(200, body).me(SERVER, "at-123")


def test_an_identity_with_spaces_inside_is_still_fine() -> None:
    body = json.dumps({"email": " a@b.test", "name": "Ann\u00a0Example", "teams": [{"id": 1, "slug": "acme"}]})
    identity = oauth_gateway(200, body.encode()).me(SERVER, "at-123")
    assert identity.email == " a@b.test" and identity.name == "Ann\u00a0Example" and identity.team_slug == "acme"


# =========================================================================== no secret in a repr

SECRET_A, SECRET_R = "at-SECRET-access-0123456789", "rt-SECRET-refresh-0123456789"


@pytest.mark.parametrize(("model", "body"), [
    (OAuthTokenResponse, {"access_token": SECRET_A, "refresh_token": SECRET_R, "token_type": "Bearer"}),
    (TokenPairResponse, {"access": SECRET_A, "refresh": SECRET_R}),
    (WsTokenResponse, {"ws_token": SECRET_A, "expires_in": 60}),
    (DeviceAuthorizationResponse, {"device_code": SECRET_A, "user_code": "WDJB-MJHT",
                                   "verification_uri": SERVER + "/device", "expires_in": 600}),
], ids=lambda value: value.__name__ if isinstance(value, type) else "")
def test_no_secret_in_the_repr_of_a_parsed_answer(model: type, body: dict[str, object]) -> None:
    parsed = parse(model, json.dumps(body).encode())  # type: ignore[type-var]
    for shown in (repr(parsed), str(parsed)):
        assert SECRET_A not in shown and SECRET_R not in shown and "SECRET" not in shown
