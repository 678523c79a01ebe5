"""An httpx.Auth for the host's own API calls: the stored session's Bearer token, one refresh and one retry on 401.

    with httpx.Client(auth=BearerAuth()) as http:
        http.get("https://spec-kitty-dev.fly.dev/api/v1/...")

Sync and async clients both work. The token is only ever added to requests for the server that
issued it (same scheme, host and port); other requests go out without it. With SPEC_KITTY_SAAS_TOKEN
set, its token is used instead, for the server a login would target; a 401 then raises
EnvironmentTokenRejectedError (no refresh). A 401 gets one
refresh through ``EnsureFreshToken.after_rejection`` (single-flight across threads and
processes: whoever waited on the lock uses the token the winner stored) and one retry; a second
401 is returned to the caller as is. Blocking work (file lock, refresh request) runs in a worker
thread on the async side, so the event loop never waits on the lock. Nothing is logged.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from pathlib import Path
from typing import Any

import httpx

from kitty_auth.container import Container, build_container, load_settings
from kitty_auth.domain.token_source import BearerToken

__all__ = ["BearerAuth"]

# The flow below yields ("call", fn) for blocking work and ("send", request) for requests;
# the sync and async drivers differ only in how they run fn.
_Step = tuple[str, Any]


def _origin(url: httpx.URL | str) -> tuple[str, str, int | None]:
    u = httpx.URL(url)
    port = u.port or {"https": 443, "http": 80}.get(u.scheme)
    return (u.scheme, u.host.lower(), port)


class BearerAuth(httpx.Auth):
    """Authenticate httpx requests with the stored spec-kitty session (see the module docstring).

    ``home`` is the spec-kitty home (default ``$SPEC_KITTY_HOME``, else ``~/.spec-kitty``).
    Raises NotAuthenticatedError before sending when no session is stored, and
    SessionExpiredError when the refresh after a 401 is refused.
    """

    requires_request_body = True  # a retried request must be able to send its body again

    def __init__(self, *, home: str | Path | None = None, container: Container | None = None) -> None:
        if container is None:
            container = build_container(load_settings(home=home) if home is not None else None)
        self._container = container

    def _fresh(self) -> BearerToken:
        return self._container.token_source().current()

    def _replacing(self, rejected: BearerToken) -> Callable[[], BearerToken]:
        return lambda: self._container.token_source().after_rejection(rejected)

    def _flow(self, request: httpx.Request) -> Generator[_Step, Any, None]:
        bearer: BearerToken = yield ("call", self._fresh)
        if _origin(request.url) != _origin(bearer.server_url):
            yield ("send", request)  # not the issuing server: it never sees our token
            return
        request.headers["Authorization"] = f"Bearer {bearer.access}"
        response: httpx.Response = yield ("send", request)
        if response.status_code != 401:
            return
        bearer = yield ("call", self._replacing(bearer))  # SPEC_KITTY_SAAS_TOKEN's: an error, no refresh
        request.headers["Authorization"] = f"Bearer {bearer.access}"
        yield ("send", request)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self.requires_request_body:
            request.read()
        flow = self._flow(request)
        step = next(flow)
        while True:
            kind, value = step
            result = value() if kind == "call" else (yield value)
            try:
                step = flow.send(result)
            except StopIteration:
                return

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        import anyio.to_thread  # httpx's own dependency; works under asyncio and trio

        if self.requires_request_body:
            await request.aread()
        flow = self._flow(request)
        step = next(flow)
        while True:
            kind, value = step
            if kind == "call":
                result = await anyio.to_thread.run_sync(value)
            else:
                result = yield value
            try:
                step = flow.send(result)
            except StopIteration:
                return
