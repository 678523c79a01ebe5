"""HttpxTokenGateway against httpx.MockTransport, plus a few loopback-only real-TLS checks."""

from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme

from kitty_auth.adapters import https_client, tls_trust
from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway
from kitty_auth.adapters.tls_trust import build_ssl_context
from kitty_auth.domain.errors import (
    InvalidCredentialsError,
    InvalidServerUrlError,
    MalformedResponseError,
    NetworkError,
    RateLimitedError,
    ServerUnavailableError,
    TLSVerificationError,
    TokenRejectedError,
    UnexpectedStatusError,
)
from kitty_auth.domain.model import TokenPair
from kitty_auth.testing import make_jwt
from portability import UNDER_WINE, wine_tls_gap

SERVER = "https://auth.example.test"
NOW = datetime(2026, 2, 3, 16, 30, tzinfo=UTC)
PASSWORD = "pa55-W0rd-not-in-logs"


def access_token() -> str:
    return make_jwt(iat=NOW, lifetime=timedelta(minutes=15), kind="access")


def refresh_token() -> str:
    return make_jwt(iat=NOW, lifetime=timedelta(days=7), kind="refresh")


Handler = Callable[[httpx.Request], httpx.Response]


@dataclass
class Recorder:
    """Wraps a MockTransport handler and remembers every request it saw."""

    respond: Handler
    requests: list[httpx.Request] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        return self.respond(request)

    @property
    def calls(self) -> int:
        return len(self.requests)


def gateway_for(respond: Handler, **kwargs: object) -> tuple[HttpxTokenGateway, Recorder]:
    recorder = Recorder(respond)
    return HttpxTokenGateway(transport=httpx.MockTransport(recorder), **kwargs), recorder  # type: ignore[arg-type]


def json_response(status: int, payload: object, **kwargs: object) -> Handler:
    return lambda request: httpx.Response(status, json=payload, **kwargs)  # type: ignore[arg-type]


CALLS: dict[str, Callable[[HttpxTokenGateway, str], object]] = {
    "obtain": lambda gw, url: gw.obtain(url, "user@example.com", PASSWORD),
    "refresh": lambda gw, url: gw.refresh(url, refresh_token()),
    "ws_token": lambda gw, url: gw.ws_token(url, access_token()),
}


# --------------------------------------------------------------------------- obtain


def test_obtain_posts_credentials_and_returns_the_pair() -> None:
    access, refresh = access_token(), refresh_token()
    gw, rec = gateway_for(json_response(200, {"access": access, "refresh": refresh}))

    issued = gw.obtain(SERVER + "/", "user@example.com", PASSWORD)

    assert (issued.access, issued.refresh) == (access, refresh)
    assert rec.calls == 1
    request = rec.requests[0]
    assert request.method == "POST"
    assert str(request.url) == "https://auth.example.test/api/v1/token/"
    assert json.loads(request.content) == {"username": "user@example.com", "password": PASSWORD}
    assert request.headers["accept"] == "application/json"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["user-agent"] == "kitty-auth/0.1"
    assert "authorization" not in request.headers


def test_obtain_401_is_invalid_credentials() -> None:
    gw, _ = gateway_for(
        json_response(401, {"detail": "No active account found with the given credentials"})
    )
    with pytest.raises(InvalidCredentialsError) as info:
        gw.obtain(SERVER, "user@example.com", PASSWORD)
    assert str(info.value) == "Invalid username or password."


def test_obtain_400_is_unexpected_status() -> None:
    gw, _ = gateway_for(json_response(400, {"password": ["This field may not be blank."]}))
    with pytest.raises(UnexpectedStatusError) as info:
        gw.obtain(SERVER, "user@example.com", "")
    assert info.value.status == 400
    assert "400" in str(info.value)
    assert "missing" in str(info.value)


# --------------------------------------------------------------------------- refresh


def test_refresh_posts_the_refresh_token_and_returns_the_rotated_pair() -> None:
    old_refresh = refresh_token()
    new_access, new_refresh = access_token(), refresh_token()
    gw, rec = gateway_for(json_response(200, {"access": new_access, "refresh": new_refresh}))

    issued = gw.refresh(SERVER, old_refresh)

    assert issued.access == new_access
    assert issued.refresh == new_refresh != old_refresh
    request = rec.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/api/v1/token/refresh/"
    assert json.loads(request.content) == {"refresh": old_refresh}


def test_refresh_401_token_not_valid_is_token_rejected() -> None:
    gw, _ = gateway_for(
        json_response(401, {"detail": "Token is blacklisted", "code": "token_not_valid"})
    )
    with pytest.raises(TokenRejectedError):
        gw.refresh(SERVER, refresh_token())


