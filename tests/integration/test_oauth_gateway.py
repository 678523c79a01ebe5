"""HttpxOAuthGateway and HttpSessionRevoker against httpx.MockTransport: requests sent, statuses mapped, bodies validated."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import httpx
import pytest

from kitty_auth.adapters.oauth_gateway import HttpxOAuthGateway
from kitty_auth.adapters.oauth_revocation import HttpSessionRevoker
from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway
from kitty_auth.domain.errors import (
    MalformedResponseError,
    NetworkError,
    RateLimitedError,
    ServerUnavailableError,
    TokenRejectedError,
    UnexpectedStatusError,
)
from kitty_auth.domain.model import Credentials, LoginMethod, OAuthClient, TokenPair
from kitty_auth.domain.oauth import Endpoints, PollOutcome
from kitty_auth.domain.oauth_errors import (
    DeviceCodeDeniedError,
    DeviceCodeExpiredError,
    MetadataMalformedError,
    MetadataUnavailableError,
    OAuthProtocolError,
    UnsafeEndpointError,
)
from kitty_auth.domain.revocation import RevocationUnsupportedError

SERVER = "https://auth.example.test"
ENDPOINTS = Endpoints.defaults(SERVER)
NOW = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)
SECRETS = ("the-code-abcdefgh", "the-verifier-" + "v" * 40, "dc-device-code-123456", "rt-refresh-0123456789")


class Server:
    """A MockTransport handler: ``routes[(method, path)]`` answers; every request is kept."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Callable[[httpx.Request], httpx.Response]] = {}
        self.requests: list[httpx.Request] = []

    def on(self, method: str, path: str, status: int = 200, body: object = None, raw: bytes | None = None) -> None:
        content = raw if raw is not None else json.dumps(body if body is not None else {}).encode()
        self.routes[(method, path)] = lambda r: httpx.Response(status, content=content,
                                                               headers={"Content-Type": "application/json"})

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        route = self.routes.get((request.method, request.url.path))
        return route(request) if route else httpx.Response(404)

    def form(self, n: int = -1) -> dict[str, str]:
        return dict(parse_qsl(self.requests[n].content.decode()))


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def gateway(server: Server) -> HttpxOAuthGateway:
    return HttpxOAuthGateway(HttpxTokenGateway(transport=httpx.MockTransport(server)))


def session(*, revocation: str | None = SERVER + "/oauth/revoke", token: str = SERVER + "/oauth/token") -> Credentials:
    return Credentials(
        tokens=TokenPair("at-access-0123456789", "rt-refresh-0123456789", NOW + timedelta(minutes=15), None),
        username="user@example.com", server_url=SERVER, login_method=LoginMethod.WEB,
        oauth=OAuthClient("cli_native", token, revocation),
    )


TOKENS = {"access_token": "at-new-access-123", "refresh_token": "rt-new-refresh-123", "token_type": "Bearer",
          "expires_in": 900, "session_id": "sess-1", "scope": "offline_access"}


# --------------------------------------------------------------------------- discovery


def test_discovery_reads_the_endpoints(gateway: HttpxOAuthGateway, server: Server) -> None:
    server.on("GET", "/.well-known/oauth-authorization-server", body={
        "issuer": SERVER, "authorization_endpoint": SERVER + "/o/authorize/", "token_endpoint": SERVER + "/o/token/",
        "device_authorization_endpoint": SERVER + "/o/device/", "revocation_endpoint": SERVER + "/o/revoke/"})
    endpoints = gateway.discover(SERVER)
    assert endpoints == Endpoints(SERVER + "/o/authorize/", SERVER + "/o/token/", SERVER + "/o/device/",
                                  SERVER + "/o/revoke/")


