"""Bearer-token authentication shared by every protected view of the reference server.

A request may carry a simplejwt access JWT, an opaque stand-in for one (the password server's opaque-token mode), or
an OAuth access token issued by django-oauth-toolkit: `BEARER_AUTHENTICATION` accepts all three, and a bad or missing
token is answered 401 like simplejwt does (`{"detail", "code": "token_not_valid"}`).

Import only after `refserver.config.configure_django` has run.
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from oauth2_provider.contrib.rest_framework import OAuth2Authentication
from oauth2_provider.models import AbstractAccessToken
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token


class OpaqueTokens:
    """Opaque strings handed out in place of simplejwt tokens; the server keeps the JWT each one stands for."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jwts: dict[str, str] = {}

    def wrap(self, jwt: str, prefix: str) -> str:
        opaque = prefix + secrets.token_urlsafe(32)
        with self._lock:
            self._jwts[opaque] = jwt
        return opaque

    def resolve(self, token: str) -> str:
        """The JWT `token` stands for, or `token` itself when it is not one of ours."""
        with self._lock:
            return self._jwts.get(token, token)


opaque_tokens = OpaqueTokens()


class BearerJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication, also accepting opaque stand-ins for access JWTs."""

    def get_validated_token(self, raw_token: bytes) -> Token:
        token = raw_token.decode("latin-1") if isinstance(raw_token, bytes) else raw_token
        return super().get_validated_token(opaque_tokens.resolve(token).encode("latin-1"))


# OAuth first: it answers None (not 401) for a token it does not know, while simplejwt's raises for a non-JWT.
BEARER_AUTHENTICATION = [OAuth2Authentication, BearerJWTAuthentication]


def session_id(auth: Any) -> str | None:
    """The login session a validated token (a request's `request.auth`) belongs to: the simplejwt `sid` claim, or
    the OAuth refresh-token family; stays the same across refreshes."""
    if isinstance(auth, AbstractAccessToken):
        refresh = getattr(auth, "refresh_token", None) or auth.source_refresh_token
        family = getattr(refresh, "token_family", None)
        return str(family) if family else None
    if isinstance(auth, Token):
        return auth.get("sid")
    return None
