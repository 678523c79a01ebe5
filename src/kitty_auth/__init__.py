"""kitty-auth: authentication for the spec-kitty CLI (login, token refresh, ws tokens).

Public API (``__all__``): AuthClient, CredentialStore, WebSocketClient, the error tree rooted
at AuthError, and the model values they return. The facades are imported on first use so
that importing this package (and running ``spec-kitty auth status``) stays fast.
"""

# No `from __future__ import annotations` and no bare `typing` names here: each would become a
# public attribute of the package (`kitty_auth.annotations`, `kitty_auth.Any`).
from typing import TYPE_CHECKING as _TYPE_CHECKING

from kitty_auth.domain.errors import (
    AuthError,
    CorruptCredentialsError,
    CredentialsFileError,
    CredentialsLockTimeoutError,
    EnvironmentTokenRejectedError,
    InvalidCredentialsError,
    InvalidEnvironmentTokenError,
    InvalidInputError,
    InvalidServerUrlError,
    MalformedResponseError,
    NetworkError,
    NotAuthenticatedError,
    RateLimitedError,
    RenewalUnavailableError,
    ServerError,
    ServerUnavailableError,
    SessionExpiredError,
    TLSVerificationError,
    TransientServerError,
    UnexpectedStatusError,
    WebSocketError,
)
from kitty_auth.domain.model import Credentials, TokenPair, WsToken

if _TYPE_CHECKING:
    from kitty_auth.domain.live_sync import (
        ConnectionLostError,
        HandshakeRejectedError,
        LiveSyncClosedError,
        ReconnectFailedError,
        WebSocketAuthenticationError,
    )
    from kitty_auth.entrypoints.httpx_auth import BearerAuth
    from kitty_auth.entrypoints.library import AuthClient, CredentialStore
    from kitty_auth.entrypoints.websocket import WebSocketClient

__all__ = [
    "AuthClient",
    "AuthError",
    "BearerAuth",
    "ConnectionLostError",
    "CorruptCredentialsError",
    "CredentialStore",
    "Credentials",
    "CredentialsFileError",
    "CredentialsLockTimeoutError",
    "EnvironmentTokenRejectedError",
    "HandshakeRejectedError",
    "InvalidCredentialsError",
    "InvalidEnvironmentTokenError",
    "InvalidInputError",
    "InvalidServerUrlError",
    "LiveSyncClosedError",
    "MalformedResponseError",
    "NetworkError",
    "NotAuthenticatedError",
    "RateLimitedError",
    "ReconnectFailedError",
    "RenewalUnavailableError",
    "ServerError",
    "ServerUnavailableError",
    "SessionExpiredError",
    "TLSVerificationError",
    "TokenPair",
    "TransientServerError",
    "UnexpectedStatusError",
    "WebSocketAuthenticationError",
    "WebSocketClient",
    "WebSocketError",
    "WsToken",
]

_LAZY = {
    "AuthClient": "kitty_auth.entrypoints.library",
    "BearerAuth": "kitty_auth.entrypoints.httpx_auth",  # imports httpx: only when used
    "CredentialStore": "kitty_auth.entrypoints.library",
    "WebSocketClient": "kitty_auth.entrypoints.websocket",
    # live-sync errors: their module imports asyncio; `import kitty_auth` and `auth status` need not
    "ConnectionLostError": "kitty_auth.domain.live_sync",
    "HandshakeRejectedError": "kitty_auth.domain.live_sync",
    "LiveSyncClosedError": "kitty_auth.domain.live_sync",
    "ReconnectFailedError": "kitty_auth.domain.live_sync",
    "WebSocketAuthenticationError": "kitty_auth.domain.live_sync",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'kitty_auth' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
