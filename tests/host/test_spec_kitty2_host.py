"""spec-kitty-cli 2.1.3 with `specify_cli/sync/auth.py` swapped for kitty_auth.spec_kitty2, driven through its own
commands and classes against the reference server over TLS; every output and the server log go through the leak check.
"""

from __future__ import annotations

import socket
import stat
import subprocess
import textwrap
import time
import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from e2e.conftest import Run
from host.conftest import Host
from refserver.harness import DEMO_USERNAME

pytestmark = pytest.mark.e2e

REFRESH = "/api/v1/token/refresh/"
WS_PATH = "/ws/v1/events/"


def _tokens(host: Host) -> dict:
    return tomllib.loads(host.credentials.read_text())


def _logged_out(host: Host) -> bool:
    """No active session (the second stored account, seeded by the fixture, may still be there)."""
    return not host.credentials.exists() or "tokens" not in _tokens(host)


def _login(host: Host, *extra: str) -> Run:
    run = host.login(None, None, *extra)
    assert run.returncode == 0 and "Login successful" in run.stdout, run.output
    return run


def _short_access_login(host: Host) -> None:
    """Log in with a 1-second access token, wait until it has expired, then let new tokens live long again."""
    host.server.set_lifetimes(access=1)
    _login(host)
    host.server.set_lifetimes(access=900)
    expires = datetime.fromisoformat(_tokens(host)["tokens"]["access_expires_at"].replace("Z", "+00:00"))
    deadline = time.monotonic() + 30
    while datetime.now(UTC) <= expires:
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_swap_is_in_place(host: Host) -> None:
    run = host.python("""
        import specify_cli.sync.auth as auth
        print(auth.AuthClient.__module__, auth.CredentialStore.__module__, auth.AuthenticationError.__module__)
    """)
    assert run.returncode == 0, run.output
    assert run.stdout.split() == ["kitty_auth.entrypoints.spec_kitty2"] * 3


def test_installing_kitty_auth_keeps_the_hosts_spec_kitty_executable(host: Host) -> None:
    bin_dir = host.venv.root / "bin"
    script = (bin_dir / "spec-kitty").read_text()
    assert "specify_cli" in script and "kitty_auth" not in script
    assert "kitty_auth" in (bin_dir / "kitty-auth").read_text()
    # the installed `spec-kitty` command itself is the host's, and runs on the swap
    proc = subprocess.run([str(bin_dir / "spec-kitty"), "auth", "status"], capture_output=True, text=True,
                          env=host.env(), cwd=host.home, timeout=60, stdin=subprocess.DEVNULL)
    run = host._record(Run(["spec-kitty", "auth", "status"], proc.returncode, proc.stdout, proc.stderr))
    assert run.returncode == 0 and "Not authenticated" in run.stdout, run.output
    ours = host.python("import runpy, sys; sys.argv = ['kitty-auth', 'auth', '--help']; runpy.run_module('kitty_auth', run_name='__main__')")
    assert "login" in ours.stdout and "logout" in ours.stdout, ours.output


def test_login_status_logout(host: Host) -> None:
    run = host.login()
    assert run.returncode == 0 and "Login successful" in run.stdout, run.output
    assert "DEBUG:kitty_auth" in run.stderr  # the host's CLI runs at DEBUG: the leak check sees everything logged
    assert stat.S_IMODE(host.credentials.stat().st_mode) == 0o600
    data = _tokens(host)
    assert data["user"] == {"username": DEMO_USERNAME, "team_slug": "acme"}
    assert data["server"]["url"] == host.server.url

    again = host.login()
    assert again.returncode == 0 and "Already authenticated" in again.stdout

    status = host.host("auth", "status")
    assert status.returncode == 0, status.output
    assert "Authenticated" in status.stdout and DEMO_USERNAME in status.stdout
    assert "Access token: valid" in status.stdout and "Refresh token: valid" in status.stdout

    out = host.host("auth", "logout")
    assert out.returncode == 0 and "Logged out" in out.stdout, out.output
    assert _logged_out(host)
    assert "Not authenticated" in host.host("auth", "status").stdout


