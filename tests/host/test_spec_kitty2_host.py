"""spec-kitty-cli 2.1.3 with `specify_cli/sync/auth.py` swapped for kitty_auth.spec_kitty2, driven through its own
commands and classes against the reference server over TLS; every output and the server log go through the leak check.
"""

from __future__ import annotations

import stat
import subprocess
import textwrap
import time
import tomllib
from datetime import UTC, datetime

import pytest

from e2e.conftest import Run
from host.conftest import Host
from refserver.harness import DEMO_USERNAME

pytestmark = pytest.mark.e2e

REFRESH = "/api/v1/token/refresh/"
WS_PATH = "/ws/v1/events/"


def _tokens(host: Host) -> dict:
    return tomllib.loads(host.credentials.read_text())


def _short_access_login(host: Host) -> None:
    """Log in with a 1-second access token, wait until it has expired, then let new tokens live long again."""
    host.server.set_lifetimes(access=1)
    assert host.login().returncode == 0
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
    script = (host.venv.root / "bin" / "spec-kitty").read_text()
    assert "specify_cli" in script and "kitty_auth" not in script


def test_login_status_logout(host: Host) -> None:
    run = host.login()
    assert run.returncode == 0 and "Login successful" in run.stdout, run.output
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
    assert not host.credentials.exists()
    assert "Not authenticated" in host.host("auth", "status").stdout


def test_wrong_password_and_feature_gate(host: Host) -> None:
    wrong = host.login(password="not-the-password")
    assert wrong.returncode == 1 and "Invalid username or password" in wrong.stdout, wrong.output
    assert not host.credentials.exists()

    gated = host.login(SPEC_KITTY_ENABLE_SAAS_SYNC="0")
    assert gated.returncode == 1 and "SaaS sync is disabled by feature flag" in gated.stdout
    assert host.server.stats()["requests"].get("/api/v1/token/", 0) == 1  # only the wrong-password attempt


def test_sync_status_check_and_doctor(host: Host) -> None:
    assert host.login().returncode == 0
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
    assert host.login().returncode == 0
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
    assert not host.credentials.exists()


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


def test_opaque_tokens(host: Host) -> None:
    host.server.set_options(opaque_tokens=True)
    assert host.login().returncode == 0
    assert not _tokens(host)["tokens"]["access"].startswith("eyJ")
    assert "Connected" in host.host("sync", "status", "--check").stdout
    assert host.python(QUEUE_EVENT).returncode == 0
    assert host.host("sync", "now").returncode == 0
    assert len(host.server.events()) == 1


WEBSOCKET = """
    import asyncio, json
    from specify_cli.sync.auth import AuthClient
    from specify_cli.sync.client import WebSocketClient

    async def main():
        client = WebSocketClient(server_url={url!r}, auth_client=AuthClient())
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
    assert host.login().returncode == 0
    code = WEBSOCKET.format(url=host.server.url, body="await asyncio.wait_for(got.wait(), 60)")
    prelude = "import logging, sys\nlogging.basicConfig(level=logging.DEBUG, stream=sys.stderr)\n"
    proc = subprocess.Popen([str(host.venv.python), "-c", prelude + textwrap.dedent(code)], env=host.env(),
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
    run = host._record(Run(["websocket"], proc.returncode, stdout, stderr))
    assert run.returncode == 0, run.output
    assert "Received snapshot" in run.stdout and "EVENT evt-from-server" in run.stdout
    assert all(p["matched"] for p in host.server.stats()["pongs"])


def test_websocket_handshake_401_refreshes_and_retries(host: Host) -> None:
    assert host.login().returncode == 0
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
    assert host.login().returncode == 0
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


def test_files_are_shared_with_the_hosts_original_store_and_lock(host: Host) -> None:
    """The host's original 2.1.3 CredentialStore reads what we write, we read (and refresh with) what it
    writes, and both take the same lock."""
    assert host.login().returncode == 0
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
    assert host.login().returncode == 0
    host.secrets.add("tracker-secret-value-1234")
    run = host.python("""
        from specify_cli.tracker.credentials import TrackerCredentialStore
        from specify_cli.sync.auth import AuthClient

        TrackerCredentialStore().set_provider("jira", {"token": "tracker-secret-value-1234", "site": "acme"})
        assert AuthClient().refresh_tokens() is True
        assert TrackerCredentialStore().get_provider("jira")["site"] == "acme"
    """)
    assert run.returncode == 0, run.output
    assert host.login(None, None, "--force").returncode == 0
    data = _tokens(host)
    assert data["tracker"]["providers"]["jira"] == {"token": "tracker-secret-value-1234", "site": "acme"}
    assert data["user"]["team_slug"] == "acme"
