"""Machine sessions (`login --machine`: OAuth client credentials, RFC 6749 4.4): the client's credentials from the environment, and renewing and revoking a session that has no refresh token.

A CI service principal logs in with ``SPEC_KITTY_MACHINE_CLIENT_ID`` and a secret from
``SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE`` (which wins) or ``SPEC_KITTY_MACHINE_CLIENT_SECRET``
(``MachineCredentialsSource``, read by ``adapters/machine_secrets.py``). The login itself is
``domain/machine_login.py``. What follows from the grant's answer:

* With a refresh token (spec-kitty's SaaS gives one), the session is refreshed and revoked like
  any other OAuth session (the refresh-token grant with ``client_id=cli_native``).
* Without one (plain RFC 6749 4.4.3), :class:`ClientCredentialsRenewal` renews it by running
  the grant again, single-flight like every refresh (it is the gateway ``EnsureFreshToken``
  uses), with the secret from the environment of the process that renews. Without the secret
  there the session is kept, not cleared (another process that has it can renew it):
  ``RenewalUnavailableError``, ``Session expired. Please log in again.`` plus the variables to
  set. The server refusing the client (``invalid_client``: revoked, or the secret rotated)
  ends the session like a rejected refresh.
* Logout revokes such a session's access token (RFC 7009, ``token_type_hint=access_token``) as
  the confidential client it was issued to, so with the secret (:class:`MachineSessionRevoker`).

The secret is never stored, printed or logged; only the client id is kept with the session.
A secret-file path is not stored either, nor read back from the credentials file: a path read
from that file would let whoever can edit it make kitty-auth read any file the user can read and
send it to the server the file names. The renewing process's environment is the one trust root.

Errors (beside the tree in ``domain/errors.py``)::

    InvalidInputError
     +-- MachineConfigurationError   a variable is missing or blank, the secret file unusable
    AuthError
     +-- MachineClientRejectedError  the token endpoint answered invalid_client at login

It imports only the model and the errors: the CLI names its variables, so `auth status` loads it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from kitty_auth.domain.errors import AuthError, InvalidInputError, RenewalUnavailableError, TokenRejectedError
from kitty_auth.domain.model import Credentials, IssuedTokens, LoginMethod, WsToken

log = logging.getLogger("kitty_auth.machine")

CLIENT_ID_VARIABLE = "SPEC_KITTY_MACHINE_CLIENT_ID"
SECRET_FILE_VARIABLE = "SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE"
SECRET_VARIABLE = "SPEC_KITTY_MACHINE_CLIENT_SECRET"
SECRET_VARIABLES = f"{SECRET_FILE_VARIABLE} (a file holding the secret) or {SECRET_VARIABLE}"


@dataclass(frozen=True, repr=False)
class ClientCredentials:
    """A confidential client's id and secret, held in memory for one grant or revocation only."""

    client_id: str
    secret: str

    def __repr__(self) -> str:
        return f"ClientCredentials(client_id={self.client_id!r}, secret=<redacted>)"


class MachineConfigurationError(InvalidInputError):
    """The machine client's configuration in the environment cannot be used; the sentence names the variable."""


class MachineClientRejectedError(AuthError):
    """``invalid_client`` (RFC 6749 5.2): the server says neither which part was wrong nor why, and neither do we."""

    message = (
        "The server did not accept the machine client's credentials (invalid_client): the client id may be "
        "unknown, the secret wrong, or the client revoked; check " + CLIENT_ID_VARIABLE + " and the secret in "
        + SECRET_VARIABLES + "."
    )


class MachineCredentialsSource(Protocol):
    """Where the process that runs finds the machine client's credentials (its environment)."""

    def client_id(self) -> str | None:
        """``SPEC_KITTY_MACHINE_CLIENT_ID`` (surrounding blanks removed); None when unset or blank.

        MachineConfigurationError for an id that cannot be sent or shown (a control character).
        """
        ...

    def secret(self) -> str | None:
        """The secret: the content of the file ``SPEC_KITTY_MACHINE_CLIENT_SECRET_FILE`` names (one
        trailing newline removed), else ``SPEC_KITTY_MACHINE_CLIENT_SECRET``; None when neither is set
        (blank counts as unset).

        MachineConfigurationError, one sentence each, for a file that cannot be read, is empty, or
        that other users may read; for a secret holding a line break or control character.
        """
        ...


class ClientCredentialsGrant(Protocol):
    """The token endpoint's client credentials grant (the OAuth gateway implements it)."""

    def client_credentials(self, server_url: str, token_endpoint: str, client: ClientCredentials) -> IssuedTokens:
        """POST ``grant_type=client_credentials`` with ``client_id`` and ``client_secret`` in the form.

        ``token_endpoint`` must be https on ``server_url``'s origin (else UnsafeEndpointError, nothing
        sent). ``invalid_client`` -> MachineClientRejectedError; the answer may lack a refresh token.
        """
        ...


class ClientRevoker(Protocol):
    """A SessionRevoker that can authenticate as a confidential client."""

    def revoke(self, session: Credentials, deadline: float, as_client: ClientCredentials | None = None) -> None: ...


