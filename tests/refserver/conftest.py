"""Makes the reference server fixtures available to its own tests (a no-op if a parent conftest registered them)."""

import importlib

import pytest

FIXTURES = "refserver.fixtures"


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.get_plugin(FIXTURES) is None:
        config.pluginmanager.register(importlib.import_module(FIXTURES), FIXTURES)
