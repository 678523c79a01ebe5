"""The model: tokens, credentials and the expiry policy that decides when a token is used or refreshed.

Time here is always an aware UTC datetime read from the local ``Clock``. Expiry instants are
*local-clock* instants: at issue time we measure each token's lifetime from its own claims
(``exp - iat``, both set by the server's clock) and add it to the local time at which we sent
the request. A client whose clock is minutes off therefore still refreshes on time and never
trusts a token the server already considers expired (see architecture.md, "Clock skew").
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from kitty_auth.domain.errors import InvalidServerUrlError, MalformedResponseError

DEFAULT_SERVER_URL = "https://spec-kitty-dev.fly.dev"


def normalize_server_url(url: str) -> str:
    """Return ``url`` without trailing slashes after checking it is a usable https:// URL.

    Raised errors name the problem but never echo a password that may be embedded in the URL.
    """
    raw = (url or "").strip()
    if not raw:
        raise InvalidServerUrlError("The server URL is empty; give an https:// URL.")
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidServerUrlError("The server URL is not a valid URL; give an https:// URL.") from None
    if parts.scheme.lower() != "https":
        shown = parts.scheme + "://" if parts.scheme else "a URL without a scheme"
        raise InvalidServerUrlError(
            f"HTTPS is required: the server URL must start with https:// (got {shown})."
        )
    if not parts.hostname:
        raise InvalidServerUrlError("The server URL has no host name; give an https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise InvalidServerUrlError(
            "The server URL must not contain a user name or password; remove the 'user:password@' part."
        )
    if parts.query or parts.fragment:
        raise InvalidServerUrlError("The server URL must not contain a query or fragment.")
    if any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise InvalidServerUrlError("The server URL contains spaces or control characters.")
    del port
    return raw.rstrip("/")


def same_server(a: str, b: str) -> bool:
    """Two server URLs name the same server when equal up to trailing slashes and host case."""
    def key(url: str) -> tuple[str, str, str]:
        p = urlsplit(url.strip().rstrip("/"))
        return (p.scheme.lower(), p.netloc.lower(), p.path)

    return key(a) == key(b)


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def format_instant(dt: datetime) -> str:
    """ISO 8601 in UTC ending in ``Z``, to the second: the credentials-file format."""
    return utc(dt).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_instant(text: str) -> datetime:
    """Parse the credentials-file format (also accepts ``+00:00`` offsets). Raises ValueError."""
    if not isinstance(text, str) or not text:
        raise ValueError("not a timestamp")
    dt = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    if dt.tzinfo is None:
        raise ValueError("timestamp without a time zone")
    return utc(dt)


def jwt_claims(token: str) -> dict[str, object] | None:
    """The unverified payload of a JWT, or None when ``token`` is not one.

    Only used to read ``exp``/``iat`` of tokens the server just gave us; signatures are the
    server's business.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def _claim_seconds(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def token_lifetime(token: str) -> timedelta | None:
    """``exp - iat`` of a JWT: its lifetime, independent of any clock. None when unknown."""
    claims = jwt_claims(token)
    if claims is None:
        return None
    exp, iat = _claim_seconds(claims, "exp"), _claim_seconds(claims, "iat")
    if exp is None or iat is None or exp <= iat:
        return None
    return timedelta(seconds=exp - iat)


def local_expiry(token: str, requested_at: datetime) -> datetime:
    """When ``token`` expires on the local clock, given the local time its request was sent.

    ``requested_at + (exp - iat)``: the server issued the token after we sent the request, so
    this is never later than the true expiry, whatever the offset between the two clocks.
    Without ``iat`` we fall back to ``exp`` as is. Raises MalformedResponseError for a token
    with no usable ``exp``.
    """
    claims = jwt_claims(token)
    exp = _claim_seconds(claims, "exp") if claims else None
    if exp is None:
        raise MalformedResponseError()
    lifetime = token_lifetime(token)
    if lifetime is None:
        try:
            return datetime.fromtimestamp(exp, UTC)
        except (OverflowError, OSError, ValueError):
            raise MalformedResponseError() from None
    return utc(requested_at) + lifetime


class AccessDecision(enum.Enum):
    """What to do with the stored access token right now."""

    USE = "use"  # comfortably valid: use it, no network
    REFRESH_EARLY = "refresh_early"  # valid, but inside the refresh margin: refresh, fall back to it
    REFRESH_REQUIRED = "refresh_required"  # expired (or about to): must refresh before use


