"""OAuth logins end to end: the installed `kitty-auth` CLI against the reference server (django-oauth-toolkit) over TLS,
with a real Chromium (Debian's /usr/bin/chromium, driven by Playwright) doing what the user does in the browser.

The CLI opens the browser through Python's `webbrowser`, so `BROWSER` points at a script that writes the URL to a
file; the test then drives Chromium to it, signs in on the server's page and approves (or denies). Everything runs at
DEBUG, and the leak check (conftest) also looks for the authorization codes, the device codes and, through their S256
challenges, the PKCE verifiers.

Waits end on events, never on a fixed time: the browser's request reaching the CLI's listener, the CLI's output and
its exit (it answers the tab before it exits). The bounds below only catch hangs, so a slow machine makes these tests
slower, never red.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import threading
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from e2e.conftest import CLI, E2E, HANG_LIMIT, Run
from refserver.harness import DEMO_PASSWORD, DEMO_USERNAME

pytestmark = pytest.mark.e2e

CHROMIUM = "/usr/bin/chromium"
CALLBACK = "http://127.0.0.1:*/callback?*"
# The CLI ends a browser login on its own after 5 minutes (and every request it sends has its own deadline): this
# bound only catches a CLI that never ends.
CLI_HANG = 5 * 60 + HANG_LIMIT
# Playwright's bound for each page of the reference server (a few hundred milliseconds when the machine is idle).
PAGE_HANG = 3 * HANG_LIMIT


# ------------------------------------------------------------------------------------------- the browser


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    # The test's browser trusts the test server's certificate like a user's would trust a real one; the CLI itself
    # verifies TLS against SSL_CERT_FILE.
    context = chromium.new_context(ignore_https_errors=True)
    context.set_default_timeout(PAGE_HANG * 1000)
    yield context.new_page()
    context.close()


def sign_in(page: Page) -> None:
    """The server's login page, as a user fills it in."""
    page.fill("#id_username", DEMO_USERNAME)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("form#login button[type=submit]")


# ------------------------------------------------------------------------------------------- the CLI


@dataclass
class Running:
    """A `kitty-auth auth ...` process while the user acts; its stderr is read as it comes."""

    e2e: E2E
    proc: subprocess.Popen[str]
    args: list[str]
    url_file: Path
    stderr_lines: list[str] = field(default_factory=list)
    stdout_lines: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        # Both pipes are drained as the CLI writes, so waiting for its exit never blocks it on a full pipe.
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr_lines), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout_lines), daemon=True).start()

    def _read(self, stream, lines: list[str]) -> None:  # noqa: ANN001
        for line in stream:
            with self.changed:
                lines.append(line)
                self.changed.notify_all()
        with self.changed:
            lines.append("")  # end of output
            self.changed.notify_all()

    def _wait(self, done, what: str) -> None:  # noqa: ANN001
        deadline = time.monotonic() + CLI_HANG  # a hang bound only: the CLI's output or exit ends the wait
        with self.changed:
            while not done():
                if not self.changed.wait(max(0.0, deadline - time.monotonic())) and not done():
                    raise AssertionError(f"{what} within {CLI_HANG} s: {''.join(self.stderr_lines)}")

    def wait_for_line(self, starts: str) -> str:
        """The first stderr line (stripped) that starts with ``starts``, once it has been written."""
        def found() -> str | None:
            return next((line.strip() for line in self.stderr_lines if line.strip().startswith(starts)), None)

        self._wait(lambda: found() is not None or "" in self.stderr_lines, f"no line starting {starts!r}")
        line = found()
        assert line is not None, f"the CLI ended without {starts!r}: {''.join(self.stderr_lines)}"
        return line

    def browser_url(self) -> str:
        """The URL the CLI handed to the browser (BROWSER script), with its PKCE challenge remembered."""
        # The CLI announces its wait after the browser script has returned, so the URL is in the file by then.
        self.wait_for_line("Waiting up to")
        url = self.url_file.read_text().strip().splitlines()[0]
        self.e2e.pkce_challenges.add(dict(parse_qsl(urlsplit(url).query))["code_challenge"])
        return url

    def finish(self) -> Run:
        """The CLI's run, once it has exited on its own."""
        self.proc.wait(timeout=CLI_HANG)
        self._wait(lambda: "" in self.stderr_lines and "" in self.stdout_lines, "the CLI's output never ended")
        return self.e2e._record(Run(self.args, self.proc.returncode, "".join(self.stdout_lines),
                                    "".join(self.stderr_lines)))


