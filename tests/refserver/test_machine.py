"""Tests of the reference server's machine clients (client credentials, RFC 6749 4.4): both answers, `me` for the
service user, refresh with `cli_native`, RFC 7009 by the right client, `invalid_client` as 400, revoke and rotate."""

from __future__ import annotations

import httpx
import pytest

from refserver import ME_PATH, OAUTH_CLIENT_ID, OAUTH_REVOKE_PATH, OAUTH_TOKEN_PATH
from refserver.harness import RefServer
from refserver.testing import bearer


def grant(client: httpx.Client, client_id: str, secret: str) -> httpx.Response:
    return client.post(OAUTH_TOKEN_PATH, data={"grant_type": "client_credentials", "client_id": client_id,
                                               "client_secret": secret})


def me(client: httpx.Client, access: str) -> httpx.Response:
    return client.get(ME_PATH, headers=bearer(access))


def test_with_a_refresh_token_the_session_belongs_to_cli_native(server: RefServer, client: httpx.Client) -> None:
    secret = server.create_machine_client("ci-bot")
    answer = grant(client, "ci-bot", secret)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["refresh_token"] and body["session_id"]
    assert me(client, body["access_token"]).json()["email"] == "ci-bot@spec-kitty.test"
    refreshed = client.post(OAUTH_TOKEN_PATH, data={"grant_type": "refresh_token", "client_id": OAUTH_CLIENT_ID,
                                                    "refresh_token": body["refresh_token"]})
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["session_id"] == body["session_id"]
    assert me(client, refreshed.json()["access_token"]).json()["email"] == "ci-bot@spec-kitty.test"
    assert not server.refresh_token_accepted(body["refresh_token"])  # rotated
    revoked = client.post(OAUTH_REVOKE_PATH, data={"token": refreshed.json()["refresh_token"],
                                                   "token_type_hint": "refresh_token", "client_id": OAUTH_CLIENT_ID})
    assert revoked.status_code == 200 and not server.refresh_token_accepted(refreshed.json()["refresh_token"])


def test_plain_client_credentials_give_an_access_token_its_client_alone_revokes(server: RefServer,
                                                                                client: httpx.Client) -> None:
    server.set_options(machine_refresh_token=False)
    secret = server.create_machine_client("ci-plain", email="ci-plain@bots.spec-kitty.test")
    body = grant(client, "ci-plain", secret).json()
    assert "refresh_token" not in body and body["expires_in"] > 0
    access = body["access_token"]
    assert me(client, access).json()["email"] == "ci-plain@bots.spec-kitty.test"
    form = {"token": access, "token_type_hint": "access_token"}
    as_cli = client.post(OAUTH_REVOKE_PATH, data=form | {"client_id": OAUTH_CLIENT_ID})
    assert as_cli.status_code == 200 and me(client, access).status_code == 200  # not cli_native's token: kept
    without_secret = client.post(OAUTH_REVOKE_PATH, data=form | {"client_id": "ci-plain"})
    assert without_secret.status_code in (400, 401) and me(client, access).status_code == 200
    as_owner = client.post(OAUTH_REVOKE_PATH, data=form | {"client_id": "ci-plain", "client_secret": secret})
    assert as_owner.status_code == 200 and me(client, access).status_code == 401


@pytest.mark.parametrize("case", ["wrong-secret", "unknown-client", "revoked", "rotated", "no-secret"])
def test_invalid_client_is_400_and_the_same_whatever_the_cause(server: RefServer, client: httpx.Client,
                                                               case: str) -> None:
    secret = server.create_machine_client("ci-bot")
    client_id = "ci-bot"
    if case == "wrong-secret":
        secret = "mcs_not-the-secret"
    elif case == "unknown-client":
        client_id = "ci-nobody"
    elif case == "revoked":
        assert server.revoke_machine_client("ci-bot")
    elif case == "rotated":
        assert server.rotate_machine_secret("ci-bot") != secret
    elif case == "no-secret":
        secret = ""
    answer = grant(client, client_id, secret)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_client"
    assert answer.json() == {"error": "invalid_client", "error_description": "Client authentication failed."}


def test_the_new_secret_works_after_a_rotation(server: RefServer, client: httpx.Client) -> None:
    server.create_machine_client("ci-bot")
    new = server.rotate_machine_secret("ci-bot")
    assert grant(client, "ci-bot", new).status_code == 200


def test_revoking_the_principal_kills_every_token_of_its_service_user(server: RefServer, client: httpx.Client) -> None:
    secret = server.create_machine_client("ci-bot")
    body = grant(client, "ci-bot", secret).json()
    refreshed = client.post(OAUTH_TOKEN_PATH, data={"grant_type": "refresh_token", "client_id": OAUTH_CLIENT_ID,
                                                    "refresh_token": body["refresh_token"]}).json()
    assert server.revoke_machine_client("ci-bot") and not server.revoke_machine_client("ci-bot")
    assert me(client, refreshed["access_token"]).status_code == 401
    assert not server.refresh_token_accepted(refreshed["refresh_token"])


def test_reset_removes_machine_clients(server: RefServer, client: httpx.Client) -> None:
    secret = server.create_machine_client("ci-bot")
    server.reset()
    assert grant(client, "ci-bot", secret).status_code == 400
    assert grant(client, OAUTH_CLIENT_ID, "").status_code == 400  # the public client has no such grant either
