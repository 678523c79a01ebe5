"""The reference server's password API (Django REST framework + simplejwt): token, refresh, blacklist, ws-token and
`me` views, the ws-token store and token lifetimes.

Responses follow `refserver.options.current`: `team_slug`, opaque tokens, extra lifetime fields, the ws-token
fields, whether the blacklist endpoint exists.

Import only after `refserver.config.configure_django` has run (simplejwt reads settings at import).
"""

from __future__ import annotations

import secrets
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

from django.contrib.auth import get_user_model
from oauth2_provider.settings import oauth2_settings
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.views import TokenBlacklistView, TokenObtainPairView, TokenRefreshView

from refserver import DEFAULT_WS_TOKEN_LIFETIME, WS_EVENTS_PATH, accounts, issued, options
from refserver.bearer import BEARER_AUTHENTICATION, opaque_tokens, session_id


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
    """Change lifetimes for tokens issued from now on, by both the password and the OAuth server (simplejwt reads
    the class attributes at token creation; django-oauth-toolkit its settings object at each request)."""
    if access is not None:
        AccessToken.lifetime = timedelta(seconds=access)
        oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS = access
    if refresh is not None:
        RefreshToken.lifetime = timedelta(seconds=refresh)
        oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS = refresh
    if ws is not None:
        ws_tokens.lifetime = ws


# ---------------------------------------------------------------------------------------------------- tokens


class SessionTokenObtainPairSerializer(TokenObtainPairSerializer):
    """Refresh tokens carry a `sid` claim naming the login; simplejwt copies it into every access token and keeps
    it through rotations."""

    @classmethod
    def get_token(cls, user: Any) -> RefreshToken:
        token = super().get_token(user)
        token["sid"] = str(uuid.uuid4())
        return token


def token_lifetime_fields(refresh: RefreshToken | None) -> dict[str, Any]:
    # The configured lifetimes: an access token's own `exp - iat` may be a second short of it (simplejwt dates its
    # `exp` from the refresh token's creation and its `iat` from its own).
    lifetimes = get_lifetimes()
    values: dict[str, Any] = {"expires_in": int(lifetimes["access"]), "access_lifetime": int(lifetimes["access"])}
    if refresh is not None:
        lifetime = int(lifetimes["refresh"])
        values |= {
            "refresh_token_expires_in": lifetime,
            "refresh_expires_in": lifetime,
            "refresh_lifetime": lifetime,
            "refresh_token_expires_at": utc_iso(datetime.fromtimestamp(refresh["exp"], timezone.utc)),
        }
    return {name: values[name] for name in options.current.lifetime_fields() if name in values}


def shape_token_response(data: Mapping[str, Any]) -> dict[str, Any]:
    """simplejwt's {"access", "refresh"} as the options want it: `team_slug`, lifetime fields, opaque tokens."""
    access = AccessToken(data["access"], verify=False)
    refresh = RefreshToken(data["refresh"], verify=False) if "refresh" in data else None
    shaped = dict(data) | token_lifetime_fields(refresh)
    if options.current.team_slug:
        user = get_user_model().objects.get(pk=access["user_id"])
        shaped["team_slug"] = accounts.profile(user.get_username()).team_slug
    if options.current.opaque_tokens:
        shaped["access"] = opaque_tokens.wrap(data["access"], "ska_")
        if refresh is not None:
            shaped["refresh"] = opaque_tokens.wrap(data["refresh"], "skr_")
    return shaped


def refresh_token_accepted(token: str) -> bool:
    """Whether the refresh endpoint would accept `token` (a JWT or an opaque stand-in) now: signed, unexpired and
    not blacklisted. Nothing is changed."""
    try:
        RefreshToken(opaque_tokens.resolve(token))
    except TokenError:
        return False
    return True


class OpaqueRefreshMixin:
    """Accepts an opaque stand-in wherever the request body names a `refresh` token."""

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        data = kwargs.get("data")
        if isinstance(data, Mapping) and isinstance(data.get("refresh"), str):
            kwargs["data"] = {**data, "refresh": opaque_tokens.resolve(data["refresh"])}
        return super().get_serializer(*args, **kwargs)


class ShapedResponseMixin:
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        response = super().post(request, *args, **kwargs)
        if response.status_code == 200:
            response.data = shape_token_response(response.data)
            sent = request.data.get("refresh") if isinstance(request.data, Mapping) else None  # a refresh's old token
            issued.record("access", response.data.get("access"))
            issued.record("refresh", response.data.get("refresh"), rotated_from=sent)
        return response


class TokenView(ShapedResponseMixin, TokenObtainPairView):
    serializer_class = SessionTokenObtainPairSerializer


class RefreshView(ShapedResponseMixin, OpaqueRefreshMixin, TokenRefreshView):
    pass


class BlacklistView(OpaqueRefreshMixin, TokenBlacklistView):
    """simplejwt's blacklist endpoint, or a 404 when the options say the server has none."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        if not options.current.blacklist_endpoint:
            return Response({"detail": "Not found."}, status=404)
        return super().post(request, *args, **kwargs)


# ------------------------------------------------------------------------------------------- bearer-protected


class ProtectedView(APIView):
    """A view that needs a Bearer access token: simplejwt (JWT or opaque) or OAuth."""

    authentication_classes = BEARER_AUTHENTICATION
    permission_classes = [IsAuthenticated]


class WsTokenView(ProtectedView):
    def post(self, request: Request) -> Response:
        token, expires_at = ws_tokens.issue(request.user.get_username())
        issued.record("ws", token)
        available = {
            "expires_at": utc_iso(expires_at),
            "expires_in": int(ws_tokens.lifetime),
            "ws_url": f"wss://{request.get_host()}{WS_EVENTS_PATH}",
            "session_id": session_id(request.auth),
        }
        return Response({"ws_token": token} | {name: available[name] for name in options.current.ws_token_fields})


class MeView(ProtectedView):
    def get(self, request: Request) -> Response:
        return Response(accounts.me(request.user))
