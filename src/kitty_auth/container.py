"""The composition root: the one place that names adapters and wires them to the use cases.

Providers are lazy: `auth status` builds only the settings, the clock and the repository, and
the network adapters (httpx, truststore, websockets) are imported only when first provided.
"""

from __future__ import annotations

import sys
from pathlib import Path

from dependency_injector import containers, providers

from kitty_auth.adapters.clock import SystemClock
from kitty_auth.adapters.settings import Settings, configure_logging, load_settings
from kitty_auth.adapters.toml_repository import TomlCredentialRepository
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

    return HttpxTokenGateway()


__all__ = ["Container", "Settings", "build_container", "close_network", "is_container", "configure_logging", "load_settings"]


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    lock_timeout = providers.Object(10.0)
    clock = providers.Singleton(SystemClock)
    policy = providers.Singleton(ExpiryPolicy)
    credentials_path = providers.Callable(lambda settings: settings.credentials_path, settings)
    repository = providers.Singleton(TomlCredentialRepository, path=credentials_path, lock_timeout=lock_timeout)
    gateway = providers.Singleton(_httpx_gateway)

    login = providers.Factory(Login, repo=repository, gateway=gateway, clock=clock)
    logout = providers.Factory(Logout, repo=repository)
    status = providers.Factory(Status, repo=repository, clock=clock)
    ensure_fresh_token = providers.Factory(
        EnsureFreshToken, repo=repository, gateway=gateway, clock=clock, policy=policy
    )
    obtain_ws_token = providers.Factory(ObtainWsToken, ensure_fresh=ensure_fresh_token, gateway=gateway)


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
