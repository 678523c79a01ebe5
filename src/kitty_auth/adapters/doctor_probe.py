"""What `auth doctor` learns from each server: reachable over HTTPS, how fast, which kind, and its clock.

The ``ServerProbe`` port (``domain/doctor.py``). Each server gets the request `login` starts with
-- an unauthenticated GET of its RFC 8414 metadata -- through the login code itself
(``ChooseLoginMethod`` over ``HttpxOAuthGateway``), so its verdict (OAuth, password server, or
the error login would give) is login's own. The request goes through the shared HTTPS core
(``HttpsClient.request``): the same trust, deadline and log redaction as every other request;
it carries no token. ``_Timed`` in front of the core keeps what the doctor needs besides: the
time the request took, the answer's status and its ``Date`` header.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from kitty_auth.adapters.https_client import HttpsClient
from kitty_auth.adapters.oauth_gateway import HttpxOAuthGateway
from kitty_auth.domain.doctor import ServerFacts
from kitty_auth.domain.errors import AuthError
from kitty_auth.domain.oauth_use_cases import ChooseLoginMethod
from kitty_auth.domain.ports import Clock

_MAX_PARALLEL = 8


class _Timed:
    """An ``HttpsClient`` for one probe: the shared core's request, plus its status, duration and Date."""

    def __init__(self, http: HttpsClient, clock: Clock) -> None:
        self._http, self._clock = http, clock
        self.status: int | None = None
        self.rtt_ms: int | None = None
        self.date: str | None = None
        self.local_time: datetime | None = None

    def request(self, method: str, url: str, **options: Any) -> tuple[int, bytes]:
        headers: dict[str, str] = {}
        sent, started = self._clock.now(), time.monotonic()
        status, body = self._http.request(method, url, response_headers=headers, **options)
        elapsed = time.monotonic() - started
        self.status, self.rtt_ms, self.date = status, round(elapsed * 1000), headers.get("date")
        self.local_time = sent + (self._clock.now() - sent) / 2  # the Date was set about half-way
        return status, body


def _date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)  # "-0000": UTC, source unknown


class HttpsServerProbe:
    def __init__(self, http: HttpsClient, clock: Clock) -> None:
        self._http, self._clock = http, clock

    def probe(self, urls: Sequence[str]) -> list[ServerFacts]:
        if len(urls) <= 1:
            return [self._probe(url) for url in urls]
        with ThreadPoolExecutor(max_workers=min(_MAX_PARALLEL, len(urls)), thread_name_prefix="kitty-auth-doctor") as pool:
            return list(pool.map(self._probe, urls))

    def _probe(self, url: str) -> ServerFacts:
        timed = _Timed(self._http, self._clock)
        try:
            plan = ChooseLoginMethod(HttpxOAuthGateway(timed)).execute(url, None)  # type: ignore[arg-type]
        except AuthError as exc:
            if timed.status is None:  # no HTTP answer: not reached (refused, DNS, TLS, a bad URL...)
                return ServerFacts(url, reached=False, error=exc)
            return ServerFacts(url, reached=True, status=timed.status, rtt_ms=timed.rtt_ms, kind_error=exc,
                               server_time=_date(timed.date), local_time=timed.local_time)
        return ServerFacts(url, reached=True, status=timed.status, rtt_ms=timed.rtt_ms, login_method=plan.method,
                           server_time=_date(timed.date), local_time=timed.local_time)
