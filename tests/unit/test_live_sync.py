"""Live sync without a network: the reconnect policy, and LiveSyncSession / WebSocketClient over in-memory fakes."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kitty_auth import AuthError, InvalidServerUrlError, SessionExpiredError, TLSVerificationError, WebSocketClient
from kitty_auth.adapters.websocket_connector import WebsocketsLiveConnector
from kitty_auth.domain.errors import MalformedResponseError, NetworkError, WebSocketError
from kitty_auth.domain.live_sync import (
    ConnectionLostError,
    HandshakeRejectedError,
    LiveSyncClosedError,
    LiveSyncSession,
    LiveTicket,
    ReconnectFailedError,
    ReconnectPolicy,
    WebSocketAuthenticationError,
    events_url,
)

URL = "wss://sync.example.test/ws/v1/events/"
DROP = object()  # scripted into a FakeConnection: the connection is lost at this point


# ------------------------------------------------------------------------------------------------ fakes


class FakeConnection:
    """A LiveConnection fed by the test: strings are received, DROP loses the connection."""

    def __init__(self, *incoming: object) -> None:
        self.incoming: asyncio.Queue[object] = asyncio.Queue()
        for item in incoming:
            self.incoming.put_nowait(item)
        self.sent: list[dict[str, Any]] = []
        self.closed = False

    def feed(self, *items: object) -> None:
        for item in items:
            self.incoming.put_nowait(item)

    async def recv(self) -> str:
        if self.closed:
            raise ConnectionLostError()
        item = await self.incoming.get()
        if item is DROP:
            raise ConnectionLostError("dropped")
        return item if isinstance(item, str) else json.dumps(item)

    async def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionLostError()
        self.sent.append(json.loads(text))

    async def close(self) -> None:
        self.closed = True


@dataclass
class FakeConnector:
    """A LiveConnector answering each connect() with the next scripted outcome (a connection or an error)."""

    outcomes: list[object]
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def connect(self, url: str, ws_token: str) -> FakeConnection:
        self.calls.append((url, ws_token))
        if not self.outcomes:
            raise ConnectionLostError("nothing scripted")
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        assert isinstance(outcome, FakeConnection)
        return outcome

    @property
    def tokens(self) -> list[str]:
        return [token for _, token in self.calls]


class Tickets:
    """A ticket source handing out distinct ws tokens (or raising scripted errors)."""

    def __init__(self, *errors: BaseException | None) -> None:
        self.issued: list[str] = []
        self.errors = list(errors)

    async def __call__(self) -> LiveTicket:
        if self.errors:
            error = self.errors.pop(0)
            if error is not None:
                raise error
        token = f"ws-token-{len(self.issued) + 1}"
        self.issued.append(token)
        return LiveTicket(URL, token)


class RecordingSleep:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)
        await asyncio.sleep(0)


class ManualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def snapshot(n: int = 1) -> dict[str, Any]:
    return {"type": "snapshot", "n": n, "items": []}


def make_session(connector: FakeConnector, tickets: Tickets | None = None, **kwargs: Any) -> LiveSyncSession:
    kwargs.setdefault("policy", ReconnectPolicy(base=0.5, cap=30.0, max_attempts=3, rng=lambda: 0.5))
    kwargs.setdefault("sleep", RecordingSleep())
    return LiveSyncSession(connector=connector, tickets=tickets or Tickets(), **kwargs)


async def eventually(condition: Callable[[], bool], bound: float = 5.0) -> bool:
    """Let the loop run until ``condition`` holds, or ``bound`` seconds pass (a hang bound only)."""
    end = asyncio.get_running_loop().time() + bound
    while not condition():
        if asyncio.get_running_loop().time() > end:
            return False
        await asyncio.sleep(0.001)
    return True


def other_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


@pytest.fixture(autouse=True)
async def bounded() -> Any:
    """No test here may hang: after 10 s every task of the loop (the test's included) is cancelled."""
    loop = asyncio.get_running_loop()

    def cancel_everything() -> None:
        for task in asyncio.all_tasks(loop):
            task.cancel("test took too long")

    handle = loop.call_later(10, cancel_everything)
    yield
    handle.cancel()


# ----------------------------------------------------------------------------------------------- policy


def test_backoff_ceiling_doubles_then_caps() -> None:
    policy = ReconnectPolicy(base=0.5, cap=30.0, rng=lambda: 1.0)
    ceilings = [policy.ceiling(n) for n in range(10)]
    assert ceilings[:7] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0]
    assert ceilings[7:] == [30.0, 30.0, 30.0]
    assert [policy.delay(n) for n in range(10)] == ceilings  # rng 1.0: the ceiling itself
    assert policy.ceiling(10_000) == 30.0  # no overflow


