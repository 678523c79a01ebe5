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
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from kitty_auth.domain.errors import InvalidServerUrlError, MalformedResponseError

DEFAULT_SERVER_URL = "https://spec-kitty-dev.fly.dev"


def normalize_server_url(url: str, *, source: str | None = None, implied_https: bool = False) -> str:
    """Return ``url`` in one canonical form after checking it is a usable https:// URL.

    Canonical: scheme and host in lower case, no trailing slashes (``HTTPS://Host/`` is
    ``https://host``). ``implied_https`` (URLs a user typed) lets a bare host such as
    ``example.com`` or ``example.com:8443/api`` stand for ``https://`` plus it, as gh and docker
    accept; ``http://`` is still refused. ``source`` (``--server``, ``SPEC_KITTY_SAAS_URL``...)
    is named in every error. Errors never echo a password that may be embedded in the URL.
    """
    subject = f"the server URL from {source}" if source else "the server URL"
    subject_ = subject[0].upper() + subject[1:]
    raw = (url or "").strip()
    if not raw:
        raise InvalidServerUrlError(f"{subject_} is empty; give an https:// URL.")
    if implied_https and "://" not in raw:
        raw = "https://" + raw
    try:
        parts = urlsplit(raw)
        port = parts.port  # raises ValueError on a bad port
    except ValueError:
        raise InvalidServerUrlError(f"{subject_} is not a valid URL; give an https:// URL.") from None
    if parts.scheme.lower() != "https":
        shown = parts.scheme + "://" if parts.scheme else "a URL without a scheme"
        raise InvalidServerUrlError(
            f"HTTPS is required: {subject} must start with https:// (got {shown})."
        )
    if not parts.hostname:
        raise InvalidServerUrlError(f"{subject_} has no host name; give an https:// URL.")
    if parts.username is not None or parts.password is not None:
        raise InvalidServerUrlError(
            f"{subject_} must not contain a user name or password; remove the 'user:password@' part."
        )
    if parts.query or parts.fragment:
        raise InvalidServerUrlError(f"{subject_} must not contain a query or fragment.")
    if any(ch.isspace() or ord(ch) < 32 for ch in raw):
        raise InvalidServerUrlError(f"{subject_} contains spaces or control characters.")
    host = parts.hostname  # lower case already
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    return urlunsplit(("https", netloc, parts.path, "", "")).rstrip("/")


def same_server(a: str, b: str) -> bool:
    """Two server URLs name the same server when equal up to trailing slashes and host case."""
    def key(url: str) -> tuple[str, str, str]:
        p = urlsplit(url.strip().rstrip("/"))
        return (p.scheme.lower(), p.netloc.lower(), p.path)

    return key(a) == key(b)


def utc(dt: datetime) -> datetime:
    return dt.astimezone(UTC)


def format_instant(dt: datetime) -> str:
    """ISO 8601 in UTC ending in ``Z``, to the second: the credentials-file format.

    Always a 4-digit year (``isoformat``): ``strftime("%Y")`` writes year 1 as ``1`` on Linux,
    which ``fromisoformat`` cannot read back.
    """
    return utc(dt).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


# The instants a server may name as an expiry. Go's zero time (0001-01-01T00:00:00Z), a
# 9999-12-31 "never" and whatever lies outside these bounds is no real answer; inside them,
# adding any lifetime up to MAX_LIFETIME cannot overflow datetime.
EARLIEST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(3000, 1, 1, tzinfo=UTC)


def server_instant(value: datetime) -> datetime:
    """``value``, an expiry instant a server named, in UTC.

    MalformedResponseError when it has no UTC equivalent (``0001-01-01T00:00:00+01:00``) or
    lies outside [EARLIEST_INSTANT, LATEST_INSTANT).
    """
    try:
        instant = utc(value)
    except (OverflowError, OSError, ValueError):  # OSError: a naive instant the local zone cannot place
        raise MalformedResponseError() from None
    if not EARLIEST_INSTANT <= instant < LATEST_INSTANT:
        raise MalformedResponseError()
    return instant


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
    except (ValueError, binascii.Error, UnicodeError, RecursionError):  # RecursionError: deeply nested JSON
        return None
    return claims if isinstance(claims, dict) else None


