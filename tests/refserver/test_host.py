"""Tests of what the spec-kitty 2.x host needs from the reference server: sync health, the gzip event batch, live
events over the WebSocket, artifact bodies, `team_slug`, the blacklist endpoint, ws-token variants, opaque tokens."""

from __future__ import annotations

import asyncio
import gzip
import json

import httpx
import pytest

from refserver import (
    BLACKLIST_PATH,
    DEMO_TEAM_SLUG,
    EVENTS_BATCH_PATH,
    ME_PATH,
    PUSH_CONTENT_PATH,
    REFRESH_PATH,
    SYNC_HEALTH_PATH,
    WS_EVENTS_PATH,
    WS_TOKEN_PATH,
)
from refserver.harness import DEMO_USERNAME, RefServer, RefServerError
from refserver.testing import bearer, claims, login, ws_connect, ws_token


def event(event_id: str) -> dict:
    return {"event_id": event_id, "event_type": "WPStatusChanged", "aggregate_id": "WP01", "lamport_clock": 1,
            "team_slug": DEMO_TEAM_SLUG, "payload": {"from_lane": "planned", "to_lane": "doing"}}  # fmt: skip


def post_batch(client: httpx.Client, access: str, events: list[dict]) -> httpx.Response:
    """As specify_cli/sync/batch.py sends it: gzip-compressed JSON."""
    headers = bearer(access) | {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    return client.post(EVENTS_BATCH_PATH, content=gzip.compress(json.dumps({"events": events}).encode()), headers=headers)


# ----------------------------------------------------------------------------------------- host endpoints


def test_sync_health_needs_a_valid_bearer_token(client: httpx.Client) -> None:
    assert client.get(SYNC_HEALTH_PATH).status_code == 401
    assert client.get(SYNC_HEALTH_PATH, headers=bearer("not-a-jwt")).status_code == 401
    response = client.get(SYNC_HEALTH_PATH, headers=bearer(login(client)["access"]))
    assert response.status_code == 200 and response.json()["user"] == DEMO_USERNAME


def test_event_batch_stores_events_and_answers_per_event_results(server: RefServer, client: httpx.Client) -> None:
    access = login(client)["access"]
    response = post_batch(client, access, [event("01A"), event("01B")])
    assert response.status_code == 200
    assert response.json() == {"results": [{"event_id": "01A", "status": "success"}, {"event_id": "01B", "status": "success"}]}
    again = post_batch(client, access, [event("01B"), event("01C")]).json()["results"]
    assert [result["status"] for result in again] == ["duplicate", "success"]
    stored = server.events()
    assert [(item["source"], item["user"], item["event"]["event_id"]) for item in stored] == [
        ("batch", DEMO_USERNAME, "01A"), ("batch", DEMO_USERNAME, "01B"), ("batch", DEMO_USERNAME, "01C"),
    ]  # fmt: skip
    assert stored[0]["event"] == event("01A")
    server.clear_events()
    assert server.events() == []


def test_event_batch_errors(client: httpx.Client) -> None:
    assert post_batch(client, "not-a-jwt", [event("01A")]).status_code == 401
    access = login(client)["access"]
    empty = client.post(EVENTS_BATCH_PATH, content=b'{"events": []}', headers=bearer(access) | {"Content-Type": "application/json"})
    assert empty.status_code == 400 and "No events provided" in empty.text  # the host's legacy health probe
    gzip_json = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    garbage = client.post(EVENTS_BATCH_PATH, content=b"\x1f\x8bnot gzip", headers=bearer(access) | gzip_json)
    assert garbage.status_code == 400 and garbage.json()["error"] == "Invalid payload"


def test_events_sent_over_the_websocket_are_stored(server: RefServer, client: httpx.Client) -> None:
    async def send_event() -> None:
        async with ws_connect(server, ws_token(client)) as ws:
            assert json.loads(await ws.recv())["type"] == "snapshot"
            await ws.send(json.dumps(event("01W")))
            await ws.send(json.dumps({"type": "pong", "timestamp": 1.0}))
            for _ in range(50):
                if server.events():
                    return
                await asyncio.sleep(0.05)

    asyncio.run(send_event())
    assert [(item["source"], item["event"]["event_id"]) for item in server.events()] == [("ws", "01W")]


def test_push_content_stores_then_reports_already_exists(client: httpx.Client) -> None:
    access = login(client)["access"]
    body = {"project_uuid": "p", "feature_slug": "f", "target_branch": "main", "artifact_path": "spec.md",
            "content_hash": "abc", "hash_algorithm": "sha256", "content_body": "# spec"}  # fmt: skip
    assert client.post(PUSH_CONTENT_PATH, json=body, headers=bearer(access)).status_code == 201
    assert client.post(PUSH_CONTENT_PATH, json=body, headers=bearer(access)).status_code == 200
    assert client.post(PUSH_CONTENT_PATH, json=body).status_code == 401


# ---------------------------------------------------------------------------------------- token responses


def test_team_slug_can_be_switched_off(server: RefServer, client: httpx.Client) -> None:
    server.set_options(team_slug=False)
    tokens = login(client)
    assert set(tokens) == {"access", "refresh"}
    assert set(client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]}).json()) == {"access", "refresh"}