def test_full_jitter_uses_the_injected_random_source() -> None:
    values = iter([0.0, 0.25, 0.999])
    policy = ReconnectPolicy(base=1.0, cap=8.0, rng=lambda: next(values))
    assert [policy.delay(3), policy.delay(3), policy.delay(3)] == [0.0, 2.0, pytest.approx(7.992)]


@given(
    attempt=st.integers(min_value=0, max_value=10_000),
    base=st.floats(min_value=0.001, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=100.0),
    fraction=st.floats(min_value=0.0, max_value=1.0),
)
def test_delay_is_within_zero_and_the_capped_ceiling(attempt: int, base: float, extra: float, fraction: float) -> None:
    policy = ReconnectPolicy(base=base, cap=base + extra, rng=lambda: fraction)
    delay = policy.delay(attempt)
    assert 0.0 <= delay <= policy.ceiling(attempt) <= policy.cap
    assert policy.ceiling(attempt) <= policy.ceiling(attempt + 1)


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        ReconnectPolicy(base=0)
    with pytest.raises(ValueError):
        ReconnectPolicy(base=2, cap=1)
    with pytest.raises(ValueError):
        ReconnectPolicy(max_attempts=0)


# -------------------------------------------------------------------------------------------------- URL


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        ("https://spec-kitty-dev.fly.dev", "wss://spec-kitty-dev.fly.dev/ws/v1/events/"),
        ("https://127.0.0.1:8443/", "wss://127.0.0.1:8443/ws/v1/events/"),
        ("https://example.test/prefix/", "wss://example.test/prefix/ws/v1/events/"),
        ("HTTPS://Example.test:443/a/b", "wss://example.test:443/a/b/ws/v1/events/"),  # scheme and host case normalised
    ],
)
def test_events_url_follows_the_issuing_server(server: str, expected: str) -> None:
    assert events_url(server) == expected


@pytest.mark.parametrize("server", ["http://example.test", "ws://example.test", "wss://example.test", "example.test"])
def test_events_url_refuses_anything_but_https(server: str) -> None:
    with pytest.raises(InvalidServerUrlError):
        events_url(server)


# ---------------------------------------------------------------------------------------------- session


async def test_messages_arrive_in_order_and_pings_are_answered_not_returned() -> None:
    conn = FakeConnection(snapshot(), {"type": "ping", "timestamp": 1234.5678}, {"type": "event", "id": 1})
    session = make_session(FakeConnector([conn]))
    await session.open()
    assert await session.receive() == snapshot()
    assert await session.receive() == {"type": "event", "id": 1}
    assert conn.sent == [{"type": "pong", "timestamp": 1234.5678}]
    await session.close()


async def test_pings_are_answered_while_the_caller_is_not_receiving() -> None:
    conn = FakeConnection(snapshot(), {"type": "ping", "timestamp": 1}, {"type": "ping", "timestamp": 2})
    session = make_session(FakeConnector([conn]))
    await session.open()
    assert await eventually(lambda: len(conn.sent) == 2), conn.sent
    assert conn.sent == [{"type": "pong", "timestamp": 1}, {"type": "pong", "timestamp": 2}]
    await session.close()


async def test_messages_that_are_not_json_objects_are_skipped_without_logging_their_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    conn = FakeConnection("not json SECRET-CONTENT", "[1, 2]", '"SECRET-STRING"', "[" * 200_000, {"type": "event"})
    session = make_session(FakeConnector([conn]))
    await session.open()
    assert await session.receive() == {"type": "event"}
    await session.close()
    assert "SECRET" not in caplog.text
    assert sum("not a JSON object" in r.getMessage() for r in caplog.records) == 4


