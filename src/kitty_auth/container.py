"""The composition root: the one place that names adapters and wires them to the use cases.

Providers are lazy: `auth status` builds only the settings, the clock and the repository, and
the network adapters (httpx, truststore, websockets) are imported only when first provided.
The use cases receive the HTTP gateway through a stand-in that builds it on first use, so
`get_access_token` with a fresh token imports no network code either. Figures: README.md,
"Performance"; the import guard: tests/unit/test_startup_imports.py.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


class _SkipPydanticForDI:
    """While dependency-injector is first imported, make *its* `import pydantic` fail (~30 ms saved).

    dependency-injector imports pydantic only to see whether it is v1 (whose ``BaseSettings``
    ``Configuration.from_pydantic`` would use); with pydantic v2 (we require >= 2.5) and no
    pydantic-settings that import changes nothing. So, in the importing thread only, and only
    when pydantic-settings is not installed, `import pydantic` raises ModuleNotFoundError for
    the duration of that one import; pydantic imports normally afterwards (the HTTP adapter).
    `auth status` never needs pydantic (tests/unit/test_startup_imports.py checks it).
    """

    def __init__(self) -> None:
        self._thread = threading.get_ident()
        self._active = True

    def find_spec(self, name: str, path: Any = None, target: ModuleType | None = None) -> None:
        if not self._active or threading.get_ident() != self._thread:
            return None
        if name == "pydantic_settings":  # installed: leave dependency-injector's pydantic support alone
            if any(f is not self and getattr(f, "find_spec", None) and f.find_spec(name, path) for f in sys.meta_path):
                self._active = False
            return None
        if name == "pydantic":
            raise ModuleNotFoundError("skipped while importing dependency_injector", name=name)
        return None


_skip_pydantic: _SkipPydanticForDI | None = None
if "dependency_injector.providers" not in sys.modules and "pydantic" not in sys.modules:
    _skip_pydantic = _SkipPydanticForDI()
    sys.meta_path.insert(0, _skip_pydantic)
try:
    from dependency_injector import containers, providers
finally:
    if _skip_pydantic is not None:
        sys.meta_path.remove(_skip_pydantic)
    del _skip_pydantic

from kitty_auth.adapters.clock import SystemClock  # noqa: E402 (after the dependency-injector import above)
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
    lock_timeout = providers.Object(20.0)  # well over the 8 s request deadline: waiters outlast a slow legitimate refresh or login
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
