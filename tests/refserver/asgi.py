"""The reference server's ASGI application: fault injection and statistics in front of Django, the events
WebSocket, and the /_control/ API used by the test harness."""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from email.utils import formatdate
from typing import Any

from asgiref.sync import sync_to_async

from refserver import CONTROL_PREFIX, CONTROL_SECRET_HEADER, DEMO_USERNAME, WS_EVENTS_PATH, accounts, api, host, issued, machine, oauth, options
from refserver.bearer import opaque_tokens

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BadRequest(Exception):
    """A control request the server cannot act on; answered with 400 and the message."""


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def abort_connection(send: Send) -> bool:
    """Drop the TCP/TLS connection without an answer. Relies on uvicorn's objects behind `send` exposing
    `transport` and `disconnected` (true of its h11 HTTP and websockets-sansio WebSocket implementations);
    False when that is not available."""
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if transport is None:
        return False
    transport.abort()
    for _ in range(100):  # until uvicorn has seen the connection lost, so it does not try to answer
        if getattr(owner, "disconnected", True):
            break
        await asyncio.sleep(0.01)
    return True


async def send_response(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]], *, ws: bool = False) -> None:
    """A plain HTTP response, or the WebSocket denial response extension's equivalent when `ws`."""
    prefix = "websocket.http.response" if ws else "http.response"
    await send({"type": f"{prefix}.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})


def with_date(start: Message) -> Message:
    """The response start with a `Date` header (uvicorn's own is off), `date_offset` seconds off the real time."""
    headers = list(start.get("headers", []))
    if any(key.lower() == b"date" for key, _ in headers):
        return start  # a fault's own
    now = formatdate(time.time() + options.current.date_offset, usegmt=True)
    return {**start, "headers": [*headers, (b"date", now.encode("ascii"))]}


async def send_json(send: Send, status: int, payload: Any) -> None:
    await send_response(send, status, json.dumps(payload).encode(), [(b"content-type", b"application/json")])


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return body
        body += message.get("body", b"")
        if not message.get("more_body", False):
            return body


# --------------------------------------------------------------------------------------------------- faults


@dataclasses.dataclass
class Fault:
    """What to do instead of (or before, or after) answering normally, for requests on one exact path.

    HTTP: `delay` seconds first; then `close` drops the connection, or `status` answers with `body`,
    `content_type` and `headers`; with neither, the request goes on to Django (a slow server).
    HTTP with `after_view`: the request is processed first (the view runs: a refresh token is rotated and the old
    one blacklisted), then, `delay` seconds later, `close` drops the connection without an answer, or `status`
    answers instead of the view, or else the view's own answer is sent (late). ("processed, answer lost or late")
    WebSocket handshakes: `delay`, then `close` drops, `status` denies the handshake with that HTTP status;
    otherwise the handshake proceeds and an accepted socket is closed with `close_code` after the server
    sent `disconnect_after_messages` messages or after `disconnect_after_seconds`.
    `count` is how many requests the fault applies to (None: all of them)."""

    path: str
    status: int | None = None
    body: str | None = None
    content_type: str = "application/json"
    delay: float | None = None
    count: int | None = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    close: bool = False
    disconnect_after_messages: int | None = None
    disconnect_after_seconds: float | None = None
    close_code: int = 1011
    after_view: bool = False
    id: int = 0

    @classmethod
    def from_json(cls, data: Any, fault_id: int) -> Fault:
        if not isinstance(data, dict) or not isinstance(data.get("path"), str):
            raise BadRequest("a fault is a JSON object with at least a string 'path'")
        names = {field.name for field in dataclasses.fields(cls)} - {"id"}
        unknown = set(data) - names
        if unknown:
            raise BadRequest(f"unknown fault fields: {sorted(unknown)}")
        fields = {key: value for key, value in data.items() if value is not None}
        try:
            fault = cls(**fields, id=fault_id)
        except TypeError as exc:
            raise BadRequest(str(exc)) from exc
        if not isinstance(fault.headers, dict):
            raise BadRequest("fault 'headers' must be an object")
        return fault

    def response_headers(self) -> list[tuple[bytes, bytes]]:
        headers = {"content-type": self.content_type} | {key.lower(): value for key, value in self.headers.items()}
        return [(key.encode("latin-1"), str(value).encode("latin-1")) for key, value in headers.items()]

    def response_body(self) -> bytes:
        return (self.body or "").encode()


class FaultTable:
    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._next_id = 1

    def add(self, data: Any) -> Fault:
        fault = Fault.from_json(data, self._next_id)
        self._next_id += 1
        self._faults.append(fault)
        return fault

    def clear(self) -> None:
        self._faults.clear()

    def list(self) -> list[dict[str, Any]]:
        return [dataclasses.asdict(fault) for fault in self._faults]

    def take(self, path: str) -> Fault | None:
        """The first fault for `path`, spending one of its uses."""
        for fault in self._faults:
            if fault.path == path:
                if fault.count is not None:
                    fault.count -= 1
                    if fault.count <= 0:
                        self._faults.remove(fault)
                return fault
        return None


# ---------------------------------------------------------------------------------------------------- stats


class Stats:
    """What the server saw. Log entries carry no header values, so no token ends up here."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.requests: Counter[str] = Counter()
        self.connections: set[tuple[str, int]] = set()
        self.ws = {"attempted": 0, "accepted": 0, "denied": 0}
        self.pongs: list[dict[str, Any]] = []
        self.ws_messages_received = 0
        self.log: list[dict[str, Any]] = []

    def record_request(self, scope: Scope, fault: Fault | None) -> dict[str, Any]:
        path = scope["path"]
        client = scope.get("client") or ("", 0)
        self.requests[path] += 1
        if scope["type"] == "http":
            self.connections.add(tuple(client))
        else:
            self.ws["attempted"] += 1
        entry = {
            "time": datetime.now(timezone.utc).isoformat(),
            "type": scope["type"],
            "method": scope.get("method", "GET"),
            "path": path,
            "query": scope["query_string"].decode("latin-1"),
            "client": f"{client[0]}:{client[1]}",
            "has_authorization": header(scope, b"authorization") is not None,
            "fault": fault.id if fault else None,
            "status": None,
        }
        self.log.append(entry)
        return entry

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": dict(self.requests),
            "connections": len(self.connections),
            "ws_handshakes": dict(self.ws),
            "pongs_received": len(self.pongs),
            "pongs": list(self.pongs),
            "ws_messages_received": self.ws_messages_received,
            "log": list(self.log),
        }


# ------------------------------------------------------------------------------------------------ websocket


class SessionEnded(Exception):
    pass


class EventsSession:
    """One accepted events WebSocket: snapshot first, then pings (answered by pongs) and pushed messages."""

    def __init__(self, send: Send, receive: Receive, username: str, ping_interval: float, stats: Stats, fault: Fault | None) -> None:
        self._send = send
        self._receive = receive
        self._username = username
        self._ping_interval = ping_interval
        self._stats = stats
        self._fault = fault
        self._lock = asyncio.Lock()
        self._sent = 0
        self._pings_sent: set[float] = set()
        self._outbox: asyncio.Queue[dict[str, Any] | int] = asyncio.Queue()

    def push(self, message: dict[str, Any]) -> None:
        """Queue a message for the client (sent from the session's own task)."""
        self._outbox.put_nowait(message)

    def request_close(self, code: int) -> None:
        """Close the socket with `code` from the session's own task."""
        self._outbox.put_nowait(code)

    async def run(self) -> None:
        try:
            await self.send({"type": "snapshot", "user": self._username, "items": []})
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read())
                group.create_task(self._ping())
                group.create_task(self._pump_outbox())
                if self._fault and self._fault.disconnect_after_seconds is not None:
                    group.create_task(self._close_after(self._fault.disconnect_after_seconds))
        except* SessionEnded:
            pass

    async def send(self, message: dict[str, Any]) -> None:
        async with self._lock:
            try:
                await self._send({"type": "websocket.send", "text": json.dumps(message)})
            except OSError as exc:  # uvicorn's ClientDisconnected
                raise SessionEnded from exc
            self._sent += 1
            limit = self._fault.disconnect_after_messages if self._fault else None
            if limit is not None and self._sent >= limit:
                await self._close()

    async def _close(self, code: int | None = None) -> None:
        code = code if code is not None else (self._fault.close_code if self._fault else 1000)
        try:
            await self._send({"type": "websocket.close", "code": code})
        except OSError:
            pass
        raise SessionEnded

    async def _read(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                raise SessionEnded
            self._stats.ws_messages_received += 1
            try:
                data = json.loads(message.get("text") or message.get("bytes") or b"")
            except ValueError:
                continue
            if isinstance(data, dict) and data.get("type") == "pong":
                timestamp = data.get("timestamp")
                matched = isinstance(timestamp, float) and timestamp in self._pings_sent
                self._stats.pongs.append({"timestamp": timestamp, "matched": matched, "user": self._username})
            elif isinstance(data, dict) and "event_id" in data:  # an event the spec-kitty host emitted live
                host.events.add("ws", self._username, data)

    async def _ping(self) -> None:
        while True:
            await asyncio.sleep(self._ping_interval)
            timestamp = time.time()
            self._pings_sent.add(timestamp)
            await self.send({"type": "ping", "timestamp": timestamp})

    async def _pump_outbox(self) -> None:
        while True:
            item = await self._outbox.get()
            if isinstance(item, int):
                async with self._lock:
                    await self._close(item)
            await self.send(item)

    async def _close_after(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        async with self._lock:
            await self._close()


# ---------------------------------------------------------------------------------------------- application


class RefServerApp:
    """Routes /_control/ to the control API, the events path to the WebSocket handler and the rest to Django,
    applying faults and recording statistics for everything but /_control/."""

    def __init__(self, django_app: ASGIApp, control_secret: str, ping_interval: float, default_lifetimes: dict[str, float]) -> None:
        self.django_app = django_app
        self.control_secret = control_secret
        self.ping_interval = ping_interval
        self.default_lifetimes = default_lifetimes
        self.faults = FaultTable()
        self.stats = Stats()
        self.sessions: set[EventsSession] = set()
        self._shutting_down = asyncio.Event()
        self.control_routes: dict[tuple[str, str], Callable[[Any], Awaitable[Any]]] = {
            ("POST", "faults"): self._add_fault,
            ("GET", "faults"): self._list_faults,
            ("DELETE", "faults"): self._clear_faults,
            ("GET", "stats"): self._get_stats,
            ("POST", "stats/reset"): self._reset_stats,
            ("GET", "lifetimes"): self._get_lifetimes,
            ("POST", "lifetimes"): self._set_lifetimes,
            ("POST", "users"): self._create_user,
            ("GET", "options"): self._get_options,
            ("POST", "options"): self._set_options,
            ("GET", "events"): self._get_events,
            ("DELETE", "events"): self._clear_events,
            ("POST", "tokens/refresh-accepted"): self._refresh_accepted,
            ("POST", "oauth/device/expire"): self._expire_device_codes,
            ("POST", "oauth/device/decide"): self._decide_device_code,
            ("POST", "machine-clients"): self._create_machine_client,
            ("POST", "machine-clients/rotate"): self._rotate_machine_secret,
            ("POST", "machine-clients/revoke"): self._revoke_machine_client,
            ("POST", "ws/send"): self._ws_send,
            ("POST", "ws/disconnect"): self._ws_disconnect,
            ("POST", "reset"): self._reset,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(CONTROL_PREFIX):
            await self.control(scope, receive, send)
            return
        if scope["type"] not in ("http", "websocket"):
            return
        fault = self.faults.take(scope["path"])
        entry = self.stats.record_request(scope, fault)
        issued.current_request.set(entry)  # this request's task only: the token journal names its fault
        before_view = fault is not None and not (fault.after_view and scope["type"] == "http")
        if before_view and fault.delay and await self._delay_interrupted(fault.delay):
            await abort_connection(send)  # the server is shutting down: one that never answers goes away
            return
        if before_view and fault.close and await abort_connection(send):
            return
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send, entry, fault)
        else:
            await self.http(scope, receive, send, entry, fault)

    async def http(self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any], fault: Fault | None) -> None:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                message = with_date(message)
            await send(message)

        if fault and fault.after_view:
            await self.http_after_view(scope, receive, recording_send, send, entry, fault)
        elif fault and fault.status is not None:
            await read_body(receive)
            await send_response(recording_send, fault.status, fault.response_body(), fault.response_headers())
        else:
            await self.django_app(scope, receive, recording_send)

    async def http_after_view(self, scope: Scope, receive: Receive, send: Send, raw_send: Send, entry: dict[str, Any], fault: Fault) -> None:
        """Let Django process the request, holding its answer back; then apply the fault (see `Fault`)."""
        held: list[Message] = []

        async def hold(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["view_status"] = message["status"]
            held.append(message)

        await self.django_app(scope, receive, hold)
        if fault.delay and await self._delay_interrupted(fault.delay):
            await abort_connection(raw_send)
            return
        if fault.close and await abort_connection(raw_send):
            return
        if fault.status is not None:
            await send_response(send, fault.status, fault.response_body(), fault.response_headers())
            return
        for message in held:
            await send(message)

    async def websocket(self, scope: Scope, receive: Receive, send: Send, entry: dict[str, Any], fault: Fault | None) -> None:
        if (await receive())["type"] != "websocket.connect":
            return

        async def deny(status: int, body: bytes, headers: list[tuple[bytes, bytes]]) -> None:
            entry["status"] = status
            self.stats.ws["denied"] += 1
            if "websocket.http.response" in scope.get("extensions", {}):
                await send_response(send, status, body, headers, ws=True)
            else:
                await send({"type": "websocket.close", "code": 1008})  # the server answers 403

        if scope["path"] != WS_EVENTS_PATH:
            await deny(404, b'{"detail": "Not found."}', [(b"content-type", b"application/json")])
            return
        if fault and fault.status is not None:
            await deny(fault.status, fault.response_body(), fault.response_headers())
            return
        username = self._ws_user(scope)
        if username is None:
            await deny(401, b'{"detail": "Invalid or expired ws token."}', [(b"content-type", b"application/json")])
            return
        await send({"type": "websocket.accept"})
        entry["status"] = 101
        self.stats.ws["accepted"] += 1
        session = EventsSession(send, receive, username, self.ping_interval, self.stats, fault)
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)

    def begin_shutdown(self) -> None:
        """Cut fault delays short, so that shutting down does not wait for them."""
        self._shutting_down.set()

    async def _delay_interrupted(self, seconds: float) -> bool:
        """Wait `seconds`; True if cut short by `begin_shutdown`."""
        try:
            await asyncio.wait_for(self._shutting_down.wait(), seconds)
        except TimeoutError:
            return False
        return True

    @staticmethod
    def _ws_user(scope: Scope) -> str | None:
        """The user of the handshake's `Authorization: Bearer <ws token>`; the query string is never looked at."""
        scheme, _, token = (header(scope, b"authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return api.ws_tokens.consume(token.strip())

    # ------------------------------------------------------------------------------------------- control API

    async def control(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive)
        if not hmac.compare_digest((header(scope, CONTROL_SECRET_HEADER.lower().encode()) or "").encode(), self.control_secret.encode()):
            await send_json(send, 403, {"error": "missing or wrong control secret"})
            return
        handler = self.control_routes.get((scope["method"], scope["path"][len(CONTROL_PREFIX):].strip("/")))
        if handler is None:
            await send_json(send, 404, {"error": "no such control endpoint"})
            return
        try:
            payload = json.loads(body) if body else {}
            await send_json(send, 200, await handler(payload))
        except (ValueError, TypeError, BadRequest) as exc:
            await send_json(send, 400, {"error": str(exc)})

    async def _add_fault(self, payload: Any) -> Any:
        return dataclasses.asdict(self.faults.add(payload))

    async def _list_faults(self, _: Any) -> Any:
        return {"faults": self.faults.list()}

    async def _clear_faults(self, _: Any) -> Any:
        self.faults.clear()
        return {"ok": True}

    async def _get_stats(self, _: Any) -> Any:
        return self.stats.as_json()

    async def _reset_stats(self, _: Any) -> Any:
        self.stats.reset()
        return {"ok": True}

    async def _get_lifetimes(self, _: Any) -> Any:
        return api.get_lifetimes()

    async def _set_lifetimes(self, payload: Any) -> Any:
        if not isinstance(payload, dict) or set(payload) - {"access", "refresh", "ws"}:
            raise BadRequest("expected an object with optional numbers 'access', 'refresh', 'ws' (seconds)")
        api.set_lifetimes(**payload)
        return api.get_lifetimes()

    async def _create_user(self, payload: Any) -> Any:
        """{"username", "password"} and optionally "name", "team_slug", "teams" (see refserver.accounts)."""
        if not isinstance(payload, dict) or not all(isinstance(payload.get(key), str) for key in ("username", "password")):
            raise BadRequest("expected an object with strings 'username' and 'password'")
        extra = {key: payload[key] for key in ("name", "team_slug", "teams") if payload.get(key) is not None}
        profile = await sync_to_async(accounts.create_user)(payload["username"], payload["password"], **extra)
        return {"username": payload["username"], "team_slug": profile.team_slug}

    async def _get_options(self, _: Any) -> Any:
        return options.current.as_json()

    async def _set_options(self, payload: Any) -> Any:
        options.current.update(payload)
        return options.current.as_json()

    async def _get_events(self, _: Any) -> Any:
        return {"events": host.events.list()}

    async def _clear_events(self, _: Any) -> Any:
        host.events.clear()
        return {"ok": True}

    async def _ws_send(self, payload: Any) -> Any:
        if not isinstance(payload, dict) or not isinstance(payload.get("message"), dict):
            raise BadRequest("expected an object with an object 'message'")
        for session in self.sessions:
            session.push(payload["message"])
        return {"sessions": len(self.sessions)}

    async def _ws_disconnect(self, payload: Any) -> Any:
        code = payload.get("code", 1000) if isinstance(payload, dict) else 1000
        for session in self.sessions:
            session.request_close(code)
        return {"sessions": len(self.sessions)}

    async def _refresh_accepted(self, payload: Any) -> Any:
        """{"refresh": token} -> {"accepted": bool}: would the password server (JWT or opaque stand-in) or the OAuth
        token endpoint accept it as a refresh token now?"""
        token = payload.get("refresh") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            raise BadRequest("expected an object with a string 'refresh'")
        is_jwt = opaque_tokens.resolve(token).count(".") == 2
        check = api.refresh_token_accepted if is_jwt else oauth.refresh_token_accepted
        return {"accepted": await sync_to_async(check)(token)}

    async def _expire_device_codes(self, _: Any) -> Any:
        return {"expired": await sync_to_async(oauth.expire_device_codes)()}

    async def _decide_device_code(self, payload: Any) -> Any:
        """{"user_code", "approve": bool, "username" (default: the demo user)} -> {"decided": bool}"""
        if not isinstance(payload, dict) or not isinstance(payload.get("user_code"), str) or not isinstance(payload.get("approve"), bool):
            raise BadRequest("expected an object with a string 'user_code' and a boolean 'approve'")
        username = payload.get("username", DEMO_USERNAME)
        decided = await sync_to_async(oauth.decide_device_code)(payload["user_code"], payload["approve"], username)
        return {"decided": decided}

    async def _create_machine_client(self, payload: Any) -> Any:
        """{"client_id", "email"?, "name"?} -> {"client_id", "client_secret", "email"} (a new secret each time)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("client_id"), str) or not payload["client_id"]:
            raise BadRequest("expected an object with a string 'client_id'")
        extra = {key: payload[key] for key in ("email", "name") if isinstance(payload.get(key), str)}
        return await sync_to_async(machine.create_machine_client)(payload["client_id"], **extra)

    async def _rotate_machine_secret(self, payload: Any) -> Any:
        """{"client_id"} -> {"client_secret": new secret, or null for an unknown client}."""
        client_id = payload.get("client_id") if isinstance(payload, dict) else None
        if not isinstance(client_id, str):
            raise BadRequest("expected an object with a string 'client_id'")
        return {"client_secret": await sync_to_async(machine.rotate_machine_secret)(client_id)}

    async def _revoke_machine_client(self, payload: Any) -> Any:
        """{"client_id"} -> {"revoked": bool}."""
        client_id = payload.get("client_id") if isinstance(payload, dict) else None
        if not isinstance(client_id, str):
            raise BadRequest("expected an object with a string 'client_id'")
        return {"revoked": await sync_to_async(machine.revoke_machine_client)(client_id)}

    async def _reset(self, _: Any) -> Any:
        """Back to the state after start: no faults, empty statistics, start-up lifetimes, default options, no
        stored events."""
        self.faults.clear()
        self.stats.reset()
        options.current.reset()
        host.reset()
        await sync_to_async(machine.remove_machine_clients)()
        api.set_lifetimes(**self.default_lifetimes)
        return api.get_lifetimes()
