"""Starts, drives and stops the reference server from tests, using only the standard library.

    with RefServer(tmp_dir) as server:
        server.url, server.ca_path
        server.add_fault("/api/v1/token/refresh/", status=503, count=1)
        server.add_fault("/oauth/token", after_view=True, close=True)     # processed, answer lost
        server.set_options(oauth_metadata="off", opaque_tokens=True)      # see refserver.options.Options
        server.approve_device(verification_uri_complete)                  # see refserver.approve
        server.stats()["requests"], server.events(), server.refresh_token_accepted(token)

See README.md beside this file for the endpoints and the whole control API.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from refserver import (
    CONTROL_PREFIX,
    CONTROL_SECRET_HEADER,
    DEFAULT_ACCESS_LIFETIME,
    DEFAULT_PING_INTERVAL,
    DEFAULT_REFRESH_LIFETIME,
    DEMO_PASSWORD,
    DEMO_USERNAME,
    issued,
)

__all__ = ["DEMO_PASSWORD", "DEMO_USERNAME", "RefServer", "RefServerError"]

SERVER_SCRIPT = Path(__file__).resolve().with_name("server.py")


class RefServerError(RuntimeError):
    """The reference server failed to start or a control call failed."""


class RefServer:
    """The reference server in a subprocess, with its control API."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        access_lifetime: float = DEFAULT_ACCESS_LIFETIME,
        refresh_lifetime: float = DEFAULT_REFRESH_LIFETIME,
        ping_interval: float = DEFAULT_PING_INTERVAL,
        python: str = sys.executable,
        *,
        port: int = 0,
        start_timeout: float = 300.0,  # a hang bound: the ready file or the process's exit ends the wait first
    ) -> None:
        self.state_dir = Path(state_dir)
        self.access_lifetime = access_lifetime
        self.refresh_lifetime = refresh_lifetime
        self.ping_interval = ping_interval
        self.python = python
        self.port = port
        self.start_timeout = start_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._ready: dict[str, Any] | None = None
        self._ssl_context: ssl.SSLContext | None = None

    # ------------------------------------------------------------------------------------------- lifecycle

    def __enter__(self) -> RefServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    @property
    def log_path(self) -> Path:
        """The server's stdout and stderr."""
        return self.state_dir / "server.log"

    def start(self, *, port: int | None = None, keep_state: bool = False, options: dict[str, Any] | None = None,
              lifetimes: dict[str, float] | None = None) -> None:
        """Start the server on `port` (default: the constructor's). `keep_state`: with the database, CA, signing key
        and token journal `state_dir` holds from a previous start, and the log appended to (see `restart`).
        `options`, `lifetimes`: as set_options and set_lifetimes would set them, in force from the first request."""
        if self._process is not None:
            raise RefServerError("the reference server is already running")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        ready_path = self.state_dir / "ready.json"
        ready_path.unlink(missing_ok=True)
        command = [
            self.python, str(SERVER_SCRIPT),
            "--state-dir", str(self.state_dir),
            "--port", str(self.port if port is None else port),
            "--access-lifetime", str(self.access_lifetime),
            "--refresh-lifetime", str(self.refresh_lifetime),
            "--ping-interval", str(self.ping_interval),
            "--set-options", json.dumps(options or {}),
            "--set-lifetimes", json.dumps(lifetimes or {}),
        ] + (["--keep-state"] if keep_state else [])  # fmt: skip
        with open(self.log_path, "ab" if keep_state else "wb") as log:
            self._process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            ready = self._read_ready(ready_path)
            if ready is not None:
                self._ready = ready
                return
            if self._process.poll() is not None:
                code = self._process.returncode
                self._process = None
                raise RefServerError(f"the reference server exited with status {code}:\n{self._log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RefServerError(f"the reference server was not ready within {self.start_timeout} s:\n{self._log_text()}")
            time.sleep(0.05)

    def _read_ready(self, ready_path: Path) -> dict[str, Any] | None:
        try:
            ready = json.loads(ready_path.read_text())
        except (OSError, ValueError):
            return None
        return ready if ready.get("pid") == self._process.pid else None

    def _log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the server has not exited within `timeout` seconds."""
        process, self._process, self._ready, self._ssl_context = self._process, None, None, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self, timeout: float = 10.0) -> None:
        """Stop the server (as `stop`) and start it again on the same port with the same database, CA and signing key:
        the tokens it issued stay valid and clients keep trusting it. Its lifetimes and options are what they were
        from the first request on; faults, statistics and stored events start empty. A request in flight meanwhile
        loses its answer."""
        port = urlsplit(self.url).port
        lifetimes, options = self.lifetimes(), self.options()
        self.stop(timeout)
        self.start(port=port, keep_state=True, options=options, lifetimes=lifetimes)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # ------------------------------------------------------------------------------------------- properties

    @property
    def ready(self) -> dict[str, Any]:
        if self._ready is None:
            raise RefServerError("the reference server is not running")
        return self._ready

    @property
    def url(self) -> str:
        """https://127.0.0.1:PORT (no trailing slash)."""
        return self.ready["url"]

    @property
    def ws_url(self) -> str:
        return "wss://" + self.url.removeprefix("https://")

    @property
    def ca_path(self) -> Path:
        return Path(self.ready["ca"])

    @property
    def control_secret(self) -> str:
        return self.ready["control_secret"]

    @property
    def pid(self) -> int:
        return self.ready["pid"]

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting only the server's CA."""
        if self._ssl_context is None:
            self._ssl_context = ssl.create_default_context(cafile=str(self.ca_path))
        return self._ssl_context

    # ------------------------------------------------------------------------------------------ control API

    def control(self, method: str, endpoint: str, payload: Any = None) -> Any:
        """Call /_control/<endpoint> and return the decoded JSON answer."""
        address = urlsplit(self.url)
        connection = http.client.HTTPSConnection(address.hostname, address.port, context=self.ssl_context(), timeout=10)
        headers = {CONTROL_SECRET_HEADER: self.control_secret, "Content-Type": "application/json"}
        body = None if payload is None else json.dumps(payload)
        try:
            connection.request(method, CONTROL_PREFIX + endpoint, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        if response.status != 200:
            raise RefServerError(f"control {method} {endpoint} answered {response.status}: {text}")
        return json.loads(text)

    def add_fault(
        self,
        path: str,
        *,
        status: int | None = None,
        body: str | None = None,
        content_type: str = "application/json",
        delay: float | None = None,
        count: int | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
        disconnect_after_messages: int | None = None,
        disconnect_after_seconds: float | None = None,
        close_code: int | None = None,
        after_view: bool = False,
    ) -> dict[str, Any]:
        """Add a fault for requests on exactly `path` (see refserver.asgi.Fault); returns it, with its id.

        Before the view (the default): `delay`, then `close` (drop) or `status` instead of the view.
        `after_view=True` (HTTP): the view runs (a refresh rotates and blacklists the old token), then `delay`
        seconds pass, then `close=True` drops the connection without an answer, `status` answers instead of the
        view, or else the view's answer goes out late; the stats log entry gets the view's `view_status`."""
        fault = {
            "path": path, "status": status, "body": body, "content_type": content_type, "delay": delay,
            "count": count, "headers": headers, "close": close, "close_code": close_code,
            "disconnect_after_messages": disconnect_after_messages,
            "disconnect_after_seconds": disconnect_after_seconds, "after_view": after_view,
        }  # fmt: skip
        return self.control("POST", "faults", fault)

    def faults(self) -> list[dict[str, Any]]:
        return self.control("GET", "faults")["faults"]

    def clear_faults(self) -> None:
        self.control("DELETE", "faults")

    def stats(self) -> dict[str, Any]:
        """{"requests": {path: n}, "connections": n, "ws_handshakes": {"attempted","accepted","denied"},
        "pongs_received": n, "pongs": [{"timestamp","matched","user"}], "ws_messages_received": n,
        "log": [{"time","type","method","path","query","client","has_authorization","fault","status"}]}
        (`status`: the answer sent, None if none was, even if the client had gone; after-view faults add the view's
        `view_status`)"""
        return self.control("GET", "stats")

    def reset_stats(self) -> None:
        self.control("POST", "stats/reset")

    def lifetimes(self) -> dict[str, float]:
        return self.control("GET", "lifetimes")

    def set_lifetimes(self, access: float | None = None, refresh: float | None = None, ws: float | None = None) -> dict[str, float]:
        """Lifetimes in seconds of tokens issued from now on, by the password and the OAuth server alike (OAuth refresh
        tokens, as django-oauth-toolkit counts them, die `refresh` seconds after their access token expires); None
        leaves one unchanged."""
        changes = {"access": access, "refresh": refresh, "ws": ws}
        return self.control("POST", "lifetimes", {key: value for key, value in changes.items() if value is not None})

    def create_user(
        self,
        username: str,
        password: str,
        *,
        name: str | None = None,
        team_slug: str | None = None,
        teams: list[dict[str, Any]] | None = None,
    ) -> str:
        """Create a user (or reset an existing user's password and teams); returns its team slug.

        `teams`: [{"slug", "name", "role", "is_private_teamspace"}] as `GET /api/v1/me` shows them (default: a
        private teamspace named after the address); `team_slug` (password logins' team) defaults to the first
        shared team, else the private teamspace."""
        user = {"username": username, "password": password, "name": name, "team_slug": team_slug, "teams": teams}
        return self.control("POST", "users", user)["team_slug"]

    def options(self) -> dict[str, Any]:
        """The server's run-time options (see refserver.options.Options for each one's meaning)."""
        return self.control("GET", "options")

    def set_options(self, **changes: Any) -> dict[str, Any]:
        """Change run-time options, e.g. `set_options(team_slug=False, opaque_tokens=True)`; returns all of them.
        `reset()` restores the defaults."""
        return self.control("POST", "options", changes)

    def events(self) -> list[dict[str, Any]]:
        """Events the server received from the host, in order: [{"source": "batch" | "ws", "user",
        "received_at", "event": <the event object as sent>}]."""
        return self.control("GET", "events")["events"]

    def clear_events(self) -> None:
        self.control("DELETE", "events")

    def ws_send(self, message: dict[str, Any]) -> int:
        """Push `message` to every open events WebSocket; returns how many there were."""
        return self.control("POST", "ws/send", {"message": message})["sessions"]

    def ws_disconnect(self, code: int = 1000) -> int:
        """Close every open events WebSocket with `code`; returns how many there were."""
        return self.control("POST", "ws/disconnect", {"code": code})["sessions"]

    def refresh_token_accepted(self, refresh_token: str) -> bool:
        """Whether the server would accept `refresh_token` now (password server: JWT or opaque; or OAuth), without
        using it: False once rotated out, blacklisted, revoked or expired."""
        return self.control("POST", "tokens/refresh-accepted", {"refresh": refresh_token})["accepted"]

    def issued_tokens(self) -> list[dict[str, Any]]:
        """Every token the server issued since its first start (restarts included), oldest first: [{"time", "kind"
        ("access", "refresh", "ws", "device_code"), "token", "path", "request_time", "fault", "rotated_from_sha256"}]
        (see refserver.issued). Read from its state directory: works while the server runs and after it stopped."""
        return issued.read(self.state_dir)

    def expire_device_codes(self) -> int:
        """Make every pending device code expire now (polls then answer `expired_token`); returns how many.
        For codes that expire by themselves, `set_options(device_expires_in=SECONDS)` before they are issued."""
        return self.control("POST", "oauth/device/expire")["expired"]

    def decide_device_code(self, user_code: str, approve: bool = True, username: str = DEMO_USERNAME) -> bool:
        """Approve (or deny) a pending device code as `username`, without the verification page; False if there
        was no pending code `user_code`. (`refserver.approve` does it through the pages, as a user would.)"""
        decision = {"user_code": user_code, "approve": approve, "username": username}
        return self.control("POST", "oauth/device/decide", decision)["decided"]

    def approve_device(self, verification_url: str, **kwargs: Any) -> None:
        """`refserver.approve.approve_device` against this server: sign in on the pages and approve (approve=False:
        deny) the device; kwargs: username, password, user_code, approve, timeout."""
        from refserver.approve import approve_device

        approve_device(verification_url, ca=self.ssl_context(), **kwargs)

    def approve_authorization(self, authorization_url: str, **kwargs: Any) -> Any:
        """`refserver.approve.approve_authorization` against this server: sign in, press Authorize (approve=False:
        Cancel); returns a `Callback` (.location, .params; .status and .body with follow=True)."""
        from refserver.approve import approve_authorization

        return approve_authorization(authorization_url, ca=self.ssl_context(), **kwargs)

    def create_machine_client(self, client_id: str = "ci-bot", *, email: str | None = None,
                              name: str | None = None) -> str:
        """Register a machine client (a confidential application for the client credentials grant) and its service
        user (`email`, default `<client_id>@spec-kitty.test`, what `me` names); returns its secret, new at each call.
        Whether its grant gives a refresh token: `set_options(machine_refresh_token=...)`."""
        payload = {"client_id": client_id, "email": email, "name": name}
        return self.control("POST", "machine-clients", {k: v for k, v in payload.items() if v is not None})["client_secret"]

    def rotate_machine_secret(self, client_id: str = "ci-bot") -> str:
        """A new secret for the machine client; the old one is refused (invalid_client), issued tokens stay valid."""
        secret = self.control("POST", "machine-clients/rotate", {"client_id": client_id})["client_secret"]
        if secret is None:
            raise RefServerError(f"no machine client {client_id!r}")
        return secret

    def revoke_machine_client(self, client_id: str = "ci-bot") -> bool:
        """Revoke the principal: its grant answers 400 invalid_client and every token of its service user dies."""
        return self.control("POST", "machine-clients/revoke", {"client_id": client_id})["revoked"]

    def reset(self) -> None:
        """No faults, empty statistics, the lifetimes the server started with, default options, no events, no machine
        clients."""
        self.control("POST", "reset")