def test_wrong_password_and_feature_gate(host: Host) -> None:
    wrong = host.login(password="not-the-password")
    assert wrong.returncode == 1 and "Invalid username or password" in wrong.stdout, wrong.output
    assert _logged_out(host)

    gated = host.login(SPEC_KITTY_ENABLE_SAAS_SYNC="0")
    assert gated.returncode == 1 and "SaaS sync is disabled by feature flag" in gated.stdout
    assert host.server.stats()["requests"].get("/api/v1/token/", 0) == 1  # only the wrong-password attempt


def test_sync_status_check_and_doctor(host: Host) -> None:
    _login(host)
    check = host.host("sync", "status", "--check")
    assert check.returncode == 0 and "Connected" in check.stdout, check.output
    doctor = host.host("sync", "doctor")
    assert doctor.returncode == 0, doctor.output
    assert "Connected" in doctor.stdout and "acme" in doctor.stdout and "Valid" in doctor.stdout


QUEUE_EVENT = """
    from specify_cli.sync.queue import OfflineQueue
    OfflineQueue().queue_event({"event_id": "evt-host-0001", "event_type": "WPStatusChanged",
                                "payload": {"wp_id": "WP01", "from_lane": "planned", "to_lane": "claimed"}})
"""


def test_sync_now_delivers_a_queued_event(host: Host) -> None:
    _login(host)
    assert host.python(QUEUE_EVENT).returncode == 0
    run = host.host("sync", "now")
    assert run.returncode == 0, run.output
    assert [e["event"]["event_id"] for e in host.server.events()] == ["evt-host-0001"]


def test_sync_now_logged_out_is_a_sentence_not_a_traceback(host: Host) -> None:
    assert host.python(QUEUE_EVENT).returncode == 0
    run = host.host("sync", "now")
    assert run.returncode == 1
    assert "not authenticated" in run.output.lower()
    assert host.server.events() == []


def test_refresh_rejected_clears_the_session(host: Host) -> None:
    _short_access_login(host)
    host.server.add_fault(REFRESH, status=401, body='{"detail": "Token is blacklisted", "code": "token_not_valid"}')
    check = host.host("sync", "status", "--check")
    assert "Session expired" in check.stdout, check.output
    assert _logged_out(host)


def test_expired_access_token_is_refreshed_once_and_the_team_kept(host: Host) -> None:
    _short_access_login(host)
    host.server.set_options(team_slug=False)  # the refresh answer names no team
    before = _tokens(host)["tokens"]
    check = host.host("sync", "status", "--check")
    assert "Connected" in check.stdout, check.output
    after = _tokens(host)
    assert after["tokens"]["refresh"] != before["refresh"]
    assert after["user"]["team_slug"] == "acme"
    assert host.server.stats()["requests"][REFRESH] == 1


def _lifetimes(host: Host, sent: datetime) -> tuple[float, float]:
    tokens = _tokens(host)["tokens"]
    at = {k: datetime.fromisoformat(tokens[k].replace("Z", "+00:00")) for k in ("access_expires_at", "refresh_expires_at")}
    return (at["access_expires_at"] - sent).total_seconds(), (at["refresh_expires_at"] - sent).total_seconds()


def test_opaque_tokens(host: Host) -> None:
    """Opaque tokens work everywhere; their lifetimes come from the response's fields, else the defaults."""
    host.server.set_options(opaque_tokens=True)
    host.server.set_lifetimes(access=600, refresh=3 * 86400)
    sent = datetime.now(UTC)
    _login(host)
    assert not _tokens(host)["tokens"]["access"].startswith("eyJ")
    access, refresh = _lifetimes(host, sent)
    assert 600 - 5 <= access <= 600 + 60 and 3 * 86400 - 5 <= refresh <= 3 * 86400 + 60  # expires_in, refresh_token_expires_in
    assert "Connected" in host.host("sync", "status", "--check").stdout
    assert host.python(QUEUE_EVENT).returncode == 0
    assert host.host("sync", "now").returncode == 0
    assert len(host.server.events()) == 1

    host.server.set_options(token_lifetime_fields=[])  # no lifetime in the answer: 15 minutes and 7 days
    sent = datetime.now(UTC)
    _login(host, "--force")
    access, refresh = _lifetimes(host, sent)
    assert 900 - 5 <= access <= 900 + 60 and 7 * 86400 - 5 <= refresh <= 7 * 86400 + 60


