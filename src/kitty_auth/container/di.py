"""The composition root's dependency-injector container: every adapter wired to every use case.

The offline commands build their few parts without it (``offline.py``); everything else, and
they too once a request is needed, uses this one. Providers are lazy: `auth status` builds only the settings, the clock and the repository, and
the network adapters (httpx, truststore, websockets) are imported only when first provided.
The use cases receive the HTTP gateway through a stand-in that builds it on first use, so
`get_access_token` with a fresh token imports no network code either. dependency-injector
itself is imported through `kitty_auth.di_import`, which spares start-up its pydantic probe.
Figures: README.md, "Performance"; the import guard: tests/unit/test_startup_imports.py.
"""

from __future__ import annotations

import functools
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
from kitty_auth.container.offline import LazyGateway, honoured_environment_token, login_server, login_target
from kitty_auth.domain.model import ExpiryPolicy
from kitty_auth.domain.token_source import TokenSource
from kitty_auth.domain.use_cases import (
    ChooseSession,
    EnsureFreshToken,
    ListSessions,
    Login,
    Logout,
    ObtainWsToken,
    Status,
    Switch,
)


def _http() -> object:
    from kitty_auth.adapters.simplejwt_gateway import HttpxTokenGateway  # imports httpx: network paths only

    return HttpxTokenGateway()


def _httpx_gateway(http: object, oauth: Callable[[], Any]) -> object:
    from kitty_auth.adapters.session_gateway import SessionTokenGateway

    return SessionTokenGateway(http, oauth)  # OAuth sessions refresh through ``oauth()``, built on first use


def _renewing_gateway(gateway: object, oauth: Callable[[], Any], machine_credentials: object) -> object:
    """``gateway``, except that a machine session without a refresh token is renewed by its client
    credentials grant (``oauth()``, built on first use) with the secret from the environment."""
    from kitty_auth.domain.machine import ClientCredentialsRenewal

    return ClientCredentialsRenewal(gateway, oauth, machine_credentials)  # type: ignore[arg-type]


def _oauth_gateway(http: object) -> object:
    from kitty_auth.adapters.oauth_gateway import HttpxOAuthGateway  # OAuth logins and OAuth sessions only

    return HttpxOAuthGateway(http)  # type: ignore[arg-type]


def _revoker(http: Callable[[], Any], oauth: Callable[[], Any]) -> object:
    from kitty_auth.adapters.oauth_revocation import HttpSessionRevoker

    return HttpSessionRevoker(http(), oauth)


def _machine_revoker(revoker: object, machine_credentials: object) -> object:
    """``revoker``, except that a machine session without a refresh token is revoked as its confidential
    client (the secret from the environment)."""
    from kitty_auth.domain.machine import MachineSessionRevoker

    return MachineSessionRevoker(revoker, machine_credentials)  # type: ignore[arg-type]


def _machine_credentials() -> object:
    from kitty_auth.adapters.machine_secrets import EnvironmentMachineCredentials

    return EnvironmentMachineCredentials()


# `auth logout` finishes within 6 s (CONTRACT): it waits this long for a lock held by another process (a
# refresh in progress usually ends by then), and the whole logout -- lock, removal, revoke request -- gets
# LOGOUT_BUDGET from its start; the rest of the 6 s is the interpreter's start-up and the network imports.
LOGOUT_LOCK_WAIT = 3.0
LOGOUT_BUDGET = 4.5


def _logout_repository(repo: Any, wait: float) -> Any:
    """The repository logout uses: the same file with a shorter wait for its lock (a fake is used as is)."""
    if isinstance(repo, TomlCredentialRepository):
        return TomlCredentialRepository(repo.path, lock_path=repo.lock_path, lock_timeout=wait)
    return repo


def _web_browser() -> object:
    from kitty_auth.adapters.oauth_browser import WebBrowser

    return WebBrowser()


def _loopback_listener() -> object:
    """The ListenerFactory of browser logins: a started loopback listener per call."""
    from kitty_auth.adapters.oauth_loopback import LoopbackCallbackListener

    return LoopbackCallbackListener()


def _oauth_use_case(name: str) -> Callable[..., Any]:
    """A provider for an OAuth login use case, imported only when a login needs it (not by status)."""

    def build(**kwargs: Any) -> Any:
        from kitty_auth.domain import oauth_use_cases

        return getattr(oauth_use_cases, name)(**kwargs)

    return build


def _machine_login(**kwargs: Any) -> Any:
    """`login --machine`'s use case, imported only when a machine login runs."""
    from kitty_auth.domain.machine_login import LoginWithClientCredentials

    return LoginWithClientCredentials(**kwargs)


_LazyGateway = LazyGateway  # the port built on its first use (see offline.py)


def _doctor_facts(settings: Settings, repository: Any) -> object:
    from kitty_auth.adapters.doctor_facts import FileSystemDoctorFacts  # `auth doctor` only (imports truststore)

    return FileSystemDoctorFacts(settings, repository)


def _server_probe(http: Callable[[], Any], clock: Any) -> object:
    from kitty_auth.adapters.doctor_probe import HttpsServerProbe  # imports httpx: `auth doctor` online only

    return HttpsServerProbe(http(), clock)


def _doctor_use_case(name: str) -> Callable[..., Any]:
    """A provider for a doctor use case, imported only by `auth doctor`."""

    def build(**kwargs: Any) -> Any:
        from kitty_auth.domain import doctor

        return getattr(doctor, name)(**kwargs)

    return build


def _websockets_connector() -> object:
    from kitty_auth.adapters.websocket_connector import WebsocketsLiveConnector  # imports websockets: live sync only

    return WebsocketsLiveConnector()


