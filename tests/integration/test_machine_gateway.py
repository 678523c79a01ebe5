"""The client credentials grant and a machine session's revocation in HttpxOAuthGateway: over httpx.MockTransport
(requests sent, statuses mapped) and over real TLS on loopback with every logger at DEBUG (the secret never logged)."""

from __future__ import annotations

import json
import logging
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl

import httpx
import pytest
from portability import wine_tls_gap
import trustme

from kitty_auth.adapters.oauth_gateway import HttpxOAuthGateway
from kitty_auth.adapters.oauth_revocation import HttpSessionRevoker
from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway
from kitty_auth.domain.errors import MalformedResponseError, ServerUnavailableError, UnexpectedStatusError
from kitty_auth.domain.machine import ClientCredentials, MachineClientRejectedError
from kitty_auth.domain.model import Credentials, LoginMethod, MachineClient, OAuthClient, TokenPair
from kitty_auth.domain.oauth_errors import OAuthProtocolError, UnsafeEndpointError

SERVER = "https://auth.example.test"
TOKEN = SERVER + "/oauth/token"
SECRET = "machine-secret-Zx81!+/= &%"  # characters form encoding must carry intact
CLIENT = ClientCredentials("ci-bot", SECRET)
NOW = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)
ANSWER = {"access_token": "at-machine-access-0123", "token_type": "Bearer", "expires_in": 300, "scope": "offline_access"}


class Server:
    def __init__(self) -> None:
        self.answer: tuple[int, object] = (200, ANSWER)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status, body = self.answer
        return httpx.Response(status, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.requests[-1].content.decode(), keep_blank_values=True))


@pytest.fixture
def server() -> Server:
    return Server()


@pytest.fixture
def gateway(server: Server) -> Iterator[HttpxOAuthGateway]:
    http = HttpxTokenGateway(transport=httpx.MockTransport(server))
    yield HttpxOAuthGateway(http)
    http.close()


def machine_session(refresh: str | None = None) -> Credentials:
    return Credentials(
        tokens=TokenPair("at-machine-access-0123", refresh, NOW + timedelta(minutes=5), None),
        username="ci-bot@example.com", server_url=SERVER, login_method=LoginMethod.MACHINE,
        oauth=OAuthClient("cli_native", TOKEN, SERVER + "/oauth/revoke"), machine=MachineClient("ci-bot"),
    )


def test_the_grant_is_form_encoded_with_the_secret_in_the_body(gateway: HttpxOAuthGateway, server: Server) -> None:
    issued = gateway.client_credentials(SERVER, TOKEN, CLIENT)
    request = server.requests[-1]
    assert request.method == "POST" and str(request.url) == TOKEN
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert "Authorization" not in request.headers  # in the body, as spec-kitty's SaaS takes it (not HTTP Basic)
    assert server.form() == {"grant_type": "client_credentials", "client_id": "ci-bot", "client_secret": SECRET}
    assert issued.access == ANSWER["access_token"] and issued.refresh is None and issued.expires_in == 300


def test_an_answer_with_a_refresh_token_keeps_it(gateway: HttpxOAuthGateway, server: Server) -> None:
    server.answer = (200, ANSWER | {"refresh_token": "rt-machine-0123", "session_id": "sess-7"})
    issued = gateway.client_credentials(SERVER, TOKEN, CLIENT)
    assert issued.refresh == "rt-machine-0123" and issued.session_id == "sess-7"


@pytest.mark.parametrize("status", [400, 401])  # 400 as spec-kitty's SaaS answers; 401 as RFC 6749 5.2 allows
def test_invalid_client_is_one_error_whatever_the_status(gateway: HttpxOAuthGateway, server: Server, status: int) -> None:
    server.answer = (status, {"error": "invalid_client", "error_description": "Client authentication failed."})
    with pytest.raises(MachineClientRejectedError) as caught:
        gateway.client_credentials(SERVER, TOKEN, CLIENT)
    assert SECRET not in str(caught.value) and "authentication failed" not in str(caught.value)


@pytest.mark.parametrize(("status", "body", "error"), [
    (400, {"error": "unauthorized_client"}, OAuthProtocolError),
    (400, {"error": "unsupported_grant_type"}, OAuthProtocolError),
    (503, {}, ServerUnavailableError),
    (403, {}, UnexpectedStatusError),
    (200, {"token_type": "Bearer"}, MalformedResponseError),
    (200, ANSWER | {"token_type": "mac"}, MalformedResponseError),
])
def test_other_failures(gateway: HttpxOAuthGateway, server: Server, status: int, body: object, error: type) -> None:
    server.answer = (status, body)
    with pytest.raises(error):
        gateway.client_credentials(SERVER, TOKEN, CLIENT)


def test_the_secret_never_goes_off_origin(gateway: HttpxOAuthGateway, server: Server) -> None:
    for endpoint in ("https://evil.example.test/oauth/token", "http://auth.example.test/oauth/token",
                     "https://auth.example.test:8443/oauth/token"):
        with pytest.raises(UnsafeEndpointError):
            gateway.client_credentials(SERVER, endpoint, CLIENT)
    assert server.requests == []


def test_a_plain_machine_session_is_revoked_by_its_access_token_as_its_client(gateway: HttpxOAuthGateway,
                                                                              server: Server) -> None:
    server.answer = (200, {})
    HttpSessionRevoker(None, lambda: gateway).revoke(machine_session(), 5.0, as_client=CLIENT)
    assert str(server.requests[-1].url) == SERVER + "/oauth/revoke"
    assert server.form() == {"token": "at-machine-access-0123", "token_type_hint": "access_token",
                             "client_id": "ci-bot", "client_secret": SECRET}


def test_a_machine_session_with_a_refresh_token_is_revoked_like_other_oauth_sessions(gateway: HttpxOAuthGateway,
                                                                                      server: Server) -> None:
    server.answer = (200, {})
    gateway.revoke(machine_session(refresh="rt-machine-0123"), 5.0)
    assert server.form() == {"token": "rt-machine-0123", "token_type_hint": "refresh_token", "client_id": "cli_native"}


# --------------------------------------------------------------------------- real TLS, every logger at DEBUG


@pytest.fixture
def tls_token_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[bytes]]]:
    """An HTTPS token endpoint on loopback (a trustme CA in SSL_CERT_FILE) answering every POST with ANSWER."""
    for name in ("SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    ca = trustme.CA()
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    bodies: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            bodies.append(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            data = json.dumps(ANSWER).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{httpd.server_address[1]}", bodies
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@wine_tls_gap
def test_over_real_tls_the_grant_works_and_no_log_line_holds_the_secret(tls_token_endpoint, caplog) -> None:  # noqa: ANN001
    url, bodies = tls_token_endpoint
    caplog.set_level(logging.DEBUG)  # ours, httpx's and httpcore's (redacted) records
    http = HttpxTokenGateway()
    try:
        issued = HttpxOAuthGateway(http).client_credentials(url, url + "/oauth/token", CLIENT)
    finally:
        http.close()
    assert issued.access == ANSWER["access_token"]
    assert dict(parse_qsl(bodies[-1].decode()))["client_secret"] == SECRET  # it did travel, in the TLS body
    assert caplog.records and any(record.name.startswith("httpcore") for record in caplog.records)
    assert SECRET not in caplog.text and "Zx81" not in caplog.text and ANSWER["access_token"] not in caplog.text