WEBSOCKET = """
    import asyncio, json
    from specify_cli.sync.auth import AuthClient
    from specify_cli.sync.client import WebSocketClient

    class Recording(AuthClient):
        def obtain_ws_token(self):
            token = super().obtain_ws_token()
            SECRET(token)  # every ws token the host handles joins the leak check
            print("WS_TOKEN_TYPE", type(token).__name__, flush=True)
            return token

    async def main():
        client = WebSocketClient(server_url={url!r}, auth_client=Recording())
        got = asyncio.Event()
        async def on_event(data):
            print("EVENT", data.get("event_id"), flush=True)
            got.set()
        client.set_message_handler(on_event)
        await client.connect()
        print("CONNECTED", client.connected, flush=True)
        {body}
        await client.disconnect()

    asyncio.run(main())
"""


def _websocket(host: Host, body: str = "", **env: str):
    return host.python(WEBSOCKET.format(url=host.server.url, body=body.strip()), **env)


def test_websocket_client_snapshot_event_and_pong(host: Host) -> None:
    """Snapshot first, pongs to the server's pings, then an event pushed by the server reaches the handler."""
    _login(host)
    code = WEBSOCKET.format(url=host.server.url, body="await asyncio.wait_for(got.wait(), 60)")
    proc = subprocess.Popen([str(host.venv.python), "-c", host.prelude() + textwrap.dedent(code)], env=host.env(),
                            cwd=host.home, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while host.server.stats()["ws_handshakes"]["accepted"] < 1 or host.server.stats()["pongs_received"] < 1:
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.1)
        host.server.ws_send({"type": "event", "event_id": "evt-from-server"})
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    host.collect_secrets()
    run = host._record(Run(["websocket"], proc.returncode, stdout, stderr))
    assert run.returncode == 0, run.output
    assert "Received snapshot" in run.stdout and "EVENT evt-from-server" in run.stdout
    assert "WS_TOKEN_TYPE str" in run.stdout  # obtain_ws_token returns the token string, as the host's did
    assert all(p["matched"] for p in host.server.stats()["pongs"])


def test_websocket_handshake_401_refreshes_and_retries(host: Host) -> None:
    _login(host)
    host.server.add_fault(WS_PATH, status=401, count=1)
    run = _websocket(host)
    assert run.returncode == 0, run.output
    assert "CONNECTED True" in run.stdout
    stats = host.server.stats()
    assert stats["requests"][REFRESH] == 1
    assert stats["ws_handshakes"]["accepted"] == 1


def test_websocket_with_an_expired_access_token_refreshes_first(host: Host) -> None:
    _short_access_login(host)
    run = _websocket(host)
    assert run.returncode == 0 and "CONNECTED True" in run.stdout, run.output
    assert host.server.stats()["requests"][REFRESH] == 1


def test_runtime_and_emitter_send_over_the_websocket(host: Host) -> None:
    _login(host)
    run = host.python("""
        import asyncio
        from specify_cli.sync.events import get_emitter

        async def main():
            emitter = get_emitter()
            for _ in range(600):
                if emitter.ws_client is not None and emitter.ws_client.connected:
                    break
                await asyncio.sleep(0.1)
            print("WS", emitter.get_connection_status(), flush=True)
            emitter.emit_wp_status_changed(wp_id="WP01", from_lane="planned", to_lane="claimed")
            await asyncio.sleep(0)
            await emitter.ws_client.disconnect()

        asyncio.run(main())
    """)
    assert run.returncode == 0, run.output
    assert "WS Connected" in run.stdout
    events = host.server.events()
    assert [e["source"] for e in events] == ["ws"], events


