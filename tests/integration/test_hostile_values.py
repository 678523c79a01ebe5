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
    EARLIEST_INSTANT,
    LATEST_INSTANT,
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
    """A pair the server's answer made: storable, and expiring at a real instant (no year 1 or 9999)."""
    assert pair.access and pair.refresh
    for instant in (pair.access_expires_at, pair.refresh_expires_at):
        assert_storable(instant)
        assert instant is None or EARLIEST_INSTANT <= instant < LATEST_INSTANT


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
    monkeypatch.setenv("USERPROFILE", str(tmp_path))  # what Path.home() reads on Windows
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


# =========================================================================== hostile value strategies

_huge = st.sampled_from([10**400, -(10**400), 2**63, 2**64, 10**18, 1e308, -1e308, 5e-324, 0, -1])
_non_finite = st.sampled_from([float("inf"), float("-inf"), float("nan")])
numbers = st.one_of(st.integers(), st.floats(), _huge, _non_finite, st.booleans())
blank = st.sampled_from(["", *BLANK, "\t", "\n"])
control = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs"]), min_size=1, max_size=4)
strings = st.one_of(st.text(max_size=16), blank, control, st.sampled_from(["\x1b[2J", "a\r\nb", "\ud800", "é" * 3]))
_offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))
aware_datetimes = st.builds(lambda dt, off: dt.replace(tzinfo=timezone(off)), st.datetimes(), _offsets)
instant_texts = st.one_of(
    st.sampled_from([*OUT_OF_RANGE, "1969-12-31T23:59:59Z", "2026-02-03T16:45:00Z", "2026-02-03T16:45:00",
                     "2026-02-30T00:00:00Z", "2026-06-30T23:59:60Z", "+12026-01-01T00:00:00Z", "tomorrow", ""]),
    aware_datetimes.map(datetime.isoformat),
)
json_values = st.recursive(
    st.none() | st.booleans() | numbers | strings,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
hostile = st.one_of(numbers, strings, json_values, instant_texts)
_claims = st.dictionaries(st.sampled_from(["exp", "iat", "nbf"]), st.one_of(numbers, json_values), max_size=3)
jwts = st.one_of(
    _claims.map(lambda claims: jwt_with_payload(json.dumps(claims, allow_nan=True).encode())),
    st.sampled_from([b"[" * 12_000, b'{"exp": 1e400}', b'{"exp": NaN, "iat": 0}', b'{"exp": Infinity}',
                     b'{"exp": ' + b"9" * 5000 + b"}", b'{"exp": -62135596800}', b'{"exp": 253402300799}',
                     b'{"exp": 5e-324, "iat": 0}', b"\xff\xfe", b"null"]).map(jwt_with_payload),
)
# Whole bodies no JSON encoder writes: too deep, not UTF-8, out-of-range literals, numbers past int()'s limit.
raw_bodies = st.one_of(
    st.binary(max_size=40),
    st.sampled_from([DEEP_JSON, b'{"error": ' + DEEP_JSON, b"{" * 5000, b"NaN", b"Infinity", b"\xff\xfe{}",
                     b'{"expires_in": Infinity}', b'{"expires_in": 1e400}', b'{"email": "\xff"}',
                     b'{"user_id": ' + b"9" * 5000 + b', "email": "a@b.test"}', b'{"error": "\\ud800"}']),
    st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n),
)