def test_created_users_have_their_own_team(server: RefServer, client: httpx.Client) -> None:
    assert server.create_user("ann@example.test", "pw") == "ann"
    assert login(client, "ann@example.test", "pw")["team_slug"] == "ann"
    server.create_user("bob@example.test", "pw", teams=[{"slug": "bobs", "name": "Bob", "role": "owner", "is_private_teamspace": True},
                                                         {"slug": "corp", "name": "Corp"}])  # fmt: skip
    tokens = login(client, "bob@example.test", "pw")
    assert tokens["team_slug"] == "corp"
    me = client.get(ME_PATH, headers=bearer(tokens["access"])).json()
    assert [team["slug"] for team in me["teams"]] == ["bobs", "corp"] and me["email"] == "bob@example.test"


def test_blacklist_endpoint_revokes_and_can_be_absent(server: RefServer, client: httpx.Client) -> None:
    refresh = login(client)["refresh"]
    assert client.post(BLACKLIST_PATH, json={"refresh": refresh}).status_code == 200
    assert client.post(REFRESH_PATH, json={"refresh": refresh}).status_code == 401
    assert client.post(BLACKLIST_PATH, json={"refresh": refresh}).status_code == 401
    server.set_options(blacklist_endpoint=False)
    assert client.post(BLACKLIST_PATH, json={"refresh": login(client)["refresh"]}).status_code == 404


@pytest.mark.parametrize(
    "fields",
    [["expires_in"], ["expires_at"], ["expires_at", "expires_in", "ws_url", "session_id"]],
)
def test_ws_token_response_variants(server: RefServer, client: httpx.Client, fields: list[str]) -> None:
    server.set_options(ws_token_fields=fields)
    tokens = login(client)
    answer = client.post(WS_TOKEN_PATH, headers=bearer(tokens["access"])).json()
    assert set(answer) == {"ws_token", *fields}
    if "ws_url" in fields:
        assert answer["ws_url"] == server.ws_url + WS_EVENTS_PATH
    if "session_id" in fields:
        rotated = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]}).json()
        again = client.post(WS_TOKEN_PATH, headers=bearer(rotated["access"])).json()
        assert answer["session_id"] == again["session_id"] == claims(tokens["access"])["sid"]


def test_ws_url_is_reachable_with_the_token(server: RefServer, client: httpx.Client) -> None:
    server.set_options(ws_token_fields=["expires_in", "ws_url"])
    answer = client.post(WS_TOKEN_PATH, headers=bearer(login(client)["access"])).json()
    assert answer["ws_url"].startswith("wss://127.0.0.1:") and "token" not in answer["ws_url"]

    async def first_message() -> dict:
        async with ws_connect(server, answer["ws_token"]) as ws:
            return json.loads(await ws.recv())

    assert asyncio.run(first_message())["type"] == "snapshot"


def test_opaque_tokens_are_accepted_everywhere_and_rotate(server: RefServer, client: httpx.Client) -> None:
    server.set_lifetimes(access=60, refresh=120)
    server.set_options(opaque_tokens=True)
    tokens = login(client)
    assert set(tokens) == {"access", "refresh", "team_slug", "expires_in", "refresh_token_expires_in"}
    assert tokens["expires_in"] == 60 and tokens["refresh_token_expires_in"] == 120
    assert tokens["access"].count(".") == 0 and tokens["refresh"].count(".") == 0
    assert client.get(SYNC_HEALTH_PATH, headers=bearer(tokens["access"])).status_code == 200
    assert client.post(WS_TOKEN_PATH, headers=bearer(tokens["access"])).status_code == 200
    rotated = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]})
    assert rotated.status_code == 200 and rotated.json()["refresh"].count(".") == 0
    reused = client.post(REFRESH_PATH, json={"refresh": tokens["refresh"]})
    assert reused.status_code == 401 and reused.json()["code"] == "token_not_valid"
    assert client.post(BLACKLIST_PATH, json={"refresh": rotated.json()["refresh"]}).status_code == 200


def test_lifetime_fields_can_be_chosen(server: RefServer, client: httpx.Client) -> None:
    server.set_options(token_lifetime_fields=["access_lifetime", "refresh_token_expires_at"])
    tokens = login(client)
    assert tokens["access_lifetime"] == 900 and tokens["refresh_token_expires_at"].endswith("Z")
    assert "expires_in" not in tokens


def test_bad_options_are_refused_and_reset_restores_defaults(server: RefServer) -> None:
    with pytest.raises(RefServerError, match="400"):
        server.set_options(bogus=True)
    with pytest.raises(RefServerError, match="400"):
        server.set_options(ws_token_fields=["nonsense"])
    server.set_options(team_slug=False)
    server.reset()
    assert server.options()["team_slug"] is True