def test_refresh_403_is_unexpected_status_suggesting_login() -> None:
    gw, _ = gateway_for(json_response(403, {"detail": "Forbidden"}))
    with pytest.raises(UnexpectedStatusError) as info:
        gw.refresh(SERVER, refresh_token())
    assert info.value.status == 403
    assert "spec-kitty auth login --force" in str(info.value)


# --------------------------------------------------------------------------- ws-token


def test_ws_token_sends_bearer_and_returns_aware_utc_expiry() -> None:
    access = access_token()
    gw, rec = gateway_for(
        json_response(
            200,
            {"ws_token": "ws-opaque-123", "expires_at": "2026-02-03T18:45:00+02:00", "expires_in": 900},
        )
    )

    ws = gw.ws_token(SERVER, access)

    request = rec.requests[0]
    assert request.method == "POST"
    assert request.url.path == "/api/v1/ws-token/"
    assert request.headers["authorization"] == f"Bearer {access}"
    assert json.loads(request.content) == {}
    assert ws.ws_token == "ws-opaque-123"
    assert ws.expires_in == 900
    assert ws.expires_at.tzinfo is not None
    assert ws.expires_at.utcoffset() == timedelta(0)
    assert ws.expires_at == datetime(2026, 2, 3, 16, 45, tzinfo=UTC)


def test_ws_token_401_is_token_rejected() -> None:
    gw, _ = gateway_for(
        json_response(401, {"detail": "Given token not valid", "code": "token_not_valid"})
    )
    with pytest.raises(TokenRejectedError):
        gw.ws_token(SERVER, access_token())


def test_ws_token_with_an_unsendable_access_token_sends_nothing() -> None:
    gw, rec = gateway_for(json_response(200, {}))
    with pytest.raises(TokenRejectedError):
        gw.ws_token(SERVER, "abc\r\nX-Injected: 1")
    assert rec.calls == 0


# --------------------------------------------------------------------------- status mapping


@pytest.mark.parametrize("op", sorted(CALLS))
@pytest.mark.parametrize("status", [500, 502, 503])
def test_5xx_is_server_unavailable(op: str, status: int) -> None:
    gw, _ = gateway_for(lambda r: httpx.Response(status, text="<html>Bad Gateway</html>"))
    with pytest.raises(ServerUnavailableError) as info:
        CALLS[op](gw, SERVER)
    assert info.value.status == status


@pytest.mark.parametrize("op", sorted(CALLS))
def test_429_is_rate_limited(op: str) -> None:
    gw, _ = gateway_for(json_response(429, {"detail": "Request was throttled."}))
    with pytest.raises(RateLimitedError):
        CALLS[op](gw, SERVER)


@pytest.mark.parametrize("op", sorted(CALLS))
def test_302_is_not_followed(op: str) -> None:
    gw, rec = gateway_for(
        lambda r: httpx.Response(302, headers={"Location": "https://elsewhere.example/api/v1/token/"})
    )
    with pytest.raises(UnexpectedStatusError) as info:
        CALLS[op](gw, SERVER)
    assert info.value.status == 302
    assert "redirected" in str(info.value)
    assert rec.calls == 1


# --------------------------------------------------------------------------- malformed bodies

GOOD_ACCESS = access_token()

MALFORMED_PAIRS = {
    "html": httpx.Response(200, text="<!doctype html><html><body>Login</body></html>",
                           headers={"Content-Type": "text/html"}),
    "truncated": httpx.Response(200, content=b'{"access": "' + GOOD_ACCESS.encode() + b'", "refr',
                                headers={"Content-Type": "application/json"}),
    "missing-refresh": httpx.Response(200, json={"access": GOOD_ACCESS}),
    "access-int": httpx.Response(200, json={"access": 12345, "refresh": GOOD_ACCESS}),
    "empty-access": httpx.Response(200, json={"access": "", "refresh": GOOD_ACCESS}),
    "null-refresh": httpx.Response(200, json={"access": GOOD_ACCESS, "refresh": None}),
    "json-list": httpx.Response(200, json=[GOOD_ACCESS, GOOD_ACCESS]),
    "empty-body": httpx.Response(200, content=b""),
    "token-with-space": httpx.Response(200, json={"access": "a b", "refresh": GOOD_ACCESS}),
}


def _replay(response: httpx.Response) -> Handler:
    body = response.content
    headers = dict(response.headers)
    return lambda request: httpx.Response(response.status_code, content=body, headers=headers)


