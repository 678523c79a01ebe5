"""WebSocketClient end to end: the real websockets connector against the reference server over TLS on loopback."""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kitty_auth import AuthClient, TLSVerificationError, WebSocketClient, WsToken
from kitty_auth.adapters.websocket_connector import WebsocketsLiveConnector
from kitty_auth.domain.live_sync import HandshakeRejectedError, ReconnectPolicy
from refserver import DEMO_PASSWORD, DEMO_USERNAME, REFRESH_PATH, WS_EVENTS_PATH, WS_TOKEN_PATH
from refserver.harness import RefServer

# `refserver` and `fresh_refserver_state` come from tests/conftest.py (refserver.fixtures).

pytestmark = pytest.mark.e2e

T = TypeVar("T")
TEST_TIMEOUT = 20.0
FAST = ReconnectPolicy(base=0.05, cap=0.2, max_attempts=5)


async def bounded(coro: Awaitable[T]) -> T:
    return await asyncio.wait_for(coro, TEST_TIMEOUT)


class RecordingAuthClient(AuthClient):
    """An AuthClient that remembers every ws token it handed out (to look for them in logs)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ws_tokens: list[str] = []

    def obtain_ws_token(self, access_token: str | None = None) -> WsToken:
        token = super().obtain_ws_token(access_token)
        self.ws_tokens.append(token.ws_token)
        return token


@pytest.fixture
def auth(server: RefServer, tmp_path: Path) -> Iterator[RecordingAuthClient]:
    client = RecordingAuthClient(server_url=server.url, home=tmp_path / "home")
    client.obtain_tokens(DEMO_USERNAME, DEMO_PASSWORD)
    server.reset_stats()
    try:
        yield client
    finally:
        client.close()


def ws_token_requests(server: RefServer) -> int:
    return server.stats()["requests"].get(WS_TOKEN_PATH, 0)


async def test_snapshot_first_then_pushed_events(server: RefServer, auth: RecordingAuthClient) -> None:
    async def scenario() -> None:
        async with WebSocketClient(auth) as ws:
            first = await ws.receive()
            assert first["type"] == "snapshot" and first["user"] == DEMO_USERNAME
            await asyncio.to_thread(server.ws_send, {"type": "event", "id": 42})
            async for message in ws:
                assert message["type"] != "ping"
                if message["type"] == "event":
                    assert message["id"] == 42
                    break
        stats = server.stats()
        assert stats["ws_handshakes"] == {"attempted": 1, "accepted": 1, "denied": 0}
        assert ws_token_requests(server) == 1
        # the token was in the header, never in the URL
        ws_log = [entry for entry in stats["log"] if entry["path"] == WS_EVENTS_PATH]
        assert [(e["query"], e["has_authorization"]) for e in ws_log] == [("", True)]

    await bounded(scenario())


async def poll_until(condition, bound: float = 30.0, step: float = 0.1) -> None:
    """Poll ``condition`` (blocking: run in a thread) until true; fail after ``bound`` s (a hang bound)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    while not await asyncio.to_thread(condition):
        assert loop.time() < end, "condition not reached within the hang bound"
        await asyncio.sleep(step)


async def test_pings_are_answered_and_not_returned(server: RefServer, auth: RecordingAuthClient) -> None:
    async def scenario() -> None:
        async with WebSocketClient(auth) as ws:
            assert (await ws.receive())["type"] == "snapshot"
            # the server pings every second; the client answers in the background: wait until two
            # pongs came back (polled, with a generous hang bound) instead of sleeping a fixed time
            await poll_until(lambda: len(server.stats()["pongs"]) >= 2)
            await asyncio.to_thread(server.ws_send, {"type": "event", "id": 1})
            assert await ws.receive() == {"type": "event", "id": 1}
        pongs = server.stats()["pongs"]
        assert len(pongs) >= 2
        assert all(pong["matched"] for pong in pongs)

    await bounded(scenario())