@pytest.mark.without_second_account  # the host's original store (not swapped) rewrites the whole file
def test_files_are_shared_with_the_hosts_original_store_and_lock(host: Host) -> None:
    """The host's original 2.1.3 CredentialStore reads what we write, we read (and refresh with) what it
    writes, and both take the same lock."""
    _login(host)
    run = host.python(f"""
        import importlib.util, threading
        from datetime import datetime, timedelta, UTC
        from specify_cli.sync.auth import AuthClient, CredentialStore

        spec = importlib.util.spec_from_file_location("original_auth", {str(host.venv.original_auth)!r})
        original = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(original)
        ours, theirs = CredentialStore(), original.CredentialStore()
        assert theirs.credentials_path == ours.credentials_path and theirs.lock_path == ours.lock_path
        assert theirs.get_access_token() == ours.get_access_token() is not None
        assert theirs.get_team_slug() == "acme"

        # the original writes aware timestamps with microseconds; we read them and refresh
        now = datetime.now(UTC)
        theirs.save(ours.get_access_token(), ours.get_refresh_token(), now + timedelta(minutes=15),
                    now + timedelta(days=7), ours.get_username(), ours.get_server_url(), team_slug="acme")
        assert AuthClient().refresh_tokens() is True
        assert theirs.get_team_slug() == "acme" and theirs.is_access_token_valid()

        # one lock: while the original holds it, our save waits
        lock = theirs._acquire_lock()
        lock.acquire()
        done = threading.Event()
        def save():
            ours.save("a-" + "x" * 20, "r-" + "y" * 20, now + timedelta(minutes=15), now + timedelta(days=7),
                      "someone@example.com", {host.server.url!r})
            done.set()
        worker = threading.Thread(target=save)
        worker.start()
        assert not done.wait(1.0), "our save did not wait for the original's lock"
        lock.release()
        assert done.wait(30)
        print("OK")
    """)
    assert run.returncode == 0 and "OK" in run.stdout, run.output
    assert _tokens(host)["user"]["username"] == "someone@example.com"


def test_tracker_tables_and_team_survive_our_refresh_and_login(host: Host) -> None:
    """The host's tracker store writes [tracker.providers.*] into the same file: every write of ours keeps it."""
    _login(host)
    host.secrets.add("tracker-secret-value-1234")
    run = host.python("""
        from specify_cli.tracker.credentials import TrackerCredentialStore
        from specify_cli.sync.auth import AuthClient

        TrackerCredentialStore().set_provider("jira", {"token": "tracker-secret-value-1234", "site": "acme"})
        assert AuthClient().refresh_tokens() is True
        assert TrackerCredentialStore().get_provider("jira")["site"] == "acme"
    """)
    assert run.returncode == 0, run.output
    _login(host, "--force")
    data = _tokens(host)
    assert data["tracker"]["providers"]["jira"] == {"token": "tracker-secret-value-1234", "site": "acme"}
    assert data["user"]["team_slug"] == "acme"


def test_ws_token_answers_with_one_lifetime_field_and_a_ws_url(host: Host) -> None:
    """The host's WebSocketClient connects whichever lifetime field the ws-token answer carries; the host builds
    its own WebSocket URL, while kitty-auth's library hands on the server's (safe) ws_url."""
    _login(host)
    for accepted, fields in enumerate((["expires_in"], ["expires_at"], ["ws_url", "expires_in"]), start=1):
        host.server.set_options(ws_token_fields=fields)
        run = _websocket(host)
        assert run.returncode == 0 and "CONNECTED True" in run.stdout, (fields, run.output)
        assert host.server.stats()["ws_handshakes"]["accepted"] == accepted
    run = host.python("""
        from pathlib import Path
        import kitty_auth
        ws = kitty_auth.AuthClient(home=Path.home() / ".spec-kitty").obtain_ws_token()
        SECRET(ws.ws_token)
        print("WS_URL", ws.ws_url)
    """)
    assert run.returncode == 0, run.output
    assert f"WS_URL {host.server.ws_url}/ws/v1/events/" in run.stdout.splitlines()


def test_login_without_a_team_from_the_server(host: Host) -> None:
    host.server.set_options(team_slug=False)
    _login(host)
    assert _tokens(host)["user"] == {"username": DEMO_USERNAME}
    run = host.python("""
        from specify_cli.sync.auth import AuthClient
        print("TEAM", AuthClient().get_team_slug())
    """)
    assert "TEAM None" in run.stdout, run.output