# No real token lives longer than this; a larger (or non-finite) lifetime is a hostile or broken
# response, refused as malformed instead of overflowing datetime arithmetic.
MAX_LIFETIME = timedelta(days=3660)
DEFAULT_ACCESS_LIFETIME = timedelta(minutes=15)
DEFAULT_REFRESH_LIFETIME = timedelta(days=7)  # password servers; OAuth: unknown (None)


def _claim_seconds(claims: dict[str, object], name: str) -> float | None:
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        seconds = float(value)
    except OverflowError:  # an int too large for a float
        return None
    return seconds if math.isfinite(seconds) else None


def lifetime_from_seconds(value: float | None) -> timedelta | None:
    """A lifetime given in seconds by a response (``expires_in``...); None when absent.

    MalformedResponseError for a value that is not a positive, finite, plausible duration.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedResponseError()
    try:
        seconds = float(value)
    except OverflowError:
        raise MalformedResponseError() from None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_LIFETIME.total_seconds():
        raise MalformedResponseError()
    return timedelta(seconds=seconds)


def token_lifetime(token: str) -> timedelta | None:
    """``exp - iat`` of a JWT: its lifetime, independent of any clock. None when unknown."""
    claims = jwt_claims(token)
    if claims is None:
        return None
    exp, iat = _claim_seconds(claims, "exp"), _claim_seconds(claims, "iat")
    if exp is None or iat is None or exp <= iat or exp - iat > MAX_LIFETIME.total_seconds():
        return None
    lifetime = timedelta(seconds=exp - iat)
    return lifetime if lifetime > timedelta(0) else None  # exp 5e-324, iat 0 rounds to no time at all


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
    try:
        if lifetime is None:
            return server_instant(datetime.fromtimestamp(exp, UTC))
        return utc(requested_at) + lifetime
    except (OverflowError, OSError, ValueError):
        raise MalformedResponseError() from None


def is_jwt(token: str) -> bool:
    """True when ``token`` decodes as a JWT payload (its lifetime then comes from its claims)."""
    return jwt_claims(token) is not None


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


@dataclass(frozen=True, repr=False)
class IssuedTokens:
    """Tokens as the server returned them, with the lifetime fields of its response.

    The model turns them into a TokenPair (``TokenPair.from_issued``). ``expires_in`` and
    ``refresh_expires_in`` are seconds; ``refresh_expires_at`` an aware instant on the server's
    clock (used only when no ``refresh_expires_in`` is given).
    """

    access: str
    refresh: str | None  # None: a machine session's client credentials grant gave none (RFC 6749 4.4.3)
    expires_in: float | None = None
    refresh_expires_in: float | None = None
    refresh_expires_at: datetime | None = None
    team_slug: str | None = None
    session_id: str | None = None

    def __repr__(self) -> str:
        return "IssuedTokens(access=<redacted>, refresh=<redacted>)"


def _opaque_expiry(requested_at: datetime, lifetime: timedelta) -> datetime:
    try:
        return utc(requested_at) + lifetime
    except OverflowError:
        raise MalformedResponseError() from None


@dataclass(frozen=True)
class TokenPair:
    """An access and a refresh token with their local-clock expiry instants.

    ``refresh_expires_at`` is None when the server never said how long the refresh token lives
    (OAuth servers may not): it is then valid until the server refuses it.
    ``refresh`` is None only for a machine session whose client credentials grant gave no refresh
    token (RFC 6749 4.4.3): it is renewed by running the grant again (``domain/machine.py``).
    ``opaque_access_lifetime`` is an opaque access token's lifetime when it was issued (the
    response's ``expires_in``, else the default): the refresh margin is a fraction of it, so a
    60 s token is not refreshed on every use. None for a JWT (its claims say) or when unknown
    (a file written before it was kept): the policy's default lifetime is assumed.
    """

    access: str
    refresh: str | None
    access_expires_at: datetime
    refresh_expires_at: datetime | None
    opaque_access_lifetime: timedelta | None = None

    @classmethod
    def issued(
        cls,
        access: str,
        refresh: str | None,
        requested_at: datetime,
        *,
        expires_in: float | None = None,
        refresh_expires_in: float | None = None,
        refresh_expires_at: datetime | None = None,
        default_refresh: timedelta | None = DEFAULT_REFRESH_LIFETIME,
    ) -> TokenPair:
        """The pair the server just issued in answer to a request sent at ``requested_at``.

        A JWT's lifetime comes from its claims (``exp - iat``); an opaque token's from the
        response's fields, measured from ``requested_at`` (``refresh_expires_in`` wins over
        ``refresh_expires_at``), failing those from the defaults (15 min; ``default_refresh``).
        """
        if not access or refresh == "":  # None: no refresh token was issued (a machine session)
            raise MalformedResponseError()
        opaque_lifetime: timedelta | None = None
        if is_jwt(access):
            access_at = local_expiry(access, requested_at)
        else:
            opaque_lifetime = lifetime_from_seconds(expires_in) or DEFAULT_ACCESS_LIFETIME
            access_at = _opaque_expiry(requested_at, opaque_lifetime)
        refresh_at: datetime | None
        if refresh is None:
            refresh_at = None
        elif is_jwt(refresh):
            refresh_at = local_expiry(refresh, requested_at)
        elif (life := lifetime_from_seconds(refresh_expires_in)) is not None:
            refresh_at = _opaque_expiry(requested_at, life)
        elif refresh_expires_at is not None:
            refresh_at = server_instant(refresh_expires_at)
        elif default_refresh is not None:
            refresh_at = _opaque_expiry(requested_at, default_refresh)
        else:
            refresh_at = None
        return cls(access=access, refresh=refresh, access_expires_at=access_at, refresh_expires_at=refresh_at,
                   opaque_access_lifetime=opaque_lifetime)

    @classmethod
    def from_issued(
        cls, issued: IssuedTokens, requested_at: datetime, *,
        default_refresh: timedelta | None = DEFAULT_REFRESH_LIFETIME,
    ) -> TokenPair:
        return cls.issued(
            issued.access, issued.refresh, requested_at,
            expires_in=issued.expires_in, refresh_expires_in=issued.refresh_expires_in,
            refresh_expires_at=issued.refresh_expires_at, default_refresh=default_refresh,
        )

    @property
    def access_lifetime(self) -> timedelta | None:
        """How long the access token lives: a JWT's ``exp - iat``, else the lifetime it was issued with."""
        return token_lifetime(self.access) or self.opaque_access_lifetime

    def refresh_usable(self, now: datetime) -> bool:
        """The refresh token has not expired (an unknown expiry counts as usable).

        A pair without a refresh token (a machine session renewed by its grant) counts as usable:
        the server says when it is not, by refusing the client.
        """
        return self.refresh_expires_at is None or now < self.refresh_expires_at

    @property
    def session_key(self) -> str:
        """What tells this pair from the next one the session gets: the refresh token, or for a pair
        without one the access token (each renewal of a machine session issues a new one).

        Single-flight decisions compare it: a rejected session is cleared, and a late answer stored,
        only while the file still holds the pair that was sent.
        """
        return self.refresh if self.refresh is not None else self.access

    def __repr__(self) -> str:  # never show token values, even in a debugger or a log
        refresh_at = format_instant(self.refresh_expires_at) if self.refresh_expires_at else None
        return (
            f"TokenPair(access=<redacted>, refresh={'<redacted>' if self.refresh is not None else None}, "
            f"access_expires_at={format_instant(self.access_expires_at)}, "
            f"refresh_expires_at={refresh_at})"
        )


