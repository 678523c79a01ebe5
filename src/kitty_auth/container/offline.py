"""The offline commands' composition (`status`, `whoami`, `switch`, `token`): the container's parts, without dependency-injector.

Importing dependency-injector costs a CLI start-up about as much as everything else together: it
imports asyncio, and asyncio imports ssl. The commands that only read the credentials file (and
`auth token` with a fresh token) need a handful of parts, built here by plain code; the same
classes, with the same arguments, as the providers of ``kitty_auth.container.di.Container``
(tests/unit/test_offline_container.py compares them). When a command needs the network (a
refresh), :meth:`OfflineContainer.full` builds that container over the same settings, clock and
repository, and the token gateway comes from it, as it would for any other command.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kitty_auth.adapters.clock import SystemClock
from kitty_auth.adapters.settings import Settings, choose_login_server, load_settings
from kitty_auth.adapters.toml_repository import LOCK_TIMEOUT, TomlCredentialRepository
from kitty_auth.domain.model import ExpiryPolicy
from kitty_auth.domain.token_source import TokenSource
from kitty_auth.domain.use_cases import ChooseSession, EnsureFreshToken, ListSessions, Status, Switch

if TYPE_CHECKING:
    from kitty_auth.container.di import Container

_DI_MODULE = "kitty_auth.container.di"


class LazyGateway:
    """A port built on its first use (``build`` is called then, once per attribute access).

    The use cases get this stand-in, so ``get_access_token`` or `auth token` on a fresh token (no
    request) never imports httpx, truststore or pydantic nor builds an SSL context.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self._build = build

    def __getattr__(self, name: str) -> Any:
        return getattr(self._build(), name)


def login_target(settings: Callable[[], Settings], status: Callable[[], Status], explicit: str | None = None, *,
                 explicit_source: str = "--server") -> str:
    """The server a login talks to (``choose_login_server``); the stored session is read through
    ``status()`` only when neither ``explicit`` nor the environment or config names a server (a
    symlinked or unreadable file fails there, before any prompt or request)."""

    def stored_server() -> str | None:
        current = status().execute().credentials
        return current.server_url if current is not None else None

    return choose_login_server(settings(), explicit, stored_server, explicit_source=explicit_source)


def login_server(container: Any, explicit: str | None = None, *, explicit_source: str = "--server") -> str:
    """The server a login talks to, for the CLI and the library alike, from either container."""
    return login_target(container.settings, container.status, explicit, explicit_source=explicit_source)


def honoured_environment_token(settings: Settings, honoured: bool = True) -> Any:
    """The token of SPEC_KITTY_SAAS_TOKEN, None when unset (or not ``honoured``: the spec-kitty 2.x adapter)."""
    return settings.environment_token if honoured else None


class OfflineContainer:
    """Settings, clock, policy, repository and the offline use cases, each built once, on first use.

    Each method answers like the provider of the same name of the dependency-injector container
    (``container.status()`` is a new Status in both), so the commands take either: the CLI builds
    this one, and a host or a test may pass a full container instead.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings
        self._parts: dict[str, Any] = {}
        self._full: Container | None = None

    def _once(self, name: str, build: Callable[[], Any]) -> Any:
        if name not in self._parts:
            self._parts[name] = build()
        return self._parts[name]

    # -- the parts (singletons, as in the full container)

    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    def clock(self) -> SystemClock:
        return self._once("clock", SystemClock)  # type: ignore[no-any-return]

    def policy(self) -> ExpiryPolicy:
        return self._once("policy", ExpiryPolicy)  # type: ignore[no-any-return]

    def repository(self) -> TomlCredentialRepository:
        return self._once("repository", lambda: TomlCredentialRepository(  # type: ignore[no-any-return]
            path=self.settings().credentials_path, lock_path=None, lock_timeout=LOCK_TIMEOUT))

    def lazy_gateway(self) -> LazyGateway:
        """The full container's gateway, built (with the container) only when a request is sent."""
        return self._once("lazy_gateway", lambda: LazyGateway(lambda: self.full().lazy_gateway()))  # type: ignore[no-any-return]

    # -- the use cases (new each time, as the full container's factories)

    def status(self) -> Status:
        return Status(repo=self.repository(), clock=self.clock())

    def list_sessions(self) -> ListSessions:
        return ListSessions(repo=self.repository(), clock=self.clock())

    def switch(self) -> Switch:
        return Switch(repo=self.repository())

    def choose_session(self) -> ChooseSession:
        return ChooseSession(repo=self.repository())

    def ensure_fresh_token(self) -> EnsureFreshToken:
        return EnsureFreshToken(repo=self.repository(), gateway=self.lazy_gateway(), clock=self.clock(),  # type: ignore[arg-type]
                                policy=self.policy())

    def token_source(self) -> TokenSource:
        return TokenSource(ensure_fresh=self.ensure_fresh_token(), repo=self.repository(),
                           environment=honoured_environment_token(self.settings()),
                           login_server=lambda: login_server(self))

    # -- the rest

    def full(self) -> Container:
        """The dependency-injector container, over this one's settings, clock and repository."""
        if self._full is None:
            from kitty_auth.container.di import build_container  # first: it loads dependency-injector its way
            from dependency_injector import providers

            full = build_container(self.settings())
            full.clock.override(providers.Object(self.clock()))
            full.repository.override(providers.Object(self.repository()))
            self._full = full
        return self._full


def is_container(obj: object) -> bool:
    """True for a container the commands can use: an OfflineContainer, or one ``build_container`` built."""
    if isinstance(obj, OfflineContainer):
        return True
    di = sys.modules.get(_DI_MODULE)  # not imported: no such container can exist
    return di is not None and bool(di.is_container(obj))
