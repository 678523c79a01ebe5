"""Small helpers for the reference server's own tests."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import urllib.parse
from typing import Any

import httpx
from websockets.asyncio.client import connect

from refserver import (
    DEMO_PASSWORD,
    DEMO_USERNAME,
    DEVICE_CODE_GRANT,
    OAUTH_AUTHORIZE_PATH,
    OAUTH_CLIENT_ID,
    OAUTH_DEVICE_PATH,
    OAUTH_SCOPE,
    OAUTH_TOKEN_PATH,
    TOKEN_PATH,
    WS_EVENTS_PATH,
    WS_TOKEN_PATH,
)
from refserver.harness import RefServer


def claims(jwt: str) -> dict[str, Any]:
    payload = jwt.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def login(client: httpx.Client, username: str = DEMO_USERNAME, password: str = DEMO_PASSWORD) -> dict[str, Any]:
    """A password login's token response."""
    response = client.post(TOKEN_PATH, json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ws_token(client: httpx.Client, access: str | None = None) -> str:
    response = client.post(WS_TOKEN_PATH, headers=bearer(access or login(client)["access"]))
    assert response.status_code == 200, response.text
    return response.json()["ws_token"]


def ws_connect(server: RefServer, token: str | None, query: str = "") -> connect:
    """Open the events WebSocket (`async with`), with the ws token as Bearer when given."""
    headers = bearer(token) if token else {}
    url = server.ws_url + WS_EVENTS_PATH + query
    return connect(url, additional_headers=headers, ssl=server.ssl_context(), proxy=None, open_timeout=5)


def start_device_flow(client: httpx.Client) -> dict[str, Any]:
    """A device authorization response for `cli_native`."""
    response = client.post(OAUTH_DEVICE_PATH, data={"client_id": OAUTH_CLIENT_ID, "scope": OAUTH_SCOPE})
    assert response.status_code == 200, response.text
    return response.json()


def poll(client: httpx.Client, device_code: str) -> httpx.Response:
    """One device-code poll of the token endpoint."""
    return client.post(OAUTH_TOKEN_PATH, data={"grant_type": DEVICE_CODE_GRANT, "device_code": device_code, "client_id": OAUTH_CLIENT_ID})


def pkce() -> tuple[str, str]:
    """A PKCE (verifier, S256 challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def authorize_url(server: RefServer, redirect_uri: str, challenge: str | None, state: str) -> str:
    """The authorization endpoint URL a browser login opens (no PKCE when `challenge` is None)."""
    query = {"response_type": "code", "client_id": OAUTH_CLIENT_ID, "redirect_uri": redirect_uri, "scope": OAUTH_SCOPE, "state": state}
    if challenge:
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    return server.url + OAUTH_AUTHORIZE_PATH + "?" + urllib.parse.urlencode(query)