class LoginMethod(enum.StrEnum):
    """How a session was obtained (``status --json``'s ``login_method``)."""

    PASSWORD = "password"
    WEB = "web"
    DEVICE = "device"
    MACHINE = "machine"  # OAuth client credentials (RFC 6749 4.4): a CI service principal


@dataclass(frozen=True)
class OAuthClient:
    """What refreshing and revoking an OAuth session needs: the public client and its endpoints.

    Stored with the session so that a refresh goes to the endpoint the login used (same origin
    as the server, checked at login), never to one discovered later.
    """

    client_id: str
    token_endpoint: str
    revocation_endpoint: str | None = None


@dataclass(frozen=True)
class MachineClient:
    """The service principal a machine session belongs to (``login --machine``).

    Only its client id: the secret is never stored; a renewal without a refresh token reads it
    from the renewing process's environment (``domain/machine.py``).
    """

    client_id: str


@dataclass(frozen=True)
class Team:
    id: str
    slug: str
    name: str = ""
    role: str = ""
    is_private_teamspace: bool = False


@dataclass(frozen=True)
class Identity:
    """Who the session belongs to, from the server's ``GET /api/v1/me``."""

    email: str
    name: str = ""
    user_id: str = ""
    teams: tuple[Team, ...] = ()

    @property
    def team_slug(self) -> str | None:
        """The private teamspace, else the first team (CONTRACT: OAuth sessions' team)."""
        for team in self.teams:
            if team.is_private_teamspace:
                return team.slug
        return self.teams[0].slug if self.teams else None