def test_login_to_an_unreachable_server_says_so_and_stores_nothing(host: Host) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (host.spec_kitty_dir / "config.toml").write_text(f'[sync]\nserver_url = "https://127.0.0.1:{port}"\n')
    run = host.login()
    assert run.returncode == 1, run.output
    assert "Cannot reach server. Check your connection." in run.stdout
    assert f"Server: https://127.0.0.1:{port}" in run.stdout
    assert _logged_out(host)


def test_account_switch_with_queued_events_is_blocked_unless_forced(host: Host) -> None:
    """The host's guard against moving one account's queued events to another works on what we store
    (server, user and team in the file, the scope derived from them)."""
    other, other_password = "other@spec-kitty.test", "other-password-0001"
    other_team = host.server.create_user(other, other_password)
    assert other_team != "acme"
    host.secrets.add(other_password)
    _login(host)
    assert host.python(QUEUE_EVENT).returncode == 0
    assert host.host("auth", "logout").returncode == 0

    blocked = host.login(other, other_password)
    assert blocked.returncode == 1 and "Account switch blocked" in blocked.stdout, blocked.output
    assert _logged_out(host)

    forced = host.login(other, other_password, "--force")
    assert forced.returncode == 0 and "Switching accounts with 1 pending event" in forced.stdout, forced.output
    assert _tokens(host)["user"] == {"username": other, "team_slug": other_team}
    pending = host.python(f"""
        from specify_cli.sync.queue import build_queue_scope, pending_events_for_scope
        print("PENDING", pending_events_for_scope(build_queue_scope({host.server.url!r}, {DEMO_USERNAME!r}, "acme")))
    """)
    assert "PENDING 1" in pending.stdout, pending.output


def _write_2_0_file(host: Host, access_in: timedelta) -> None:
    """The file as spec-kitty 2.0.x wrote it: the same tokens, times from ``utcnow().isoformat()`` (no zone)."""
    tokens = _tokens(host)["tokens"]
    now = datetime.now(UTC).replace(tzinfo=None)
    host.credentials.write_text(
        "[tokens]\n"
        f'access = "{tokens["access"]}"\nrefresh = "{tokens["refresh"]}"\n'
        f'access_expires_at = "{(now + access_in).isoformat()}"\n'
        f'refresh_expires_at = "{(now + timedelta(days=7)).isoformat()}"\n\n'
        f'[user]\nusername = "{DEMO_USERNAME}"\nteam_slug = "acme"\n\n[server]\nurl = "{host.server.url}"\n'
    )


@pytest.mark.without_second_account  # it writes the file as spec-kitty 2.0's own store did: the whole file
def test_times_without_a_zone_are_utc_whatever_the_local_zone(host: Host) -> None:
    _login(host)
    _write_2_0_file(host, timedelta(minutes=10))  # still valid: east of UTC it must not look expired
    check = host.host("sync", "status", "--check", TZ="Asia/Tokyo")
    assert "Connected" in check.stdout, check.output
    assert host.server.stats()["requests"].get(REFRESH, 0) == 0

    _write_2_0_file(host, timedelta(minutes=-1))  # expired: west of UTC it must not look valid
    check = host.host("sync", "status", "--check", TZ="America/Los_Angeles")
    assert "Connected" in check.stdout, check.output
    assert host.server.stats()["requests"][REFRESH] == 1


def test_feature_gate_off_keeps_every_host_path_offline(host: Host) -> None:
    """With SPEC_KITTY_ENABLE_SAAS_SYNC unset the host's commands and classes show its sentences and send nothing."""
    _short_access_login(host)
    host.server.reset_stats()
    off = {"SPEC_KITTY_ENABLE_SAAS_SYNC": "0"}
    status = host.host("auth", "status", **off)
    assert status.returncode == 0 and "SaaS sync is disabled by feature flag" in status.stdout, status.output
    assert "Authenticated" in status.stdout
    check = host.host("sync", "status", "--check", **off)
    assert "Disabled" in check.stdout, check.output
    run = host.python("""
        import asyncio
        from specify_cli.sync.auth import AuthClient, AuthenticationError
        from specify_cli.sync.client import WebSocketClient
        client = AuthClient()
        print("ACCESS", client.get_access_token())  # expired, and no refresh while the gate is off
        for call in (client.refresh_tokens, client.obtain_ws_token):
            try:
                call()
            except AuthenticationError as exc:
                print("REFUSED", exc)
        try:
            asyncio.run(WebSocketClient(server_url="https://127.0.0.1:1", auth_client=client).connect())
        except AuthenticationError as exc:
            print("WS REFUSED", exc)
    """, **off)
    assert run.returncode == 0, run.output
    assert "ACCESS None" in run.stdout
    assert "Operation: token refresh." in run.stdout and "Operation: websocket token exchange." in run.stdout
    assert "WS REFUSED SaaS sync is disabled by feature flag" in run.stdout
    assert host.server.stats()["requests"] == {}
    assert host.credentials.exists()