@pytest.mark.parametrize("op", ["obtain", "refresh"])
@pytest.mark.parametrize("case", sorted(MALFORMED_PAIRS))
def test_malformed_token_pair_is_rejected(op: str, case: str) -> None:
    gw, _ = gateway_for(_replay(MALFORMED_PAIRS[case]))
    with pytest.raises(MalformedResponseError) as info:
        CALLS[op](gw, SERVER)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_json_body_with_a_non_json_content_type_is_accepted() -> None:
    access, refresh = access_token(), refresh_token()
    body = json.dumps({"access": access, "refresh": refresh}).encode()
    gw, _ = gateway_for(lambda r: httpx.Response(200, content=body, headers={"Content-Type": "text/plain"}))
    assert gw.obtain(SERVER, "u", PASSWORD).access == access


MALFORMED_WS = {
    "naive-expiry": {"ws_token": "w", "expires_at": "2026-02-03T16:45:00", "expires_in": 900},
    "expires-in-string": {"ws_token": "w", "expires_at": "2026-02-03T16:45:00Z", "expires_in": "900"},
    "expires-in-negative": {"ws_token": "w", "expires_at": "2026-02-03T16:45:00Z", "expires_in": -1},
    "expires-in-bool": {"ws_token": "w", "expires_at": "2026-02-03T16:45:00Z", "expires_in": True},
    "expires-in-float": {"ws_token": "w", "expires_at": "2026-02-03T16:45:00Z", "expires_in": 900.5},
    "empty-ws-token": {"ws_token": "", "expires_at": "2026-02-03T16:45:00Z", "expires_in": 900},
    "no-expiry-at-all": {"ws_token": "w"},
    "expiry-before-year-1-utc": {"ws_token": "w", "expires_at": "0001-01-01T00:00:00+01:00"},
    "expires-in-huge": {"ws_token": "w", "expires_in": 10**30},
    "bad-expiry": {"ws_token": "w", "expires_at": "tomorrow", "expires_in": 900},
}


@pytest.mark.parametrize("case", sorted(MALFORMED_WS))
def test_malformed_ws_token_is_rejected(case: str) -> None:
    gw, _ = gateway_for(json_response(200, MALFORMED_WS[case]))
    with pytest.raises(MalformedResponseError):
        gw.ws_token(SERVER, access_token())


def test_oversized_body_with_content_length_is_rejected() -> None:
    payload = {"access": access_token(), "refresh": refresh_token(), "pad": "x" * 5000}
    gw, _ = gateway_for(json_response(200, payload), max_body_bytes=1000)
    with pytest.raises(MalformedResponseError):
        gw.obtain(SERVER, "u", PASSWORD)


def test_oversized_streamed_body_stops_reading_past_the_cap() -> None:
    produced = 0

    def endless() -> Iterator[bytes]:
        nonlocal produced
        yield b'{"access": "'
        while True:
            produced += 1
            yield b"a" * 1024

    gw, _ = gateway_for(lambda r: httpx.Response(200, content=endless()), max_body_bytes=10_000)
    with pytest.raises(MalformedResponseError):
        gw.obtain(SERVER, "u", PASSWORD)
    assert produced <= 12  # stopped right after the cap, did not buffer without bound


def test_body_trickling_past_the_total_deadline_is_a_network_error() -> None:
    def trickle() -> Iterator[bytes]:
        while True:
            time.sleep(0.05)
            yield b" "

    gw, _ = gateway_for(lambda r: httpx.Response(200, content=trickle()), total_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(NetworkError):
        gw.obtain(SERVER, "u", PASSWORD)
    assert time.monotonic() - started < 2


# --------------------------------------------------------------------------- URLs


@pytest.mark.parametrize("op", sorted(CALLS))
@pytest.mark.parametrize(
    "url",
    [
        "http://auth.example.test",
        "https://user:s3cr3t-pw@auth.example.test",
        "ftp://auth.example.test",
        "https://auth.example.test/?next=x",
        "",
    ],
)
def test_unusable_urls_are_refused_before_any_request(op: str, url: str) -> None:
    gw, rec = gateway_for(json_response(200, {}))
    with pytest.raises(InvalidServerUrlError) as info:
        CALLS[op](gw, url)
    assert rec.calls == 0
    assert "s3cr3t-pw" not in str(info.value)


def test_http_url_message_says_https_is_required() -> None:
    gw, rec = gateway_for(json_response(200, {}))
    with pytest.raises(InvalidServerUrlError, match="HTTPS is required"):
        gw.obtain("http://auth.example.test", "u", PASSWORD)
    assert rec.calls == 0


def test_httpx_invalid_url_maps_to_invalid_server_url() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("Request URL has an unsupported protocol 'xyz://'.")

    gw, _ = gateway_for(boom)
    with pytest.raises(InvalidServerUrlError):
        gw.obtain(SERVER, "u", PASSWORD)


# --------------------------------------------------------------------------- transport failures


@pytest.mark.parametrize("op", sorted(CALLS))
@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused"), "connection refused"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "unknown host"),
        (httpx.ReadTimeout("timed out"), "timed out"),
        (httpx.ConnectTimeout("timed out"), "timed out"),
        (httpx.PoolTimeout("timed out"), "timed out"),
        (httpx.RemoteProtocolError("Server disconnected without sending a response."), "connection dropped"),
        (httpx.ReadError("[Errno 104] Connection reset by peer"), "connection dropped"),
    ],
    ids=["refused", "dns", "read-timeout", "connect-timeout", "pool-timeout", "disconnect", "reset"],
)
def test_transport_errors_are_network_errors(op: str, exc: Exception, cause: str) -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise exc

    gw, _ = gateway_for(boom)
    with pytest.raises(NetworkError) as info:
        CALLS[op](gw, SERVER)
    assert str(info.value) == f"Cannot reach server. Check your connection. (auth.example.test: {cause})"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_connect_error_caused_by_certificate_verification_is_tls_error() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        try:
            raise ssl.SSLCertVerificationError(1, "certificate verify failed: self-signed certificate")
        except ssl.SSLCertVerificationError as cause:
            raise httpx.ConnectError("handshake failed") from cause

    gw, _ = gateway_for(boom)
    with pytest.raises(TLSVerificationError) as info:
        gw.obtain(SERVER, "u", PASSWORD)
    assert "certificate could not be verified" in str(info.value)
    assert info.value.__cause__ is None


