"""The OAuthGateway over HTTPS: RFC 8414 discovery, the code and device grants, refresh, RFC 7009 revocation and ``/api/v1/me``.

Every request goes through :meth:`HttpsClient.request` (``adapters/https_client.py``), the same
core the password gateway uses, so TLS trust (truststore + ``SSL_CERT_FILE``), the 8 s total deadline, the body
cap, "redirects are errors" and the redacted httpcore logs are the same for both protocols.
Token requests are form-encoded with ``client_id`` (a public client, RFC 6749 2.3); responses
are validated with pydantic and never quoted in an error (they hold tokens and codes).

Why no OAuth library: the protocol work a public CLI client does is small and lives where it
can be property-tested -- PKCE, ``state``, the authorization URL, the callback verdict and
the polling schedule are pure functions in ``domain/oauth.py`` (the domain may import only
the standard library). What is left here is four form POSTs and two GETs. oauthlib's client
classes only prepare parameters and parse bodies (no transport, no device polling loop) and
would add a run-time dependency for ~30 lines; authlib's httpx integration brings its own
client, which would bypass this package's TLS trust, deadline, body cap and log redaction.
See architecture.md, "OAuth logins".
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Callable, Mapping
from typing import Annotated, Final

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from kitty_auth.adapters.https_client import LOGIN_AGAIN_HINT, HttpsClient, raise_for_status
from kitty_auth.adapters.response_fields import Instant, Seconds, SessionId, Slug, Token, parse
from kitty_auth.domain.errors import MalformedResponseError, TokenRejectedError
from kitty_auth.domain.interrupts import INTERRUPTS
from kitty_auth.domain.machine import ClientCredentials, MachineClientRejectedError
from kitty_auth.domain.model import Credentials, Identity, IssuedTokens, Team, normalize_server_url
from kitty_auth.domain.oauth import (
    DEVICE_GRANT,
    DeviceAuthorization,
    Endpoints,
    PollOutcome,
    metadata_url,
    same_origin_https,
)
from kitty_auth.domain.oauth_errors import (
    DeviceCodeDeniedError,
    DeviceCodeExpiredError,
    MetadataMalformedError,
    MetadataUnavailableError,
    OAuthProtocolError,
    UnsafeEndpointError,
)
from kitty_auth.domain.revocation import RevocationUnsupportedError

logger = logging.getLogger("kitty_auth.oauth")

ME_PATH: Final = "/api/v1/me"


def _not_blank(text: str) -> str:
    """Refuses text that shows nothing: only whitespace (" ", U+00A0...) and invisible format characters."""
    if all(ch.isspace() or unicodedata.category(ch) == "Cf" for ch in text):
        raise ValueError("blank")  # pydantic reports a ValueError as invalid
    return text


# Text we may print (a name, an email, a URL to visit): no control characters, so a hostile
# server cannot rewrite the user's terminal. Printable is never blank: an identity of " " would
# print as "Logged in as  at ..." and be refused by the credentials file.
Printable = Annotated[StrictStr, Field(min_length=1, max_length=512, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$"),
                      AfterValidator(_not_blank)]
PrintableOrEmpty = Annotated[StrictStr, Field(max_length=512, pattern=r"^[^\x00-\x1f\x7f-\x9f]*$")]
HttpsUrl = Annotated[StrictStr, Field(max_length=2048, pattern=r"^https://[\x21-\x7e]+$")]
Identifier = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"^[\x21-\x7e]+$")] | StrictInt


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class MetadataResponse(_Model):
    """RFC 8414 section 2 (only the fields a CLI client uses)."""

    token_endpoint: StrictStr
    authorization_endpoint: StrictStr | None = None
    device_authorization_endpoint: StrictStr | None = None
    revocation_endpoint: StrictStr | None = None


class OAuthTokenResponse(_Model):
    """RFC 6749 section 5.1, plus spec-kitty 3.x's lifetime fields and ``session_id``. Tokens are left out of ``repr``."""

    access_token: Token = Field(repr=False)
    refresh_token: Token | None = Field(default=None, repr=False)
    token_type: StrictStr | None = None
    expires_in: Seconds | None = None
    refresh_token_expires_in: Seconds | None = None
    refresh_token_expires_at: Instant | None = None
    session_id: SessionId | None = None
    team_slug: Slug | None = None

    def issued(self, refresh_fallback: str | None = None, *, require_refresh: bool = True) -> IssuedTokens:
        """``require_refresh=False``: the client credentials grant, which may give none (RFC 6749 4.4.3)."""
        refresh = self.refresh_token or refresh_fallback
        if (require_refresh and not refresh) or (self.token_type is not None and self.token_type.lower() != "bearer"):
            raise MalformedResponseError()
        return IssuedTokens(
            access=self.access_token, refresh=refresh, expires_in=self.expires_in,
            refresh_expires_in=self.refresh_token_expires_in,
            refresh_expires_at=self.refresh_token_expires_at,
            team_slug=self.team_slug, session_id=self.session_id,
        )


