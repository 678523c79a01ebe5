"""The offline commands' container builds what the dependency-injector container builds, and hands over to it.

OfflineContainer (kitty_auth/container/offline.py) wires a few parts by plain code so that `status`,
`whoami`, `switch` and a fresh `auth token` start without dependency-injector. These tests keep the two
from drifting apart: the same classes with the same parts, and the full container built over the same
repository and clock when a request is needed.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dependency_injector import providers

from kitty_auth.container import OfflineContainer, Settings, build_container, is_container, login_server
from kitty_auth.domain.model import Credentials, TokenPair
from kitty_auth.testing import FakeClock, FakeTokenGateway

SERVER = "https://auth.example.test"
SHARED = ("settings", "clock", "policy", "repository", "status", "list_sessions", "switch", "choose_session",
          "ensure_fresh_token", "token_source")


def test_each_offline_part_is_the_full_containers_class(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, server_url=SERVER)
    offline, full = OfflineContainer(settings), build_container(settings)
    for name in SHARED:
        assert type(getattr(offline, name)()) is type(getattr(full, name)()), name
    a, b = offline.repository(), full.repository()
    assert (a.path, a.lock_path) == (b.path, b.lock_path)
    assert offline.repository() is offline.repository() and offline.clock() is offline.clock()  # singletons
    assert offline.status() is not offline.status()  # factories
    assert login_server(offline) == login_server(full) == SERVER


def test_the_full_container_shares_the_offline_repository_clock_and_settings(tmp_path: Path) -> None:
    offline = OfflineContainer(Settings(home=tmp_path, server_url=SERVER))
    full = offline.full()
    assert full is offline.full()
    assert full.repository() is offline.repository() and full.clock() is offline.clock()
    assert full.settings() is offline.settings()
    assert is_container(offline) and is_container(full) and not is_container(object())


def test_a_refresh_goes_through_the_full_containers_gateway(tmp_path: Path) -> None:
    offline = OfflineContainer(Settings(home=tmp_path, server_url=SERVER))
    clock = FakeClock(datetime.now(UTC) - timedelta(hours=1))  # the fake server issued the tokens an hour ago
    gateway = FakeTokenGateway(clock=clock)
    issued = gateway.obtain(SERVER, "user@example.com", "s3cret")
    offline.repository().save(Credentials(tokens=TokenPair.from_issued(issued, clock.now()),
                                          username="user@example.com", server_url=SERVER))
    clock.set(datetime.now(UTC))
    offline.full().gateway.override(providers.Object(gateway))
    access = offline.token_source().access_token()  # the access token expired: one refresh
    assert gateway.calls == ["obtain", "refresh"]
    assert access == offline.repository().load().tokens.access != issued.access


def test_importing_the_container_package_loads_no_dependency_injector() -> None:
    code = ("import sys, kitty_auth.container as c\n"
            "assert 'dependency_injector' not in sys.modules and 'asyncio' not in sys.modules\n"
            "c.Container\n"
            "print('dependency_injector' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "True"  # and the DI names are still there, loaded on first access