async def test_a_dropped_connection_reconnects_with_a_new_ws_token_and_delivers_the_snapshot_again() -> None:
    first, second = FakeConnection(snapshot(1), DROP), FakeConnection(snapshot(2), {"type": "event"})
    connector, tickets, sleep = FakeConnector([first, second]), Tickets(), RecordingSleep()
    session = make_session(connector, tickets, sleep=sleep)
    await session.open()
    assert await session.receive() == snapshot(1)
    assert await session.receive() == snapshot(2)  # the snapshot after a reconnect is a reset
    assert await session.receive() == {"type": "event"}
    assert connector.tokens == ["ws-token-1", "ws-token-2"]
    assert first.closed
    assert sleep.delays == [0.25]  # rng 0.5 * ceiling(0) 0.5
    assert session.connections == 2
    await session.close()


async def test_failed_reconnects_back_off_with_growing_delays_then_recover() -> None:
    lost = ConnectionLostError()
    connector = FakeConnector([FakeConnection(DROP), lost, HandshakeRejectedError(503), lost, FakeConnection(snapshot())])
    tickets, sleep = Tickets(), RecordingSleep()
    session = make_session(connector, tickets, sleep=sleep,
                           policy=ReconnectPolicy(base=0.5, cap=1.5, max_attempts=5, rng=lambda: 1.0))
    await session.open()
    assert await session.receive() == snapshot()
    assert sleep.delays == [0.5, 1.0, 1.5, 1.5]
    assert len(set(connector.tokens)) == len(connector.tokens) == 5  # a new ws token for every attempt
    await session.close()


async def test_reconnecting_gives_up_after_max_attempts() -> None:
    connector = FakeConnector([FakeConnection(snapshot(), DROP)] + [ConnectionLostError()] * 3)
    sleep = RecordingSleep()
    session = make_session(connector, sleep=sleep)
    await session.open()
    assert await session.receive() == snapshot()
    with pytest.raises(ReconnectFailedError) as caught:
        await session.receive()
    assert isinstance(caught.value, WebSocketError) and isinstance(caught.value, AuthError)
    assert isinstance(caught.value.__cause__, ConnectionLostError)
    assert len(sleep.delays) == 3 and len(connector.calls) == 4
    with pytest.raises(ReconnectFailedError):  # it stays failed
        await session.receive()
    await session.close()
    assert other_tasks() == []


async def test_a_server_that_accepts_and_drops_at_once_does_not_loop_forever() -> None:
    connector = FakeConnector([FakeConnection(DROP) for _ in range(10)])
    session = make_session(connector, monotonic=ManualClock())
    await session.open()
    with pytest.raises(ReconnectFailedError):
        await session.receive()
    assert len(connector.calls) == 4  # the first connection + max_attempts (3) unstable reconnects


async def test_a_connection_that_stayed_up_resets_the_attempt_count() -> None:
    clock = ManualClock()
    conns = [FakeConnection(snapshot(n)) for n in range(4)]
    connector = FakeConnector(list(conns))
    sleep = RecordingSleep()
    session = make_session(connector, sleep=sleep, monotonic=clock,
                           policy=ReconnectPolicy(base=1, cap=60, max_attempts=2, stable_after=10, rng=lambda: 1.0))
    await session.open()
    for n in range(4):
        assert await session.receive() == snapshot(n)
        clock.now += 11  # stayed up long enough
        conns[n].feed(DROP)
    with pytest.raises(ReconnectFailedError):
        await session.receive()
    assert sleep.delays == [1, 1, 1, 1, 2]  # reset after each stable connection; then 2 failed attempts


async def test_handshake_401_gets_one_fresh_ws_token_and_one_retry() -> None:
    connector = FakeConnector([HandshakeRejectedError(401), FakeConnection(snapshot())])
    session = make_session(connector)
    await session.open()
    assert await session.receive() == snapshot()
    assert connector.tokens == ["ws-token-1", "ws-token-2"]
    await session.close()


async def test_handshake_401_twice_is_an_authentication_error() -> None:
    connector = FakeConnector([HandshakeRejectedError(401), HandshakeRejectedError(401), FakeConnection()])
    session = make_session(connector)
    with pytest.raises(WebSocketAuthenticationError) as caught:
        await session.open()
    assert isinstance(caught.value, SessionExpiredError)
    assert "log in again" in str(caught.value)
    assert connector.tokens == ["ws-token-1", "ws-token-2"]