def start(e2e: E2E, tmp_path: Path, *args: str, **env: str) -> Running:
    url_file = tmp_path / "browser-url.txt"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$1" >> "{url_file}"\n')
    script.chmod(0o755)
    full_env = e2e.env(**{"BROWSER": str(script), **env})
    for name in ("DISPLAY", "WAYLAND_DISPLAY"):
        full_env.pop(name, None)
    proc = subprocess.Popen([CLI, "auth", *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=full_env)
    return Running(e2e, proc, list(args), url_file)


def callback_code(e2e: E2E, url: str) -> None:
    """The authorization code the browser carried to the loopback callback joins the secrets."""
    params = dict(parse_qsl(urlsplit(url).query))
    assert "code" in params or "error" in params, url
    e2e.secrets.update(value for name, value in params.items() if name == "code")


def click_to_callback(e2e: E2E, page: Page, selector: str) -> Request:
    """Click the consent form's ``selector``; the server sends the browser to the CLI's loopback callback.

    Returns that request as soon as the browser sends it: its page is held until the CLI has done the login's work,
    so it is waited for through the CLI (``Running.finish``, then ``callback_page``), not by Playwright's clock."""
    with page.expect_request(CALLBACK) as callback:
        page.click(selector, no_wait_after=True)  # the navigation it starts ends when the CLI answers
    callback_code(e2e, callback.value.url)
    return callback.value


def callback_page(page: Page, callback: Request) -> str:
    """The heading of the page the CLI answered ``callback`` with (it answers before it exits)."""
    response = callback.response()  # resolves when the answer is in, or when the request failed
    assert response is not None, "the loopback callback got no answer"
    page.wait_for_url(CALLBACK)
    return page.inner_text("h1")


def pending_device_codes(e2e: E2E) -> None:
    """Device codes live only between the CLI and the token endpoint: read them from the server's database."""
    with sqlite3.connect(e2e.server.state_dir / "db.sqlite3", timeout=10) as db:
        codes = {row[0] for row in db.execute("SELECT device_code FROM oauth2_provider_devicegrant")}
    assert codes, "no pending device code on the server"
    e2e.secrets.update(codes)


def stored(e2e: E2E) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(e2e.credentials.read_text())


def approve_in_browser(e2e: E2E, page: Page, running: Running, url: str) -> Run:
    """The user opens ``url``, signs in and approves; the page says "Logged in" and the CLI exits 0."""
    page.goto(url)
    sign_in(page)
    callback = click_to_callback(e2e, page, "input[name=allow]")
    run = running.finish()
    assert run.returncode == 0, run.output
    assert "Logged in" in callback_page(page, callback)
    return run


def browser_login(e2e: E2E, page: Page, tmp_path: Path, *args: str) -> Run:
    running = start(e2e, tmp_path, "login", *args)
    return approve_in_browser(e2e, page, running, running.browser_url())


def device_login(e2e: E2E, page: Page, tmp_path: Path, *args: str) -> Run:
    running = start(e2e, tmp_path, "login", "--device", *args)
    running.wait_for_line("The code expires in")
    lines = [line.strip() for line in running.stderr_lines]
    complete = lines[lines.index("To log in, open this URL in a browser on any device:") + 1]
    pending_device_codes(e2e)
    page.goto(complete)
    sign_in(page)
    # The sign-in page has a submit button too: click the next one only once the browser is on the code's page.
    page.wait_for_url("**/oauth/device/verify?user_code=*")
    page.click("button[type=submit], input[type=submit]")  # the code is filled in from the complete URI
    with page.expect_response(lambda response: "/oauth/device/confirm/" in response.url
                              and response.request.method == "POST") as confirmed:
        page.click("[name=action][value=accept]")
    assert confirmed.value.status < 400, confirmed.value.status
    # The login ends with the CLI's next poll, which may even beat the browser to the status page the server
    # redirects to (its grant is deleted once its token is issued): the CLI's exit is the event that counts.
    run = running.finish()
    assert run.returncode == 0, run.output
    return run


# ------------------------------------------------------------------------------------------- browser login


def test_browser_login_stores_an_oauth_session_and_the_page_tells_the_truth(e2e: E2E, page: Page, tmp_path: Path) -> None:
    run = browser_login(e2e, page, tmp_path)  # no flag: the server's metadata says OAuth, a browser can be opened
    assert "Waiting up to 5 minutes" in run.stderr and "/oauth/authorize?" in run.stderr  # URL always printed
    assert run.stdout.startswith(f"Logged in as {DEMO_USERNAME} at {e2e.server.url}")
    data = stored(e2e)
    assert data["oauth"]["client_id"] == "cli_native"
    assert data["oauth"]["token_endpoint"] == e2e.server.url + "/oauth/token"
    assert oct(e2e.credentials.stat().st_mode & 0o777) == "0o600"
    status = e2e.cli("status", "--json")
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert info["login_method"] == "web" and info["username"] == DEMO_USERNAME and info["session_id"]
    assert info["team_slug"]


def test_browser_denial_exits_1_and_stores_nothing(e2e: E2E, page: Page, tmp_path: Path) -> None:
    running = start(e2e, tmp_path, "login", "--web")
    page.goto(running.browser_url())
    sign_in(page)
    callback = click_to_callback(e2e, page, "form#authorizationForm input[type=submit]:not([name=allow])")  # Cancel
    run = running.finish()
    assert "Login denied" in callback_page(page, callback)
    assert run.returncode == 1 and "denied in the browser" in run.stderr
    assert not e2e.credentials.exists()


def test_state_mismatch_is_refused_and_the_real_callback_still_logs_in(e2e: E2E, page: Page, tmp_path: Path) -> None:
    running = start(e2e, tmp_path, "login", "--web")
    url = running.browser_url()
    redirect = dict(parse_qsl(urlsplit(url).query))["redirect_uri"]
    forged = page.context.new_page()
    forged.goto(f"{redirect}?code=forged-code-0123456789&state=not-this-login")
    assert "Not this login" in forged.inner_text("h1") and "logged in" not in forged.content().lower()
    forged.goto(f"{redirect}?code=forged-code-0123456789")  # no state at all
    assert "Not this login" in forged.inner_text("h1")
    running.wait_for_line("Ignored a browser callback")
    approve_in_browser(e2e, page, running, url)
    # A replayed callback after the login is over reaches nobody: the port is closed.
    with pytest.raises(PlaywrightError, match="ERR_CONNECTION_REFUSED"):
        forged.goto(page.url)


# ------------------------------------------------------------------------------------------- device login


def test_device_login_in_the_browser(e2e: E2E, page: Page, tmp_path: Path) -> None:
    e2e.server.reset_stats()
    run = device_login(e2e, page, tmp_path)
    assert "or open " in run.stderr and "and enter the code:" in run.stderr  # verification_uri and user_code too
    assert stored(e2e)["session"]["method"] == "device"
    # One poll after approval completes the login (RFC 8628: within one interval of approval). Polls that arrive
    # while the server is still storing the approval (the confirm POST is logged when it arrives) may be pending;
    # once the browser is shown the status page, the approval is stored and at most one poll follows.
    log = e2e.server.stats()["log"]

    def polls_after(index: int) -> list[int]:
        return [entry["status"] for entry in log[index:] if entry["path"] == "/oauth/token"]

    confirmed = max(i for i, entry in enumerate(log) if entry["path"].startswith("/oauth/device/confirm")
                    and entry["method"] == "POST")
    shown = min(i for i, entry in enumerate(log) if i > confirmed and entry["path"].startswith("/oauth/device/status"))
    assert polls_after(0)[-1] == 200 and polls_after(confirmed).count(200) == 1  # the first success ends the login
    assert polls_after(shown) in ([], [200])


def test_device_code_expiry_exits_1_and_stores_nothing(e2e: E2E, tmp_path: Path) -> None:
    running = start(e2e, tmp_path, "login", "--headless")
    running.wait_for_line("The code expires in")
    pending_device_codes(e2e)
    assert e2e.server.expire_device_codes() >= 1  # ours (a code another test left pending may expire too)
    run = running.finish()
    assert run.returncode == 1 and "expired" in run.stderr and not e2e.credentials.exists()


def test_device_slow_down_is_obeyed(e2e: E2E, page: Page, tmp_path: Path) -> None:
    e2e.server.set_options(device_slow_down=1)
    e2e.server.reset_stats()
    device_login(e2e, page, tmp_path)
    log = [entry for entry in e2e.server.stats()["log"] if entry["path"] == "/oauth/token"]
    times = [entry["time"] for entry in log]
    # After the slow_down the interval is 1 + 5 s: no two later polls closer than that (minus scheduling slack).
    assert all(later - earlier >= 5.5 for earlier, later in zip(times[1:], times[2:], strict=False))


# ------------------------------------------------------------------------------------------- the session


def test_an_oauth_session_refreshes_rotates_and_serves_the_library(e2e: E2E, page: Page, tmp_path: Path) -> None:
    device_login(e2e, page, tmp_path)
    first = stored(e2e)["tokens"]
    run = e2e.library(
        "import kitty_auth\n"
        "client = kitty_auth.AuthClient()\n"
        "client.refresh_tokens()\n"
        "assert client.get_access_token()\n"
        "ws = client.obtain_ws_token()\n"
        "import os; open(os.environ['E2E_SECRETS_OUT'], 'a').write(ws.ws_token + '\\n')\n"
        "client.close()\n"
    )
    assert run.returncode == 0, run.output
    second = stored(e2e)["tokens"]
    assert second["refresh"] != first["refresh"] and second["access"] != first["access"]
    assert not e2e.server.refresh_token_accepted(first["refresh"])  # rotated out
    assert e2e.server.refresh_token_accepted(second["refresh"])
    assert stored(e2e)["session"]["method"] == "device"


def test_a_short_lived_opaque_access_token_is_not_refreshed_on_every_use(e2e: E2E, page: Page, tmp_path: Path) -> None:
    """A 60 s opaque token gets a quarter of its own life as margin, not the 60 s of a 15-minute token."""
    e2e.server.set_lifetimes(access=60)
    device_login(e2e, page, tmp_path)
    assert stored(e2e)["tokens"]["access_lifetime_s"] == 60
    e2e.server.reset_stats()
    run = e2e.library("import kitty_auth\nclient = kitty_auth.AuthClient()\n"
                      "tokens = {client.get_access_token() for _ in range(3)}\nassert len(tokens) == 1\nclient.close()\n")
    assert run.returncode == 0, run.output
    assert "/oauth/token" not in e2e.server.stats()["requests"]


# The token endpoint runs (django-oauth-toolkit rotates the refresh token and revokes the old one), then its answer
# waits LATE s: past the client's 5 s read timeout, inside its 30 s late-answer window.
LATE = 10.0

LATE_REFRESH = """
import os, sys, time, tomllib, kitty_auth
from pathlib import Path
client = kitty_auth.AuthClient()
try:
    client.refresh_tokens()
    sys.exit("the refresh should have given up")
except kitty_auth.NetworkError as exc:
    print(f"first: {exc}", file=sys.stderr)
path = Path(os.environ["SPEC_KITTY_HOME"]) / "credentials"
if os.environ["RETRY"] == "1":
    client.refresh_tokens()  # the same process asks again before the answer is in: it waits for it
else:
    end = time.monotonic() + 60  # a hang bound: the answer comes about 5 s later
    while tomllib.loads(path.read_text())["tokens"]["refresh"] == os.environ["OLD_REFRESH"]:
        if time.monotonic() > end:
            sys.exit("the late answer was never stored")
        time.sleep(0.1)
client.close()
print("ok")
"""


@pytest.mark.parametrize("retry", [False, True], ids=["stored-when-it-arrives", "retry-waits-for-it"])
def test_a_late_oauth_refresh_answer_is_not_thrown_away(e2e: E2E, page: Page, tmp_path: Path, retry: bool) -> None:
    device_login(e2e, page, tmp_path)
    old = stored(e2e)["tokens"]["refresh"]
    e2e.server.reset_stats()
    e2e.server.add_fault("/oauth/token", after_view=True, delay=LATE, count=1)
    run = e2e.library(LATE_REFRESH, OLD_REFRESH=old, RETRY="1" if retry else "0")
    assert run.returncode == 0, run.output
    assert "Cannot reach server" in run.stderr  # the first call did give up
    new = stored(e2e)["tokens"]["refresh"]
    assert new != old and not e2e.server.refresh_token_accepted(old)
    assert e2e.server.refresh_token_accepted(new)  # the late answer is what is stored
    assert stored(e2e)["session"]["method"] == "device"  # still the OAuth session
    assert e2e.server.stats()["requests"] == {"/oauth/token": 1}  # the old token was sent once


def test_logout_revokes_and_the_server_refuses_the_old_refresh_token(e2e: E2E, page: Page, tmp_path: Path) -> None:
    browser_login(e2e, page, tmp_path)
    refresh = stored(e2e)["tokens"]["refresh"]
    run = e2e.cli("logout")
    assert run.returncode == 0, run.output
    assert run.stdout.splitlines() == ["Logged out; stored credentials removed.", "The server revoked the session."]
    assert not e2e.credentials.exists()
    assert not e2e.server.refresh_token_accepted(refresh)


def test_offline_logout_still_logs_out(e2e: E2E, page: Page, tmp_path: Path) -> None:
    browser_login(e2e, page, tmp_path)
    refresh = stored(e2e)["tokens"]["refresh"]
    e2e.server.add_fault("/oauth/revoke", status=503, count=1)
    run = e2e.cli("logout")
    assert run.returncode == 0 and run.stdout.startswith("Logged out") and "not revoked" in run.stdout
    assert not e2e.credentials.exists() and e2e.server.refresh_token_accepted(refresh)


# ------------------------------------------------------------------------------------------- method and metadata


def test_a_password_server_keeps_the_prompts(e2e: E2E) -> None:
    e2e.server.set_options(oauth_metadata="off")
    e2e.secrets.add(DEMO_PASSWORD)
    run = e2e.cli("login", input=f"{DEMO_USERNAME}\n{DEMO_PASSWORD}\n")
    assert run.returncode == 0, run.output
    assert "Username: " in run.stderr and stored(e2e).get("oauth") is None


@pytest.mark.parametrize(("mode", "says"), [("error", "HTTP 500"), ("html", "not understood"),
                                            ("bad_json", "not understood")])
def test_broken_metadata_is_an_error_never_a_fallback(e2e: E2E, mode: str, says: str) -> None:
    e2e.server.set_options(oauth_metadata=mode)
    run = e2e.cli("login", input=f"{DEMO_USERNAME}\n{DEMO_PASSWORD}\n")
    assert run.returncode == 1 and says in run.stderr and "metadata" in run.stderr
    assert "Username" not in run.stderr and not e2e.credentials.exists()


@pytest.mark.parametrize("endpoint", ["authorization_endpoint", "token_endpoint", "revocation_endpoint"])
@pytest.mark.parametrize("mode", ["foreign_origin", "http_endpoint"])
def test_an_endpoint_off_origin_or_not_https_is_refused_before_anything_is_sent(e2e: E2E, tmp_path: Path,
                                                                              mode: str, endpoint: str) -> None:
    e2e.server.set_options(oauth_metadata=mode, oauth_metadata_endpoint=endpoint)
    e2e.server.reset_stats()
    run = e2e.cli("login", "--web", BROWSER=str(tmp_path / "no-browser"))
    assert run.returncode == 1 and "refusing to log in there" in run.stderr
    assert [entry["path"] for entry in e2e.server.stats()["log"]] == ["/.well-known/oauth-authorization-server"]


def test_without_metadata_device_uses_the_default_paths(e2e: E2E, page: Page, tmp_path: Path) -> None:
    e2e.server.set_options(oauth_metadata="off")
    device_login(e2e, page, tmp_path)
    assert stored(e2e)["oauth"]["token_endpoint"] == e2e.server.url + "/oauth/token"


def test_no_browser_in_auto_mode_falls_back_to_the_device_flow(e2e: E2E, tmp_path: Path) -> None:
    running = start(e2e, tmp_path, "login", BROWSER="/bin/false")
    running.wait_for_line("The code expires in")
    pending_device_codes(e2e)
    running.proc.terminate()
    run = running.finish()
    assert run.returncode != 0 and not e2e.credentials.exists()


def test_ctrl_c_while_polling_exits_130_and_stores_nothing(e2e: E2E, tmp_path: Path) -> None:
    running = start(e2e, tmp_path, "login", "--device")
    running.wait_for_line("The code expires in")
    pending_device_codes(e2e)
    running.proc.send_signal(signal.SIGINT)  # as Ctrl-C
    run = running.finish()
    assert run.returncode == 130 and "Aborted." in run.stderr and not e2e.credentials.exists()


def test_ctrl_c_while_waiting_for_the_browser_exits_130_and_stores_nothing(e2e: E2E, tmp_path: Path) -> None:
    running = start(e2e, tmp_path, "login", "--web")
    url = running.browser_url()
    running.wait_for_line("Waiting up to")
    running.proc.send_signal(signal.SIGINT)  # as Ctrl-C
    run = running.finish()
    assert run.returncode == 130 and "Aborted." in run.stderr and not e2e.credentials.exists()
    redirect = dict(parse_qsl(urlsplit(url).query))["redirect_uri"]
    import urllib.error
    import urllib.request
    with pytest.raises(urllib.error.URLError) as refused:  # the loopback port is closed with the process
        urllib.request.urlopen(redirect + "?state=x&code=y", timeout=HANG_LIMIT)  # noqa: S310 - loopback, http by RFC 8252
    assert isinstance(refused.value.reason, ConnectionRefusedError)


def test_the_leak_check_sees_codes_and_verifiers(e2e: E2E) -> None:
    """Guards the guard: a verifier is found through its challenge, a device code as a plain secret."""
    from e2e.conftest import pkce_verifiers_in
    from kitty_auth.domain.oauth import pkce_challenge, pkce_verifier

    verifier = pkce_verifier(os.urandom(32))
    assert pkce_verifiers_in(f"POST body code_verifier={verifier}&x=1", {pkce_challenge(verifier)}) == [verifier]
    leaky = E2E(server=e2e.server, home=e2e.home, secrets={"dc-device-code-0123"}, outputs=["dc-device-code-0123"])
    with pytest.raises(AssertionError):
        leaky.assert_no_leaks()



# ------------------------------------------------------------------------------------------- logout of password sessions


def test_logout_of_a_password_session_blacklists_its_refresh_token(e2e: E2E) -> None:
    assert e2e.login().returncode == 0
    refresh = stored(e2e)["tokens"]["refresh"]
    run = e2e.cli("logout")
    assert run.stdout.splitlines() == ["Logged out; stored credentials removed.", "The server revoked the session."]
    assert not e2e.server.refresh_token_accepted(refresh)


def test_a_server_without_a_blacklist_endpoint_says_not_revoked(e2e: E2E) -> None:
    e2e.server.set_options(blacklist_endpoint=False)
    assert e2e.login().returncode == 0
    run = e2e.cli("logout")
    assert run.returncode == 0 and "not revoked: the server has no revocation endpoint" in run.stdout


def test_a_revoke_that_hangs_is_abandoned_and_logout_still_succeeds(e2e: E2E, page: Page, tmp_path: Path) -> None:
    browser_login(e2e, page, tmp_path)
    e2e.server.add_fault("/oauth/revoke", delay=10 * HANG_LIMIT, count=1)  # answers long after the bound below
    run = e2e.cli("logout")  # ends within HANG_LIMIT only if it gives up on the revoke (bounded by 5 s)
    assert run.returncode == 0 and run.stdout.startswith("Logged out") and "not revoked" in run.stdout
    assert not e2e.credentials.exists()