async def test_handshake_401_is_recovered_with_one_new_ws_token(server: RefServer, auth: RecordingAuthClient) -> None:
    server.add_fault(WS_EVENTS_PATH, status=401, body='{"detail": "Invalid or expired ws token."}', count=1)

    async def scenario() -> None:
        async with WebSocketClient(auth) as ws:
            assert (await ws.receive())["type"] == "snapshot"
        stats = server.stats()
        assert stats["ws_handshakes"] == {"attempted": 2, "accepted": 1, "denied": 1}
        assert ws_token_requests(server) == 2
        assert len(set(auth.ws_tokens)) == 2

    await bounded(scenario())


async def test_handshake_401_twice_is_an_authentication_error(server: RefServer, auth: RecordingAuthClient) -> None:
    import kitty_auth

    server.add_fault(WS_EVENTS_PATH, status=401, count=2)

    async def scenario() -> None:
        with pytest.raises(kitty_auth.SessionExpiredError):
            async with WebSocketClient(auth):
                pass
        assert server.stats()["ws_handshakes"]["denied"] == 2
        assert auth.is_authenticated()  # the stored session is not thrown away for a ws denial

    await bounded(scenario())


async def test_ws_token_401_is_recovered_with_one_refresh(server: RefServer, auth: RecordingAuthClient) -> None:
    server.add_fault(WS_TOKEN_PATH, status=401,
                     body='{"detail": "Given token not valid for any token type", "code": "token_not_valid"}',
                     count=1)

    async def scenario() -> None:
        async with WebSocketClient(auth) as ws:
            assert (await ws.receive())["type"] == "snapshot"
        requests = server.stats()["requests"]
        assert requests.get(REFRESH_PATH, 0) == 1
        assert requests.get(WS_TOKEN_PATH, 0) == 2
        assert server.stats()["ws_handshakes"]["accepted"] == 1

    await bounded(scenario())


async def test_a_server_side_disconnect_is_recovered(server: RefServer, auth: RecordingAuthClient) -> None:
    server.add_fault(WS_EVENTS_PATH, disconnect_after_messages=1, close_code=1011, count=1)

    async def scenario() -> None:
        async with WebSocketClient(auth, reconnect_policy=FAST) as ws:
            assert (await ws.receive())["type"] == "snapshot"
            assert (await ws.receive())["type"] == "snapshot"  # after the reconnect: a reset
            assert ws.connections == 2
        stats = server.stats()
        assert stats["ws_handshakes"] == {"attempted": 2, "accepted": 2, "denied": 0}
        assert ws_token_requests(server) == 2
        assert len(set(auth.ws_tokens)) == 2

    await bounded(scenario())


async def test_a_normal_close_by_the_server_is_recovered_too(server: RefServer, auth: RecordingAuthClient) -> None:
    async def scenario() -> None:
        async with WebSocketClient(auth, reconnect_policy=FAST) as ws:
            assert (await ws.receive())["type"] == "snapshot"
            assert await asyncio.to_thread(server.ws_disconnect, 1000) == 1
            assert (await ws.receive())["type"] == "snapshot"
            await asyncio.to_thread(server.ws_send, {"type": "event", "id": 2})
            assert await ws.receive() == {"type": "event", "id": 2}
        assert ws_token_requests(server) == 2

    await bounded(scenario())


async def test_a_reconnect_that_keeps_failing_gives_up(server: RefServer, auth: RecordingAuthClient) -> None:
    import kitty_auth

    server.add_fault(WS_EVENTS_PATH, disconnect_after_messages=1, count=1)

    async def scenario() -> None:
        async with WebSocketClient(auth, reconnect_policy=FAST, max_reconnect_attempts=2) as ws:
            assert (await ws.receive())["type"] == "snapshot"
            server.add_fault(WS_EVENTS_PATH, status=503)  # every later handshake
            with pytest.raises(kitty_auth.WebSocketError):
                await ws.receive()
        assert server.stats()["ws_handshakes"]["denied"] == 2

    await bounded(scenario())


async def test_the_connector_refuses_an_untrusted_certificate(server: RefServer) -> None:
    connector = WebsocketsLiveConnector(ssl_context_factory=lambda: ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))  # trusts no CA
    with pytest.raises(TLSVerificationError):
        await bounded(connector.connect(server.ws_url + WS_EVENTS_PATH, "not-a-real-token"))
    assert server.stats()["ws_handshakes"]["attempted"] == 0