def test_discovery_for_a_server_url_with_a_path_follows_rfc_8414(gateway: HttpxOAuthGateway, server: Server) -> None:
    """RFC 8414 section 3: the well-known path goes between the host and the issuer's path."""
    tenant = SERVER + "/tenant"
    server.on("GET", "/.well-known/oauth-authorization-server/tenant", body={
        "issuer": tenant, "token_endpoint": tenant + "/o/token/", "revocation_endpoint": tenant + "/o/revoke/"})
    endpoints = gateway.discover(tenant + "/")
    assert [str(r.url) for r in server.requests] == [SERVER + "/.well-known/oauth-authorization-server/tenant"]
    assert endpoints is not None and endpoints.token == tenant + "/o/token/"


def test_discovery_404_means_no_metadata(gateway: HttpxOAuthGateway) -> None:
    assert gateway.discover(SERVER) is None


@pytest.mark.parametrize(("status", "raw", "error"), [
    (503, b"{}", MetadataUnavailableError),
    (200, b"<html>login</html>", MetadataMalformedError),
    (200, b"[1, 2]", MetadataMalformedError),
    (200, b'{"issuer": "x"}', MetadataMalformedError),
    (403, b"{}", UnexpectedStatusError),
    (302, b"", UnexpectedStatusError),
])
def test_any_other_discovery_failure_is_an_error_not_a_fallback(gateway, server, status, raw, error) -> None:  # noqa: ANN001
    server.on("GET", "/.well-known/oauth-authorization-server", status=status, raw=raw)
    with pytest.raises(error) as caught:
        gateway.discover(SERVER)
    assert "metadata" in str(caught.value) or status in (302,)


def test_metadata_without_a_token_endpoint_says_what_is_missing(gateway: HttpxOAuthGateway, server) -> None:  # noqa: ANN001
    server.on("GET", "/.well-known/oauth-authorization-server", body={"issuer": SERVER})
    with pytest.raises(MetadataMalformedError, match="naming a token endpoint"):
        gateway.discover(SERVER)


def test_discovery_timeout_is_a_network_error() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(NetworkError):
        HttpxOAuthGateway(HttpxTokenGateway(transport=httpx.MockTransport(hang))).discover(SERVER)


# --------------------------------------------------------------------------- grants


def test_code_exchange_sends_the_verifier_and_client_id_form_encoded(gateway, server) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/token", body={**TOKENS, "refresh_token_expires_in": 3600})
    issued = gateway.exchange_code(ENDPOINTS, "cli_native", SECRETS[0], SECRETS[1], "http://127.0.0.1:5/callback")
    assert server.requests[0].headers["content-type"] == "application/x-www-form-urlencoded"
    assert server.form() == {"grant_type": "authorization_code", "code": SECRETS[0], "code_verifier": SECRETS[1],
                             "redirect_uri": "http://127.0.0.1:5/callback", "client_id": "cli_native"}
    assert issued.access == "at-new-access-123" and issued.session_id == "sess-1"
    assert issued.expires_in == 900 and issued.refresh_expires_in == 3600


def test_a_refused_code_names_the_oauth_error_never_the_code(gateway, server) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/token", status=400, body={"error": "invalid_grant", "error_description": SECRETS[0]})
    with pytest.raises(OAuthProtocolError, match="invalid_grant") as caught:
        gateway.exchange_code(ENDPOINTS, "cli_native", SECRETS[0], SECRETS[1], "http://127.0.0.1:5/callback")
    assert SECRETS[0] not in str(caught.value)


@pytest.mark.parametrize("body", [
    {"access_token": "a b", "refresh_token": "r", "token_type": "Bearer"},  # not a sendable token
    {"refresh_token": "r"},
    {"access_token": "a", "token_type": "mac"},
    {**TOKENS, "expires_in": "soon"},
])
def test_malformed_token_responses(gateway, server, body) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/token", body=body)
    with pytest.raises(MalformedResponseError):
        gateway.exchange_code(ENDPOINTS, "cli_native", "c", "v", "http://127.0.0.1:5/callback")


