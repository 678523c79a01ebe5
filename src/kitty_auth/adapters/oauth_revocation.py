"""The SessionRevoker: each session is revoked by the protocol that issued it (RFC 7009 or simplejwt's blacklist)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kitty_auth.domain.errors import TokenRejectedError
from kitty_auth.domain.machine import ClientCredentials
from kitty_auth.domain.model import Credentials
from kitty_auth.domain.revocation import RevocationUnsupportedError


class HttpSessionRevoker:
    """OAuth sessions: the stored revocation endpoint; password sessions: ``/api/v1/token/blacklist/``.

    ``oauth`` builds the OAuth adapter on first use, so logging out of a password session never
    imports OAuth code.
    """

    def __init__(self, password: Any, oauth: Callable[[], Any]) -> None:
        self._password, self._oauth = password, oauth

    def revoke(self, session: Credentials, deadline: float, as_client: ClientCredentials | None = None) -> None:
        """``as_client``: an OAuth session's confidential client (``domain/machine.py``'s MachineSessionRevoker)."""
        if session.oauth is not None:
            self._oauth().revoke(session, deadline, as_client=as_client)
            return
        answer = self._password.blacklist(session.server_url, session.tokens.refresh, deadline)
        if answer == "absent":
            raise RevocationUnsupportedError()
        if answer == "refused":  # 401: the token was already invalid
            raise TokenRejectedError()
