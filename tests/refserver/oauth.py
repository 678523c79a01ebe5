"""The reference server's OAuth 2.0 side (spec-kitty 3.x), built on django-oauth-toolkit (DOT) 3.4.1 with oauthlib 3.3.

One public client, `cli_native` (no secret, PKCE S256 required, loopback redirect `http://127.0.0.1:ANY/callback`
per RFC 8252), with the authorization-code, refresh-token (rotating) and device-code grants, opaque tokens and the
`offline_access` scope. What DOT lacks or does differently is filled in here:

- `Validator`: DOT's Application allows one grant type, and DOT never tells oauthlib whose device code was
  approved; the validator lets `cli_native` use the device grant and issues its tokens to the approving user.
- `TokenView`: RFC 8628 polling as the contract needs it (an expired code is `expired_token`, a used or unknown
  code `invalid_grant`, forced `slow_down`), and `session_id` (the refresh-token family, stable across rotations)
  in every token response.
- `DeviceAuthorizationView`: absolute `verification_uri` and `verification_uri_complete` on this server, and the
  `interval` and lifetime the options ask for.
- `metadata`: RFC 8414 metadata, switchable off (404) and breakable (see `refserver.options`).

Import only after `refserver.config.configure_django` has run.
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlencode

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse, JsonResponse
from oauth2_provider import views as dot_views
from oauth2_provider.models import get_application_model, get_device_grant_model, get_refresh_token_model
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.common import Request as OAuthlibRequest

from refserver import (
    DEVICE_CODE_GRANT,
    DEVICE_VERIFY_PATH,
    OAUTH_AUTHORIZE_PATH,
    OAUTH_CLIENT_ID,
    OAUTH_DEVICE_PATH,
    OAUTH_REVOKE_PATH,
    OAUTH_SCOPE,
    OAUTH_TOKEN_PATH,
    issued,
    options,
)

LOOPBACK_REDIRECT_URI = "http://127.0.0.1/callback"  # any port matches (RFC 8252 section 7.3; DOT does so)


def create_client() -> None:
    """Register the public client `cli_native`."""
    get_application_model().objects.update_or_create(
        client_id=OAUTH_CLIENT_ID,
        defaults={
            "name": "spec-kitty CLI",
            "client_type": "public",
            "authorization_grant_type": "authorization-code",  # the device grant: see Validator
            "redirect_uris": LOOPBACK_REDIRECT_URI,
            "client_secret": "",
            "skip_authorization": False,
            "algorithm": "",
        },
    )


def oauth_error(error: str, description: str | None = None, status: int = 400) -> JsonResponse:
    body = {"error": error} | ({"error_description": description} if description else {})
    return JsonResponse(body, status=status, headers={"Cache-Control": "no-store"})


class Validator(OAuth2Validator):
    def validate_refresh_token(self, refresh_token: str, client: Any, request: OAuthlibRequest, *args: Any, **kwargs: Any) -> bool:
        # DOT reads the grace period from its settings object at each validation: follow the run-time option.
        oauth2_settings.REFRESH_TOKEN_GRACE_PERIOD_SECONDS = options.current.oauth_refresh_grace_period
        return super().validate_refresh_token(refresh_token, client, request, *args, **kwargs)

    def validate_grant_type(self, client_id: str, grant_type: str, client: Any, request: OAuthlibRequest, *args: Any, **kwargs: Any) -> bool:
        if grant_type != DEVICE_CODE_GRANT:
            return super().validate_grant_type(client_id, grant_type, client, request, *args, **kwargs)
        model = get_device_grant_model()
        device = model.objects.filter(
            device_code=request.device_code, client_id=client.client_id, status=model.AUTHORIZED
        ).first()
        if client.client_id != OAUTH_CLIENT_ID or device is None or device.user is None:
            return False
        request.user = device.user
        return True


def _error(response: HttpResponse) -> str | None:
    try:
        return json.loads(response.content).get("error")
    except (ValueError, AttributeError):
        return None


def refresh_token_family(refresh_token: str) -> str | None:
    checksum = hashlib.sha256(refresh_token.encode()).hexdigest()
    found = get_refresh_token_model().objects.filter(token_checksum=checksum).first()
    return str(found.token_family) if found and found.token_family else None


class TokenView(dot_views.TokenView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        if response.status_code == 401 and "HTTP_AUTHORIZATION" not in request.META and _error(response) == "invalid_client":
            # A client that authenticated in the form (a machine client's secret, or none) gets the contract's 400
            # invalid_client, as spec-kitty's SaaS answers it: unknown client, wrong secret and revoked alike.
            return oauth_error("invalid_client", "Client authentication failed.")
        if response.status_code != 200:
            return response
        data = json.loads(response.content)
        refreshing = request.POST.get("grant_type") == "refresh_token"
        issued.record("access", data.get("access_token"))
        issued.record("refresh", data.get("refresh_token"), rotated_from=request.POST.get("refresh_token") if refreshing else None)
        if "refresh_token" in data:
            data["session_id"] = refresh_token_family(data["refresh_token"])
            if options.current.oauth_refresh_token_expires_in:
                from refserver.api import get_lifetimes

                data["refresh_token_expires_in"] = int(get_lifetimes()["refresh"])
        response.content = json.dumps(data).encode()
        return response

    def device_flow_token_response(self, request: HttpRequest, device_code: str, *args: Any, **kwargs: Any) -> HttpResponse:
        device = get_device_grant_model().objects.filter(device_code=device_code).first()
        if device is None:
            return oauth_error("invalid_grant", "Unknown or already used device code.")
        if options.current.take_slow_down():
            return oauth_error("slow_down")
        device.is_expired()  # marks it expired once past its lifetime, so DOT answers expired_token
        response = super().device_flow_token_response(request, device_code, *args, **kwargs)
        if response.status_code == 200:
            device.delete()  # one token response per device code
        return response


class DeviceAuthorizationView(dot_views.DeviceAuthorizationView):
    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        response = super().post(request, *args, **kwargs)
        if response.status_code != 200:
            return response
        data = json.loads(response.content)
        issued.record("device_code", data.get("device_code"))
        verify = request.build_absolute_uri(DEVICE_VERIFY_PATH)
        interval, expires_in = options.current.device_interval, options.current.device_expires_in
        data |= {
            "verification_uri": verify,
            "verification_uri_complete": f"{verify}?{urlencode({'user_code': data['user_code']})}",
            "interval": interval,
            "expires_in": expires_in,
        }
        get_device_grant_model().objects.filter(device_code=data["device_code"]).update(
            interval=interval, expires=datetime.now(timezone.utc) + timedelta(seconds=expires_in)
        )
        return JsonResponse(data, headers={"Cache-Control": "no-store"})


# -------------------------------------------------------------------------------------------------- metadata

BROKEN_METADATA = {
    "error": (500, "text/html", "<h1>Server Error (500)</h1>"),
    "html": (200, "text/html", "<!doctype html><html><body><h1>Welcome to spec-kitty</h1></body></html>"),
    "bad_json": (200, "application/json", '{"issuer": "https://127.0.0.1", "token_endpoint": '),
}


def metadata(request: HttpRequest) -> HttpResponse:
    """RFC 8414 authorization server metadata, as `options.current.oauth_metadata` says."""
    mode, tampered = options.current.oauth_metadata, options.current.oauth_metadata_endpoint
    if mode == "off":
        return JsonResponse({"detail": "Not found."}, status=404)
    if mode in BROKEN_METADATA:
        status, content_type, body = BROKEN_METADATA[mode]
        return HttpResponse(body, status=status, content_type=content_type)
    issuer = f"https://{request.get_host()}"
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": issuer + OAUTH_AUTHORIZE_PATH,
        "token_endpoint": issuer + OAUTH_TOKEN_PATH,
        "device_authorization_endpoint": issuer + OAUTH_DEVICE_PATH,
        "revocation_endpoint": issuer + OAUTH_REVOKE_PATH,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", DEVICE_CODE_GRANT, "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "scopes_supported": [OAUTH_SCOPE],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post"],  # the latter: machine clients
        "revocation_endpoint_auth_methods_supported": ["none", "client_secret_post"],
    }
    if mode == "omit":
        del document[tampered]
    elif mode == "foreign_origin":
        document[tampered] = document[tampered].replace(issuer, "https://auth.other-origin.test")
    elif mode == "http_endpoint":
        document[tampered] = document[tampered].replace("https://", "http://", 1)
    return JsonResponse(document)


# ------------------------------------------------------------------------------------------ control helpers


def refresh_token_accepted(token: str) -> bool:
    """Whether the token endpoint would accept `token` as a refresh token now (nothing is changed)."""
    client = get_application_model().objects.get(client_id=OAUTH_CLIENT_ID)
    request = OAuthlibRequest("https://refserver.invalid/oauth/token")
    return bool(Validator().validate_refresh_token(token, client, request))


def expire_device_codes() -> int:
    """Make every pending device code expire now; returns how many."""
    model = get_device_grant_model()
    now = datetime.now(timezone.utc)
    return model.objects.filter(status=model.AUTHORIZATION_PENDING).update(expires=now - timedelta(seconds=1))


def decide_device_code(user_code: str, approve: bool, username: str) -> bool:
    """Approve or deny a pending device code as `username` would on the verification page; False if none."""
    model = get_device_grant_model()
    user = get_user_model().objects.get(username=username)
    status = model.AUTHORIZED if approve else model.DENIED
    return bool(model.objects.filter(user_code=user_code, status=model.AUTHORIZATION_PENDING).update(user=user, status=status))



def switchable(view: Any) -> Any:
    """`view`, or a 404 while `options.current.oauth_endpoints` is off (with the metadata off too: a pure password
    server)."""

    @functools.wraps(view)  # keeps csrf_exempt
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not options.current.oauth_endpoints:
            return JsonResponse({"detail": "Not found."}, status=404)
        return view(request, *args, **kwargs)

    return wrapper