def test_connect_error_mentioning_certificate_verify_failed_is_tls_error() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")

    gw, _ = gateway_for(boom)
    with pytest.raises(TLSVerificationError):
        gw.refresh(SERVER, refresh_token())


# --------------------------------------------------------------------------- client lifecycle


def test_one_client_is_created_lazily_and_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[httpx.Client] = []
    original = HttpxTokenGateway._make_client

    def counting(self: HttpxTokenGateway) -> httpx.Client:
        client = original(self)
        created.append(client)
        return client

    monkeypatch.setattr(HttpxTokenGateway, "_make_client", counting)

    def respond(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/ws-token/":
            return httpx.Response(
                200, json={"ws_token": "w", "expires_at": "2026-02-03T16:45:00Z", "expires_in": 900}
            )
        return httpx.Response(200, json={"access": access_token(), "refresh": refresh_token()})

    with HttpxTokenGateway(transport=httpx.MockTransport(respond)) as gw:
        assert created == []  # lazy: nothing until the first request
        gw.obtain(SERVER, "u", PASSWORD)
        gw.refresh(SERVER, refresh_token())
        gw.ws_token(SERVER, access_token())
        assert len(created) == 1
    assert created[0].is_closed  # the context manager closed it


def test_close_then_use_creates_a_fresh_client() -> None:
    gw, rec = gateway_for(json_response(200, {"access": access_token(), "refresh": refresh_token()}))
    gw.obtain(SERVER, "u", PASSWORD)
    first = gw._client
    gw.close()
    assert first is not None and first.is_closed
    gw.obtain(SERVER, "u", PASSWORD)
    assert gw._client is not first and rec.calls == 2
    gw.close()


def test_cookies_set_by_the_server_are_not_sent_back() -> None:
    def respond(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200,
            json={"access": access_token(), "refresh": refresh_token()},
            headers={"Set-Cookie": "sessionid=abc; Path=/; Secure"},
        )

    gw, rec = gateway_for(respond)
    gw.obtain(SERVER, "u", PASSWORD)
    gw.refresh(SERVER, refresh_token())
    assert "cookie" not in rec.requests[1].headers


def test_default_timeouts_are_five_seconds() -> None:
    gw = HttpxTokenGateway(transport=httpx.MockTransport(json_response(200, {})))
    client = gw._get_client()
    assert (client.timeout.connect, client.timeout.read, client.timeout.write, client.timeout.pool) == (
        5.0, 5.0, 5.0, 5.0,
    )
    assert client.follow_redirects is False
    gw.close()


# --------------------------------------------------------------------------- real TLS on loopback


@dataclass
class TLSServer:
    url: str
    ca_pem: Path
    ca: trustme.CA
    requests: list[tuple[str, dict[str, str], bytes]]
    connections: set[tuple[str, int]]
    tokens: dict[str, str]


@pytest.fixture
def clean_tls_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                 "all_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def tls_server(tmp_path: Path, clean_tls_env: None) -> Iterator[TLSServer]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(server_ctx)
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))

    tokens = {
        "access": access_token(),
        "refresh": refresh_token(),
        "access2": access_token(),
        "refresh2": refresh_token(),
        "ws": "ws-" + "Q" * 24,
        "cookie": "cookie-secret-9f8e7d",
    }
    requests: list[tuple[str, dict[str, str], bytes]] = []
    connections: set[tuple[str, int]] = set()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            requests.append((self.path, dict(self.headers), body))
            connections.add(self.client_address)
            if self.path == "/api/v1/token/":
                payload: dict[str, object] = {"access": tokens["access"], "refresh": tokens["refresh"]}
            elif self.path == "/api/v1/token/refresh/":
                payload = {"access": tokens["access2"], "refresh": tokens["refresh2"]}
            elif self.path == "/api/v1/ws-token/":
                payload = {"ws_token": tokens["ws"], "expires_at": "2026-02-03T16:45:00Z", "expires_in": 900}
            else:
                payload = {"detail": "Not found."}
            data = json.dumps(payload).encode()
            self.send_response(200 if self.path.startswith("/api/v1/") else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Set-Cookie", f"sessionid={tokens['cookie']}; Path=/; Secure; HttpOnly")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = server_ctx.wrap_socket(httpd.socket, server_side=True)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield TLSServer(f"https://127.0.0.1:{port}", ca_pem, ca, requests, connections, tokens)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(params=["truststore", "stdlib-fallback"])
def trust_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "stdlib-fallback":
        monkeypatch.setattr(tls_trust, "truststore", None)
    return str(request.param)


def test_real_tls_with_ssl_cert_file_succeeds_on_one_connection(
    tls_server: TLSServer, trust_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if trust_backend == "truststore" and UNDER_WINE:
        pytest.skip(wine_tls_gap.kwargs["reason"])
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_pem))
    with HttpxTokenGateway() as gw:
        issued = gw.obtain(tls_server.url, "user@example.com", PASSWORD)
        rotated = gw.refresh(tls_server.url, issued.refresh)
        ws = gw.ws_token(tls_server.url, rotated.access)
    assert issued.access == tls_server.tokens["access"]
    assert rotated.refresh == tls_server.tokens["refresh2"]
    assert ws.ws_token == tls_server.tokens["ws"]
    assert [path for path, _, _ in tls_server.requests] == [
        "/api/v1/token/", "/api/v1/token/refresh/", "/api/v1/ws-token/",
    ]
    assert tls_server.requests[2][1]["Authorization"] == f"Bearer {tls_server.tokens['access2']}"
    assert len(tls_server.connections) == 1  # one client, one connection, one TLS handshake