@dataclass(frozen=True, repr=False)
class Credentials:
    """A stored session: the tokens, who they belong to, and the server that issued them.

    ``oauth`` is set for sessions from an OAuth server (browser, device or machine login) and says
    where they are refreshed and revoked; password sessions refresh at the simplejwt endpoint.
    ``machine`` is set for machine sessions (``login_method`` MACHINE): the client whose grant
    renews a session that has no refresh token.
    """

    tokens: TokenPair
    username: str
    server_url: str
    team_slug: str | None = None
    login_method: LoginMethod = LoginMethod.PASSWORD
    session_id: str | None = None
    oauth: OAuthClient | None = None
    identity: Identity | None = None
    machine: MachineClient | None = None

    def is_authenticated(self, now: datetime) -> bool:
        """Logged in while the refresh token has not expired."""
        return self.tokens.refresh_usable(now)

    def access_decision(self, now: datetime, policy: ExpiryPolicy) -> AccessDecision:
        return policy.decide(self.tokens.access_expires_at, now, self.tokens.access_lifetime)

    def with_tokens(self, tokens: TokenPair, team_slug: str | None = None) -> Credentials:
        """The session with rotated tokens; a team the server names replaces the stored one."""
        return replace(self, tokens=tokens, team_slug=team_slug or self.team_slug)

    def refreshed(self, issued: IssuedTokens, requested_at: datetime) -> Credentials:
        """The session after a refresh answered with ``issued`` (request sent at ``requested_at``)."""
        default_refresh = None if self.oauth is not None else DEFAULT_REFRESH_LIFETIME
        tokens = TokenPair.from_issued(issued, requested_at, default_refresh=default_refresh)
        return self.with_tokens(tokens, issued.team_slug)

    def issued_by(self, server_url: str) -> bool:
        return same_server(self.server_url, server_url)

    def __repr__(self) -> str:  # keep tokens out of every repr
        return (
            f"Credentials(username={self.username!r}, server_url={self.server_url!r}, "
            f"login_method={self.login_method.value!r}, tokens={self.tokens!r})"
        )


@dataclass(frozen=True)
class WsToken:
    """A short-lived, single-purpose WebSocket token: handed to the caller, never stored."""

    ws_token: str
    expires_at: datetime
    expires_in: int
    ws_url: str | None = None  # the WebSocket URL the server named (checked: wss, same host)

    def __repr__(self) -> str:
        return (f"WsToken(ws_token=<redacted>, expires_at={format_instant(self.expires_at)}, "
                f"expires_in={self.expires_in}, ws_url={self.ws_url!r})")


@dataclass(frozen=True)
class StatusReport:
    """What `auth status` shows; built offline from the stored file."""

    authenticated: bool
    credentials: Credentials | None = None
    unparsable_file: str | None = None  # path of a credentials file that exists but could not be parsed
