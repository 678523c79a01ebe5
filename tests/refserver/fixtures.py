"""Pytest fixtures for the reference server: import them into a conftest (or list this module in pytest_plugins)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from refserver.harness import RefServer


@pytest.fixture(scope="session")
def refserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RefServer]:
    """One reference server for the whole session (stopped at the end)."""
    with RefServer(tmp_path_factory.mktemp("refserver")) as server:
        yield server


@pytest.fixture
def fresh_refserver_state(refserver: RefServer) -> RefServer:
    """The session's server with no faults, empty statistics and its start-up token lifetimes."""
    refserver.reset()
    return refserver