def test_real_tls_without_ssl_cert_file_fails_verification(
    tls_server: TLSServer, trust_backend: str
) -> None:
    with HttpxTokenGateway() as gw, pytest.raises(TLSVerificationError):
        gw.obtain(tls_server.url, "user@example.com", PASSWORD)
    assert tls_server.requests == []


def test_build_ssl_context_adds_the_ssl_cert_file_ca(
    tmp_path: Path, trust_backend: str, clean_tls_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    ca_der = ssl.PEM_cert_to_DER_cert(ca.cert_pem.bytes().decode())

    def loaded_cas(ctx: ssl.SSLContext) -> list[bytes]:
        # truststore.SSLContext.get_ca_certs() raises NotImplementedError; the CAs added with
        # load_verify_locations live in its inner OpenSSL context (which macOS/Windows consult).
        inner: ssl.SSLContext = getattr(ctx, "_ctx", ctx)
        return inner.get_ca_certs(binary_form=True)

    assert ca_der not in loaded_cas(build_ssl_context())

    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    ctx = build_ssl_context()
    assert ca_der in loaded_cas(ctx)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    if trust_backend == "truststore":
        assert type(ctx).__module__.startswith("truststore")
    else:
        assert type(ctx) is ssl.SSLContext


def test_build_ssl_context_rejects_a_garbage_ssl_cert_file(
    tmp_path: Path, clean_tls_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "not-a-bundle.pem"
    bad.write_text("hello\n")
    monkeypatch.setenv("SSL_CERT_FILE", str(bad))
    with pytest.raises(TLSVerificationError, match="SSL_CERT_FILE"):
        build_ssl_context()


def test_server_that_accepts_and_never_answers_fails_within_ten_seconds(clean_tls_env: None) -> None:
    listener = socket.create_server(("127.0.0.1", 0), backlog=4)  # the kernel accepts; nobody talks
    try:
        port = listener.getsockname()[1]
        started = time.monotonic()
        with HttpxTokenGateway() as gw, pytest.raises(NetworkError):
            gw.obtain(f"https://127.0.0.1:{port}", "u", PASSWORD)
        assert time.monotonic() - started < 10
    finally:
        listener.close()


# --------------------------------------------------------------------------- no secrets in logs


@wine_tls_gap
def test_no_token_password_or_cookie_is_logged_at_debug(
    tls_server: TLSServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_pem))
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "kitty_auth"):
        caplog.set_level(logging.DEBUG, logger=name)

    with HttpxTokenGateway() as gw:
        issued = gw.obtain(tls_server.url, "user@example.com", PASSWORD)
        rotated = gw.refresh(tls_server.url, issued.refresh)
        gw.ws_token(tls_server.url, rotated.access)
        with pytest.raises(TokenRejectedError):
            gw.ws_token(tls_server.url, rotated.access + "\n")  # never reaches h11

    names = {record.name for record in caplog.records}
    assert "httpx" in names and "kitty_auth.http" in names
    assert any(name.startswith("httpcore.") for name in names)  # httpcore really logged
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("receive_response_headers.complete") for m in messages)

    secrets = [PASSWORD, *tls_server.tokens.values()]
    for record, message in zip(caplog.records, messages, strict=True):
        rendered = message + repr(record.args) + repr(record.__dict__)
        for secret in secrets:
            assert secret not in rendered, f"{record.name} logged a secret"
    for secret in secrets:
        assert secret not in caplog.text