class DeviceAuthorizationResponse(_Model):
    """RFC 8628 section 3.2. The device code (a secret until it expires) is left out of ``repr``."""

    device_code: Token = Field(repr=False)
    user_code: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[\x21-\x7e]+$")]
    verification_uri: HttpsUrl
    verification_uri_complete: HttpsUrl | None = None
    expires_in: Annotated[Seconds, Field(gt=0, le=86_400)]
    interval: Annotated[Seconds, Field(ge=0, le=3_600)] | None = None


class TeamResponse(_Model):
    id: Identifier
    slug: Slug
    name: PrintableOrEmpty = ""
    role: PrintableOrEmpty = ""
    is_private_teamspace: StrictBool = False


class MeResponse(_Model):
    email: Printable
    name: PrintableOrEmpty | None = None
    user_id: Identifier | None = None
    teams: list[TeamResponse] = Field(default_factory=list, max_length=1000)

    def identity(self) -> Identity:
        return Identity(
            email=self.email, name=self.name or "",
            user_id="" if self.user_id is None else str(self.user_id),
            teams=tuple(Team(id=str(t.id), slug=t.slug, name=t.name, role=t.role,
                             is_private_teamspace=t.is_private_teamspace) for t in self.teams),
        )


class OAuthErrorResponse(_Model):
    """RFC 6749 section 5.2: only ``error``, and only a code we may print (letters, digits, ``_``)."""

    error: Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


def _oauth_error(body: bytes) -> str | None:
    """The ``error`` code of an RFC 6749 error response, None when the body is not one.

    Parsed like every other body (pydantic, whose JSON parser has a nesting limit): ``json.loads``
    raised RecursionError on 200 KB of ``[``.
    """
    try:
        return parse(OAuthErrorResponse, body).error
    except MalformedResponseError:
        return None


