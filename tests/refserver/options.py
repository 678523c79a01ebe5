"""Run-time switches of the reference server's behaviour, set by tests through the control API (`/_control/options`).

One `Options` instance, `current`, is read by the views (in Django's worker thread) and replaced field by field by
the control API (on the event loop); each field is a plain value, so a reader never sees a half-made change.
"""

from __future__ import annotations

import dataclasses
from typing import Any

TOKEN_LIFETIME_FIELDS = (
    "expires_in", "access_lifetime", "refresh_token_expires_in", "refresh_expires_in", "refresh_lifetime",
    "refresh_token_expires_at",
)  # fmt: skip
WS_TOKEN_FIELDS = ("expires_at", "expires_in", "ws_url", "session_id")
METADATA_MODES = ("on", "off", "error", "html", "bad_json", "foreign_origin", "http_endpoint", "omit")
METADATA_ENDPOINTS = ("authorization_endpoint", "token_endpoint", "device_authorization_endpoint", "revocation_endpoint")


class OptionError(ValueError):
    """An option name or value the server does not know."""


@dataclasses.dataclass
class Options:
    """What the server does; the defaults are a well-behaved server offering both kinds of login.

    Password server (simplejwt):
      team_slug              `team_slug` (the user's team) in token and refresh responses
      blacklist_endpoint     POST /api/v1/token/blacklist/ exists (False: it answers 404)
      opaque_tokens          token and refresh responses carry opaque (non-JWT) access and refresh tokens, which the
                             server still accepts everywhere a JWT is accepted
      token_lifetime_fields  lifetime fields added to token and refresh responses (names in TOKEN_LIFETIME_FIELDS);
                             None: `expires_in` and `refresh_token_expires_in` with opaque tokens, none with JWTs
      ws_token_fields        what the ws-token response carries beside `ws_token` (names in WS_TOKEN_FIELDS)
    OAuth server (django-oauth-toolkit):
      oauth_metadata         RFC 8414 metadata: "on"; "off" (404, a password server); "error" (500); "html" (200 with an
                             HTML page); "bad_json" (200, not JSON); "foreign_origin", "http_endpoint", "omit": the
                             endpoint named by `oauth_metadata_endpoint` is on another origin, is http://, is absent
      oauth_metadata_endpoint  see above (names in METADATA_ENDPOINTS)
      oauth_endpoints        /oauth/* and the login page exist (False: they answer 404)
      device_interval        `interval` of new device authorizations, seconds (RFC 8628 default 5; fast for tests)
      device_expires_in      lifetime of new device and user codes, seconds
      device_slow_down       the next N device-code polls answer `slow_down` (whatever the grant's state)
      oauth_refresh_token_expires_in  OAuth token responses also carry `refresh_token_expires_in`
      oauth_refresh_grace_period  seconds a rotated-out OAuth refresh token is still accepted (django-oauth-toolkit's
                             REFRESH_TOKEN_GRACE_PERIOD_SECONDS; 0: refused at once): sent again within them, it gets
                             the access and refresh token its first use got, once more
      machine_refresh_token  the client credentials grant of machine clients gives a refresh token (as spec-kitty's
                             SaaS does; the CLI then refreshes with client_id=cli_native); False: plain RFC 6749
                             4.4.3, an access token only (the CLI renews by running the grant again)
    Any response:
      date_offset            seconds added to the time in every answer's `Date` header (negative: a server clock
                             behind), to fake a server whose clock is off
    """

    team_slug: bool = True
    blacklist_endpoint: bool = True
    opaque_tokens: bool = False
    token_lifetime_fields: list[str] | None = None
    ws_token_fields: list[str] = dataclasses.field(default_factory=lambda: ["expires_at", "expires_in"])
    oauth_metadata: str = "on"
    oauth_metadata_endpoint: str = "token_endpoint"
    oauth_endpoints: bool = True
    device_interval: int = 1
    device_expires_in: int = 600
    device_slow_down: int = 0
    oauth_refresh_token_expires_in: bool = False
    oauth_refresh_grace_period: int = 0
    machine_refresh_token: bool = True
    date_offset: int = 0

    def update(self, changes: Any) -> None:
        """Apply `changes` ({name: value}) after checking all of them; nothing changes if one is wrong."""
        if not isinstance(changes, dict):
            raise OptionError("options are a JSON object of {name: value}")
        fields = {field.name: field for field in dataclasses.fields(self)}
        unknown = set(changes) - set(fields)
        if unknown:
            raise OptionError(f"unknown options: {sorted(unknown)}; known: {sorted(fields)}")
        for name, value in changes.items():
            self._check(name, value)
        for name, value in changes.items():
            setattr(self, name, list(value) if isinstance(value, list) else value)

    def _check(self, name: str, value: Any) -> None:
        default = getattr(Options(), name)
        if name == "token_lifetime_fields" and value is None:
            return
        if isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 or name == "date_offset")
        elif isinstance(default, str):
            allowed = METADATA_MODES if name == "oauth_metadata" else METADATA_ENDPOINTS
            ok = value in allowed
        else:
            allowed = WS_TOKEN_FIELDS if name == "ws_token_fields" else TOKEN_LIFETIME_FIELDS
            ok = isinstance(value, list) and all(item in allowed for item in value)
        if not ok:
            raise OptionError(f"bad value for option {name!r}: {value!r}")

    def lifetime_fields(self) -> list[str]:
        if self.token_lifetime_fields is not None:
            return self.token_lifetime_fields
        return ["expires_in", "refresh_token_expires_in"] if self.opaque_tokens else []

    def take_slow_down(self) -> bool:
        """True (and one fewer to go) while forced `slow_down` answers remain."""
        if self.device_slow_down > 0:
            self.device_slow_down -= 1
            return True
        return False

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def reset(self) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(Options(), field.name))


current = Options()