def test_no_secret_is_logged_when_a_request_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.LocalProtocolError(f"Illegal header value b'Bearer {GOOD_ACCESS}'")

    gw, _ = gateway_for(boom)
    with pytest.raises(NetworkError) as info:
        gw.ws_token(SERVER, GOOD_ACCESS)
    assert GOOD_ACCESS not in caplog.text
    assert GOOD_ACCESS not in str(info.value)


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or tls_trust._system_bundle_for_linux() is None,
    reason="needs a Linux distribution CA bundle",
)
def test_ssl_cert_file_adds_to_the_system_bundle_instead_of_replacing_it(
    tmp_path: Path, clean_tls_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ca = trustme.CA()
    ca_pem = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_pem))
    ctx = build_ssl_context()
    inner: ssl.SSLContext = getattr(ctx, "_ctx", ctx)
    assert len(inner.get_ca_certs()) > 1  # the CA from SSL_CERT_FILE and the OS bundle


# --------------------------------------------------------------------------- request (the shared core)


def test_request_posts_a_form_and_returns_any_status_with_its_body() -> None:
    gw, rec = gateway_for(json_response(400, {"error": "authorization_pending"}))
    status, body = gw.request(
        "post", SERVER + "/oauth/token/", form={"grant_type": "refresh_token", "refresh_token": "r"}
    )
    assert status == 400
    assert json.loads(body) == {"error": "authorization_pending"}
    request = rec.requests[0]
    assert request.method == "POST"
    assert str(request.url) == SERVER + "/oauth/token/"  # the exact path, trailing slash kept
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.content == b"grant_type=refresh_token&refresh_token=r"


def test_request_get_with_a_bearer_header() -> None:
    gw, rec = gateway_for(json_response(200, {"email": "u@example.com"}))
    status, body = gw.request("GET", SERVER + "/api/v1/me", headers={"Authorization": "Bearer abc"})
    assert (status, json.loads(body)) == (200, {"email": "u@example.com"})
    assert rec.requests[0].method == "GET"
    assert rec.requests[0].headers["authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    "url", ["http://auth.example.test/x", "https://u:p@auth.example.test/x", "https://auth.example.test/x?a=1"]
)
def test_request_refuses_unusable_urls_before_sending(url: str) -> None:
    gw, rec = gateway_for(json_response(200, {}))
    with pytest.raises(InvalidServerUrlError):
        gw.request("GET", url)
    assert rec.calls == 0


def test_request_with_an_unsendable_header_value_sends_nothing() -> None:
    gw, rec = gateway_for(json_response(200, {}))
    with pytest.raises(TokenRejectedError):
        gw.request("GET", SERVER + "/api/v1/me", headers={"Authorization": "Bearer a\r\nX: 1"})
    assert rec.calls == 0


def test_request_caps_the_body_of_an_error_status_too() -> None:
    gw, _ = gateway_for(lambda r: httpx.Response(400, content=b"x" * 2000), max_body_bytes=1000)
    with pytest.raises(MalformedResponseError):
        gw.request("POST", SERVER + "/oauth/token/", form={"a": "b"})


# --------------------------------------------------------------------------- optional response fields


