"""The TokenGateway the use cases see: each session is refreshed by the protocol that issued it.

Password sessions go to the simplejwt adapter (``HttpxTokenGateway``); OAuth sessions (those
with ``Credentials.oauth``) to the OAuth adapter, built on first use so that a password user
never imports OAuth code.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kitty_auth.domain.model import Credentials, Identity, IssuedTokens, WsToken
from kitty_auth.domain.oauth_errors import OAuthUnsupportedError


class SessionTokenGateway:
    def __init__(self, password: Any, oauth: Callable[[], Any] | None = None) -> None:
        self._password = password
        self._oauth = oauth

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        return self._password.obtain(server_url, username, password)  # type: ignore[no-any-return]

    def refresh(
        self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None
    ) -> IssuedTokens:
        if session.oauth is not None and self._oauth is not None:
            return self._oauth().refresh(session, on_late=on_late)  # type: ignore[no-any-return]
        return self._password.refresh(  # type: ignore[no-any-return]
            session.server_url, session.tokens.refresh, on_late=on_late
        )

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        return self._password.ws_token(server_url, access_token)  # type: ignore[no-any-return]

    def me(self, server_url: str, access_token: str) -> Identity:
        """``GET /api/v1/me`` (OAuth sessions; `auth doctor --check-session`)."""
        if self._oauth is None:
            raise OAuthUnsupportedError("OAuth sessions")
        return self._oauth().me(server_url, access_token)  # type: ignore[no-any-return]

    def close(self) -> None:
        self._password.close()
