"""The TokenGateway for simplejwt servers: obtain, refresh, ws-token and blacklist over the shared HTTPS core.

:class:`HttpxTokenGateway` is an :class:`~kitty_auth.adapters.https_client.HttpsClient` (TLS
trust, timeouts and the total deadline, late answers, body cap, redirect refusal, log
redaction: see that module) that speaks simplejwt's JSON endpoints under ``/api/v1/``. Bodies are
read only for a 200 and validated with pydantic; a status becomes a domain error with a hint that
fits the call (a login's 400 is missing fields, a refresh's 4xx means log in again). The
container shares one instance with the OAuth gateway, so both protocols use one connection pool.

This module imports httpx, truststore and pydantic; it is meant to be imported only on network
paths (the container decides), never by ``auth status``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from kitty_auth.adapters.https_client import (
    CHECK_URL_HINT,
    LOGIN_AGAIN_HINT,
    HttpsClient,
    raise_for_status,
)
from kitty_auth.adapters.response_fields import Instant, Seconds, SessionId, Slug, Token, parse
from kitty_auth.adapters.token_syntax import is_token
from kitty_auth.domain.errors import (
    InvalidCredentialsError,
    MalformedResponseError,
    TokenRejectedError,
    UnexpectedStatusError,
)
from kitty_auth.domain.interrupts import INTERRUPTS
from kitty_auth.domain.model import MAX_LIFETIME, IssuedTokens, WsToken, normalize_server_url

logger = logging.getLogger("kitty_auth.http")

TOKEN_PATH: Final = "/api/v1/token/"
REFRESH_PATH: Final = "/api/v1/token/refresh/"
BLACKLIST_PATH: Final = "/api/v1/token/blacklist/"
WS_TOKEN_PATH: Final = "/api/v1/ws-token/"

BLACKLIST_TIMEOUT: Final = 5.0  # logout: best effort, never long
MISSING_FIELDS_HINT: Final = "; the server says the username or password is missing"

Operation = Literal["obtain", "refresh", "ws_token", "blacklist"]


# --------------------------------------------------------------------------- response models


class TokenPairResponse(BaseModel):
    """200 body of /token/ and /token/refresh/. Extra fields are ignored.

    The lifetime fields matter only for opaque tokens (a JWT's lifetime comes from its claims);
    ``access_lifetime`` is another name for ``expires_in``. The tokens are left out of ``repr``.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    access: Token = Field(repr=False)
    refresh: Token = Field(repr=False)
    team_slug: Slug | None = None
    session_id: SessionId | None = None
    expires_in: Seconds | None = None
    access_lifetime: Seconds | None = None
    refresh_token_expires_in: Seconds | None = None
    refresh_token_expires_at: Instant | None = None

    def issued(self) -> IssuedTokens:
        return IssuedTokens(
            access=self.access,
            refresh=self.refresh,
            expires_in=self.expires_in if self.expires_in is not None else self.access_lifetime,
            refresh_expires_in=self.refresh_token_expires_in,
            refresh_expires_at=self.refresh_token_expires_at,
            team_slug=self.team_slug,
            session_id=self.session_id,
        )


class WsTokenResponse(BaseModel):
    """200 body of /ws-token/: ``ws_token`` (left out of ``repr``) plus ``expires_at`` and/or ``expires_in``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    ws_token: Token = Field(repr=False)
    expires_at: Instant | None = None
    expires_in: Annotated[StrictInt, Field(ge=0, le=int(MAX_LIFETIME.total_seconds()))] | None = None
    ws_url: StrictStr | None = None


class HttpxTokenGateway(HttpsClient):
    """TokenGateway over simplejwt's endpoints. Thread-safe; call :meth:`close` (or use ``with``) when done."""

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        base = normalize_server_url(server_url)
        status, body = self._post(base, TOKEN_PATH, {"username": username, "password": password})
        self._check_status("obtain", status)
        return parse(TokenPairResponse, body).issued()

    def refresh(
        self, server_url: str, refresh_token: str, on_late: Callable[[IssuedTokens], None] | None = None
    ) -> IssuedTokens:
        """Rotate ``refresh_token``. See the port: ``on_late`` receives an answer that came too late.

        While an earlier refresh with the same token is still in flight in this process (its
        caller gave up), the token is not sent again -- the server may already have rotated it,
        and a second request could only be refused and cost the session: this call waits for
        the earlier answer instead.
        """
        base = normalize_server_url(server_url)

        def late(status: int, body: bytes) -> None:
            if on_late is None or status != 200:
                return
            try:
                issued = parse(TokenPairResponse, body).issued()
            except MalformedResponseError:
                return
            on_late(issued)

        status, body = self.request(
            "POST", f"{base}{REFRESH_PATH}", json={"refresh": refresh_token},
            body_for_any_status=False, on_late=late, key=refresh_token,
        )
        try:
            self._check_status("refresh", status)
            return parse(TokenPairResponse, body).issued()
        except INTERRUPTS:  # the answer is in hand: it reaches the store before the interrupt goes on
            late(status, body)
            raise

    def blacklist(self, server_url: str, refresh_token: str, deadline: float = BLACKLIST_TIMEOUT) -> str:
        """Revoke a password session's refresh token (simplejwt's blacklist endpoint), within ``deadline`` s (5 s).

        Returns ``"revoked"`` (200), ``"absent"`` (404: the server has no blacklist endpoint) or
        ``"refused"`` (401: the token was already invalid). Raises like the other calls
        (NetworkError, ServerUnavailableError, UnexpectedStatusError...).
        """
        base = normalize_server_url(server_url)
        status, _ = self.request(
            "POST", f"{base}{BLACKLIST_PATH}", json={"refresh": refresh_token},
            deadline=min(deadline, BLACKLIST_TIMEOUT, self._total_timeout), body_for_any_status=False,
        )
        if status == 200:
            return "revoked"
        if status == 404:
            return "absent"
        if status == 401:
            return "refused"
        self._check_status("blacklist", status)
        raise UnexpectedStatusError(status)  # pragma: no cover - _check_status raised

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        base = normalize_server_url(server_url)
        if not is_token(access_token):
            # Never hand h11 a header value it would reject (and quote in its error message):
            # a token we cannot send is one the server would not accept.
            raise TokenRejectedError()
        status, body = self._post(
            base, WS_TOKEN_PATH, {}, headers={"Authorization": f"Bearer {access_token}"}
        )
        self._check_status("ws_token", status)
        parsed = parse(WsTokenResponse, body)
        received = datetime.now(UTC)
        expires_in = parsed.expires_in
        # Both bounded by the model (Instant, MAX_LIFETIME): no arithmetic here can overflow.
        if parsed.expires_at is not None:
            expires_at = parsed.expires_at
            if expires_in is None:
                expires_in = max(0, int((expires_at - received).total_seconds()))
        elif expires_in is not None:
            expires_at = received + timedelta(seconds=expires_in)
        else:
            raise MalformedResponseError()
        return WsToken(
            ws_token=parsed.ws_token,
            expires_at=expires_at,
            expires_in=expires_in,
            ws_url=_checked_ws_url(parsed.ws_url, base),
        )

    # -- internals

    def _post(
        self,
        base: str,
        path: str,
        payload: dict[str, str],
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """POST JSON to one of the simplejwt endpoints; the body is read only for a 200."""
        return self.request("POST", f"{base}{path}", json=payload, headers=headers, body_for_any_status=False)

    @staticmethod
    def _check_status(op: Operation, status: int) -> None:
        if status == 200:
            return
        if status == 401:
            if op == "obtain":
                raise InvalidCredentialsError()
            raise TokenRejectedError()
        hint = ""
        if 400 <= status < 500:
            if op == "obtain":
                hint = MISSING_FIELDS_HINT if status == 400 else CHECK_URL_HINT
            else:
                hint = LOGIN_AGAIN_HINT
        raise_for_status(status, hint)  # 3xx, 429 and 5xx first, then ``hint``


def _checked_ws_url(ws_url: str | None, base: str) -> str | None:
    """The ``ws_url`` a ws-token answer named, if it is safe to connect to; else None.

    Used only when it is ``wss://`` on the server URL's host and port (the stored session's
    server) and carries no user info, query or fragment: the ws token goes there in a header,
    so a URL elsewhere would hand it to another server. Anything else is ignored (DEBUG log,
    the default ``wss://<host>/ws/v1/events/`` is used): the ws token itself is still good.
    """
    if ws_url is None:
        return None
    try:
        parts = urlsplit(ws_url)
        server = urlsplit(base)
        same_origin = (
            parts.hostname is not None
            and parts.hostname == server.hostname
            and (parts.port or 443) == (server.port or 443)
        )
    except ValueError:
        same_origin = False
    if (
        not same_origin
        or parts.scheme.lower() != "wss"
        or parts.username is not None
        or parts.password is not None
        or parts.query
        or parts.fragment
        or any(ch.isspace() or ord(ch) < 32 or ord(ch) > 126 for ch in ws_url)
    ):
        logger.debug("ignored the ws_url of the ws-token answer (not wss:// on the server's host and port)")
        return None
    return ws_url