async def test_handshake_401_twice_while_reconnecting_ends_the_session() -> None:
    connector = FakeConnector([FakeConnection(DROP), HandshakeRejectedError(401), HandshakeRejectedError(401)])
    session = make_session(connector)
    await session.open()
    with pytest.raises(WebSocketAuthenticationError):
        await session.receive()
    assert len(connector.calls) == 3  # no backoff-driven retries after an authentication failure


async def test_the_first_connection_fails_fast() -> None:
    for error in (HandshakeRejectedError(404), HandshakeRejectedError(503), ConnectionLostError(), TLSVerificationError()):
        connector = FakeConnector([error])
        sleep = RecordingSleep()
        with pytest.raises(type(error)):
            await make_session(connector, sleep=sleep).open()
        assert len(connector.calls) == 1 and sleep.delays == []


async def test_an_expired_session_while_reconnecting_reaches_the_caller() -> None:
    tickets = Tickets(None, SessionExpiredError())
    session = make_session(FakeConnector([FakeConnection(DROP)]), tickets)
    await session.open()
    with pytest.raises(SessionExpiredError):
        await session.receive()


async def test_a_transient_ws_token_failure_while_reconnecting_is_retried() -> None:
    tickets = Tickets(None, NetworkError(), None)
    connector = FakeConnector([FakeConnection(DROP), FakeConnection(snapshot())])
    session = make_session(connector, tickets)
    await session.open()
    assert await session.receive() == snapshot()
    await session.close()


@pytest.mark.parametrize("where", ["first connection", "reconnect"])
async def test_a_malformed_ws_token_is_reported_once_and_never_retried(where: str) -> None:
    """A ws token that cannot be sent (a space, a newline) is the server's bad answer, not a lost
    connection: retrying would fetch the same kind of answer, so it reaches the caller at once."""
    connector = FakeConnector(([] if where == "first connection" else [FakeConnection(snapshot(), DROP)])
                              + [MalformedResponseError(), FakeConnection(snapshot(2))])
    sleep = RecordingSleep()
    session = make_session(connector, sleep=sleep)
    if where == "first connection":
        with pytest.raises(MalformedResponseError):
            await session.open()
        assert len(connector.calls) == 1 and sleep.delays == []
        return
    await session.open()
    assert await session.receive() == snapshot()
    with pytest.raises(MalformedResponseError):
        await session.receive()
    assert len(connector.calls) == 2 and len(sleep.delays) == 1  # one reconnect attempt, no more
    with pytest.raises(MalformedResponseError):  # it stays failed; nothing is tried again
        await session.receive()
    assert len(connector.calls) == 2
    await session.close()
    assert other_tasks() == []


@pytest.mark.parametrize("bad", ["ws token", "ws-token\nX-Injected: 1", "ws-token\r\n", ""])
async def test_the_real_connector_reports_a_malformed_ws_token_as_malformed_not_as_a_lost_connection(bad: str) -> None:
    # What the fake connector above stands for: the adapter checks the token before any traffic
    # and raises MalformedResponseError (not ConnectionLostError, which live sync would retry).
    with pytest.raises(MalformedResponseError) as caught:
        await WebsocketsLiveConnector().connect(URL, bad)
    assert not isinstance(caught.value, ConnectionLostError)
    assert "X-Injected" not in str(caught.value) and "ws token" not in str(caught.value)


async def test_a_non_401_denial_while_reconnecting_is_fatal() -> None:
    session = make_session(FakeConnector([FakeConnection(DROP), HandshakeRejectedError(403)]))
    await session.open()
    with pytest.raises(HandshakeRejectedError) as caught:
        await session.receive()
    assert caught.value.status == 403


async def test_close_stops_reconnecting_and_leaves_no_task() -> None:
    gate = asyncio.Event()

    async def blocked_sleep(_: float) -> None:
        gate.set()
        await asyncio.Event().wait()  # a long backoff

    conn = FakeConnection(snapshot(), DROP)
    connector = FakeConnector([conn, FakeConnection(snapshot())])
    session = make_session(connector, sleep=blocked_sleep)
    await session.open()
    assert await session.receive() == snapshot()
    await gate.wait()  # the reader is backing off before reconnecting
    await session.close()
    assert len(connector.calls) == 1
    assert conn.closed
    assert other_tasks() == []
    with pytest.raises(LiveSyncClosedError):
        await session.receive()
    await session.close()  # idempotent