def test_device_start_and_poll_outcomes(gateway, server) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/device", body={
        "device_code": SECRETS[2], "user_code": "WDJB-MJHT", "verification_uri": SERVER + "/device",
        "verification_uri_complete": SERVER + "/device?user_code=WDJB-MJHT", "expires_in": 600, "interval": 5})
    auth = gateway.start_device(ENDPOINTS, "cli_native", "offline_access")
    assert server.form() == {"client_id": "cli_native", "scope": "offline_access"}
    assert (auth.user_code, auth.interval, auth.expires_in) == ("WDJB-MJHT", 5.0, 600.0)
    assert SECRETS[2] not in repr(auth)
    for error, expected in (("authorization_pending", PollOutcome.PENDING), ("slow_down", PollOutcome.SLOW_DOWN)):
        server.on("POST", "/oauth/token", status=400, body={"error": error})
        assert gateway.poll_device(ENDPOINTS, "cli_native", SECRETS[2]) is expected
    assert server.form() == {"grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                             "device_code": SECRETS[2], "client_id": "cli_native"}
    for error, exc in (("access_denied", DeviceCodeDeniedError), ("expired_token", DeviceCodeExpiredError),
                       ("invalid_grant", OAuthProtocolError)):
        server.on("POST", "/oauth/token", status=400, body={"error": error})
        with pytest.raises(exc):
            gateway.poll_device(ENDPOINTS, "cli_native", SECRETS[2])
    server.on("POST", "/oauth/token", status=503, raw=b"busy")
    with pytest.raises(ServerUnavailableError):
        gateway.poll_device(ENDPOINTS, "cli_native", SECRETS[2])
    server.on("POST", "/oauth/token", body=TOKENS)
    assert gateway.poll_device(ENDPOINTS, "cli_native", SECRETS[2]).access == "at-new-access-123"  # type: ignore[union-attr]


@pytest.mark.parametrize("uri", ["http://auth.example.test/device", "https://x.test/\x1b[2J", "javascript:alert(1)"])
def test_a_verification_uri_that_is_not_plain_https_is_refused(gateway, server, uri) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/device", body={"device_code": "d" * 20, "user_code": "AB", "verification_uri": uri,
                                             "expires_in": 600})
    with pytest.raises(MalformedResponseError):
        gateway.start_device(ENDPOINTS, "cli_native", "offline_access")


# --------------------------------------------------------------------------- refresh, me, revoke


def test_refresh_rotates_with_client_id(gateway, server) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/token", body=TOKENS)
    issued = gateway.refresh(session())
    assert server.form() == {"grant_type": "refresh_token", "refresh_token": SECRETS[3], "client_id": "cli_native"}
    assert issued.refresh == "rt-new-refresh-123"


def test_refresh_without_a_new_refresh_token_keeps_the_old_one(gateway, server) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/token", body={k: v for k, v in TOKENS.items() if k != "refresh_token"})
    assert gateway.refresh(session()).refresh == SECRETS[3]


@pytest.mark.parametrize(("status", "body", "error"), [
    (400, {"error": "invalid_grant"}, TokenRejectedError),
    (401, {"error": "invalid_client"}, TokenRejectedError),
    (400, {"error": "invalid_request"}, UnexpectedStatusError),
    (429, {}, RateLimitedError),
    (502, {}, ServerUnavailableError),
])
def test_refresh_failures(gateway, server, status, body, error) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/token", status=status, body=body)
    with pytest.raises(error):
        gateway.refresh(session())


def test_refresh_never_sends_the_token_off_origin(gateway, server) -> None:  # noqa: ANN001
    with pytest.raises(UnsafeEndpointError):
        gateway.refresh(session(token="https://evil.test/oauth/token"))
    assert server.requests == []


def test_me_names_the_user_and_teams(gateway, server) -> None:  # noqa: ANN001
    server.on("GET", "/api/v1/me", body={"email": "a@b.test", "name": "A", "user_id": 7, "teams": [
        {"id": 1, "slug": "acme", "name": "Acme", "role": "owner", "is_private_teamspace": False},
        {"id": 2, "slug": "mine", "name": "Mine", "role": "owner", "is_private_teamspace": True}]})
    identity = gateway.me(SERVER, "at-access-0123456789")
    assert server.requests[0].headers["authorization"] == "Bearer at-access-0123456789"
    assert identity.email == "a@b.test" and identity.user_id == "7" and identity.team_slug == "mine"


