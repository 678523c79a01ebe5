"""Tests of the pure-HTTP approval helper (refserver.approve) and, through it, of the login, consent and device
pages: browser login (authorization code + PKCE S256 + loopback redirect) and device login, approved and denied."""

from __future__ import annotations

import httpx
import pytest

from refserver import LOGIN_PATH, ME_PATH, OAUTH_CLIENT_ID, OAUTH_SCOPE, OAUTH_TOKEN_PATH
from refserver.approve import PageError
from refserver.harness import DEMO_USERNAME, RefServer
from refserver.testing import authorize_url, bearer, pkce, poll, start_device_flow


def exchange(client: httpx.Client, code: str, redirect_uri: str, verifier: str) -> httpx.Response:
    return client.post(OAUTH_TOKEN_PATH, data={"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
                                               "client_id": OAUTH_CLIENT_ID, "code_verifier": verifier})  # fmt: skip


# ------------------------------------------------------------------------------------------- browser login


def test_authorization_code_with_pkce_on_any_loopback_port(server: RefServer, client: httpx.Client) -> None:
    verifier, challenge = pkce()
    redirect_uri = "http://127.0.0.1:54321/callback"
    callback = server.approve_authorization(authorize_url(server, redirect_uri, challenge, "st-1"))
    assert callback.location.startswith(redirect_uri + "?")
    assert callback.params["state"] == "st-1" and callback.params["code"]
    assert exchange(client, callback.params["code"], redirect_uri, "wrong-" + verifier).json()["error"] == "invalid_grant"
    callback = server.approve_authorization(authorize_url(server, redirect_uri, challenge, "st-2"))
    tokens = exchange(client, callback.params["code"], redirect_uri, verifier)
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["refresh_token"] and body["session_id"] and body["scope"] == OAUTH_SCOPE
    assert client.get(ME_PATH, headers=bearer(body["access_token"])).json()["email"] == DEMO_USERNAME
    reused = exchange(client, callback.params["code"], redirect_uri, verifier)
    assert reused.status_code == 400


def test_cancel_on_the_consent_page_is_access_denied(server: RefServer) -> None:
    _, challenge = pkce()
    callback = server.approve_authorization(authorize_url(server, "http://127.0.0.1:50000/callback", challenge, "st"), approve=False)
    assert callback.params["error"] == "access_denied" and callback.params["state"] == "st" and "code" not in callback.params


def test_pkce_is_required_and_redirects_must_be_loopback(server: RefServer) -> None:
    missing = server.approve_authorization(authorize_url(server, "http://127.0.0.1:50000/callback", None, "st"))
    assert missing.params["error"] == "invalid_request" and "code" not in missing.params
    _, challenge = pkce()
    with pytest.raises(PageError):  # an unregistered redirect URI is never redirected to
        server.approve_authorization(authorize_url(server, "http://evil.test:50000/callback", challenge, "st"))


def test_follow_requests_the_loopback_callback(server: RefServer, callback_server: tuple[str, list[str]]) -> None:
    redirect_uri, seen = callback_server
    _, challenge = pkce()
    callback = server.approve_authorization(authorize_url(server, redirect_uri, challenge, "st"), follow=True)
    assert (callback.status, callback.body) == (200, "<p>logged in</p>")
    assert len(seen) == 1 and seen[0].startswith("/callback?") and "state=st" in seen[0]


def test_wrong_password_is_refused_on_the_login_page(server: RefServer) -> None:
    _, challenge = pkce()
    with pytest.raises(PageError, match="refused"):
        server.approve_authorization(authorize_url(server, "http://127.0.0.1:1/callback", challenge, "st"), password="wrong")


# -------------------------------------------------------------------------------------------- device login


def test_device_approved_through_the_pages(server: RefServer, client: httpx.Client) -> None:
    device = start_device_flow(client)
    server.approve_device(device["verification_uri_complete"])
    assert poll(client, device["device_code"]).status_code == 200
    typed = start_device_flow(client)
    server.approve_device(typed["verification_uri"], user_code=typed["user_code"])
    assert poll(client, typed["device_code"]).status_code == 200


def test_device_denied_through_the_pages(server: RefServer, client: httpx.Client) -> None:
    device = start_device_flow(client)
    server.approve_device(device["verification_uri_complete"], approve=False)
    assert poll(client, device["device_code"]).json()["error"] == "access_denied"


def test_unknown_or_expired_user_code_is_refused(server: RefServer, client: httpx.Client) -> None:
    device = start_device_flow(client)
    with pytest.raises(PageError):
        server.approve_device(device["verification_uri"], user_code="NOTACODE")
    server.expire_device_codes()
    with pytest.raises(PageError):
        server.approve_device(device["verification_uri_complete"])
    assert poll(client, device["device_code"]).json()["error"] == "expired_token"


def test_login_page_is_a_plain_form(client: httpx.Client) -> None:
    page = client.get(LOGIN_PATH)
    assert page.status_code == 200 and 'name="csrfmiddlewaretoken"' in page.text and 'name="password"' in page.text