def mostly(value: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    """``value`` seven times in eight, else a hostile value: many examples then get past the first check."""
    return st.integers(0, 7).flatmap(lambda n: hostile if n == 0 else value)


@st.composite
def objects(draw: st.DrawFn, required: dict[str, st.SearchStrategy[object]],
            optional: dict[str, st.SearchStrategy[object]] | None = None) -> dict[str, object]:
    """A JSON object: the ``required`` names (now and then one missing) and any of the ``optional`` ones."""
    body = draw(st.fixed_dictionaries({name: mostly(value) for name, value in required.items()},
                                      optional={name: mostly(value) for name, value in (optional or {}).items()}))
    if draw(st.integers(0, 7)) == 0:
        body.pop(draw(st.sampled_from(sorted(required))), None)
    return body


def encoded(bodies: st.SearchStrategy[object]) -> st.SearchStrategy[bytes]:
    """JSON text (NaN and Infinity written as the literals some parsers accept), or a raw hostile body."""
    as_json = bodies.map(lambda body: json.dumps(body, allow_nan=True).encode())
    return st.one_of(as_json, as_json, as_json, raw_bodies)


good_tokens = st.one_of(st.sampled_from(["at-good-0123456789", "rt-good-0123456789"]),
                        st.integers(60, 10**6).map(lambda s: make_jwt(iat=NOW, lifetime=timedelta(seconds=s))))
tokens = st.integers(0, 3).flatmap(lambda n: (jwts, st.text(max_size=20))[n] if n < 2 else good_tokens)
_seconds = st.integers(1, 86_400)
_expiries = st.one_of(  # plausible instants, mostly; instant_texts are the hostile ones
    st.datetimes(datetime(2026, 1, 1), datetime(2036, 1, 1)).map(lambda dt: dt.isoformat() + "Z"),
    st.builds(lambda dt, off: dt.replace(tzinfo=timezone(off)).isoformat(),
              st.datetimes(datetime(2026, 1, 1), datetime(2036, 1, 1)), _offsets),
    instant_texts)
_lifetimes = {"expires_in": _seconds, "refresh_token_expires_in": _seconds, "refresh_token_expires_at": _expiries,
              "session_id": st.just("sess-1"), "team_slug": st.just("acme")}
oauth_token_bodies = objects({"access_token": tokens}, {"refresh_token": tokens, "token_type": st.just("Bearer"),
                                                        **_lifetimes})
pair_bodies = objects({"access": tokens, "refresh": tokens}, {"access_lifetime": _seconds, **_lifetimes})
ws_bodies = objects({"ws_token": tokens, "expires_in": _seconds}, {"expires_at": _expiries,
                                           "ws_url": st.sampled_from(["wss://auth.example.test/ws/", "wss://x/"])})
metadata_bodies = objects({"token_endpoint": st.just(SERVER + "/oauth/token")}, {
    "authorization_endpoint": st.just(SERVER + "/oauth/authorize"),
    "device_authorization_endpoint": st.just(SERVER + "/oauth/device"),
    "revocation_endpoint": st.just(SERVER + "/oauth/revoke")})
device_bodies = objects({"device_code": tokens, "user_code": st.just("WDJB-MJHT"),
                         "verification_uri": st.just(SERVER + "/device"), "expires_in": _seconds},
                        {"verification_uri_complete": st.just(SERVER + "/device?c=1"), "interval": st.integers(0, 10)})
team_bodies = objects({"id": st.integers(1, 99), "slug": st.just("acme")},
                      {"name": st.just("Acme"), "role": st.just("owner"), "is_private_teamspace": st.booleans()})
me_bodies = objects({"email": st.just("user@example.com")},
                    {"name": st.just("User"), "user_id": st.integers(1, 99), "teams": st.lists(team_bodies, max_size=2)})
error_bodies = objects({"error": st.sampled_from(["authorization_pending", "slow_down", "access_denied",
                                                  "expired_token", "invalid_grant", "invalid_client"])})


# =========================================================================== properties: the gateways


@FAST
@given(body=encoded(st.one_of(pair_bodies, ws_bodies, json_values)))
@example(body=b'{"access": "a", "refresh": "r", "refresh_token_expires_at": "9999-12-31T23:30:00-05:00"}')
@example(body=b'{"ws_token": "w", "expires_at": "0001-01-01T00:00:00+01:00"}')
@example(body=b'{"access": "a", "refresh": "r", "expires_in": Infinity}')
@example(body=b'{"access": "a", "refresh": "r", "refresh_token_expires_at": "0001-01-01T00:00:00Z"}')
def test_any_simplejwt_body_is_a_valid_value_or_an_auth_error(body: bytes) -> None:
    gw = simplejwt_gateway(200, body)
    with gw:
        for call in (
            lambda: TokenPair.from_issued(gw.refresh(SERVER, "r"), NOW),
            lambda: TokenPair.from_issued(gw.obtain(SERVER, "u", "pw"), NOW),
            lambda: password_session().refreshed(gw.refresh(SERVER, "r"), NOW).tokens,
            lambda: gw.ws_token(SERVER, "a"),
        ):
            try:
                value = call()
            except AuthError:
                continue
            if isinstance(value, WsToken):
                assert_storable(value.expires_at)
                assert value.expires_in >= 0
            else:
                assert_valid_pair(value)  # type: ignore[arg-type]


def _check_oauth_value(value: object) -> None:
    if isinstance(value, IssuedTokens):
        assert_valid_pair(TokenPair.from_issued(value, NOW, default_refresh=None))
        assert_valid_pair(oauth_session().refreshed(value, NOW).tokens)
    elif isinstance(value, Endpoints):
        try:
            check_endpoints(SERVER, value, ("authorization", "device_authorization"))
        except AuthError:
            pass
    elif isinstance(value, DeviceAuthorization):
        assert value.device_code and value.user_code and value.expires_in > 0
    elif value is not None and not isinstance(value, PollOutcome):  # an Identity: what the file will accept
        assert value.email.strip()  # type: ignore[attr-defined]
        assert all(team.id.strip() and team.slug.strip() for team in value.teams)  # type: ignore[attr-defined]


OAUTH_CALLS: dict[str, tuple[Callable[[HttpxOAuthGateway], object], st.SearchStrategy[object]]] = {
    "discover": (lambda gw: gw.discover(SERVER), metadata_bodies),
    "exchange_code": (OAUTH_ERROR_CALLS["exchange_code"], oauth_token_bodies),
    "start_device": (OAUTH_ERROR_CALLS["start_device"], device_bodies),
    "poll_device": (OAUTH_ERROR_CALLS["poll_device"], oauth_token_bodies),
    "refresh": (OAUTH_ERROR_CALLS["refresh"], oauth_token_bodies),
    "me": (lambda gw: gw.me(SERVER, "at-123"), me_bodies),
}


@st.composite
def oauth_answers(draw: st.DrawFn) -> tuple[str, int, bytes]:
    call = draw(st.sampled_from(sorted(OAUTH_CALLS)))
    status = draw(st.sampled_from([200, 200, 400, 401]))
    shape = OAUTH_CALLS[call][1] if status == 200 else error_bodies
    return call, status, draw(encoded(st.one_of(shape, shape, shape, json_values)))


@FAST
@given(answer=oauth_answers())
@example(answer=("exchange_code", 200, b'{"access_token": "a", "refresh_token_expires_at": "0001-01-01T00:00:00+01:00"}'))
@example(answer=("refresh", 400, DEEP_JSON))
@example(answer=("me", 200, b'{"email": "\\u00a0"}'))
def test_any_oauth_answer_is_a_valid_value_or_an_auth_error(answer: tuple[str, int, bytes]) -> None:
    call, status, body = answer
    gw = oauth_gateway(status, body)
    try:
        value = OAUTH_CALLS[call][0](gw)
    except AuthError:
        return
    try:
        _check_oauth_value(value)
    except MalformedResponseError:  # the model may refuse what the gateway let through: a JWT's own claims
        pass


# =========================================================================== properties: the model


_GO_ZERO_JWT = jwt_with_payload(b'{"exp": -62135596800}')


@FAST
@given(access=tokens, refresh=tokens, expires_in=st.none() | numbers, refresh_expires_in=st.none() | numbers,
       refresh_expires_at=st.none() | aware_datetimes | st.datetimes())
@example(access="at", refresh="rt", expires_in=None, refresh_expires_in=None,
         refresh_expires_at=datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))))