def test_me_refuses_terminal_control_characters(gateway, server) -> None:  # noqa: ANN001
    server.on("GET", "/api/v1/me", body={"email": "a@b.test\x1b[2J", "teams": []})
    with pytest.raises(MalformedResponseError):
        gateway.me(SERVER, "at-access-0123456789")


def test_revoke_posts_rfc7009_with_client_id_and_any_200_body_counts(gateway, server) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/revoke", raw=b"")
    gateway.revoke(session(), 5.0)
    assert server.form() == {"token": SECRETS[3], "token_type_hint": "refresh_token", "client_id": "cli_native"}


@pytest.mark.parametrize(("status", "error"), [(404, RevocationUnsupportedError), (503, ServerUnavailableError),
                                               (400, UnexpectedStatusError)])
def test_revoke_failures(gateway, server, status, error) -> None:  # noqa: ANN001
    server.on("POST", "/oauth/revoke", status=status)
    if status == 404:
        server.routes.pop(("POST", "/oauth/revoke"))
    with pytest.raises(error):
        gateway.revoke(session(), 5.0)


def test_revoke_without_an_endpoint_or_off_origin(gateway, server) -> None:  # noqa: ANN001
    with pytest.raises(RevocationUnsupportedError):
        gateway.revoke(session(revocation=None), 5.0)
    with pytest.raises(UnsafeEndpointError):
        gateway.revoke(session(revocation="https://evil.test/revoke"), 5.0)
    assert server.requests == []


def test_password_sessions_are_revoked_at_the_blacklist_endpoint(server: Server) -> None:
    http = HttpxTokenGateway(transport=httpx.MockTransport(server))
    built: list[int] = []
    revoker = HttpSessionRevoker(http, lambda: built.append(1))  # type: ignore[arg-type,func-returns-value]
    password_session = Credentials(session().tokens, "u", SERVER)
    server.on("POST", "/api/v1/token/blacklist/", body={})
    revoker.revoke(password_session, 5.0)
    assert json.loads(server.requests[-1].content) == {"refresh": SECRETS[3]}
    server.routes.pop(("POST", "/api/v1/token/blacklist/"))
    with pytest.raises(RevocationUnsupportedError):
        revoker.revoke(password_session, 5.0)
    server.on("POST", "/api/v1/token/blacklist/", status=401, body={"code": "token_not_valid"})
    with pytest.raises(TokenRejectedError):
        revoker.revoke(password_session, 5.0)
    assert built == []  # no OAuth adapter for a password session


@pytest.mark.parametrize("oauth", [False, True], ids=["blacklist", "rfc7009"])
def test_the_revoke_request_is_bounded_by_the_deadline_logout_gives_it(oauth: bool) -> None:
    """Logout hands the revoker what is left of its time; a password session's blacklist request obeys it too."""
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(30)
        return httpx.Response(200)

    http = HttpxTokenGateway(transport=httpx.MockTransport(hang))
    revoker = HttpSessionRevoker(http, lambda: HttpxOAuthGateway(http))
    target = session() if oauth else Credentials(session().tokens, "u", SERVER)
    try:
        with pytest.raises(NetworkError) as caught:
            revoker.revoke(target, 0.3)
        assert "no answer within 0.3 s" in str(caught.value)
    finally:
        release.set()
        http.close()


def test_no_secret_reaches_the_logs(gateway, server, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    server.on("POST", "/oauth/token", status=400, body={"error": "invalid_grant"})
    with pytest.raises(OAuthProtocolError):
        gateway.exchange_code(ENDPOINTS, "cli_native", SECRETS[0], SECRETS[1], "http://127.0.0.1:5/callback")
    server.on("POST", "/oauth/revoke", raw=b"")
    gateway.revoke(session(), 5.0)
    for secret in SECRETS:
        assert secret not in caplog.text