async def test_the_connector_maps_a_denied_handshake(server: RefServer) -> None:
    connector = WebsocketsLiveConnector()
    with pytest.raises(HandshakeRejectedError) as caught:
        await bounded(connector.connect(server.ws_url + WS_EVENTS_PATH, "not-a-real-token"))
    assert caught.value.status == 401


async def test_no_token_reaches_any_log_record_or_stderr_at_debug(
    server: RefServer, auth: RecordingAuthClient, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)  # what configure_logging("DEBUG") installs
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(handler)
    secrets = []
    try:
        secrets += [auth.credentials().tokens.access, auth.credentials().tokens.refresh]
        # exercise every path: a ws-token 401 (refresh), a denied handshake, a drop and a reconnect, pings
        server.add_fault(WS_TOKEN_PATH, status=401, body='{"code": "token_not_valid", "detail": "x"}', count=1)
        server.add_fault(WS_EVENTS_PATH, status=401, count=1)

        async def scenario() -> None:
            async with WebSocketClient(auth, reconnect_policy=FAST) as ws:
                assert (await ws.receive())["type"] == "snapshot"
                server.add_fault(WS_EVENTS_PATH, disconnect_after_messages=1, count=1)
                await asyncio.to_thread(server.ws_disconnect, 1000)
                assert (await ws.receive())["type"] == "snapshot"
                assert (await ws.receive())["type"] == "snapshot"
                await poll_until(lambda: server.stats()["pongs_received"] >= 1)  # a ping answered

        await bounded(scenario())
        secrets += [auth.credentials().tokens.access, auth.credentials().tokens.refresh]
    finally:
        logging.getLogger().removeHandler(handler)
    secrets += auth.ws_tokens
    assert len(auth.ws_tokens) >= 4
    assert server.stats()["pongs_received"] >= 1

    messages = [record.getMessage() for record in caplog.records]
    wire = [m for r, m in zip(caplog.records, messages, strict=True) if r.name == "websockets.client"]
    assert any(m == "> Authorization: <redacted>" for m in wire), "websockets did not log its handshake at DEBUG"
    assert any(r.name.startswith("httpcore") for r in caplog.records)
    stderr = capsys.readouterr().err
    assert "Authorization: <redacted>" in stderr
    for secret in secrets:
        for message in messages:
            assert secret not in message
        assert secret not in caplog.text
        assert secret not in stderr


LIVE_SYNC_SCRIPT = """
import asyncio, logging, os, kitty_auth
logging.basicConfig(level=logging.DEBUG)  # a host application logging everything to stderr

class Recording(kitty_auth.AuthClient):
    def obtain_ws_token(self, access_token=None):
        token = super().obtain_ws_token(access_token)
        with open(os.environ["E2E_SECRETS_OUT"], "a") as fh:
            fh.write(token.ws_token + "\\n")
        return token

async def main():
    async with kitty_auth.WebSocketClient(Recording()) as ws:
        first = await ws.receive()
        second = await ws.receive()  # after the server's disconnect: a new connection
        print(first["type"], second["type"], ws.connections)
    async with kitty_auth.WebSocketClient() as ws:  # the default AuthClient
        print((await ws.receive())["type"])

asyncio.run(asyncio.wait_for(main(), 30))
"""


def test_the_installed_library_in_a_fresh_interpreter_logs_no_secret(e2e: Any) -> None:
    assert e2e.login().returncode == 0
    e2e.server.add_fault(WS_EVENTS_PATH, status=401, count=1)
    e2e.server.add_fault(WS_EVENTS_PATH, disconnect_after_messages=1, count=1)
    run = e2e.library(LIVE_SYNC_SCRIPT)
    assert run.returncode == 0, run.output
    assert run.stdout.split("\n")[:2] == ["snapshot snapshot 2", "snapshot"]
    assert "Authorization: <redacted>" in run.stderr
    assert len(e2e.secrets) >= 4  # the password, the stored tokens and the ws tokens all join the leak check
    # e2e's teardown fails the test if any of them is in any output or the server log
