"""`auth doctor`'s server probe (``adapters/doctor_probe.py``) against local TLS servers: what login would
make of each server, the round-trip time, the server's clock, and that no token is sent."""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from kitty_auth.adapters.clock import SystemClock
from kitty_auth.adapters.doctor_probe import HttpsServerProbe
from kitty_auth.adapters.https_client import HttpsClient
from kitty_auth.domain.errors import NetworkError, TLSVerificationError
from kitty_auth.domain.model import LoginMethod
from kitty_auth.domain.oauth_errors import MetadataMalformedError, MetadataUnavailableError

METADATA = "/.well-known/oauth-authorization-server"
from portability import wine_tls_gap

# Every test here probes a local TLS server trusted through SSL_CERT_FILE.
pytestmark = wine_tls_gap


@dataclass
class Server:
    url: str
    status: int = 404
    body: bytes = b'{"detail": "Not found."}'
    clock_offset: timedelta = timedelta(0)
    date: bool = True
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)


@pytest.fixture
def ca(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> trustme.CA:
    for name in ("SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    authority = trustme.CA()
    pem = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(pem))
    monkeypatch.setenv("SSL_CERT_FILE", str(pem))
    return authority


def serve(ca: trustme.CA) -> Iterator[Server]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    state = Server("")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def date_time_string(self, timestamp: float | None = None) -> str:
            return format_datetime(datetime.now(UTC) + state.clock_offset, usegmt=True)

        def send_header(self, keyword: str, value: str) -> None:
            if keyword.lower() != "date" or state.date:
                super().send_header(keyword, value)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            state.requests.append(("GET", self.path, dict(self.headers)))
            body = state.body.replace(b"{url}", state.url.encode())
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    state.url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def server(ca: trustme.CA) -> Iterator[Server]:
    yield from serve(ca)


@pytest.fixture
def other(ca: trustme.CA) -> Iterator[Server]:
    yield from serve(ca)


@pytest.fixture
def probe() -> Iterator[HttpsServerProbe]:
    with HttpsClient() as http:
        yield HttpsServerProbe(http, SystemClock())


def test_a_404_is_a_password_server_reached_with_its_round_trip_time_and_no_token(server, probe) -> None:  # noqa: ANN001
    [found] = probe.probe([server.url])
    assert found.reached and found.status == 404 and found.login_method is LoginMethod.PASSWORD
    assert found.rtt_ms is not None and 0 <= found.rtt_ms < 10_000
    assert [(m, p) for m, p, _ in server.requests] == [("GET", METADATA)]
    assert not any(name.lower() in ("authorization", "cookie") for name in server.requests[0][2])


def test_metadata_makes_an_oauth_server_and_its_clock_is_read_from_date(server, probe) -> None:  # noqa: ANN001
    server.status = 200
    server.body = json.dumps({"issuer": "{url}", "authorization_endpoint": "{url}/oauth/authorize",
                              "token_endpoint": "{url}/oauth/token"}).encode()
    server.clock_offset = timedelta(minutes=-10)
    [found] = probe.probe([server.url])
    assert found.login_method is LoginMethod.WEB and found.kind_error is None
    assert found.skew_seconds is not None and -602 <= found.skew_seconds <= -598  # Date has whole seconds


def test_without_a_date_header_the_skew_is_unknown(server, probe) -> None:  # noqa: ANN001
    server.date = False
    [found] = probe.probe([server.url])
    assert found.reached and found.server_time is None and found.skew_seconds is None


@pytest.mark.parametrize(("status", "body", "error"), [
    (500, b"oops", MetadataUnavailableError),
    (200, b"<html>a login page</html>", MetadataMalformedError),
])
def test_an_answer_login_cannot_use_is_reached_with_login_s_error(server, probe, status, body, error) -> None:  # noqa: ANN001
    server.status, server.body = status, body
    [found] = probe.probe([server.url])
    assert found.reached and found.status == status and isinstance(found.kind_error, error)


def test_an_untrusted_certificate_is_not_reached(server, probe, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("SSL_CERT_FILE")
    with HttpsClient() as http:
        [found] = HttpsServerProbe(http, SystemClock()).probe([server.url])
    assert not found.reached and isinstance(found.error, TLSVerificationError) and server.requests == []


def test_several_servers_are_probed_at_once_in_the_order_given(server, other, probe) -> None:  # noqa: ANN001
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"https://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()
    results = probe.probe([other.url, refused, server.url])
    assert [r.url for r in results] == [other.url, refused, server.url]
    assert [r.reached for r in results] == [True, False, True]
    assert isinstance(results[1].error, NetworkError) and "connection refused" in str(results[1].error)