@dataclass(frozen=True)
class ExpiryPolicy:
    """When a token is used as is, refreshed early, or must be refreshed.

    ``margin = min(max_margin, lifetime * margin_fraction)``. With the defaults a 15-minute
    access token is refreshed in its last 60 s: long enough to cover a slow request and a
    little clock drift between issue and use, short enough to keep 93 % of the token's life.
    The fraction bounds the margin for short-lived tokens (a 4 s token gets 1 s), so a
    freshly refreshed token is never already "inside the margin" and cannot cause a storm.
    ``min_valid`` is the least remaining life worth sending: a token that expires within it
    would likely be rejected in flight, so it counts as expired.
    """

    max_margin: timedelta = timedelta(seconds=60)
    margin_fraction: float = 0.25
    min_valid: timedelta = timedelta(seconds=2)
    default_lifetime: timedelta = timedelta(minutes=15)

    def margin(self, lifetime: timedelta | None) -> timedelta:
        life = lifetime if lifetime and lifetime > timedelta(0) else self.default_lifetime
        return min(self.max_margin, life * self.margin_fraction)

    def floor(self, lifetime: timedelta | None) -> timedelta:
        """Remaining life below which a token is not sent (never above the margin)."""
        return min(self.min_valid, self.margin(lifetime))

    def decide(self, expires_at: datetime, now: datetime, lifetime: timedelta | None) -> AccessDecision:
        remaining = expires_at - now
        if remaining <= self.floor(lifetime):
            return AccessDecision.REFRESH_REQUIRED
        if remaining <= self.margin(lifetime):
            return AccessDecision.REFRESH_EARLY
        return AccessDecision.USE

    def is_usable(self, expires_at: datetime, now: datetime, lifetime: timedelta | None) -> bool:
        return self.decide(expires_at, now, lifetime) is not AccessDecision.REFRESH_REQUIRED


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    access_expires_at: datetime
    refresh_expires_at: datetime

    @classmethod
    def issued(cls, access: str, refresh: str, requested_at: datetime) -> TokenPair:
        """The pair the server just issued in answer to a request sent at ``requested_at``."""
        if not access or not refresh:
            raise MalformedResponseError()
        return cls(
            access=access,
            refresh=refresh,
            access_expires_at=local_expiry(access, requested_at),
            refresh_expires_at=local_expiry(refresh, requested_at),
        )

    @property
    def access_lifetime(self) -> timedelta | None:
        return token_lifetime(self.access)

    def __repr__(self) -> str:  # never show token values, even in a debugger or a log
        return (
            f"TokenPair(access=<redacted>, refresh=<redacted>, "
            f"access_expires_at={format_instant(self.access_expires_at)}, "
            f"refresh_expires_at={format_instant(self.refresh_expires_at)})"
        )


@dataclass(frozen=True)
class Credentials:
    """A stored session: the tokens, who they belong to, and the server that issued them."""

    tokens: TokenPair
    username: str
    server_url: str

    def is_authenticated(self, now: datetime) -> bool:
        """Logged in while the refresh token has not expired."""
        return now < self.tokens.refresh_expires_at

    def access_decision(self, now: datetime, policy: ExpiryPolicy) -> AccessDecision:
        return policy.decide(self.tokens.access_expires_at, now, self.tokens.access_lifetime)

    def with_tokens(self, tokens: TokenPair) -> Credentials:
        return replace(self, tokens=tokens)

    def issued_by(self, server_url: str) -> bool:
        return same_server(self.server_url, server_url)

    __repr__ = lambda self: (  # noqa: E731 - keep tokens out of every repr
        f"Credentials(username={self.username!r}, server_url={self.server_url!r}, tokens={self.tokens!r})"
    )


@dataclass(frozen=True)
class WsToken:
    """A short-lived, single-purpose WebSocket token: handed to the caller, never stored."""

    ws_token: str
    expires_at: datetime
    expires_in: int

    def __repr__(self) -> str:
        return f"WsToken(ws_token=<redacted>, expires_at={format_instant(self.expires_at)}, expires_in={self.expires_in})"


@dataclass(frozen=True)
class StatusReport:
    """What `auth status` shows; built offline from the stored file."""

    authenticated: bool
    credentials: Credentials | None = None
    unreadable_file: str | None = None  # path of a credentials file that could not be parsed