class HttpxOAuthGateway:
    """OAuthGateway and the OAuth half of SessionRevoker, over the shared HTTPS request core."""

    def __init__(self, http: HttpsClient) -> None:
        self._http = http

    # -- discovery

    def discover(self, server_url: str) -> Endpoints | None:
        """RFC 8414 metadata for the issuer ``server_url`` (see :func:`metadata_url`); None on a 404."""
        status, body = self._http.request("GET", metadata_url(server_url))
        if status == 404:
            return None
        if 500 <= status < 600:
            raise MetadataUnavailableError(status)
        if status != 200:
            raise_for_status(status, "; reading the server's OAuth metadata")
        meta = parse(MetadataResponse, body,
                     lambda: MetadataMalformedError("not a JSON metadata document naming a token endpoint"))
        logger.debug("OAuth metadata found")
        return Endpoints(
            authorization=meta.authorization_endpoint,
            token=meta.token_endpoint,
            device_authorization=meta.device_authorization_endpoint,
            revocation=meta.revocation_endpoint,
        )

    # -- token grants

    def _token_request(self, endpoint: str, form: Mapping[str, str]) -> tuple[int, bytes]:
        return self._http.request("POST", endpoint, form=form)

    def exchange_code(self, endpoints: Endpoints, client_id: str, code: str, verifier: str,
                      redirect_uri: str) -> IssuedTokens:
        status, body = self._token_request(endpoints.token, {
            "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": client_id, "code_verifier": verifier,
        })
        if status == 200:
            return parse(OAuthTokenResponse, body).issued()
        if status in (400, 401) and (error := _oauth_error(body)):
            raise OAuthProtocolError(error, "authorization code")
        raise_for_status(status)
        raise AssertionError("unreachable")

    def start_device(self, endpoints: Endpoints, client_id: str, scope: str) -> DeviceAuthorization:
        assert endpoints.device_authorization is not None  # checked by the use case
        status, body = self._http.request("POST", endpoints.device_authorization,
                                          form={"client_id": client_id, "scope": scope})
        if status == 200:
            parsed = parse(DeviceAuthorizationResponse, body)
            return DeviceAuthorization(
                device_code=parsed.device_code, user_code=parsed.user_code,
                verification_uri=parsed.verification_uri,
                verification_uri_complete=parsed.verification_uri_complete,
                expires_in=float(parsed.expires_in),
                interval=None if not parsed.interval else float(parsed.interval),
            )
        if status in (400, 401) and (error := _oauth_error(body)):
            raise OAuthProtocolError(error, "device authorization request")
        raise_for_status(status)
        raise AssertionError("unreachable")

    def poll_device(self, endpoints: Endpoints, client_id: str, device_code: str) -> IssuedTokens | PollOutcome:
        status, body = self._token_request(endpoints.token, {
            "grant_type": DEVICE_GRANT, "device_code": device_code, "client_id": client_id,
        })
        if status == 200:
            return parse(OAuthTokenResponse, body).issued()
        error = _oauth_error(body) if status in (400, 401) else None
        if error == "authorization_pending":
            return PollOutcome.PENDING
        if error == "slow_down":
            return PollOutcome.SLOW_DOWN
        if error == "access_denied":
            raise DeviceCodeDeniedError()
        if error == "expired_token":
            raise DeviceCodeExpiredError()
        if error:
            raise OAuthProtocolError(error, "device code")
        raise_for_status(status)
        raise AssertionError("unreachable")

    def refresh(self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None) -> IssuedTokens:
        """The refresh-token grant at the session's stored token endpoint, with the password refresh's
        guarantees: an answer that comes after the deadline goes to ``on_late``, and the same refresh
        token is never sent twice while its first request is still pending (see ``HttpsClient.request``)."""
        client = session.oauth
        if client is None or not same_origin_https(session.server_url, client.token_endpoint):
            raise UnsafeEndpointError("token endpoint")  # a tampered file: never send the token elsewhere
        sent = session.tokens.refresh

        def late(status: int, body: bytes) -> None:
            # The server answered after we gave up: it has rotated the token, and this answer is
            # then the only copy of the new pair (the use case stores it if nothing changed since).
            if on_late is None or status != 200:
                return
            try:
                issued = parse(OAuthTokenResponse, body).issued(refresh_fallback=sent)
            except MalformedResponseError:
                return
            on_late(issued)

        status, body = self._http.request("POST", client.token_endpoint, form={
            "grant_type": "refresh_token", "refresh_token": sent, "client_id": client.client_id,
        }, on_late=late, key=sent)
        if status == 200:
            try:
                return parse(OAuthTokenResponse, body).issued(refresh_fallback=sent)
            except INTERRUPTS:  # the answer is in hand: it reaches the store before the interrupt goes on
                late(status, body)
                raise
        error = _oauth_error(body) if status in (400, 401) else None
        if status == 401 or error == "invalid_grant":
            raise TokenRejectedError()
        raise_for_status(status, LOGIN_AGAIN_HINT)
        raise AssertionError("unreachable")

    def client_credentials(self, server_url: str, token_endpoint: str, client: ClientCredentials) -> IssuedTokens:
        """The client credentials grant (RFC 6749 4.4) of a machine login or renewal.

        The secret goes in the form body (``client_secret``, RFC 6749 2.3.1), as spec-kitty's SaaS
        takes it, never in a URL or a header, and so never in a log line. No ``key`` and no
        ``on_late``: a grant rotates nothing, so sending it twice or dropping a late answer loses
        nothing. ``invalid_client`` (400, or 401 as RFC 6749 5.2 allows) is MachineClientRejectedError.
        """
        if not same_origin_https(server_url, token_endpoint):
            raise UnsafeEndpointError("token endpoint")  # checked at login too; a tampered file at renewal
        status, body = self._token_request(token_endpoint, {
            "grant_type": "client_credentials", "client_id": client.client_id, "client_secret": client.secret,
        })
        if status == 200:
            return parse(OAuthTokenResponse, body).issued(require_refresh=False)
        error = _oauth_error(body) if status in (400, 401) else None
        if error == "invalid_client":
            raise MachineClientRejectedError()
        if error:
            raise OAuthProtocolError(error, "client credentials grant")
        raise_for_status(status)
        raise AssertionError("unreachable")

    # -- the signed-in user

    def me(self, server_url: str, access_token: str) -> Identity:
        base = normalize_server_url(server_url)
        status, body = self._http.request("GET", base + ME_PATH, headers={"Authorization": f"Bearer {access_token}"})
        if status == 200:
            return parse(MeResponse, body).identity()
        if status == 401:
            raise TokenRejectedError()
        raise_for_status(status)
        raise AssertionError("unreachable")

    # -- revocation (RFC 7009)

    def revoke(self, session: Credentials, deadline: float, as_client: ClientCredentials | None = None) -> None:
        """RFC 7009: the refresh token, or for a session without one (a machine session renewed by its grant)
        the access token; ``as_client`` authenticates as that confidential client (its secret in the form)."""
        client = session.oauth
        if client is None or client.revocation_endpoint is None:
            raise RevocationUnsupportedError()
        if not same_origin_https(session.server_url, client.revocation_endpoint):
            raise UnsafeEndpointError("revocation endpoint")
        tokens = session.tokens
        form = ({"token": tokens.refresh, "token_type_hint": "refresh_token"} if tokens.refresh is not None
                else {"token": tokens.access, "token_type_hint": "access_token"})
        form |= ({"client_id": as_client.client_id, "client_secret": as_client.secret} if as_client is not None
                 else {"client_id": client.client_id})
        status, _ = self._http.request("POST", client.revocation_endpoint, deadline=deadline, form=form)
        if status == 200:  # RFC 7009 2.2: 200 means done, whatever the body
            return
        if status in (404, 405):
            raise RevocationUnsupportedError()
        raise_for_status(status)
