"""Requests and connections per operation, against the reference server over TLS on loopback.

Counts are deterministic (no timing is asserted); bench/requests_per_operation.py prints the same
table. "connections" is the number of distinct client (host, port) pairs the server saw for HTTP
requests: TCP+TLS connections. A WebSocket is always its own connection, counted as a handshake.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kitty_auth import AuthClient, CredentialStore, WebSocketClient
from refserver import REFRESH_PATH, TOKEN_PATH, WS_TOKEN_PATH
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer

from .conftest import E2E

pytestmark = pytest.mark.e2e


def counts(server: RefServer) -> dict[str, int]:
    stats = server.stats()
    requests = stats["requests"]
    return {
        "login": requests.get(TOKEN_PATH, 0),
        "refresh": requests.get(REFRESH_PATH, 0),
        "ws-token": requests.get(WS_TOKEN_PATH, 0),
        "handshake": stats["ws_handshakes"]["attempted"],
        "connections": stats["connections"],
        "total": sum(requests.values()),
    }


def expected(login: int = 0, refresh: int = 0, ws_token: int = 0, handshake: int = 0, connections: int = 0) -> dict[str, int]:
    return {"login": login, "refresh": refresh, "ws-token": ws_token, "handshake": handshake,
            "connections": connections, "total": login + refresh + ws_token + handshake}


@pytest.fixture
def home(server: RefServer, tmp_path: Path) -> Iterator[Path]:
    """A home logged in to ``server`` (statistics reset afterwards)."""
    home = tmp_path / "home"
    with AuthClient(server_url=server.url, home=home) as client:
        client.obtain_tokens(DEMO_USERNAME, DEMO_PASSWORD)
    server.reset_stats()
    yield home


def expire_access_token(home: Path) -> None:
    """Move the stored access expiry into the past (freshness is decided from that field)."""
    store = CredentialStore(home / "credentials")
    creds = store.load()
    assert creds is not None
    past = datetime.now(UTC) - timedelta(minutes=1)
    store.save(creds.with_tokens(dataclasses.replace(creds.tokens, access_expires_at=past)))


async def connect_and_read_snapshot(client: AuthClient) -> None:
    async with WebSocketClient(client) as ws:
        first = await asyncio.wait_for(ws.receive(), 20)
        assert first["type"] == "snapshot"


def test_login_is_one_request(server: RefServer, tmp_path: Path) -> None:
    with AuthClient(server_url=server.url, home=tmp_path / "home") as client:
        client.obtain_tokens(DEMO_USERNAME, DEMO_PASSWORD)
    assert counts(server) == expected(login=1, connections=1)


def test_fresh_access_token_needs_no_request_and_no_connection(server: RefServer, home: Path) -> None:
    with AuthClient(home=home) as client:
        first = client.get_access_token()
        assert client.get_access_token() == first
    assert counts(server) == expected()


def test_expired_access_token_costs_one_refresh(server: RefServer, home: Path) -> None:
    expire_access_token(home)
    with AuthClient(home=home) as client:
        client.get_access_token()
        client.get_access_token()  # now fresh again: no second refresh
    assert counts(server) == expected(refresh=1, connections=1)


def test_ws_token_with_a_fresh_access_token_is_one_request(server: RefServer, home: Path) -> None:
    with AuthClient(home=home) as client:
        client.obtain_ws_token()
    assert counts(server) == expected(ws_token=1, connections=1)


def test_websocket_connect_with_a_fresh_access_token(server: RefServer, home: Path) -> None:
    with AuthClient(home=home) as client:
        asyncio.run(connect_and_read_snapshot(client))
    assert counts(server) == expected(ws_token=1, handshake=1, connections=1)


def test_websocket_connect_with_an_expired_access_token(server: RefServer, home: Path) -> None:
    expire_access_token(home)
    with AuthClient(home=home) as client:
        asyncio.run(connect_and_read_snapshot(client))
    assert counts(server) == expected(refresh=1, ws_token=1, handshake=1, connections=1)


def test_one_client_shares_one_connection(server: RefServer, tmp_path: Path) -> None:
    with AuthClient(server_url=server.url, home=tmp_path / "home") as client:
        client.obtain_tokens(DEMO_USERNAME, DEMO_PASSWORD)
        client.refresh_tokens()
        client.obtain_ws_token()
        client.get_access_token()
    assert counts(server) == expected(login=1, refresh=1, ws_token=1, connections=1)


def test_cli_login_is_one_request_and_status_none(e2e: E2E) -> None:
    assert e2e.login().returncode == 0
    assert counts(e2e.server) == expected(login=1, connections=1)
    e2e.server.reset_stats()
    assert e2e.cli("status").returncode == 0
    assert e2e.cli("status", "--json").returncode == 0
    assert e2e.login().returncode == 0  # already logged in: no request
    assert counts(e2e.server) == expected()
