"""OAuth values and pure rules: PKCE, state, endpoint checks, the callback verdict and the device-polling schedule.

Everything here is a function of its arguments (randomness comes in as bytes, time as values),
so the rules are property-tested with hypothesis (tests/unit/test_oauth_properties.py):

* PKCE (RFC 7636, S256 only): the verifier is base64url of 32..96 random bytes (43..128
  unreserved characters), the challenge ``BASE64URL(SHA256(ASCII(verifier)))`` without padding.
* ``state``: 32 random bytes, base64url; compared in constant time.
* Endpoints (RFC 8414 metadata or spec-kitty 3.x's default paths) are used only when they are
  https URLs on the server URL's own origin (those we send requests to: without a query),
  checked before anything is sent to them.
* The loopback callback (RFC 8252): a wrong or missing ``state`` is *foreign*: answered with an
  error page and otherwise ignored; only a callback carrying our ``state`` ends the wait.
* Device polling (RFC 8628 section 3.5): wait ``interval`` (default 5 s, at least 1 s whatever
  the server says) before each poll; ``slow_down`` adds 5 s for this and every later poll, with
  no cap; a transient failure (no answer, 5xx, 429) doubles the wait for the next poll only;
  never poll past the code's expiry.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from urllib.parse import urlencode, urlsplit, urlunsplit

from kitty_auth.domain.model import normalize_server_url
from kitty_auth.domain.oauth_errors import METADATA_PATH, OAuthUnsupportedError, UnsafeEndpointError

CLIENT_ID = "cli_native"
SCOPE = "offline_access"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# spec-kitty 3.x's paths, used by --web / --device when the server publishes no metadata (404).
DEFAULT_PATHS = {
    "authorization_endpoint": "/oauth/authorize",
    "token_endpoint": "/oauth/token",
    "device_authorization_endpoint": "/oauth/device",
    "revocation_endpoint": "/oauth/revoke",
}

MIN_ENTROPY_BYTES = 32  # 43 characters: RFC 7636's minimum verifier length
MAX_ENTROPY_BYTES = 96  # 128 characters: its maximum
DEFAULT_POLL_INTERVAL = timedelta(seconds=5)  # RFC 8628 section 3.2: when the server names none
# Whatever the server names: an `interval` of 1e-9 would poll (and take the credentials lock) ~1,000 times a second.
MIN_POLL_INTERVAL = timedelta(seconds=1)
SLOW_DOWN_STEP = timedelta(seconds=5)  # RFC 8628 section 3.5


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


# --------------------------------------------------------------------------- PKCE and state


def pkce_verifier(entropy: bytes) -> str:
    """The code verifier for ``entropy`` (32..96 random bytes): 43..128 unreserved characters."""
    if not MIN_ENTROPY_BYTES <= len(entropy) <= MAX_ENTROPY_BYTES:
        raise ValueError("PKCE needs 32 to 96 bytes of entropy")
    return b64url(entropy)


def pkce_challenge(verifier: str) -> str:
    """The S256 code challenge of ``verifier``."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def new_state(entropy: bytes) -> str:
    if len(entropy) < 16:
        raise ValueError("state needs at least 16 bytes of entropy")
    return b64url(entropy)


@dataclass(frozen=True, repr=False)
class Pkce:
    """One login's PKCE secret and public challenge, plus its ``state``. The repr shows neither secret."""

    verifier: str
    challenge: str
    state: str

    @classmethod
    def from_entropy(cls, verifier_bytes: bytes, state_bytes: bytes) -> Pkce:
        verifier = pkce_verifier(verifier_bytes)
        return cls(verifier=verifier, challenge=pkce_challenge(verifier), state=new_state(state_bytes))

    def __repr__(self) -> str:
        return "Pkce(verifier=<redacted>, state=<redacted>)"


# --------------------------------------------------------------------------- endpoints