async def test_close_wakes_a_waiting_receiver() -> None:
    conn = FakeConnection(snapshot())
    session = make_session(FakeConnector([conn]))
    await session.open()
    assert await session.receive() == snapshot()
    waiter = asyncio.create_task(session.receive())
    await asyncio.sleep(0)
    await session.close()
    with pytest.raises(LiveSyncClosedError):
        await waiter
    assert conn.closed and other_tasks() == []


# ----------------------------------------------------------------------------------------------- facade


@dataclass
class StubWsToken:
    ws_token: str


class StubAuthClient:
    """The two AuthClient methods WebSocketClient uses; a test can switch the stored server."""

    def __init__(self, server_url: str = "https://sync.example.test") -> None:
        self.server_url = server_url
        self.issued: list[str] = []

    def token_server_url(self) -> str:
        return self.server_url

    def obtain_ws_token(self) -> StubWsToken:
        self.issued.append(f"facade-ws-{len(self.issued) + 1}")
        return StubWsToken(self.issued[-1])


async def test_websocket_client_async_with_and_async_for() -> None:
    auth = StubAuthClient("https://sync.example.test:8443/base/")
    conn = FakeConnection(snapshot(), {"type": "ping", "timestamp": 7}, {"type": "event", "id": 1})
    connector = FakeConnector([conn])
    received = []
    async with WebSocketClient(auth, connector=connector) as ws:  # type: ignore[arg-type]
        async for message in ws:
            received.append(message)
            if len(received) == 2:
                break
        assert ws.connections == 1
    assert received == [snapshot(), {"type": "event", "id": 1}]
    assert conn.sent == [{"type": "pong", "timestamp": 7}]
    assert connector.calls == [("wss://sync.example.test:8443/base/ws/v1/events/", "facade-ws-1")]
    assert other_tasks() == []
    assert [m async for m in ws] == []  # closed: iteration ends


async def test_websocket_client_reconnects_with_a_new_token_and_respects_max_reconnect_attempts() -> None:
    auth = StubAuthClient()
    connector = FakeConnector([FakeConnection(snapshot(1), DROP), FakeConnection(snapshot(2), DROP)]
                              + [ConnectionLostError()] * 2)
    policy = ReconnectPolicy(base=0.001, cap=0.001, max_attempts=10)
    async with WebSocketClient(auth, connector=connector, reconnect_policy=policy,  # type: ignore[arg-type]
                               max_reconnect_attempts=3) as ws:
        assert await ws.receive() == snapshot(1)
        assert await ws.receive() == snapshot(2)
        with pytest.raises(ReconnectFailedError):  # a quick drop counts as an attempt: 1 ok + 2 failed
            await ws.receive()
    assert auth.issued == ["facade-ws-1", "facade-ws-2", "facade-ws-3", "facade-ws-4"]
    assert connector.tokens == auth.issued


async def test_websocket_client_never_sends_a_token_to_another_server() -> None:
    auth = StubAuthClient()
    conn = FakeConnection(snapshot())
    connector = FakeConnector([conn, FakeConnection(snapshot())])
    async with WebSocketClient(auth, connector=connector) as ws:  # type: ignore[arg-type]
        assert await ws.receive() == snapshot()
        auth.server_url = "https://elsewhere.example.test"  # someone logged in to another server
        conn.feed(DROP)
        with pytest.raises(WebSocketError, match="another server"):
            await ws.receive()
    assert len(connector.calls) == 1


async def test_websocket_client_refuses_a_non_https_session_before_any_connection() -> None:
    connector = FakeConnector([FakeConnection(snapshot())])
    with pytest.raises(InvalidServerUrlError):
        async with WebSocketClient(StubAuthClient("http://plain.example.test"), connector=connector):  # type: ignore[arg-type]
            pass
    assert connector.calls == []


async def test_websocket_client_is_single_use() -> None:
    connector = FakeConnector([FakeConnection(snapshot())])
    ws = WebSocketClient(StubAuthClient(), connector=connector)  # type: ignore[arg-type]
    async with ws:
        pass
    with pytest.raises(WebSocketError):
        await ws.connect()
    with pytest.raises(LiveSyncClosedError):
        await ws.receive()
    assert len(connector.calls) == 1 and other_tasks() == []
