"""The library face for the spec-kitty host: AuthClient and CredentialStore over the use cases."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from kitty_auth.container import Container, build_container, close_network, load_settings, login_server
from kitty_auth.domain.errors import NotAuthenticatedError
from kitty_auth.domain.model import Credentials, WsToken


class AuthClient:
    """Log in, refresh, and hand out access and ws tokens for one spec-kitty home.

    ``server_url`` is used for logging in; without it a login goes where ``auth login`` without
    ``--server`` goes: the environment's or config.toml's server, else the stored session's, else
    the default. Every refresh and ws-token request goes to the server stored with the tokens. HTTP requests of one client
    share one connection; call ``close()`` (or use ``with AuthClient() as c:``) when done.
    """

    def __init__(self, server_url: str | None = None, *, home: str | Path | None = None,
                 container: Container | None = None) -> None:
        if container is None:
            container = build_container(load_settings(home=home) if home is not None else None)
        self._container = container
        self._server_url = server_url

    @property
    def server_url(self) -> str:
        """The server ``obtain_tokens`` logs in to (checked: https only)."""
        return login_server(self._container, self._server_url, explicit_source="AuthClient(server_url=...)")

    def obtain_tokens(self, username: str, password: str) -> Credentials:
        """Log in as `auth login --force` does: obtain the tokens and store them."""
        return self._container.login().execute(self.server_url, username, password)

    def refresh_tokens(self, refresh_token: str | None = None) -> Credentials:
        """Refresh now (rotating the refresh token) and store the result."""
        use_case = self._container.ensure_fresh_token()
        if refresh_token is None:
            return use_case.refresh_now()
        return use_case.refresh_with(refresh_token)

    def obtain_ws_token(self, access_token: str | None = None) -> WsToken:
        """A short-lived WebSocket token; a 401 gets one refresh and one retry (none for SPEC_KITTY_SAAS_TOKEN's)."""
        return self._container.obtain_ws_token().execute(access_token)

    def is_authenticated(self) -> bool:
        """True while a stored refresh token has not expired, or SPEC_KITTY_SAAS_TOKEN is set. No network."""
        if self._container.token_source().environment is not None:
            return True
        return self._container.status().execute().authenticated

    def get_access_token(self) -> str:
        """A valid access token, refreshed first when needed (at most one refresh machine-wide).

        SPEC_KITTY_SAAS_TOKEN's token when that variable is set (never refreshed).
        """
        return self._container.token_source().access_token()

    def token_server_url(self) -> str:
        """The server the access token goes to, and no other: the stored session's, or with
        SPEC_KITTY_SAAS_TOKEN set, the one a login would target. No network."""
        source = self._container.token_source()
        if source.environment is not None:
            return source.environment_server()
        return self.credentials().server_url

    def credentials(self) -> Credentials:
        current = self._container.status().execute().credentials
        if current is None:
            raise NotAuthenticatedError()
        return current

    def clear_credentials(self) -> bool:
        return self._container.logout().execute()

    def close(self) -> None:
        close_network(self._container)

    def __enter__(self) -> AuthClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class CredentialStore:
    """Direct access to the credentials file (the same safety rules as the CLI)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self._repo = build_container(credentials_path=Path(path) if path is not None else None).repository()

    @property
    def path(self) -> str:
        return self._repo.location

    def load(self) -> Credentials | None:
        return self._repo.load()

    def save(self, credentials: Credentials) -> None:
        self._repo.save(credentials)

    def clear(self) -> bool:
        return self._repo.clear()