def metadata_url(server_url: str) -> str:
    """Where RFC 8414 puts the metadata of the authorization server whose issuer is ``server_url``.

    Section 3: the well-known path goes between the host and the issuer's path, so
    ``https://host/tenant`` is looked up at ``https://host/.well-known/oauth-authorization-server/tenant``
    (and ``https://host`` at ``https://host/.well-known/oauth-authorization-server``).
    """
    parts = urlsplit(normalize_server_url(server_url))  # canonical: no trailing slash, no query
    return urlunsplit(("https", parts.netloc, METADATA_PATH + parts.path, "", ""))


@dataclass(frozen=True)
class Endpoints:
    """The OAuth endpoints a login uses; each checked by :func:`check_endpoints` before use."""

    authorization: str | None
    token: str
    device_authorization: str | None
    revocation: str | None
    from_metadata: bool = True

    @classmethod
    def defaults(cls, server_url: str) -> Endpoints:
        """spec-kitty 3.x's fixed paths on ``server_url`` (the server publishes no metadata)."""
        base = normalize_server_url(server_url)
        return cls(
            authorization=base + DEFAULT_PATHS["authorization_endpoint"],
            token=base + DEFAULT_PATHS["token_endpoint"],
            device_authorization=base + DEFAULT_PATHS["device_authorization_endpoint"],
            revocation=base + DEFAULT_PATHS["revocation_endpoint"],
            from_metadata=False,
        )


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return scheme, (parts.hostname or "").lower(), port


def same_origin_https(server_url: str, endpoint: str) -> bool:
    """``endpoint`` is an https URL on ``server_url``'s scheme, host and port, without user info."""
    if not isinstance(endpoint, str) or not endpoint or any(ch.isspace() or ord(ch) < 32 for ch in endpoint):
        return False
    try:
        parts = urlsplit(endpoint)
        origin = _origin(endpoint)
        server = _origin(server_url)
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or parts.fragment:
        return False
    return origin[0] == "https" and origin == server


def check_endpoints(server_url: str, endpoints: Endpoints, needed: tuple[str, ...]) -> None:
    """Refuse (UnsafeEndpointError) unless every endpoint in ``needed`` plus the token and
    revocation endpoints (when present) is https on ``server_url``'s origin.

    ``needed`` names the fields the chosen method cannot do without ("authorization",
    "device_authorization"); a missing one is OAuthUnsupportedError.
    """
    labels = {
        "authorization": ("authorization endpoint", "browser login"),
        "device_authorization": ("device authorization endpoint", "device login"),
    }
    for name in needed:
        if getattr(endpoints, name) is None:
            raise OAuthUnsupportedError(labels[name][1])
    checked = {"token": "token endpoint", "revocation": "revocation endpoint"}
    checked.update({name: labels[name][0] for name in needed})
    for name, label in checked.items():
        value = getattr(endpoints, name)
        if value is None:
            continue
        if not same_origin_https(server_url, value):
            raise UnsafeEndpointError(label)
        if name != "authorization" and urlsplit(value).query:
            # The endpoints we send requests to are plain URLs (the HTTP core refuses a query):
            # refused here, before the user is sent to the browser, not at the code exchange.
            raise UnsafeEndpointError(label, "has a query string, which kitty-auth does not send requests to")


def authorization_url(endpoint: str, *, client_id: str, redirect_uri: str, pkce: Pkce, scope: str = SCOPE) -> str:
    """The URL the browser opens (RFC 6749 4.1.1 with RFC 7636's challenge); carries no secret."""
    query = urlencode({
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": pkce.state,
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
    })
    separator = "&" if urlsplit(endpoint).query else "?"
    return f"{endpoint}{separator}{query}"


# --------------------------------------------------------------------------- the loopback callback


class CallbackKind(enum.Enum):
    CODE = "code"  # our state and a code: exchange it
    DENIED = "denied"  # our state and error=access_denied: the login ends
    ERROR = "error"  # our state and another error (or no code): the login ends
    FOREIGN = "foreign"  # wrong or missing state: answered with an error page, then ignored


