"""Makes the reference server fixtures available to its own tests (a no-op if a parent conftest registered them),
plus the `server` and `client` fixtures its test modules share."""

import http.server
import importlib
import threading
from collections.abc import Iterator

import httpx
import pytest

from refserver.harness import RefServer

FIXTURES = "refserver.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.get_plugin(FIXTURES) is None:
        config.pluginmanager.register(importlib.import_module(FIXTURES), FIXTURES)


@pytest.fixture
def server(fresh_refserver_state: RefServer) -> RefServer:
    """The session's reference server, reset to its start-up state."""
    return fresh_refserver_state


@pytest.fixture
def client(server: RefServer) -> Iterator[httpx.Client]:
    """An HTTP client for the server, trusting only its CA."""
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), trust_env=False, timeout=5) as client:
        yield client


@pytest.fixture
def callback_server() -> Iterator[tuple[str, list[str]]]:
    """A loopback callback on an ephemeral port, as the CLI runs one: (redirect_uri, paths it was asked for)."""
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
