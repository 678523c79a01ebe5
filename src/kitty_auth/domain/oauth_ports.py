"""The ports OAuth logins need: the authorization server, the browser, the loopback listener, the user's terminal.

Adapters: ``adapters/oauth_gateway.py`` (``HttpxOAuthGateway``), ``adapters/oauth_browser.py``
(``WebBrowser``), ``adapters/oauth_loopback.py`` (``LoopbackCallbackListener``),
the terminal side is the CLI's
``LoginProgress``. In-memory fakes: ``kitty_auth.testing``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from kitty_auth.domain.machine import ClientCredentials
from kitty_auth.domain.model import Credentials, Identity, IssuedTokens
from kitty_auth.domain.oauth import CallbackPage, DeviceAuthorization, Endpoints, PollOutcome

__all__ = [
    "Browser",
    "CallbackListener",
    "ListenerFactory",
    "LoginProgress",
    "OAuthGateway",
    "PendingCallback",
]


class OAuthGateway(Protocol):
    """An OAuth authorization server (spec-kitty 3.x). Raises only domain errors."""

    def discover(self, server_url: str) -> Endpoints | None:
        """The RFC 8414 metadata's endpoints, unchecked; None when the server answers 404.

        Any other failure raises (MetadataUnavailableError, MetadataMalformedError, NetworkError...).
        """
        ...

    def exchange_code(
        self, endpoints: Endpoints, client_id: str, code: str, verifier: str, redirect_uri: str
    ) -> IssuedTokens:
        """The authorization-code grant with the PKCE verifier. OAuthProtocolError when refused."""
        ...

    def start_device(self, endpoints: Endpoints, client_id: str, scope: str) -> DeviceAuthorization: ...

    def poll_device(self, endpoints: Endpoints, client_id: str, device_code: str) -> IssuedTokens | PollOutcome:
        """One device-code grant request: the tokens, or PENDING / SLOW_DOWN.

        ``access_denied`` raises DeviceCodeDeniedError, ``expired_token`` DeviceCodeExpiredError;
        transient failures raise TransientServerError (the use case keeps polling).
        """
        ...

    def me(self, server_url: str, access_token: str) -> Identity:
        """``GET /api/v1/me`` on the issuing server."""
        ...

    def refresh(
        self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None
    ) -> IssuedTokens:
        """The refresh-token grant at the session's stored token endpoint. Rejected -> TokenRejectedError.

        ``on_late`` as in ``TokenGateway.refresh``: a valid answer that arrives after the deadline.
        """
        ...

    def revoke(self, session: Credentials, deadline: float, as_client: ClientCredentials | None = None) -> None:
        """RFC 7009 at the session's stored revocation endpoint, within ``deadline`` seconds.

        The refresh token (``token_type_hint=refresh_token``), or for a session without one the access
        token (``access_token``). ``as_client``: authenticate as that confidential client (a machine
        session's tokens without a refresh token are its own), else send the session's ``client_id``.
        RevocationUnsupportedError without an endpoint; other ServerErrors otherwise (as SessionRevoker).
        """
        ...


class Browser(Protocol):
    def open(self, url: str) -> bool:
        """Open ``url`` in the user's browser; False when no browser could be opened."""
        ...


class PendingCallback(Protocol):
    """One request to the loopback ``/callback``; the browser waits until it is answered."""

    @property
    def params(self) -> Mapping[str, str]: ...

    def answer(self, page: CallbackPage) -> None: ...


class CallbackListener(Protocol):
    """A loopback HTTP listener (RFC 8252) for one login."""

    @property
    def redirect_uri(self) -> str: ...

    def next_callback(self, timeout: float) -> PendingCallback | None:
        """The next callback request, or None when ``timeout`` seconds passed without one."""
        ...

    def close(self) -> None: ...


class ListenerFactory(Protocol):
    def __call__(self) -> CallbackListener:
        """Start a listener (bound before the browser is opened)."""
        ...


class LoginProgress(Protocol):
    """The user's side of an interactive login (the CLI renders it)."""

    def browser_login(self, url: str, opened: bool, timeout: float) -> None:
        """Show the authorization URL (always) and the announced timeout."""
        ...

    def callback_refused(self) -> None:
        """A callback that was not this login's arrived and was refused."""
        ...

    def device_login(self, authorization: DeviceAuthorization) -> None:
        """Show the verification URI(s) and the user code (never the device code)."""
        ...

    def wait(self, seconds: float) -> None:
        """Wait ``seconds`` while showing that the login is waiting."""
        ...

    def finished(self) -> None:
        """The wait is over (clear any indicator)."""
        ...
