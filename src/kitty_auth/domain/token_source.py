"""Where the access token a request carries comes from: SPEC_KITTY_SAAS_TOKEN when it is set, else a stored session.

A token from the environment (an :class:`EnvironmentToken`, read by the settings adapter) wins over
the credentials file for everything that sends or hands out an access token: the library's
``get_access_token``, ``BearerAuth``, ``obtain_ws_token``, the ``WebSocketClient`` and `auth token`.
It is not ours: it is never stored and never refreshed (there is no refresh token), and a 401 for
it is :class:`EnvironmentTokenRejectedError`, naming the variable, with no refresh attempt and
every stored session left as it is. It names no server, so it goes to the server the next login
would target (``login_server``: `SPEC_KITTY_SAAS_URL`, config.toml, the stored session's, the
default), and to no other.

`auth token` chooses with `--server`/`--user` (:meth:`TokenSource.choose`), as `gh auth token`
does with `--hostname`/`--user`: `--user NAME` names a stored account, which the variable is not
(it carries no user), so that account's token is printed (gh reads `--user`'s token from its store,
never GH_TOKEN); `--server URL` alone gets the variable's token when URL is the variable's server
(gh prefers the environment's token for its host), else the session stored for URL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

from kitty_auth.domain.accounts import StoredSession, choose
from kitty_auth.domain.errors import EnvironmentTokenRejectedError, NotAuthenticatedError, SessionExpiredError
from kitty_auth.domain.model import Credentials, normalize_server_url, same_server
from kitty_auth.domain.ports import CredentialRepository
from kitty_auth.domain.use_cases import EnsureFreshToken, _load_or_none

log = logging.getLogger("kitty_auth")

TOKEN_VARIABLE = "SPEC_KITTY_SAAS_TOKEN"  # spec-kitty's own SaaS client reads it too; read by the settings adapter


@dataclass(frozen=True)
class EnvironmentToken:
    """An access token from the environment; ``variable`` names it in messages (its value, never)."""

    access: str = field(repr=False)
    variable: str


@dataclass(frozen=True)
class BearerToken:
    """An access token to send, and the one server it may be sent to.

    ``variable``: the environment variable it came from; None when it is a stored session's
    (``session``, as it was when the token was read).
    """

    access: str = field(repr=False)
    server_url: str
    variable: str | None = None
    session: Credentials | None = field(default=None, repr=False)


@dataclass(frozen=True)
class TokenChoice:
    """The token `auth token` prints, chosen before any refresh: the environment's, or a stored account's.

    ``account``: the stored session; ``named``: the user named it with `--server`/`--user` (it
    is then refreshed where it is stored, without becoming the active one).
    """

    server_url: str
    environment: EnvironmentToken | None = None
    account: StoredSession | None = field(default=None, repr=False)
    named: bool = False


def _stored(session: Credentials) -> BearerToken:
    return BearerToken(session.tokens.access, session.server_url, session=session)


class TokenSource:
    """The access token every consumer sends: the environment's when set, else the active session's.

    ``ensure_fresh`` refreshes stored sessions (single-flight); ``repo`` lists them for
    `--server`/`--user`; ``environment`` is the variable's token (None when unset or blank);
    ``login_server`` names the server the next login would target, asked only when the
    environment's token needs a server.
    """

    def __init__(self, ensure_fresh: EnsureFreshToken, repo: CredentialRepository,
                 environment: EnvironmentToken | None = None,
                 login_server: Callable[[], str] | None = None) -> None:
        if environment is not None and login_server is None:
            raise TypeError("a token from the environment needs login_server, the server it goes to")
        self._ensure, self._repo = ensure_fresh, repo
        self._environment, self._login_server = environment, login_server

    @property
    def environment(self) -> EnvironmentToken | None:
        """The environment's token when it wins over the stored sessions (it is set), else None."""
        return self._environment

    def environment_server(self) -> str:
        """The server the environment's token goes to: the one the next login would target."""
        assert self._login_server is not None  # checked by __init__ whenever there is such a token
        return self._login_server()

    # -- the library and BearerAuth

    def access_token(self) -> str:
        """An access token worth sending (``get_access_token``): no server is needed to hand it out."""
        if self._environment is not None:
            return self._environment.access
        return self._ensure.execute().tokens.access

    def current(self) -> BearerToken:
        """The token to send, and where to (the active session's, refreshed first when needed)."""
        if self._environment is not None:
            return self._from_environment(self._environment)
        return _stored(self._ensure.execute())

    def after_rejection(self, rejected: BearerToken) -> BearerToken:
        """The server answered 401 to ``rejected``: a different token (one refresh, single-flight).

        The environment's token is never refreshed: EnvironmentTokenRejectedError at once.
        """
        if rejected.variable is not None:
            log.info("the server refused the token from the environment; it is never refreshed")
            raise EnvironmentTokenRejectedError(rejected.variable)
        return _stored(self._ensure.after_rejection(rejected.access))

    def rejected_again(self, token: BearerToken) -> NoReturn:
        """The server refused ``token`` too, the one a rejection gave: the session is over.

        A stored session is cleared unless another process stored newer tokens meanwhile; the
        environment's token leaves every stored session alone.
        """
        if token.variable is not None:
            raise EnvironmentTokenRejectedError(token.variable)
        if token.session is not None:
            self._ensure.forget_if_unchanged(token.session)
        raise SessionExpiredError()

    # -- `auth token [--server URL] [--user NAME]`

    def choose(self, server_url: str | None = None, username: str | None = None) -> TokenChoice:
        """Which token `auth token` prints (see the module docstring); nothing is refreshed yet.

        NotAuthenticatedError when nothing is stored (and no variable is set), NoSuchSessionError
        when nothing matches, AmbiguousSessionError when several stored sessions do.
        """
        env = self._environment
        if env is not None and username is None:
            env_server = self.environment_server()
            if server_url is None or same_server(
                    normalize_server_url(server_url, source="--server", implied_https=True), env_server):
                return TokenChoice(env_server, environment=env)
        if server_url is None and username is None:
            active = _load_or_none(self._repo)  # a file that is not valid counts as logged out
            if active is None:
                raise NotAuthenticatedError()
            return TokenChoice(active.server_url, account=StoredSession(active, active=True))
        account = choose(self._repo.sessions(), server_url, username)
        return TokenChoice(account.credentials.server_url, account=account, named=True)

    def token(self, choice: TokenChoice) -> BearerToken:
        """The chosen token, refreshed first when needed; a named account is refreshed where it is stored."""
        if choice.environment is not None:
            return BearerToken(choice.environment.access, choice.server_url, choice.environment.variable)
        if choice.account is None or not choice.named:
            return _stored(self._ensure.execute())
        creds = choice.account.credentials
        return _stored(self._ensure.for_account(creds.server_url, creds.username).execute())

    def _from_environment(self, env: EnvironmentToken) -> BearerToken:
        return BearerToken(env.access, self.environment_server(), env.variable)
