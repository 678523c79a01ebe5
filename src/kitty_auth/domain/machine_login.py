"""The machine login use case (`login --machine`): OAuth client credentials (RFC 6749 4.4) for a CI service principal.

The token endpoint is found as other OAuth logins find theirs (RFC 8414 metadata, else spec-kitty
3.x's default paths when the server publishes none) and checked (https, the server's own origin,
the revocation endpoint too) before anything is sent. Under the credentials lock: the grant, then
``GET /api/v1/me`` for the service identity, then one save (``_OAuthSession.store``, which revokes
what the server issued when ``me`` or the save fails). Nothing is stored on any failure. What the
session is afterwards (refreshed, or renewed by the grant) is ``domain/machine.py``'s.
"""

from __future__ import annotations

import logging
from typing import Protocol

from kitty_auth.domain.machine import (
    ClientCredentials,
    ClientCredentialsGrant,
    MachineCredentialsSource,
    MachineSessionRevoker,
    login_credentials,
)
from kitty_auth.domain.model import Credentials, Identity, LoginMethod, MachineClient, normalize_server_url
from kitty_auth.domain.oauth import Endpoints, check_endpoints
from kitty_auth.domain.oauth_ports import OAuthGateway
from kitty_auth.domain.oauth_use_cases import _OAuthSession
from kitty_auth.domain.ports import Clock, CredentialRepository
from kitty_auth.domain.use_cases import _load_or_none

log = logging.getLogger("kitty_auth.machine")


class MachineLoginGateway(OAuthGateway, ClientCredentialsGrant, Protocol):
    """The OAuth gateway with the client credentials grant (``HttpxOAuthGateway``)."""


class _KnownCredentials:
    """A MachineCredentialsSource holding what this login already read (no second look at the environment)."""

    def __init__(self, client: ClientCredentials) -> None:
        self._client = client

    def client_id(self) -> str:
        return self._client.client_id

    def secret(self) -> str:
        return self._client.secret


class _LoginGateway:
    """What ``_OAuthSession`` calls for one machine login: ``me``, and a revoke that, for tokens without a
    refresh token, authenticates as the confidential client they were issued to."""

    def __init__(self, gateway: MachineLoginGateway, client: ClientCredentials) -> None:
        self._gateway = gateway
        self._revoker = MachineSessionRevoker(gateway, _KnownCredentials(client))

    def me(self, server_url: str, access_token: str) -> Identity:
        return self._gateway.me(server_url, access_token)

    def revoke(self, session: Credentials, deadline: float) -> None:
        self._revoker.revoke(session, deadline)


class LoginWithClientCredentials:
    def __init__(self, repo: CredentialRepository, gateway: MachineLoginGateway, clock: Clock,
                 source: MachineCredentialsSource) -> None:
        self._repo, self._gateway, self._clock, self._source = repo, gateway, clock, source

    def configuration(self) -> ClientCredentials:
        """The client id and secret from the environment; MachineConfigurationError naming the variables."""
        return login_credentials(self._source)

    def already_logged_in(self, server_url: str, client_id: str) -> Credentials | None:
        """The stored session when it is this client's machine session at ``server_url`` and still logged in."""
        target = normalize_server_url(server_url)
        current = _load_or_none(self._repo)
        if (current is not None and current.machine is not None and current.machine.client_id == client_id
                and current.issued_by(target) and current.is_authenticated(self._clock.now())):
            return current
        return None

    def execute(self, server_url: str, client: ClientCredentials) -> Credentials:
        """Run the grant, name the service identity with ``me``, store the session (replacing what was stored)."""
        target = normalize_server_url(server_url)
        endpoints = self._gateway.discover(target)  # 404 -> None; any other failure raises
        if endpoints is None:
            endpoints = Endpoints.defaults(target)
        check_endpoints(target, endpoints, ())  # the token and revocation endpoints, before anything is sent
        session = _OAuthSession(self._repo, _LoginGateway(self._gateway, client), self._clock)  # type: ignore[arg-type]
        with self._repo.lock():
            requested_at = self._clock.now()
            issued = self._gateway.client_credentials(target, endpoints.token, client)
            credentials = session.store(target, endpoints, LoginMethod.MACHINE, issued, requested_at,
                                        machine=MachineClient(client.client_id))
        log.info("machine client %s logged in (%s refresh token)", client.client_id,
                 "with a" if credentials.tokens.refresh is not None else "without a")
        return credentials
