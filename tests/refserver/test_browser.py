"""Playwright for Python driving Debian's Chromium (/usr/bin/chromium; never `playwright install`) through the
reference server's login, device and consent pages, as a user's browser would.

The browser is kept on loopback: no proxy, and every host name other than 127.0.0.1 fails to resolve.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME, RefServer
from refserver.testing import authorize_url, pkce, poll, start_device_flow

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK_ONLY = ["--no-proxy-server", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]
# Every wait below ends on its event (a page's load, its URL, an element); this bound only catches a hang, so a slow
# machine makes these tests slower, never red.
PAGE_HANG_MS = 180_000



@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    # A missing browser fails the run instead of skipping it: .ci/run installs Debian's chromium.
    assert CHROMIUM.exists(), "Debian's Chromium is needed at /usr/bin/chromium (apt-get install chromium)"
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LOOPBACK_ONLY)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: object) -> Iterator[object]:
    context = browser.new_context(ignore_https_errors=True)  # the server's certificate comes from a test CA
    context.set_default_timeout(PAGE_HANG_MS)
    yield context.new_page()
    context.close()


def sign_in(page: object) -> None:
    assert page.locator("h1").inner_text() == "Sign in"
    page.fill("#id_username", DEMO_USERNAME)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")


def test_device_login_in_chromium(server: RefServer, client: httpx.Client, page: object) -> None:
    device = start_device_flow(client)
    page.goto(device["verification_uri_complete"])
    sign_in(page)
    page.wait_for_url(f"**/oauth/device/verify?user_code={device['user_code']}")
    assert page.input_value("#id_user_code") == device["user_code"]
    page.click("text=Verify")
    page.click("button[value=accept]")
    page.wait_for_url("**/oauth/device/status/**")
    assert "Device Authorized" in page.inner_text("body")
    assert poll(client, device["device_code"]).status_code == 200


def test_browser_login_reaches_the_loopback_callback(server: RefServer, page: object, callback_server: tuple[str, list[str]]) -> None:
    redirect_uri, seen = callback_server
    _, challenge = pkce()
    page.goto(authorize_url(server, redirect_uri, challenge, "st-browser"))
    sign_in(page)
    page.click("input[name=allow]")
    page.wait_for_url(redirect_uri + "?**")
    assert page.inner_text("body") == "logged in"
    callbacks = [path for path in seen if path.startswith("/callback")]  # the browser also asks for /favicon.ico
    assert len(callbacks) == 1 and "code=" in callbacks[0] and "state=st-browser" in callbacks[0]