__all__ = ["Container", "Settings", "build_container", "close_network", "is_container", "configure_logging", "load_settings",
           "login_server"]


class Container(containers.DeclarativeContainer):
    settings = providers.Singleton(load_settings)
    lock_timeout = providers.Object(LOCK_TIMEOUT)
    clock = providers.Singleton(SystemClock)
    policy = providers.Singleton(ExpiryPolicy)
    credentials_path = providers.Callable(lambda settings: settings.credentials_path, settings)
    lock_path = providers.Object(None)  # None: beside the credentials file (credentials.lock)
    repository = providers.Singleton(
        TomlCredentialRepository, path=credentials_path, lock_path=lock_path, lock_timeout=lock_timeout
    )
    http = providers.Singleton(_http)
    oauth_gateway = providers.Singleton(_oauth_gateway, http)
    machine_credentials = providers.Singleton(_machine_credentials)  # the environment's machine client
    gateway = providers.Singleton(_httpx_gateway, http, oauth_gateway.provider)
    renewing_gateway = providers.Singleton(_renewing_gateway, gateway, oauth_gateway.provider, machine_credentials)
    revoker = providers.Singleton(_revoker, http.provider, oauth_gateway.provider)
    machine_revoker = providers.Singleton(_machine_revoker, revoker, machine_credentials)
    lazy_revoker = providers.Singleton(_LazyGateway, machine_revoker.provider)  # `logout --local` imports no network code
    browser = providers.Singleton(_web_browser)
    callback_listener = providers.Object(_loopback_listener)
    lazy_gateway = providers.Singleton(_LazyGateway, renewing_gateway.provider)  # honours gateway.override(...)
    websocket_connector = providers.Singleton(_websockets_connector)

    login = providers.Factory(Login, repo=repository, gateway=lazy_gateway, clock=clock)
    logout = providers.Factory(Logout, repo=repository, revoker=lazy_revoker)  # the library's clear_credentials
    logout_repository = providers.Callable(_logout_repository, repository, LOGOUT_LOCK_WAIT)
    logout_command = providers.Factory(  # `auth logout`: bounded by the contract's 6 s; says who is active next
        Logout, repo=logout_repository, revoker=lazy_revoker, budget=LOGOUT_BUDGET, promote=True
    )
    choose_login_method = providers.Factory(_oauth_use_case("ChooseLoginMethod"), gateway=oauth_gateway)
    login_with_device = providers.Factory(
        _oauth_use_case("LoginWithDeviceCode"), repo=repository, gateway=oauth_gateway, clock=clock
    )
    login_with_browser = providers.Factory(
        _oauth_use_case("LoginWithBrowser"), repo=repository, gateway=oauth_gateway, clock=clock,
        browser=browser, listen=callback_listener,
    )
    login_with_client_credentials = providers.Factory(
        _machine_login, repo=repository, gateway=oauth_gateway, clock=clock, source=machine_credentials,
    )
    status = providers.Factory(Status, repo=repository, clock=clock)
    list_sessions = providers.Factory(ListSessions, repo=repository, clock=clock)
    switch = providers.Factory(Switch, repo=repository)
    choose_session = providers.Factory(ChooseSession, repo=repository)
    ensure_fresh_token = providers.Factory(
        EnsureFreshToken, repo=repository, gateway=lazy_gateway, clock=clock, policy=policy
    )
    honours_environment = providers.Object(True)  # False: SPEC_KITTY_SAAS_TOKEN is ignored (spec-kitty 2.x host)
    environment_token = providers.Callable(honoured_environment_token, settings, honours_environment)
    token_source = providers.Factory(
        TokenSource, ensure_fresh=ensure_fresh_token, repo=repository, environment=environment_token,
        login_server=providers.Callable(functools.partial, login_target, settings.provider, status.provider),
    )
    obtain_ws_token = providers.Factory(ObtainWsToken, tokens=token_source, gateway=lazy_gateway)
    # `auth doctor`: its facts read the file as the commands do; the probe builds the HTTPS core only online
    doctor_facts = providers.Singleton(_doctor_facts, settings, repository)
    server_probe = providers.Singleton(_server_probe, http.provider, clock)
    check_session = providers.Factory(
        _doctor_use_case("CheckSession"), repo=repository, ensure_fresh=ensure_fresh_token,
        prover=providers.Singleton(_LazyGateway, gateway.provider),  # the session gateway itself: ws-token and me
    )
    doctor = providers.Factory(
        _doctor_use_case("Doctor"), facts=doctor_facts, probe=providers.Singleton(_LazyGateway, server_probe.provider),
        clock=clock, check_session=check_session,
    )


def build_container(settings: Settings | None = None, *, credentials_path: Path | None = None,
                    lock_path: Path | None = None, environment: bool = True) -> Container:
    """A container; ``environment=False`` ignores SPEC_KITTY_SAAS_TOKEN (the spec-kitty 2.x adapter)."""
    container = Container()
    if not environment:
        container.honours_environment.override(providers.Object(False))
    if settings is not None:
        container.settings.override(providers.Object(settings))
    if credentials_path is not None:
        container.credentials_path.override(providers.Object(Path(credentials_path)))
    if lock_path is not None:
        container.lock_path.override(providers.Object(Path(lock_path)))
    return container


def is_container(obj: object) -> bool:
    """True for a container built by ``build_container`` (instances are DynamicContainers)."""
    return isinstance(obj, containers.DynamicContainer) and hasattr(obj, "ensure_fresh_token")


def close_network(container: Container) -> None:
    """Close the HTTP connection pool if this container ever opened one."""
    if "kitty_auth.adapters.simplejwt_gateway" in sys.modules:  # never imported -> never opened
        container.gateway().close()