@example(access="at", refresh="rt", expires_in=float("inf"), refresh_expires_in=None,
         refresh_expires_at=datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5))))
@example(access=_GO_ZERO_JWT, refresh="rt", expires_in=None, refresh_expires_in=None, refresh_expires_at=None)
def test_issued_tokens_become_a_valid_pair_or_a_malformed_response(
    access: str, refresh: str, expires_in: float | None, refresh_expires_in: float | None,
    refresh_expires_at: datetime | None,
) -> None:
    issued = IssuedTokens(access=access, refresh=refresh, expires_in=expires_in,
                          refresh_expires_in=refresh_expires_in, refresh_expires_at=refresh_expires_at)
    for build in (lambda: TokenPair.from_issued(issued, NOW), lambda: TokenPair.from_issued(issued, NOW, default_refresh=None),
                  lambda: oauth_session().refreshed(issued, NOW).tokens, lambda: password_session().refreshed(issued, NOW).tokens):
        try:
            pair = build()
        except MalformedResponseError:
            continue
        assert_valid_pair(pair)


@FAST
@given(token=st.one_of(jwts, st.text(max_size=40)))
@example(token=jwt_with_payload(b'{"exp": 5e-324, "iat": 0}'))
@example(token=jwt_with_payload(b"[" * 12_000))
def test_the_jwt_claim_reader_gives_a_dict_or_none(token: str) -> None:
    claims = jwt_claims(token)
    assert claims is None or isinstance(claims, dict)
    lifetime = token_lifetime(token)
    assert lifetime is None or lifetime > timedelta(0)


