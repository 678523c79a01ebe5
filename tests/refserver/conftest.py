"""Makes the reference server fixtures available to its own tests (a no-op if a parent conftest registered them),
plus the `server` and `client` fixtures its test modules share (`callback_server` comes from refserver.fixtures)."""

import importlib
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