def login_credentials(source: MachineCredentialsSource) -> ClientCredentials:
    """The credentials ``login --machine`` uses; MachineConfigurationError naming what is missing."""
    client_id = source.client_id()
    secret = source.secret()  # a secret file that is set but unusable says so first
    if client_id is not None and secret is not None:
        return ClientCredentials(client_id, secret)
    if client_id is None and secret is None:
        missing = f"neither {CLIENT_ID_VARIABLE} nor a secret variable is set"
    elif client_id is None:
        missing = f"{CLIENT_ID_VARIABLE} is not set"
    else:
        missing = f"neither {SECRET_FILE_VARIABLE} nor {SECRET_VARIABLE} is set"
    raise MachineConfigurationError(
        f"Machine login needs {CLIENT_ID_VARIABLE} and a client secret in {SECRET_VARIABLES}; {missing}."
    )


def renews_by_grant(session: Credentials) -> bool:
    """A machine session the grant gave no refresh token: renewed by running the grant again."""
    return session.login_method is LoginMethod.MACHINE and session.machine is not None and session.tokens.refresh is None


def _session_credentials(session: Credentials, source: MachineCredentialsSource,
                         unavailable: Callable[[str, str], AuthError], when: str) -> ClientCredentials:
    """The stored session's client with the secret from this process's environment.

    Otherwise ``unavailable(client_id, what_to_do)``: a clause saying what is wrong or what to set
    (``when``: where or when to set it).
    """
    assert session.machine is not None
    stored = session.machine.client_id
    try:
        named, secret = source.client_id(), source.secret()
    except MachineConfigurationError as exc:
        raise unavailable(stored, "this process cannot use it: " + _clause(str(exc))) from None
    if secret is None:
        raise unavailable(stored, f"set {SECRET_VARIABLES} {when}")
    if named is not None and named != stored:
        # The secret in this environment belongs to another client: never sent for this one.
        raise unavailable(stored, f"this process cannot use it: {CLIENT_ID_VARIABLE} names another client here "
                                  f"({named}); set it to {stored} with that client's secret, or unset it")
    return ClientCredentials(stored, secret)


def _clause(sentence: str) -> str:
    """A configuration error's sentence, to continue another sentence."""
    text = sentence.rstrip(".")
    return "the " + text[4:] if text.startswith("The ") else text


def _renewal_unavailable(client_id: str, what_to_do: str) -> RenewalUnavailableError:
    return RenewalUnavailableError(
        f"This machine session (client {client_id}) has no refresh token and is renewed with its client's "
        f"secret; {what_to_do}."
    )


class ClientCredentialsRenewal:
    """The TokenGateway ``EnsureFreshToken`` uses: renews a machine session that has no refresh token
    by running its grant again; every other session is refreshed by the wrapped gateway.

    ``grant`` builds the OAuth adapter on first use (a password user never imports it). No answer
    of the grant is handed to ``on_late``: a grant rotates nothing, so an answer that comes too
    late loses nothing (the next renewal runs the grant again), and it is dropped.
    """

    def __init__(self, gateway: object, grant: Callable[[], ClientCredentialsGrant],
                 source: MachineCredentialsSource) -> None:
        self._gateway, self._grant, self._source = gateway, grant, source

    def obtain(self, server_url: str, username: str, password: str) -> IssuedTokens:
        return self._gateway.obtain(server_url, username, password)  # type: ignore[attr-defined,no-any-return]

    def refresh(self, session: Credentials, on_late: Callable[[IssuedTokens], None] | None = None) -> IssuedTokens:
        if not renews_by_grant(session):
            return self._gateway.refresh(session, on_late=on_late)  # type: ignore[attr-defined,no-any-return]
        client = _session_credentials(session, self._source, _renewal_unavailable,
                                      "in the environment of the process that uses it")
        assert session.oauth is not None  # a machine session is an OAuth session (checked when read)
        try:
            issued = self._grant().client_credentials(session.server_url, session.oauth.token_endpoint, client)
        except MachineClientRejectedError:
            log.info("the server refused the machine client (invalid_client)")
            raise TokenRejectedError() from None  # revoked or rotated: ends the session like a rejected refresh
        log.info("machine session renewed by its client credentials grant")
        return issued

    def ws_token(self, server_url: str, access_token: str) -> WsToken:
        return self._gateway.ws_token(server_url, access_token)  # type: ignore[attr-defined,no-any-return]

    def close(self) -> None:
        self._gateway.close()  # type: ignore[attr-defined]


class MachineRevocationUnavailableError(AuthError):
    """Logout could not ask the server: revoking needs the client's secret, which this process cannot use."""

    def __init__(self, client_id: str, what_to_do: str) -> None:
        self.client_id = client_id
        super().__init__(f"Revoking a machine session without a refresh token needs its client's secret; "
                         f"{what_to_do}; its access token stays valid until it expires.")


class MachineSessionRevoker:
    """The SessionRevoker logout uses: a machine session without a refresh token holds only an access
    token issued to its confidential client, which RFC 7009 lets that client revoke, authenticated
    with the secret from this process's environment (``token_type_hint=access_token``). Every other
    session goes to the wrapped revoker as is.
    """

    def __init__(self, revoker: ClientRevoker, source: MachineCredentialsSource) -> None:
        self._revoker, self._source = revoker, source

    def revoke(self, session: Credentials, deadline: float) -> None:
        if not renews_by_grant(session):
            self._revoker.revoke(session, deadline)
            return
        client = _session_credentials(session, self._source, MachineRevocationUnavailableError, "when logging out")
        self._revoker.revoke(session, deadline, as_client=client)
