"""The composition root: the one place that names adapters and wires them to the use cases.

Providers are lazy: `auth status` builds only the settings, the clock and the repository, and
the network adapters (httpx, truststore, websockets) are imported only when first provided.
The use cases receive the HTTP gateway through a stand-in that builds it on first use, so
`get_access_token` with a fresh token imports no network code either. dependency-injector
itself is imported through `kitty_auth.di_import`, which spares start-up its pydantic probe.
Figures: README.md, "Performance"; the import guard: tests/unit/test_startup_imports.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kitty_auth import di_import

di_import.load()  # dependency-injector without its pydantic probe (see kitty_auth/di_import.py)

from dependency_injector import containers, providers  # noqa: E402 (after the load above)

from kitty_auth.adapters.clock import SystemClock  # noqa: E402
from kitty_auth.adapters.settings import Settings, configure_logging, load_settings
from kitty_auth.adapters.toml_repository import LOCK_TIMEOUT, TomlCredentialRepository
from kitty_auth.domain.model import ExpiryPolicy
from kitty_auth.domain.use_cases import (
    EnsureFreshToken,
    Login,
    Logout,
    ObtainWsToken,
    Status,
)


def _httpx_gateway() -> object:
    from kitty_auth.adapters.http_gateway import HttpxTokenGateway  # imports httpx: network paths only
    from kitty_auth.adapters.session_gateway import SessionTokenGateway

    return SessionTokenGateway(HttpxTokenGateway())


class _LazyGateway:
    """The TokenGateway, built on its first use (a ``Provider`` of the real one).

    The use cases get this stand-in, so ``get_access_token`` on a fresh token (no request)
    never imports httpx, truststore or pydantic nor builds an SSL context.
    """

    def __init__(self, gateway: Callable[[], Any]) -> None:
        self._gateway = gateway

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gateway(), name)


def _websockets_connector() -> object:
    from kitty_auth.adapters.websocket_connector import WebsocketsLiveConnector  # imports websockets: live sync only

    return WebsocketsLiveConnector()


__all__ = ["Container", "Settings", "build_container", "close_network", "is_container", "configure_logging", "load_settings"]


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    lock_timeout = providers.Object(LOCK_TIMEOUT)
    clock = providers.Singleton(SystemClock)
    policy = providers.Singleton(ExpiryPolicy)
    credentials_path = providers.Callable(lambda settings: settings.credentials_path, settings)
    repository = providers.Singleton(TomlCredentialRepository, path=credentials_path, lock_timeout=lock_timeout)
    gateway = providers.Singleton(_httpx_gateway)
    lazy_gateway = providers.Singleton(_LazyGateway, gateway.provider)  # honours gateway.override(...)
    websocket_connector = providers.Singleton(_websockets_connector)

    login = providers.Factory(Login, repo=repository, gateway=lazy_gateway, clock=clock)
    logout = providers.Factory(Logout, repo=repository)
    status = providers.Factory(Status, repo=repository, clock=clock)
    ensure_fresh_token = providers.Factory(
        EnsureFreshToken, repo=repository, gateway=lazy_gateway, clock=clock, policy=policy
    )
    obtain_ws_token = providers.Factory(ObtainWsToken, ensure_fresh=ensure_fresh_token, gateway=lazy_gateway)


def build_container(settings: Settings | None = None, *, credentials_path: Path | None = None) -> Container:
    container = Container()
    if settings is not None:
        container.settings.override(providers.Object(settings))
    if credentials_path is not None:
        container.credentials_path.override(providers.Object(Path(credentials_path)))
    return container


def is_container(obj: object) -> bool:
    """True for a container built by ``build_container`` (instances are DynamicContainers)."""
    return isinstance(obj, containers.DynamicContainer) and hasattr(obj, "ensure_fresh_token")


def close_network(container: Container) -> None:
    """Close the HTTP connection pool if this container ever opened one."""
    if "kitty_auth.adapters.http_gateway" in sys.modules:  # never imported -> never opened
        container.gateway().close()