# =========================================================================== properties: the file and the config


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (JSON's escapes are TOML's; a lone surrogate is invalid TOML)."""
    return json.dumps(text)


toml_values = st.one_of(
    strings.map(toml_string), instant_texts.map(toml_string),
    st.sampled_from(["nan", "inf", "-inf", "1e400", "true", str(10**400), "0x" + "f" * 300, "[]", "{}",
                     "0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-05:00", "1979-05-27", "07:32:00",
                     "[" * 2000 + "]" * 2000, "{a = " * 1000 + "1" + "}" * 1000, '[{id = " ", slug = ""}]']),
    st.integers().map(str), st.floats().map(repr),
)
_GOOD = {
    "tokens": {"access": '"at-good-0123456789"', "refresh": '"rt-good-0123456789"',
               "access_expires_at": '"2000-01-01T00:00:00Z"', "refresh_expires_at": '"2100-01-01T00:00:00Z"',
               "access_lifetime_s": "900"},
    "user": {"username": '"user@example.com"', "team_slug": '"acme"', "email": '"user@example.com"',
             "name": '"User"', "user_id": '"7"', "teams": '[{id = "1", slug = "acme", is_private_teamspace = true}]'},
    "server": {"url": f'"{SERVER}"'},
    "session": {"method": '"web"', "id": '"sess-1"'},
    "oauth": {"client_id": '"cli_native"', "token_endpoint": f'"{SERVER}/oauth/token"',
              "revocation_endpoint": f'"{SERVER}/oauth/revoke"'},
}
_KEYS = [(table, key) for table, keys in _GOOD.items() for key in keys]


@st.composite
def credentials_files(draw: st.DrawFn) -> bytes:
    """A good OAuth or password session file with some keys dropped or given hostile values; or hostile bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(st.binary(max_size=60), st.sampled_from([DEEP_TOML, b"\xef\xbb\xbf[tokens]\n", b" \n",
                                                                       b'[tokens]\naccess = "\xff"\n'])))
    tables = {table: dict(keys) for table, keys in _GOOD.items()}
    if draw(st.booleans()):
        del tables["session"], tables["oauth"]  # a password session
    for table, key in draw(st.lists(st.sampled_from(_KEYS), max_size=3, unique=True)):
        if table in tables:
            if draw(st.booleans()):
                tables[table][key] = draw(toml_values)
            else:
                tables[table].pop(key, None)
    text = "".join(f"[{table}]\n" + "".join(f"{k} = {v}\n" for k, v in keys.items()) + "\n"
                   for table, keys in tables.items())
    return text.encode("utf-8", "surrogatepass")


