"""The reference server's Django REST framework API: token URLs, the ws-token view, ws-token store and lifetimes.

Import only after `refserver.config.configure_django` has run (simplejwt reads settings at import).
"""

from __future__ import annotations

import secrets
import threading
import time
from datetime import datetime, timedelta, timezone

from django.contrib.auth import get_user_model
from django.urls import path
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from refserver import DEFAULT_WS_TOKEN_LIFETIME


def utc_iso(moment: datetime) -> str:
    """ISO 8601 UTC with a trailing Z, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class WsTokenStore:
    """Opaque, single-use WebSocket tokens kept in memory (views run in a worker thread, the socket on the loop)."""

    def __init__(self, lifetime: float = DEFAULT_WS_TOKEN_LIFETIME) -> None:
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}

    def issue(self, username: str) -> tuple[str, datetime]:
        token = secrets.token_urlsafe(32)
        expires = time.time() + self.lifetime
        with self._lock:
            self._tokens[token] = (username, expires)
        return token, datetime.fromtimestamp(expires, timezone.utc)

    def consume(self, token: str) -> str | None:
        """The username the token was issued to, or None if unknown, used or expired. The token is spent."""
        with self._lock:
            username, expires = self._tokens.pop(token, (None, 0.0))
        return username if expires > time.time() else None


ws_tokens = WsTokenStore()


def get_lifetimes() -> dict[str, float]:
    return {
        "access": AccessToken.lifetime.total_seconds(),
        "refresh": RefreshToken.lifetime.total_seconds(),
        "ws": ws_tokens.lifetime,
    }


def set_lifetimes(access: float | None = None, refresh: float | None = None, ws: float | None = None) -> None:
    """Change lifetimes for tokens issued from now on (simplejwt reads the class attributes at token creation)."""
    if access is not None:
        AccessToken.lifetime = timedelta(seconds=access)
    if refresh is not None:
        RefreshToken.lifetime = timedelta(seconds=refresh)
    if ws is not None:
        ws_tokens.lifetime = ws


def create_user(username: str, password: str) -> None:
    """Create the user, or reset the password of an existing one."""
    user, _ = get_user_model().objects.get_or_create(username=username)
    user.set_password(password)
    user.is_active = True
    user.save()


class WsTokenView(APIView):
    authentication_classes = [JWTAuthentication]
    permission_classes = [IsAuthenticated]

    def post(self, request: Request) -> Response:
        token, expires_at = ws_tokens.issue(request.user.get_username())
        return Response({"ws_token": token, "expires_at": utc_iso(expires_at), "expires_in": int(ws_tokens.lifetime)})


urlpatterns = [
    path("api/v1/token/", TokenObtainPairView.as_view()),
    path("api/v1/token/refresh/", TokenRefreshView.as_view()),
    path("api/v1/ws-token/", WsTokenView.as_view()),
]
