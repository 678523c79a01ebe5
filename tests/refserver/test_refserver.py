"""Tests of the reference server itself, over TLS: the contract's endpoints, WebSocket, faults, lifetimes, stats."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from refserver import DEMO_TEAM_SLUG, ME_PATH, REFRESH_PATH, TOKEN_PATH, WS_EVENTS_PATH, WS_TOKEN_PATH
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer, RefServerError
from refserver.testing import claims, login, ws_connect, ws_token

pytestmark = pytest.mark.usefixtures("fresh_refserver_state")


async def handshake_status(server: RefServer, token: str | None, query: str = "") -> int:
    with pytest.raises(InvalidStatus) as raised:
        async with ws_connect(server, token, query):
            pass
    return raised.value.response.status_code


# -------------------------------------------------------------------------------------------------- tokens


def test_login_returns_access_and_refresh_jwts(client: httpx.Client) -> None:
    tokens = login(client)
    assert set(tokens) == {"access", "refresh", "team_slug"} and tokens["team_slug"] == DEMO_TEAM_SLUG
    assert claims(tokens["access"])["token_type"] == "access"
    assert {"exp", "iat"} <= set(claims(tokens["refresh"]))


def test_bad_password_is_401_and_missing_fields_400(client: httpx.Client) -> None:
    response = client.post(TOKEN_PATH, json={"username": DEMO_USERNAME, "password": "wrong"})
    assert response.status_code == 401
    assert "detail" in response.json()
    assert client.post(TOKEN_PATH, json={"username": DEMO_USERNAME}).status_code == 400


def test_refresh_rotates_and_blacklists_the_old_refresh_token(client: httpx.Client) -> None:
    old = login(client)["refresh"]
    response = client.post(REFRESH_PATH, json={"refresh": old})
    assert response.status_code == 200
    new = response.json()
    assert set(new) == {"access", "refresh", "team_slug"} and new["refresh"] != old
    reused = client.post(REFRESH_PATH, json={"refresh": old})
    assert reused.status_code == 401
    assert reused.json()["code"] == "token_not_valid"
    assert client.post(REFRESH_PATH, json={"refresh": new["refresh"]}).status_code == 200


def test_ws_token_requires_a_valid_bearer_access_token(client: httpx.Client) -> None:
    assert client.post(WS_TOKEN_PATH).status_code == 401
    garbage = client.post(WS_TOKEN_PATH, headers={"Authorization": "Bearer not-a-jwt"})
    assert garbage.status_code == 401 and garbage.json()["code"] == "token_not_valid"
    access = login(client)["access"]
    answer = client.post(WS_TOKEN_PATH, headers={"Authorization": f"Bearer {access}"}).json()
    assert answer["expires_in"] == 900 and answer["expires_at"].endswith("Z") and len(answer["ws_token"]) >= 32


def test_created_users_can_log_in(server: RefServer, client: httpx.Client) -> None:
    server.create_user("other@spec-kitty.test", "other-password")
    assert claims(login(client, "other@spec-kitty.test", "other-password")["access"])["user_id"]


def test_lifetimes_change_at_runtime_and_reset_restores_them(server: RefServer, client: httpx.Client) -> None:
    server.set_lifetimes(access=60, refresh=120)
    tokens = login(client)
    assert claims(tokens["access"])["exp"] - claims(tokens["access"])["iat"] == 60
    assert claims(tokens["refresh"])["exp"] - claims(tokens["refresh"])["iat"] == 120
    rotated = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]}).json()
    assert claims(rotated["access"])["exp"] - claims(rotated["access"])["iat"] == 60
    assert claims(rotated["refresh"])["exp"] - claims(rotated["refresh"])["iat"] == 120
    server.reset()
    access = login(client)["access"]
    assert claims(access)["exp"] - claims(access)["iat"] == 900


def test_expired_access_token_is_rejected(server: RefServer, client: httpx.Client) -> None:
    server.set_lifetimes(access=0)
    access = login(client)["access"]
    response = client.post(WS_TOKEN_PATH, headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 401 and response.json()["code"] == "token_not_valid"


# ----------------------------------------------------------------------------------------------- websocket


def test_websocket_sends_snapshot_then_pings_and_records_pongs(server: RefServer, client: httpx.Client) -> None:
    token = ws_token(client)

    async def session() -> list[dict[str, Any]]:
        async with ws_connect(server, token) as ws:
            snapshot = json.loads(await ws.recv())
            ping = json.loads(await asyncio.wait_for(ws.recv(), 5))
            await ws.send(json.dumps({"type": "pong", "timestamp": ping["timestamp"]}))
            server.ws_send({"type": "event", "n": 1})
            event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            while event["type"] == "ping":
                event = json.loads(await asyncio.wait_for(ws.recv(), 5))
            return [snapshot, ping, event]

    snapshot, ping, event = asyncio.run(session())
    assert snapshot == {"type": "snapshot", "user": DEMO_USERNAME, "items": []}
    assert ping["type"] == "ping" and isinstance(ping["timestamp"], float)
    assert event == {"type": "event", "n": 1}
    stats = server.stats()
    assert stats["pongs"][0]["matched"] is True and stats["pongs_received"] == 1
    assert stats["ws_handshakes"] == {"attempted": 1, "accepted": 1, "denied": 0}


def test_websocket_handshake_denied_with_401(server: RefServer, client: httpx.Client) -> None:
    token = ws_token(client)

    async def statuses() -> list[int]:
        results = [
            await handshake_status(server, None),
            await handshake_status(server, "not-a-ws-token"),
            await handshake_status(server, None, f"?token={token}"),  # a token in the URL is ignored
        ]
        async with ws_connect(server, token):
            pass
        results.append(await handshake_status(server, token))  # single use
        return results

    assert asyncio.run(statuses()) == [401, 401, 401, 401]
    assert server.stats()["ws_handshakes"] == {"attempted": 5, "accepted": 1, "denied": 4}


def test_websocket_faults_deny_and_disconnect(server: RefServer, client: httpx.Client) -> None:
    server.add_fault(WS_EVENTS_PATH, status=503, count=1)
    server.add_fault(WS_EVENTS_PATH, disconnect_after_messages=2, close_code=1012, count=1)

    async def scenario() -> tuple[int, list[str], int]:
        denied = await handshake_status(server, ws_token(client))
        received = []
        async with ws_connect(server, ws_token(client)) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    received.append(json.loads(await asyncio.wait_for(ws.recv(), 5))["type"])
        return denied, received, closed.value.rcvd.code

    assert asyncio.run(scenario()) == (503, ["snapshot", "ping"], 1012)


def test_websocket_server_side_disconnect(server: RefServer, client: httpx.Client) -> None:
    async def scenario() -> int:
        async with ws_connect(server, ws_token(client)) as ws:
            await ws.recv()
            assert server.ws_disconnect(code=1001) == 1
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
        return closed.value.rcvd.code

    assert asyncio.run(scenario()) == 1001


# -------------------------------------------------------------------------------------------------- faults


def test_status_fault_applies_count_times_then_the_server_answers(server: RefServer, client: httpx.Client) -> None:
    tokens = login(client)
    server.add_fault(REFRESH_PATH, status=503, body="<html>busy</html>", content_type="text/html", count=2)
    for _ in range(2):
        response = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]})
        assert (response.status_code, response.text, response.headers["content-type"]) == (503, "<html>busy</html>", "text/html")
    assert client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]}).status_code == 200
    assert server.faults() == []


def test_redirect_fault_sends_headers(server: RefServer, client: httpx.Client) -> None:
    server.add_fault(TOKEN_PATH, status=302, headers={"Location": "https://elsewhere.invalid/"}, count=1)
    response = client.post(TOKEN_PATH, json={})
    assert response.status_code == 302 and response.headers["location"] == "https://elsewhere.invalid/"


def test_delay_fault_slows_or_times_out(server: RefServer, client: httpx.Client) -> None:
    server.add_fault(TOKEN_PATH, delay=0.5, count=1)
    started = time.monotonic()
    login(client)
    assert time.monotonic() - started >= 0.5
    server.add_fault(TOKEN_PATH, delay=60, count=1)
    with pytest.raises(httpx.ReadTimeout):
        client.post(TOKEN_PATH, json={}, timeout=0.5)


def test_close_fault_drops_the_connection(server: RefServer, client: httpx.Client) -> None:
    server.add_fault(TOKEN_PATH, close=True, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(TOKEN_PATH, json={})
    assert server.stats()["requests"][TOKEN_PATH] == 1


def test_after_view_fault_rotates_the_refresh_token_then_answers_late(server: RefServer, client: httpx.Client) -> None:
    """Issue "a late refresh answer ends the session": the server processed the refresh, the client never saw it."""
    old = login(client)["refresh"]
    server.add_fault(REFRESH_PATH, after_view=True, delay=1.5, count=1)
    with pytest.raises(httpx.ReadTimeout):
        client.post(REFRESH_PATH, json={"refresh": old}, timeout=0.5)
    reused = client.post(REFRESH_PATH, json={"refresh": old})
    assert reused.status_code == 401 and reused.json()["code"] == "token_not_valid"
    first = next(entry for entry in server.stats()["log"] if entry["path"] == REFRESH_PATH)
    assert first["view_status"] == 200
    server.add_fault(REFRESH_PATH, after_view=True, delay=0.3, count=1)
    new = login(client)["refresh"]
    started = time.monotonic()
    late = client.post(REFRESH_PATH, json={"refresh": new})
    assert late.status_code == 200 and time.monotonic() - started >= 0.3


def test_after_view_fault_drops_or_replaces_the_answer(server: RefServer, client: httpx.Client) -> None:
    old = login(client)["refresh"]
    server.add_fault(REFRESH_PATH, after_view=True, close=True, count=1)
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(REFRESH_PATH, json={"refresh": old})
    assert client.post(REFRESH_PATH, json={"refresh": old}).status_code == 401
    server.add_fault(REFRESH_PATH, after_view=True, status=502, body="<html>bad gateway</html>", content_type="text/html", count=1)
    other = login(client)["refresh"]
    assert client.post(REFRESH_PATH, json={"refresh": other}).status_code == 502
    assert client.post(REFRESH_PATH, json={"refresh": other}).status_code == 401
    log = [entry for entry in server.stats()["log"] if entry["path"] == REFRESH_PATH]
    assert [(entry["status"], entry.get("view_status")) for entry in log] == [(None, 200), (401, None), (502, 200), (401, None)]


def test_bad_fault_is_rejected(server: RefServer) -> None:
    with pytest.raises(RefServerError, match="400"):
        server.control("POST", "faults", {"path": TOKEN_PATH, "bogus": 1})


# --------------------------------------------------------------------------------------- stats and control


def test_stats_count_requests_and_distinct_connections(server: RefServer, client: httpx.Client) -> None:
    login(client)
    login(client)  # same keep-alive connection
    with httpx.Client(base_url=server.url, verify=server.ssl_context(), trust_env=False) as other:
        other.post(TOKEN_PATH, json={"username": DEMO_USERNAME, "password": "wrong"})
    stats = server.stats()
    assert stats["requests"] == {TOKEN_PATH: 3}
    assert stats["connections"] == 2
    assert [entry["status"] for entry in stats["log"]] == [200, 200, 401]
    assert DEMO_PASSWORD not in json.dumps(stats)
    server.reset_stats()
    assert server.stats()["requests"] == {}


def test_control_api_requires_the_secret(server: RefServer, client: httpx.Client) -> None:
    assert client.get("/_control/stats").status_code == 403
    assert client.get("/_control/stats", headers={"X-Control-Secret": "wrong"}).status_code == 403


def test_started_server_says_how_to_use_it(server: RefServer) -> None:
    banner = server.log_path.read_text()
    assert f"refserver ready on {server.url}" in banner
    assert f"CA certificate:  {server.ca_path}" in banner and DEMO_PASSWORD in banner
    assert f"SSL_CERT_FILE={server.ca_path} SPEC_KITTY_SAAS_URL={server.url}" in banner


# ------------------------------------------------------------------------------------ token journal, restart


def test_the_token_journal_names_every_issued_token_the_refresh_it_came_from_and_its_fault(server: RefServer, client: httpx.Client) -> None:
    tokens = login(client)
    fault = server.add_fault(REFRESH_PATH, after_view=True, delay=0.1, count=1)
    rotated = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]}).json()
    ws = ws_token(client, rotated["access"])
    journal = {entry["token"]: entry for entry in server.issued_tokens()}
    assert {journal[token]["kind"] for token in (tokens["access"], rotated["access"])} == {"access"}
    assert journal[ws]["kind"] == "ws" and journal[ws]["path"] == WS_TOKEN_PATH
    assert journal[tokens["refresh"]]["rotated_from_sha256"] is None and journal[tokens["refresh"]]["fault"] is None
    new = journal[rotated["refresh"]]
    assert new["rotated_from_sha256"] == hashlib.sha256(tokens["refresh"].encode()).hexdigest()
    assert new["fault"] == fault["id"] and new["path"] == REFRESH_PATH
    assert new["request_time"] <= new["time"]


def test_restart_keeps_the_port_the_ca_the_options_and_every_token_valid(tmp_path: Path) -> None:
    with RefServer(tmp_path / "state") as server:
        url, ca = server.url, server.ca_path.read_bytes()
        server.set_lifetimes(access=60)
        server.set_options(team_slug=False, oauth_refresh_grace_period=5)
        with httpx.Client(base_url=url, verify=server.ssl_context(), trust_env=False, timeout=5) as client:
            tokens = login(client)
        server.add_fault(REFRESH_PATH, status=503)
        server.restart()
        assert server.running and server.url == url and server.ca_path.read_bytes() == ca
        with httpx.Client(base_url=url, verify=server.ssl_context(), trust_env=False, timeout=5) as client:
            assert client.get(ME_PATH, headers={"Authorization": f"Bearer {tokens['access']}"}).status_code == 200
            rotated = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]})
        assert rotated.status_code == 200 and "team_slug" not in rotated.json()  # options in force from the start
        assert claims(rotated.json()["access"])["exp"] - claims(rotated.json()["access"])["iat"] == 60
        assert server.options()["team_slug"] is False and server.options()["oauth_refresh_grace_period"] == 5
        assert server.faults() == []
        assert {tokens["refresh"], rotated.json()["refresh"]} <= {entry["token"] for entry in server.issued_tokens()}
        assert server.log_path.read_text().count(f"refserver ready on {url}") == 2  # the log is kept, not restarted
        server.reset()  # the defaults, and the lifetimes the harness started it with
        assert server.options()["team_slug"] is True and server.lifetimes()["access"] == 900


def test_every_answer_has_one_date_header_and_date_offset_moves_it(server: RefServer, client: httpx.Client) -> None:
    from email.utils import parsedate_to_datetime

    def skew(path: str) -> float:
        response = client.get(path)
        assert len(response.headers.get_list("date")) == 1
        return parsedate_to_datetime(response.headers["date"]).timestamp() - time.time()

    assert abs(skew("/.well-known/oauth-authorization-server")) < 5
    server.set_options(date_offset=-3600)
    assert -3605 < skew("/.well-known/oauth-authorization-server") < -3595
    server.add_fault("/api/v1/me", status=503, count=1)  # an injected answer gets the same clock
    assert -3605 < skew("/api/v1/me") < -3595
    with pytest.raises(RefServerError):
        server.set_options(date_offset="soon")