@FAST
@given(data=credentials_files())
@example(data=DEEP_TOML)
@example(data=b'[tokens]\naccess = "a"\nrefresh = "r"\naccess_expires_at = "0001-01-01T00:00:00+01:00"\n'
              b'[user]\nusername = "u"\n[server]\nurl = "https://a.test"\n')
@example(data=b'[tokens]\naccess = "a"\nrefresh = "r"\naccess_expires_at = "0001-01-01T00:00:00Z"\n'
              b'[user]\nusername = "u"\n[server]\nurl = "https://a.test"\n')
def test_any_credentials_file_is_a_session_none_or_a_format_error(data: bytes) -> None:
    try:
        session = credentials_format.parse(data)
    except credentials_format.FormatError:
        return
    if session is not None:
        assert_storable(session.tokens.access_expires_at)
        assert_storable(session.tokens.refresh_expires_at)


@settings(FAST, max_examples=100)  # each example locks, reads and may rewrite a real file
@given(data=credentials_files(), status=st.sampled_from([200, 200, 400, 401]),
       body=encoded(st.builds(lambda oauth, pair: {**oauth, **pair}, oauth_token_bodies, pair_bodies)))
@example(data=DEEP_TOML, status=200, body=b"{}")
def test_the_host_api_on_a_hostile_file_and_server_returns_or_raises_its_own_error(
    host: HostWorld, data: bytes, status: int, body: bytes,
) -> None:
    host.write(data)
    host.answer = Answer(status, body)
    loaded = host.store.load()
    assert loaded is None or isinstance(loaded, dict)
    token = host.client.get_access_token()
    assert token is None or isinstance(token, str)
    assert isinstance(host.client.is_authenticated(), bool)


_env_values = st.one_of(strings, st.sampled_from(["https://a.test", "http://a.test", "a.test:99999", "https://[::1",
                                                  "https://u:p@a.test", "https://a.test/?q#f", "\udcff"]))
config_texts = st.one_of(
    toml_values.map(lambda value: f"[sync]\nserver_url = {value}\n"),
    st.sampled_from(["[sync]\nserver_url = " + "9" * 5000, "[sync]\nserver_url = 0x" + "f" * 4000,
                     "[sync]\nserver_url = " + "[" * 100_000, "sync = 1", "[sync\n", "\ufeff[sync]"]),
)


@FAST
@given(config=st.none() | config_texts | st.binary(max_size=30), url=st.none() | _env_values,
       level=st.none() | strings)
@example(config="[sync]\nserver_url = " + "[" * 100_000, url=None, level=None)
def test_any_config_and_environment_give_a_server_url_or_an_auth_error(
    tmp_path: Path, config: str | bytes | None, url: str | None, level: str | None,
) -> None:
    path = tmp_path / "config.toml"
    if config is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(config if isinstance(config, bytes) else config.encode("utf-8", "surrogatepass"))
    env = {"SPEC_KITTY_HOME": str(tmp_path)}
    if url is not None:
        env["SPEC_KITTY_SAAS_URL"] = url
    if level is not None:
        env["SPEC_KITTY_LOG_LEVEL"] = level
    host_config = sk2.SyncConfig()
    host_config.config_file = path
    assert isinstance(host_config.get_server_url(), str)  # the host's reader never raises
    found = load_settings(env)
    assert found.log_level in ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
    try:
        server = choose_login_server(found, None, lambda: None)
    except AuthError:
        return
    assert server.startswith("https://")
