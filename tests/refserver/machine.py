"""The reference server's machine clients: CI service principals logging in with OAuth client credentials (RFC 6749
4.4), as spec-kitty's SaaS defines them, on django-oauth-toolkit (DOT) 3.4.1 and oauthlib 3.3.

A machine client is a confidential DOT application (`client-credentials` grant, a hashed secret) whose `user` is its
service user (`ci-bot@spec-kitty.test`: what `GET /api/v1/me` names). Created, re-keyed and revoked through the
control API (`create_machine_client`, `rotate_machine_secret`, `revoke_machine_client`). Both answers exist, chosen by
`options.current.machine_refresh_token`:

- with a refresh token (the default, as spec-kitty's SaaS answers): the tokens are issued to the CLI's public client
  `cli_native`, so the CLI refreshes them (refresh-token grant, `client_id=cli_native`) and revokes them (RFC 7009)
  exactly as it does its browser and device sessions;
- without one (plain RFC 6749 4.4.3): the access token belongs to the machine client, which alone may revoke it
  (RFC 7009 with its `client_id` and `client_secret`); the CLI renews by running the grant again.

What DOT does differently, filled in here with its public extension points:

- `Server` (`OAUTH2_SERVER_CLASS`): oauthlib's client credentials grant never asks for a refresh token (RFC 6749
  4.4.3 says SHOULD NOT); ours does while the option is on.
- `MachineValidator.save_bearer_token` (`OAUTH2_VALIDATOR_CLASS`): DOT saves client-credentials tokens without a user
  (by design, django-oauth-toolkit issues #38, #603, #838) and its refresh tokens need one; a principal's tokens are
  saved for its service user, and for `cli_native` when they carry a refresh token.
- `invalid_client` is answered 400, as spec-kitty's SaaS does (oauthlib says 401; RFC 6749 5.2 allows both when the
  client did not authenticate with an Authorization header): `refserver.oauth.TokenView`.

Import only after `refserver.config.configure_django` has run.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import (
    get_access_token_model,
    get_application_model,
    get_refresh_token_model,
    set_token_value,
)
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2 import Server as OAuthlibServer
from oauthlib.oauth2.rfc6749.grant_types import ClientCredentialsGrant

from refserver import OAUTH_CLIENT_ID, accounts, options
from refserver.oauth import Validator


class _AskingForARefreshToken:
    """oauthlib's token handler, asked for a refresh token whatever the grant says."""

    def __init__(self, handler: Any) -> None:
        self._handler = handler

    def create_token(self, request: Any, refresh_token: bool = False, **kwargs: Any) -> Any:
        return self._handler.create_token(request, refresh_token=True, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handler, name)


class MachineCredentialsGrant(ClientCredentialsGrant):
    def create_token_response(self, request: Any, token_handler: Any) -> Any:
        if options.current.machine_refresh_token:
            token_handler = _AskingForARefreshToken(token_handler)
        return super().create_token_response(request, token_handler)


class Server(OAuthlibServer):
    """oauthlib's all-in-one server with the machine clients' client credentials grant."""

    def __init__(self, request_validator: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(request_validator, *args, **kwargs)
        self.credentials_grant = MachineCredentialsGrant(request_validator)
        self.grant_types["client_credentials"] = self.credentials_grant


class MachineValidator(Validator):
    def save_bearer_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        if request.grant_type != "client_credentials":
            return super().save_bearer_token(token, request, *args, **kwargs)
        principal = request.client
        owner = (get_application_model().objects.get(client_id=OAUTH_CLIENT_ID) if "refresh_token" in token
                 else principal)
        expires = timezone.now() + timedelta(seconds=token.get("expires_in", oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS))
        with transaction.atomic():
            access = get_access_token_model()(user=principal.user, scope=token.get("scope", ""), expires=expires,
                                               application=owner)
            set_token_value(access, token["access_token"])
            access.save()
            if "refresh_token" in token:
                refresh = get_refresh_token_model()(user=principal.user, application=owner, access_token=access,
                                                    token_family=uuid.uuid4())
                set_token_value(refresh, token["refresh_token"])
                refresh.save()
        return None


# ------------------------------------------------------------------------------------------ control helpers


def create_machine_client(client_id: str, email: str | None = None, name: str | None = None) -> dict[str, str]:
    """Register (or re-register, with a new secret) the machine client `client_id` and its service user."""
    email = email or f"{client_id}@spec-kitty.test"
    accounts.create_user(email, secrets.token_urlsafe(24), name=name or f"{client_id} (service principal)")
    user = get_user_model().objects.get(username=email)
    secret = "mcs_" + secrets.token_urlsafe(32)
    get_application_model().objects.update_or_create(
        client_id=client_id,
        defaults={
            "name": f"machine client {client_id}",
            "client_type": "confidential",
            "authorization_grant_type": "client-credentials",
            "client_secret": secret,  # hashed when saved
            "hash_client_secret": True,
            "user": user,
            "redirect_uris": "",
            "skip_authorization": True,
            "algorithm": "",
        },
    )
    return {"client_id": client_id, "client_secret": secret, "email": email}


def rotate_machine_secret(client_id: str) -> str | None:
    """A new secret for `client_id` (the old one is refused from now on; issued tokens stay valid); None if unknown."""
    application = get_application_model().objects.filter(client_id=client_id, client_type="confidential").first()
    if application is None:
        return None
    secret = "mcs_" + secrets.token_urlsafe(32)
    application.client_secret = secret
    application.save()
    return secret


def revoke_machine_client(client_id: str) -> bool:
    """Revoke the principal: its grant is refused (invalid_client) and every token of its service user dies, those
    issued to `cli_native` (refreshable sessions) included. False if there was no such client."""
    application = get_application_model().objects.filter(client_id=client_id, client_type="confidential").first()
    if application is None:
        return False
    with transaction.atomic():
        if application.user is not None:
            get_refresh_token_model().objects.filter(user=application.user).delete()
            get_access_token_model().objects.filter(user=application.user).delete()
        application.delete()  # its own tokens go with it (cascade)
    return True


def remove_machine_clients() -> int:
    """Every machine client, with its tokens (the server's reset); returns how many."""
    ids = list(get_application_model().objects.filter(client_type="confidential").values_list("client_id", flat=True))
    return sum(revoke_machine_client(client_id) for client_id in ids)
