"""Pytest fixtures for the reference server: import them into a conftest (or list this module in pytest_plugins)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator

import pytest

from refserver.harness import RefServer


@pytest.fixture(scope="session")
def refserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefServer]:
    """One reference server for the whole session (stopped at the end)."""
    with RefServer(tmp_path_factory.mktemp("refserver")) as server:
        yield server


@pytest.fixture
def fresh_refserver_state(refserver: RefServer) -> RefServer:
    """The session's server with no faults, empty statistics, its start-up token lifetimes, default options and no
    stored events."""
    refserver.reset()
    return refserver


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback OAuth callback on an ephemeral port, as the CLI runs one: (redirect_uri, paths it was asked for).
    It answers every GET with 200 "<p>logged in</p>"."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<p>logged in</p>")

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/callback", seen
    httpd.shutdown()
    httpd.server_close()
