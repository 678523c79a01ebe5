"""Tests of the reference server's OAuth side (spec-kitty 3.x): metadata and its faults, the device flow's RFC 8628
answers, refresh rotation, revocation, `me`, OAuth tokens on the password server's protected endpoints."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from refserver import (
    DEMO_PRIVATE_TEAM_SLUG,
    DEMO_TEAM_SLUG,
    DEVICE_CODE_GRANT,
    DEVICE_VERIFY_PATH,
    LOGIN_PATH,
    ME_PATH,
    OAUTH_CLIENT_ID,
    OAUTH_DEVICE_PATH,
    OAUTH_METADATA_PATH,
    OAUTH_REVOKE_PATH,
    OAUTH_SCOPE,
    OAUTH_TOKEN_PATH,
    SYNC_HEALTH_PATH,
    WS_TOKEN_PATH,
)
from refserver.harness import DEMO_USERNAME, RefServer
from refserver.testing import bearer, login, poll, start_device_flow

ENDPOINTS = ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint", "revocation_endpoint")


def device_login(server: RefServer, client: httpx.Client) -> dict[str, Any]:
    """An OAuth token response for the demo user, through the device flow (approved through the control API)."""
    device = start_device_flow(client)
    assert server.decide_device_code(device["user_code"])
    response = poll(client, device["device_code"])
    assert response.status_code == 200, response.text
    return response.json()


def refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    return client.post(OAUTH_TOKEN_PATH, data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": OAUTH_CLIENT_ID})


# -------------------------------------------------------------------------------------------------- metadata


def test_metadata_lists_absolute_https_endpoints_of_this_server(server: RefServer, client: httpx.Client) -> None:
    document = client.get(OAUTH_METADATA_PATH).json()
    assert document["issuer"] == server.url
    assert {name: document[name] for name in ENDPOINTS} == {
        "authorization_endpoint": server.url + "/oauth/authorize",
        "token_endpoint": server.url + "/oauth/token",
        "device_authorization_endpoint": server.url + "/oauth/device",
        "revocation_endpoint": server.url + "/oauth/revoke",
    }
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert DEVICE_CODE_GRANT in document["grant_types_supported"]


@pytest.mark.parametrize(
    ("mode", "status", "content_type"),
    [("off", 404, "application/json"), ("error", 500, "text/html"), ("html", 200, "text/html"), ("bad_json", 200, "application/json")],
)
def test_metadata_can_be_absent_or_broken(server: RefServer, client: httpx.Client, mode: str, status: int, content_type: str) -> None:
    server.set_options(oauth_metadata=mode)
    response = client.get(OAUTH_METADATA_PATH)
    assert response.status_code == status and response.headers["content-type"].startswith(content_type)
    if mode == "bad_json":
        with pytest.raises(ValueError):
            response.json()


@pytest.mark.parametrize(
    ("mode", "expected"),
    [("foreign_origin", "https://auth.other-origin.test/oauth/revoke"), ("http_endpoint", "http://127.0.0.1:"), ("omit", None)],
)
def test_metadata_endpoint_can_be_tampered_with(server: RefServer, client: httpx.Client, mode: str, expected: str | None) -> None:
    server.set_options(oauth_metadata=mode, oauth_metadata_endpoint="revocation_endpoint")
    document = client.get(OAUTH_METADATA_PATH).json()
    if expected is None:
        assert "revocation_endpoint" not in document
    else:
        assert document["revocation_endpoint"].startswith(expected)
    assert document["token_endpoint"] == server.url + "/oauth/token"


def test_oauth_endpoints_can_be_switched_off(server: RefServer, client: httpx.Client) -> None:
    server.set_options(oauth_metadata="off", oauth_endpoints=False)
    assert client.post(OAUTH_DEVICE_PATH, data={"client_id": OAUTH_CLIENT_ID}).status_code == 404
    assert client.post(OAUTH_TOKEN_PATH, data={}).status_code == 404
    assert client.get(LOGIN_PATH).status_code == 404
    assert login(client)["access"]  # still a password server


# ----------------------------------------------------------------------------------------------- device flow


def test_device_authorization_points_at_this_server(server: RefServer, client: httpx.Client) -> None:
    device = start_device_flow(client)
    verify = server.url + DEVICE_VERIFY_PATH
    assert device["verification_uri"] == verify
    assert device["verification_uri_complete"] == f"{verify}?user_code={device['user_code']}"
    assert device["interval"] == 1 and device["expires_in"] == 600
    server.set_options(device_interval=0, device_expires_in=30)
    assert (start_device_flow(client)["interval"], start_device_flow(client)["expires_in"]) == (0, 30)


def test_device_flow_polling_answers(server: RefServer, client: httpx.Client) -> None:
    device = start_device_flow(client)
    pending = poll(client, device["device_code"])
    assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
    server.set_options(device_slow_down=2)
    assert [poll(client, device["device_code"]).json()["error"] for _ in range(3)] == ["slow_down", "slow_down", "authorization_pending"]
    assert server.decide_device_code(device["user_code"])
    tokens = poll(client, device["device_code"])
    assert tokens.status_code == 200
    body = tokens.json()
    assert {"access_token", "refresh_token", "expires_in", "token_type", "scope", "session_id"} <= set(body)
    assert body["scope"] == OAUTH_SCOPE and body["token_type"] == "Bearer" and body["access_token"].count(".") == 0
    used = poll(client, device["device_code"])
    assert (used.status_code, used.json()["error"]) == (400, "invalid_grant")


def test_device_flow_denied_and_expired(server: RefServer, client: httpx.Client) -> None:
    denied = start_device_flow(client)
    assert server.decide_device_code(denied["user_code"], approve=False)
    assert poll(client, denied["device_code"]).json()["error"] == "access_denied"
    expired = start_device_flow(client)
    assert server.expire_device_codes() >= 1
    assert poll(client, expired["device_code"]).json()["error"] == "expired_token"
    assert not server.decide_device_code(expired["user_code"])


# ---------------------------------------------------------------------------------- tokens, me, revocation


def test_oauth_tokens_identify_the_user_everywhere(server: RefServer, client: httpx.Client) -> None:
    server.set_options(ws_token_fields=["expires_in", "session_id"])
    tokens = device_login(server, client)
    me = client.get(ME_PATH, headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    body = me.json()
    assert body["email"] == DEMO_USERNAME and body["name"] and body["user_id"]
    assert [(team["slug"], team["is_private_teamspace"]) for team in body["teams"]] == [(DEMO_PRIVATE_TEAM_SLUG, True), (DEMO_TEAM_SLUG, False)]
    assert set(body["teams"][0]) == {"id", "slug", "name", "role", "is_private_teamspace"}
    ws = client.post(WS_TOKEN_PATH, headers=bearer(tokens["access_token"])).json()
    assert ws["ws_token"] and ws["session_id"] == tokens["session_id"]
    assert client.get(SYNC_HEALTH_PATH, headers=bearer(tokens["access_token"])).status_code == 200
    assert client.get(ME_PATH).status_code == 401
    assert client.get(ME_PATH, headers=bearer(login(client)["access"])).json()["email"] == DEMO_USERNAME


def test_refresh_rotates_and_keeps_the_session(server: RefServer, client: httpx.Client) -> None:
    tokens = device_login(server, client)
    rotated = refresh(client, tokens["refresh_token"])
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"] and new["session_id"] == tokens["session_id"]
    assert not server.refresh_token_accepted(tokens["refresh_token"])
    assert server.refresh_token_accepted(new["refresh_token"])
    reused = refresh(client, tokens["refresh_token"])
    assert (reused.status_code, reused.json()["error"]) == (400, "invalid_grant")
    assert client.get(ME_PATH, headers=bearer(tokens["access_token"])).status_code == 401  # rotated out with it
    assert client.get(ME_PATH, headers=bearer(new["access_token"])).status_code == 200


def test_revocation_ends_the_session(server: RefServer, client: httpx.Client) -> None:
    tokens = device_login(server, client)
    revoked = client.post(OAUTH_REVOKE_PATH, data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token", "client_id": OAUTH_CLIENT_ID})
    assert revoked.status_code == 200
    assert not server.refresh_token_accepted(tokens["refresh_token"])
    assert refresh(client, tokens["refresh_token"]).status_code == 400
    assert client.get(ME_PATH, headers=bearer(tokens["access_token"])).status_code == 401


def test_oauth_lifetimes_follow_set_lifetimes(server: RefServer, client: httpx.Client) -> None:
    server.set_lifetimes(access=42)
    server.set_options(oauth_refresh_token_expires_in=True)
    tokens = device_login(server, client)
    assert tokens["expires_in"] == 42 and tokens["refresh_token_expires_in"] == 604800
    server.set_lifetimes(access=0)
    expired = device_login(server, client)
    assert client.get(ME_PATH, headers=bearer(expired["access_token"])).status_code == 401


def test_password_and_oauth_refresh_checks_tell_tokens_apart(server: RefServer, client: httpx.Client) -> None:
    assert server.refresh_token_accepted(login(client)["refresh"])
    assert not server.refresh_token_accepted("no-such-token")


def test_grace_period_accepts_a_rotated_out_refresh_token_once_more_with_the_same_answer(server: RefServer, client: httpx.Client) -> None:
    """django-oauth-toolkit's REFRESH_TOKEN_GRACE_PERIOD_SECONDS, as the `oauth_refresh_grace_period` option: a client
    that never saw a refresh's answer sends the old token again and gets the pair the first use got."""
    server.set_options(oauth_refresh_grace_period=30)
    tokens = device_login(server, client)
    first = refresh(client, tokens["refresh_token"]).json()
    assert server.refresh_token_accepted(tokens["refresh_token"])  # rotated out, still within the grace period
    again = refresh(client, tokens["refresh_token"])
    assert again.status_code == 200
    assert (again.json()["access_token"], again.json()["refresh_token"]) == (first["access_token"], first["refresh_token"])
    assert client.get(ME_PATH, headers=bearer(first["access_token"])).status_code == 200
    newer = refresh(client, first["refresh_token"]).json()  # once its successor is used, the old token is dead
    assert not server.refresh_token_accepted(tokens["refresh_token"])
    assert refresh(client, tokens["refresh_token"]).status_code == 400
    server.reset()  # back to no grace period: a rotated-out token is refused at once
    assert server.options()["oauth_refresh_grace_period"] == 0
    assert refresh(client, newer["refresh_token"]).status_code == 200
    assert not server.refresh_token_accepted(newer["refresh_token"])
    assert refresh(client, newer["refresh_token"]).status_code == 400


def test_the_token_journal_names_oauth_tokens_and_the_refresh_token_each_refresh_consumed(server: RefServer, client: httpx.Client) -> None:
    tokens = device_login(server, client)
    rotated = refresh(client, tokens["refresh_token"]).json()
    journal = {entry["token"]: entry for entry in server.issued_tokens()}
    assert journal[tokens["access_token"]]["kind"] == "access" and journal[tokens["refresh_token"]]["kind"] == "refresh"
    assert journal[tokens["refresh_token"]]["rotated_from_sha256"] is None  # a login
    assert journal[rotated["refresh_token"]]["rotated_from_sha256"] == hashlib.sha256(tokens["refresh_token"].encode()).hexdigest()
    assert journal[rotated["access_token"]]["path"] == OAUTH_TOKEN_PATH
    assert any(entry["kind"] == "device_code" for entry in journal.values())
