"""Requests (and TLS connections) per operation against the local reference server.

    .venv/bin/python bench/requests_per_operation.py

Starts its own reference server (tests/refserver: Django REST framework + simplejwt behind
uvicorn, TLS with a throw-away CA, 127.0.0.1 only) and runs each operation with the library in
this process, resetting the server's statistics in between. Counts, not timings: they are
deterministic (tests/e2e/test_request_counts.py asserts the same numbers). "connections" is the
number of distinct client (host, port) pairs the server saw for HTTP requests, i.e. TCP+TLS
connections; a WebSocket is always its own connection and is counted as a handshake.

An expired access token is made by rewriting the stored `access_expires_at` into the past (the
client decides freshness from that field); the refresh token stays valid on the server.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _support import TESTS, header, this_command  # noqa: E402

sys.path.insert(0, str(TESTS))
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer  # noqa: E402

TOKEN, REFRESH, WS_TOKEN, EVENTS = "/api/v1/token/", "/api/v1/token/refresh/", "/api/v1/ws-token/", "/ws/v1/events/"


def expire_access_token(home: Path) -> None:
    import kitty_auth

    store = kitty_auth.CredentialStore(home / "credentials")
    creds = store.load()
    assert creds is not None
    past = datetime.now(UTC) - timedelta(minutes=1)
    store.save(creds.with_tokens(dataclasses.replace(creds.tokens, access_expires_at=past)))


def counts(server: RefServer) -> dict[str, int]:
    stats = server.stats()
    requests = stats["requests"]
    return {
        "login": requests.get(TOKEN, 0),
        "refresh": requests.get(REFRESH, 0),
        "ws-token": requests.get(WS_TOKEN, 0),
        "handshake": stats["ws_handshakes"]["attempted"],
        "http connections": stats["connections"],
    }


async def connect_once(client: Any) -> str:
    import kitty_auth

    async with kitty_auth.WebSocketClient(client) as ws:
        first = await asyncio.wait_for(ws.receive(), 20)
    return str(first.get("type"))


def scenarios(server: RefServer, root: Path) -> list[tuple[str, dict[str, int], dict[str, int]]]:
    """(operation, expected counts, measured counts) for each operation."""
    import kitty_auth

    rows: list[tuple[str, dict[str, int], dict[str, int]]] = []
    home = root / "home"

    def expect(login: int = 0, refresh: int = 0, ws_token: int = 0, handshake: int = 0, conns: int = 0) -> dict[str, int]:
        return {"login": login, "refresh": refresh, "ws-token": ws_token, "handshake": handshake, "http connections": conns}

    def row(name: str, expected: dict[str, int]) -> None:
        rows.append((name, expected, counts(server)))
        server.reset_stats()

    server.reset()
    with kitty_auth.AuthClient(server_url=server.url, home=home) as client:
        client.obtain_tokens(DEMO_USERNAME, DEMO_PASSWORD)
    row("login (obtain_tokens)", expect(login=1, conns=1))

    with kitty_auth.AuthClient(home=home) as client:
        client.get_access_token()
    row("get_access_token, fresh access token", expect())

    expire_access_token(home)
    with kitty_auth.AuthClient(home=home) as client:
        client.get_access_token()
    row("get_access_token, expired access token", expect(refresh=1, conns=1))

    with kitty_auth.AuthClient(home=home) as client:
        client.obtain_ws_token()
    row("obtain_ws_token, fresh access token", expect(ws_token=1, conns=1))

    with kitty_auth.AuthClient(home=home) as client:
        assert asyncio.run(connect_once(client)) == "snapshot"
    row("WebSocketClient connect, fresh access token", expect(ws_token=1, handshake=1, conns=1))

    expire_access_token(home)
    with kitty_auth.AuthClient(home=home) as client:
        assert asyncio.run(connect_once(client)) == "snapshot"
    row("WebSocketClient connect, expired access token", expect(refresh=1, ws_token=1, handshake=1, conns=1))

    with kitty_auth.AuthClient(server_url=server.url, home=home) as client:
        client.obtain_tokens(DEMO_USERNAME, DEMO_PASSWORD)
        client.refresh_tokens()
        client.obtain_ws_token()
        client.get_access_token()
    row("one AuthClient: login + refresh + ws-token + get_access_token", expect(login=1, refresh=1, ws_token=1, conns=1))
    return rows


def main() -> int:
    header("requests and connections per operation (reference server on 127.0.0.1, TLS)", this_command())
    with tempfile.TemporaryDirectory(prefix="kitty-bench-") as tmp, RefServer(Path(tmp) / "server") as server:
        os.environ["SSL_CERT_FILE"] = str(server.ca_path)  # trust the throw-away CA (plus the OS store)
        for name in [k for k in os.environ if k.startswith("SPEC_KITTY_") or k.lower().endswith("_proxy")]:
            del os.environ[name]
        rows = scenarios(server, Path(tmp))

    columns = ["login", "refresh", "ws-token", "handshake", "http connections"]
    print(f"   {'operation':<62}" + "".join(f"{c:>{len(c) + 2}}" for c in columns))
    ok = True
    for name, expected, got in rows:
        cells = []
        for c in columns:
            mark = "" if got[c] == expected[c] else f" (want {expected[c]})"
            cells.append(f"{got[c]}{mark}")
        ok = ok and got == expected
        print(f"   {name:<62}" + "".join(f"{cell:>{len(c) + 2}}" for c, cell in zip(columns, cells, strict=True)))
    print(f"   RESULT request counts as designed: {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