def test_team_slug_and_opaque_token_lifetimes_are_passed_on() -> None:
    gw, _ = gateway_for(json_response(200, {
        "access": "opaque-access", "refresh": "opaque-refresh", "team_slug": "acme",
        "expires_in": 600, "refresh_token_expires_in": 3600,
        "refresh_token_expires_at": "2026-02-10T16:30:00+01:00",
    }))
    issued = gw.refresh(SERVER, refresh_token())
    assert (issued.team_slug, issued.expires_in, issued.refresh_expires_in) == ("acme", 600, 3600)
    assert issued.refresh_expires_at == datetime(2026, 2, 10, 15, 30, tzinfo=UTC)
    pair = TokenPair.from_issued(issued, NOW)
    assert pair.access_expires_at == NOW + timedelta(seconds=600)
    assert pair.refresh_expires_at == NOW + timedelta(seconds=3600)  # _in wins over _at


def test_access_lifetime_is_another_name_for_expires_in() -> None:
    gw, _ = gateway_for(json_response(200, {"access": "oa", "refresh": "or", "access_lifetime": 120}))
    issued = gw.obtain(SERVER, "u", PASSWORD)
    assert issued.expires_in == 120 and issued.team_slug is None


@pytest.mark.parametrize(
    "fields",
    [
        {"expires_in": 1e308 * 10},  # JSON 'Infinity' is not JSON; a huge number is
        {"expires_in": -5},
        {"expires_in": 10**400},
        {"refresh_token_expires_in": 0},
        {"refresh_token_expires_at": "0001-01-01T00:00:00+01:00"},
        {"refresh_token_expires_at": "9999-12-31T23:59:59-01:00"},
        {"team_slug": "bad slug\n"},
        {"team_slug": 7},
    ],
    ids=["inf", "negative", "huge-int", "zero", "before-year-1", "after-year-9999", "slug-newline", "slug-int"],
)
def test_hostile_lifetime_or_team_fields_are_malformed_responses(fields: dict[str, object]) -> None:
    payload = {"access": "opaque-access", "refresh": "opaque-refresh", **fields}
    body = json.dumps(payload).replace("Infinity", "1e400").encode()
    gw, _ = gateway_for(lambda r: httpx.Response(200, content=body))
    with pytest.raises(MalformedResponseError):
        TokenPair.from_issued(gw.refresh(SERVER, refresh_token()), NOW)


@pytest.mark.parametrize(
    "claims", [{"exp": "1e400"}, {"exp": "NaN"}, {"exp": 1e300}, {"iat": 0, "exp": 10**12}],
    ids=["exp-1e400", "exp-nan", "exp-1e300", "lifetime-31700-years"],
)
def test_hostile_jwt_claims_are_malformed_responses(claims: dict[str, object]) -> None:
    import base64

    def b64(raw: str) -> str:
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    payload = "{" + ", ".join(f'"{k}": {v if not isinstance(v, str) else v}' for k, v in claims.items()) + "}"
    header = b64('{"alg": "HS256"}')
    hostile = f"{header}.{b64(payload)}.sig"
    gw, _ = gateway_for(json_response(200, {"access": hostile, "refresh": refresh_token()}))
    with pytest.raises(MalformedResponseError):
        TokenPair.from_issued(gw.refresh(SERVER, refresh_token()), NOW)


def test_ws_token_with_only_expires_in_or_only_expires_at() -> None:
    gw, _ = gateway_for(json_response(200, {"ws_token": "w", "expires_in": 300}))
    before = datetime.now(UTC)
    ws = gw.ws_token(SERVER, access_token())
    assert before + timedelta(seconds=299) <= ws.expires_at <= datetime.now(UTC) + timedelta(seconds=301)
    later = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=10)
    gw, _ = gateway_for(json_response(200, {"ws_token": "w", "expires_at": later.isoformat()}))
    ws = gw.ws_token(SERVER, access_token())
    assert ws.expires_at == later and 590 <= ws.expires_in <= 600


@pytest.mark.parametrize(
    ("ws_url", "kept"),
    [
        ("wss://auth.example.test/ws/v2/events/", True),
        ("wss://AUTH.example.test:443/ws/v1/events/", True),
        ("ws://auth.example.test/ws/v1/events/", False),
        ("wss://evil.example.test/ws/v1/events/", False),
        ("wss://auth.example.test:8443/ws/v1/events/", False),
        ("wss://auth.example.test/ws/v1/events/?token=abc", False),
        ("wss://u:p@auth.example.test/ws/v1/events/", False),
        ("wss://auth.example.test/ws/v1/events/#x", False),
        ("https://auth.example.test/ws/v1/events/", False),
        ("wss://[::1/ws", False),
    ],
)
def test_ws_url_is_used_only_on_the_servers_own_host_and_port(ws_url: str, kept: bool) -> None:
    gw, _ = gateway_for(json_response(200, {"ws_token": "w", "expires_in": 300, "ws_url": ws_url}))
    assert gw.ws_token(SERVER, access_token()).ws_url == (ws_url if kept else None)