BEARER = """
    import asyncio, httpx
    from pathlib import Path
    from kitty_auth import BearerAuth

    auth = BearerAuth(home=Path.home() / ".spec-kitty")
    if "sync" in {clients!r}:
        with httpx.Client(auth=auth) as http:
            print("SYNC", http.get({url!r}).status_code, flush=True)

    async def main():
        async with httpx.AsyncClient(auth=auth) as http:
            print("ASYNC", (await http.get({url!r})).status_code, flush=True)

    if "async" in {clients!r}:
        asyncio.run(main())
"""


def _bearer(host: Host, url: str, *clients: str) -> list[str]:
    run = host.python(BEARER.format(url=url, clients=clients))
    assert run.returncode == 0, run.output
    return [line for line in run.stdout.splitlines() if line.startswith(("SYNC ", "ASYNC "))]


def test_bearer_auth_against_the_servers_health_endpoint(host: Host) -> None:
    """kitty_auth.BearerAuth for the host's own API calls: sync and async, a 401 gets one refresh and one retry,
    and a request to another origin (the same server under another name) never carries the token."""
    _login(host)
    health = f"{host.server.url}/api/v1/sync/health/"
    assert _bearer(host, health, "sync", "async") == ["SYNC 200", "ASYNC 200"]
    assert host.server.stats()["requests"].get(REFRESH, 0) == 0

    for refreshes, client in enumerate(("sync", "async"), start=1):
        host.server.add_fault("/api/v1/sync/health/", status=401, count=1)
        assert _bearer(host, health, client) == [f"{client.upper()} 200"]
        assert host.server.stats()["requests"][REFRESH] == refreshes  # one refresh, then one retry

    host.server.add_fault("/api/v1/sync/health/", status=401, count=2)  # refused again after the refresh
    assert _bearer(host, health, "sync") == ["SYNC 401"]
    assert host.server.stats()["requests"][REFRESH] == 3  # no second refresh, no third try

    host.server.reset_stats()
    elsewhere = health.replace("127.0.0.1", "localhost")
    assert _bearer(host, elsewhere, "sync", "async") == ["SYNC 401", "ASYNC 401"]
    stats = host.server.stats()
    assert [e["has_authorization"] for e in stats["log"] if e["path"] == "/api/v1/sync/health/"] == [False, False]
    assert stats["requests"].get(REFRESH, 0) == 0


def test_refresh_takes_the_team_the_server_names_now(host: Host) -> None:
    user, password = "mover@spec-kitty.test", "mover-password-0001"
    host.secrets.add(password)
    host.server.create_user(user, password, team_slug="first-team")
    assert host.login(user, password).returncode == 0
    assert _tokens(host)["user"]["team_slug"] == "first-team"
    host.server.create_user(user, password, team_slug="second-team")  # the server moves the user
    run = host.python("""
        from specify_cli.sync.auth import AuthClient
        assert AuthClient().refresh_tokens() is True
        print("TEAM", AuthClient().get_team_slug())
    """)
    assert "TEAM second-team" in run.stdout.splitlines(), run.output


def test_each_deselected_upstream_test_names_a_host_test_that_exists() -> None:
    from host import upstream

    names = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    assert len(upstream.DESELECTED) == 15
    for upstream_test, (patch, covered_by) in upstream.DESELECTED.items():
        assert "_get_http_client" in patch or "httpx.Client" in patch, upstream_test
        assert covered_by.split(" ")[0] in names, (upstream_test, covered_by)