@dataclass(frozen=True, repr=False)
class CallbackVerdict:
    kind: CallbackKind
    code: str | None = None
    error: str | None = None

    def __repr__(self) -> str:
        return f"CallbackVerdict({self.kind.value}, error={self.error!r})"


_ERROR_CODE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


def judge_callback(params: Mapping[str, str], expected_state: str) -> CallbackVerdict:
    """What a request to the loopback ``/callback`` means for the login waiting on ``expected_state``."""
    state = params.get("state")
    if not isinstance(state, str) or not hmac.compare_digest(state.encode(), expected_state.encode()):
        return CallbackVerdict(CallbackKind.FOREIGN)
    error = params.get("error")
    if error is not None:
        # Only an RFC 6749 error code is echoed into a message; anything else is summarised.
        shown = error if error and len(error) <= 64 and set(error) <= _ERROR_CODE_CHARS else "unknown_error"
        kind = CallbackKind.DENIED if error == "access_denied" else CallbackKind.ERROR
        return CallbackVerdict(kind, error=shown)
    code = params.get("code")
    if not code:
        return CallbackVerdict(CallbackKind.ERROR, error="missing_code")
    return CallbackVerdict(CallbackKind.CODE, code=code)


class CallbackPage(enum.Enum):
    """What the browser tab is told; the adapter renders it (never with a code or token)."""

    LOGGED_IN = "logged_in"  # only after the code was exchanged and the session stored
    DENIED = "denied"
    FAILED = "failed"  # the exchange or the server failed: the terminal says why
    FOREIGN = "foreign"  # not this login's callback


# --------------------------------------------------------------------------- the device flow


@dataclass(frozen=True, repr=False)
class DeviceAuthorization:
    """The device authorization response (RFC 8628 section 3.2). ``device_code`` is a secret."""

    device_code: str
    user_code: str
    verification_uri: str
    expires_in: float
    interval: float | None = None
    verification_uri_complete: str | None = None

    def __repr__(self) -> str:
        return (f"DeviceAuthorization(device_code=<redacted>, user_code={self.user_code!r}, "
                f"verification_uri={self.verification_uri!r}, expires_in={self.expires_in})")


class PollOutcome(enum.Enum):
    PENDING = "authorization_pending"
    SLOW_DOWN = "slow_down"
    TRANSIENT = "transient"  # no answer, 5xx, 429: keep polling, less often


@dataclass(frozen=True)
class PollSchedule:
    """When the next device poll may be sent (RFC 8628 section 3.5)."""

    interval: timedelta
    expires_at: datetime
    failures: int = 0  # consecutive transient failures

    @classmethod
    def start(cls, requested_at: datetime, authorization: DeviceAuthorization) -> PollSchedule:
        interval = DEFAULT_POLL_INTERVAL
        asked = authorization.interval
        if asked is not None and asked > 0:  # (NaN is not > 0)
            # Never below the floor; never past the code's life, where it only means "no poll before expiry"
            # (and keeps an infinite interval out of timedelta).
            interval = max(MIN_POLL_INTERVAL, timedelta(seconds=min(asked, authorization.expires_in)))
        return cls(interval=interval, expires_at=requested_at + timedelta(seconds=authorization.expires_in))

    def after(self, outcome: PollOutcome) -> PollSchedule:
        if outcome is PollOutcome.SLOW_DOWN:
            return replace(self, interval=self.interval + SLOW_DOWN_STEP, failures=0)
        if outcome is PollOutcome.TRANSIENT:
            return replace(self, failures=min(self.failures + 1, 6))
        return replace(self, failures=0)

    @property
    def wait(self) -> timedelta:
        """How long to wait before the next poll: the interval, doubled per transient failure."""
        return self.interval * (2 ** self.failures)

    def next_poll(self, now: datetime) -> datetime | None:
        """When to poll next, or None when that would be at or after the code's expiry."""
        when = now + self.wait
        return when if when < self.expires_at else None