@pytest.mark.parametrize(("status", "outcome"), [(200, "revoked"), (404, "absent"), (401, "refused")])
def test_blacklist_outcomes(status: int, outcome: str) -> None:
    gw, rec = gateway_for(json_response(status, {}))
    assert gw.blacklist(SERVER, "the-refresh") == outcome
    request = rec.requests[0]
    assert request.url.path == "/api/v1/token/blacklist/"
    assert json.loads(request.content) == {"refresh": "the-refresh"}


@pytest.mark.parametrize(("status", "error"), [(503, ServerUnavailableError), (400, UnexpectedStatusError),
                                               (302, UnexpectedStatusError), (429, RateLimitedError)])
def test_blacklist_failures_raise_like_the_other_calls(status: int, error: type[Exception]) -> None:
    gw, _ = gateway_for(json_response(status, {}))
    with pytest.raises(error):
        gw.blacklist(SERVER, "the-refresh")


def test_blacklist_gives_up_within_five_seconds() -> None:
    release = threading.Event()

    def hang(request: httpx.Request) -> httpx.Response:
        release.wait(30)
        return httpx.Response(200)

    gw, _ = gateway_for(hang, total_timeout=8.0)
    started = time.monotonic()
    try:
        with pytest.raises(NetworkError, match=r"no answer within 5 s"):
            gw.blacklist(SERVER, "the-refresh")
    finally:
        release.set()
    assert time.monotonic() - started < 7.5


def test_dns_failure_cause_is_named_without_the_exception_text() -> None:
    def boom(request: httpx.Request) -> httpx.Response:
        try:
            raise socket.gaierror(-2, "Name or service not known secret-ish")
        except socket.gaierror as cause:
            raise httpx.ConnectError("whatever text") from cause

    gw, _ = gateway_for(boom)
    with pytest.raises(NetworkError) as info:
        gw.obtain("https://spec-kitty.example.com", "u", PASSWORD)
    assert str(info.value) == "Cannot reach server. Check your connection. (spec-kitty.example.com: unknown host)"


def test_a_body_trickled_past_the_deadline_on_an_uninterruptible_transport_ends_its_worker() -> None:
    # MockTransport has no socket to shut down: only the body loop's own deadline stops it.
    def trickle() -> Iterator[bytes]:
        while True:
            time.sleep(0.05)
            yield b" "

    before = [t for t in threading.enumerate() if t.name == "kitty-auth-http"]
    gw, _ = gateway_for(lambda r: httpx.Response(200, content=trickle()), total_timeout=0.3)
    with pytest.raises(NetworkError):
        gw.obtain(SERVER, "u", PASSWORD)
    end = time.monotonic() + 10
    while time.monotonic() < end and len([t for t in threading.enumerate() if t.name == "kitty-auth-http"]) > len(before):
        time.sleep(0.05)
    assert len([t for t in threading.enumerate() if t.name == "kitty-auth-http"]) == len(before)


@wine_tls_gap
def test_httpcore_failed_events_keep_the_exception_class_and_drop_its_text(
    tls_server: TLSServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # h11 refuses a header value with a control character and quotes it in the exception that
    # httpcore logs as "send_request_headers.failed exception=LocalProtocolError(...)".
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_server.ca_pem))
    caplog.set_level(logging.DEBUG, logger="httpcore")
    secret = "Bearer leaked-" + "Z" * 20 + "\n"
    https_client.install_log_redaction()
    with httpx.Client(verify=build_ssl_context()) as client, pytest.raises(httpx.HTTPError):
        client.post(tls_server.url + "/api/v1/ws-token/", headers={"Authorization": secret})
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("httpcore")]
    assert "send_request_headers.failed exception=LocalProtocolError" in messages
    assert "leaked-" not in caplog.text


def test_an_interrupt_while_the_refresh_answer_is_read_hands_it_to_the_late_answer_path() -> None:
    """The server has rotated the token and its answer is in hand: an interrupt that lands while the
    gateway reads it (between the request and the return) still gets the pair stored (on_late),
    then goes on."""

    class InterruptedWhileReading(HttpxTokenGateway):
        def _check_status(self, op, status):  # noqa: ANN001 - where a Ctrl-C may land
            if op == "refresh":
                raise KeyboardInterrupt
            super()._check_status(op, status)

    access, refresh = access_token(), refresh_token()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, json={"access": access, "refresh": refresh}))
    gateway = InterruptedWhileReading(transport=transport)
    handed: list[object] = []
    with pytest.raises(KeyboardInterrupt):
        gateway.refresh("https://auth.example.test", refresh_token(), on_late=handed.append)
    assert [(t.access, t.refresh) for t in handed] == [(access, refresh)]
    gateway.close()
